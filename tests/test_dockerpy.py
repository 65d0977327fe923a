"""docker-py (the Python SDK) against berth."""

from __future__ import annotations

import docker
import pytest


@pytest.fixture
def client(daemon):
    c = docker.DockerClient(base_url=daemon.host)
    yield c
    c.close()


def test_containers_run_returns_output(client):
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_run_detached_list_logs_remove(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo py; sleep 30"], detach=True, name="py-d", labels={"k": "v"})
    try:
        assert client.containers.get("py-d").status == "running"
        assert [x.id for x in client.containers.list(filters={"label": "k=v"})] == [c.id]
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
        assert c.logs() == b"py\n"
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("py-d")


def test_errors_map_to_sdk_exceptions(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nope:nope")
    with pytest.raises(docker.errors.ContainerError) as err:
        client.containers.run("busybox", "sh -c 'exit 3'", remove=True)
    assert err.value.exit_status == 3


def test_images(client):
    image = client.images.get("busybox")
    assert "busybox:latest" in image.tags
    image.tag("py-tagged", "v1")
    assert client.images.get("py-tagged:v1").id == image.id
    client.images.remove("py-tagged:v1")
    assert [h["Id"] for h in image.history()][0] == image.id


def test_attach_without_stream_returns_the_logs(client):
    """`attach(logs=True, stream=False)` answers the logs so far, every time: docker-py
    reads the hijack's head through a buffered reader and loses frames that arrive with it
    (docker/docker-py#425), so berth sends them once the head has been read."""
    api = client.api
    for _ in range(20):
        cid = api.create_container("busybox", "echo hello")["Id"]
        try:
            api.start(cid)
            api.wait(cid)
            assert api.attach(cid, logs=True, stream=False) == b"hello\n"
        finally:
            api.remove_container(cid, force=True)
