"""testcontainers-python (4.15) against berth, unchanged, with Ryuk disabled (its image
cannot be had here): wait strategies (a log line, a health check sent with null fields),
port mapping fetched from the host, tmpfs, exec, copy in and out, a network alias, and
stop/remove leaving nothing. Only the local busybox is used; nothing is pulled."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

pytest.importorskip("testcontainers", reason="testcontainers is not installed (pip install testcontainers)")

from testcontainers.core.config import testcontainers_config  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402
from testcontainers.core.network import Network  # noqa: E402
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy, LogMessageWaitStrategy  # noqa: E402


@pytest.fixture
def berth_env(daemon, monkeypatch):
    """testcontainers' client on the test daemon, Ryuk off, its host the loopback."""
    monkeypatch.setenv("DOCKER_HOST", daemon.host)
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    monkeypatch.setenv("TC_HOST", "127.0.0.1")
    monkeypatch.setattr(testcontainers_config, "tc_host_override", "127.0.0.1", raising=False)
    return daemon


def test_log_wait_port_tmpfs_exec_copy_and_removal(berth_env, api, tmp_path):
    container = (DockerContainer("busybox")
                 .with_command(["sh", "-c", "mkdir /www && echo served > /www/index.html && echo ready"
                                " && exec httpd -f -p 8080 -h /www"])
                 .with_exposed_ports(8080)
                 # not with_tmpfs_mount's size="1m": it sends "1m" as the options, which
                 # dockerd refuses too (`Invalid tmpfs option ["1m"]`)
                 .with_tmpfs_mount("/scratch")
                 .waiting_for(LogMessageWaitStrategy("ready").with_startup_timeout(30)))
    with container:
        cid = container.get_container_id()
        port = container.get_exposed_port(8080)
        url = f"http://{container.get_container_host_ip()}:{port}/index.html"
        assert urllib.request.urlopen(url, timeout=10).read() == b"served\n"
        mounts = container.exec(["sh", "-c", "grep ' /scratch ' /proc/mounts"])
        assert mounts.exit_code == 0 and mounts.output.startswith(b"tmpfs /scratch tmpfs rw")
        # into the container's own filesystem: a copy under a tmpfs lands beneath it, as with dockerd
        container.copy_into_container(b"copied in\n", "/tmp/in.txt")
        assert container.exec(["cat", "/tmp/in.txt"]).output == b"copied in\n"
        container.copy_from_container("/www/index.html", tmp_path / "out.html")
        assert (tmp_path / "out.html").read_bytes() == b"served\n"
    assert api.get(f"/containers/{cid}/json").status == 404  # stop removed it


def test_health_check_wait_with_null_fields(berth_env):
    # docker-py sends the healthcheck's unset fields (Timeout, Retries, StartPeriod) as null
    container = (DockerContainer("busybox")
                 .with_command(["sh", "-c", "sleep 0.5; touch /tmp/ok; exec sleep 300"])
                 .with_kwargs(healthcheck={"test": ["CMD", "test", "-f", "/tmp/ok"], "interval": 200_000_000})
                 .waiting_for(HealthcheckWaitStrategy().with_startup_timeout(30)))
    with container:
        state = container.get_wrapped_container().attrs["State"]
        assert state["Health"]["Status"] == "healthy"


def test_network_alias(berth_env):
    with Network() as network:
        server = (DockerContainer("busybox").with_command(["sleep", "300"])
                  .with_network(network).with_network_aliases(f"srv-{uuid.uuid4().hex[:6]}"))
        with server:
            alias = server._network_aliases[0]
            client = DockerContainer("busybox").with_command(["sleep", "300"]).with_network(network)
            with client:
                found = client.exec(["nslookup", alias])
                assert found.exit_code == 0, found.output
