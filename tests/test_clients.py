"""What real clients (docker-py's integration suite, docker-compose, testcontainers) found
wrong, each as a test of berth's own through the Engine API: the swarm endpoints of a
dockerd outside a swarm, endpoints and IPAM as dockerd keeps them, nulls read as Go reads
them, kill and wait as dockerd answers them, volumes under archive calls, stream framing,
load errors, stats networks, commit's Parent, legacy links. docs/compat.md says which
client found which."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid

import pytest

from tests.api import demux


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def network(api):
    """A user-defined network of the test's own, removed after it (with its containers)."""
    made = []

    def make(**body) -> str:
        net = name("cl-net")
        reply = api.post("/networks/create", {"Name": net, **body})
        assert reply.status == 201, reply.body
        made.append(net)
        return net

    yield make
    for net in made:
        for cid in api.get_json(f"/networks/{net}")["Containers"]:
            api.remove(cid)
        api.delete(f"/networks/{net}")


@pytest.fixture
def cleanup(api):
    cids: list[str] = []
    yield cids
    for cid in cids:
        api.delete(f"/containers/{cid}", force=1, v=1)


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def stdout(api, cid) -> str:
    return b"".join(p for s, p in api.logs(cid) if s == 1).decode()


# --- swarm, as a dockerd outside a swarm ------------------------------------------------


def test_swarm_endpoints_answer_as_a_node_outside_a_swarm(api):
    reply = api.post("/swarm/leave", force=1)
    assert (reply.status, reply.message) == (503, "This node is not part of a swarm")
    reply = api.get("/v1.41/nodes")
    assert reply.status == 503 and reply.message.startswith("This node is not a swarm manager.")
    assert api.get("/services/x").status == 503 and api.post("/swarm/init", {}).status == 503


# --- networks and endpoints ----------------------------------------------------------------


def test_disconnecting_a_created_member_then_reconnecting_it(api, network, cleanup):
    """docker-compose creates a container on its network, then disconnects and reconnects
    it with its aliases before starting it."""
    net = network()
    cid = api.create(["sleep", "30"], HostConfig={"NetworkMode": net})
    cleanup.append(cid)
    assert api.post(f"/networks/{net}/disconnect", {"Container": cid}).status == 200
    assert net not in api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Networks"]
    reply = api.post(f"/networks/{net}/disconnect", {"Container": cid})
    assert reply.status == 404 and "is not connected to network" in reply.message
    assert api.post(f"/networks/{net}/connect", {"Container": cid, "EndpointConfig": {"Aliases": ["web"]}}).status == 200
    assert api.post(f"/containers/{cid}/start").status == 204
    settings = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Networks"][net]
    assert settings["IPAddress"] and settings["Aliases"][0] == "web"
    # another member finds it by the alias
    assert "web" in stdout(api, run_done(api, cleanup, ["nslookup", "web", "127.0.0.11"], HostConfig={"NetworkMode": net}))


def run_done(api, cleanup, cmd, **fields) -> str:
    cid = api.run(cmd, **fields)
    cleanup.append(cid)
    assert api.wait(cid) == 0, stdout(api, cid)
    return cid


def test_endpoint_settings_are_kept_and_honoured(api, network, cleanup):
    """IPAMConfig, Links (network-scoped: a DNS name for this container only), DriverOpts
    and MacAddress of an endpoint; IPRange and AuxiliaryAddresses of the pool."""
    net = network(IPAM={"Config": [{"Subnet": "10.251.7.0/24", "IPRange": "10.251.7.128/25",
                                    "AuxiliaryAddresses": {"spare": "10.251.7.129"}, "Gateway": None}]})
    pool = api.get_json(f"/networks/{net}")["IPAM"]["Config"][0]
    assert pool == {"Subnet": "10.251.7.0/24", "Gateway": "10.251.7.1", "IPRange": "10.251.7.128/25",
                    "AuxiliaryAddresses": {"spare": "10.251.7.129"}}
    upstream = api.run(["sleep", "30"], name=name("up"), HostConfig={"NetworkMode": net})
    cleanup.append(upstream)
    assert api.get_json(f"/containers/{upstream}/json")["NetworkSettings"]["Networks"][net]["IPAddress"] \
        == "10.251.7.130"  # the range's first free one: .129 is auxiliary
    upstream_name = api.get_json(f"/containers/{upstream}/json")["Name"][1:]
    endpoint = {"IPAMConfig": {"IPv4Address": "10.251.7.9"}, "Links": [f"{upstream_name}:bar"],
                "DriverOpts": {"k": "v"}, "MacAddress": "02:42:ac:11:00:09"}
    cid = api.run(["sh", "-c", "ip addr show eth0; nslookup bar 127.0.0.11"], HostConfig={"NetworkMode": net},
                  NetworkingConfig={"EndpointsConfig": {net: endpoint}})
    cleanup.append(cid)
    assert api.wait(cid) == 0, stdout(api, cid)
    text = stdout(api, cid)
    assert "10.251.7.9/24" in text and "02:42:ac:11:00:09" in text and "10.251.7.130" in text
    shown = api.get_json(f"/containers/{cid}/json")["NetworkSettings"]["Networks"][net]
    assert shown["IPAMConfig"]["IPv4Address"] == "10.251.7.9" and shown["Links"] == [f"{upstream_name}:bar"]
    assert shown["DriverOpts"] == {"k": "v"}
    reply = api.post("/containers/create", {"Image": "busybox", "HostConfig": {"NetworkMode": net},
                                            "NetworkingConfig": {"EndpointsConfig": {net: {}, "nope": {}}}})
    assert reply.status == 400 and "cannot be connected to network endpoints" in reply.message
    # an address of one's own only on a network whose subnet was asked for, as dockerd
    picked = network()
    for mode, words in ((picked, "only when connecting to networks with user configured subnets"),
                        ("bridge", "on user defined networks only")):
        reply = api.post("/containers/create", {"Image": "busybox", "HostConfig": {"NetworkMode": mode}, "NetworkingConfig": {
            "EndpointsConfig": {mode: {"IPAMConfig": {"IPv4Address": "10.251.8.9"}}}}})
        assert (reply.status, reply.message) == (400, f"user specified IP address is supported {words}")


def test_ipv6_network(api, network, cleanup):
    net = network(EnableIPv6=True, IPAM={"Config": [{"Subnet": "fd00:b3:7::/64"}]})
    shown = api.get_json(f"/networks/{net}")
    assert shown["EnableIPv6"] is True
    assert [p["Subnet"] for p in shown["IPAM"]["Config"]][1:] == ["fd00:b3:7::/64"]
    peer = api.run(["sleep", "30"], HostConfig={"NetworkMode": net})
    cleanup.append(peer)
    settings = api.get_json(f"/containers/{peer}/json")["NetworkSettings"]["Networks"][net]
    assert settings["IPv6Gateway"] == "fd00:b3:7::1" and settings["GlobalIPv6PrefixLen"] == 64
    assert settings["GlobalIPv6Address"].startswith("fd00:b3:7::")
    run_done(api, cleanup, ["ping", "-6", "-c", "1", "-W", "5", settings["GlobalIPv6Address"]],
             HostConfig={"NetworkMode": net})


def test_network_names_with_spaces(api):
    assert api.post("/networks/create", {"Name": "cl net 1"}).status == 201
    assert api.get_json("/networks/cl%20net%201")["Name"] == "cl net 1"
    assert api.delete("/networks/cl%20net%201").status == 204


# --- request bodies ---------------------------------------------------------------------------


def test_nulls_are_zero_values_as_go_reads_them(api, cleanup):
    """testcontainers sends `Healthcheck.Timeout: null`, docker-py `StartPeriod: null`."""
    cid = api.create(["sleep", "1"], Healthcheck={"Test": ["CMD", "true"], "Interval": 1_000_000_000,
                                                   "Timeout": None, "StartPeriod": None},
                     HostConfig={"PortBindings": {"80/tcp": None}, "Tmpfs": {"/scratch": ""}, "Binds": None})
    cleanup.append(cid)
    shown = api.get_json(f"/containers/{cid}/json")
    # a zero duration is left out, as Docker's omitempty leaves it
    assert "Timeout" not in shown["Config"]["Healthcheck"] and shown["HostConfig"]["Tmpfs"] == {"/scratch": ""}
    reply = api.post("/containers/create", {"Image": "busybox", "Healthcheck": {"Interval": "x"}})
    assert reply.status == 400 and "Interval" in reply.message


def test_log_drivers_as_dockerd_takes_them(api, cleanup):
    cid = api.run(["echo", "hi"], HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-file": "100"}}})
    cleanup.append(cid)
    assert api.get_json(f"/containers/{cid}/json")["HostConfig"]["LogConfig"]["Config"] == {"max-file": "100"}
    cid = api.run(["echo", "hi"], HostConfig={"LogConfig": {"Type": "none"}})
    cleanup.append(cid)
    assert api.wait(cid) == 0
    reply = api.post("/containers/create", {"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "asdf"}}})
    assert (reply.status, reply.message) == (400, "logger: no log driver named 'asdf' is registered")


def test_runtime_mac_address_and_volume_driver_are_reported(api, cleanup):
    """docker-py puts `runtime=` at the top of the create body, `mac_address=` in Config."""
    cid = api.create(["ip", "link", "show", "eth0"], Runtime="runc", MacAddress="02:42:ac:11:00:42",
                     HostConfig={"VolumeDriver": "foo"})
    cleanup.append(cid)
    shown = api.get_json(f"/containers/{cid}/json")
    assert shown["HostConfig"]["Runtime"] == "runc" and shown["HostConfig"]["VolumeDriver"] == "foo"
    assert api.post(f"/containers/{cid}/start").status == 204 and api.wait(cid) == 0
    assert "02:42:ac:11:00:42" in stdout(api, cid)
    reply = api.post("/containers/create", {"Image": "busybox", "MacAddress": "nope"})
    assert (reply.status, reply.message) == (400, "invalid MAC address: nope")


# --- lifecycle ------------------------------------------------------------------------------


def test_kill_answers_once_the_container_is_dead(api):
    cid = api.run(["sleep", "30"])
    assert api.post(f"/containers/{cid}/kill").status == 204
    assert api.delete(f"/containers/{cid}").status == 204  # no 409: it is not running any more


def test_wait_answers_at_the_exit_of_a_restarting_container(api):
    cid = api.run(["sh", "-c", "sleep 0.5; exit 3"], HostConfig={"RestartPolicy": {"Name": "always"}})
    assert api.wait(cid) == 3
    reply = api.delete(f"/containers/{cid}")
    assert reply.status == 409
    api.remove(cid)


# --- files ---------------------------------------------------------------------------------


def test_archive_calls_reach_anonymous_and_read_only_volumes(api, cleanup):
    """Config.Volumes (the request's or the image's) become anonymous volumes; archive calls
    on a path in a volume work on the volume, running or not; a :ro one refuses a PUT."""
    volume = name("cl-ro")
    cid = api.create(["sh", "-c", "echo made > /vol1/data.txt; cat /vol1/put.txt; sleep 30"], Volumes={"/vol1": {}},
                     HostConfig={"Binds": [f"{volume}:/ro:ro"]})
    cleanup.append(cid)
    assert api.request("PUT", f"/containers/{cid}/archive", query={"path": "/vol1"},
                       body=tar_of({"put.txt": b"put\n"})).status == 200
    assert api.post(f"/containers/{cid}/start").status == 204
    deadline = time.monotonic() + 10
    while "put" not in stdout(api, cid):
        assert time.monotonic() < deadline, stdout(api, cid)
        time.sleep(0.1)
    got = api.request("GET", f"/containers/{cid}/archive", query={"path": "/vol1/data.txt"})
    assert got.status == 200
    assert tarfile.open(fileobj=io.BytesIO(got.body)).extractfile("data.txt").read() == b"made\n"
    reply = api.request("PUT", f"/containers/{cid}/archive", query={"path": "/ro"}, body=tar_of({"x": b"x"}))
    assert (reply.status, reply.message) == (403, "mounted volume is marked read-only")
    mounts = {m["Destination"]: m for m in api.get_json(f"/containers/{cid}/json")["Mounts"]}
    api.remove(cid)
    cleanup.remove(cid)
    api.delete(f"/volumes/{volume}")
    api.delete(f"/volumes/{mounts['/vol1']['Name']}")


# --- streams -------------------------------------------------------------------------------


def test_streams_frame_each_line(api, cleanup):
    """Logs and attach send a frame per line, as dockerd (docker-py's stream yields frames);
    `attach?logs=1&stream=0` answers the logs so far and ends."""
    cid = api.run(["sh", "-c", "echo hello; echo world; sleep 0.3; echo oops >&2"])
    cleanup.append(cid)
    assert api.wait(cid) == 0
    assert api.logs(cid) == [(1, b"hello\n"), (1, b"world\n"), (2, b"oops\n")]
    sock, data = api.hijack(f"/containers/{cid}/attach", logs=1, stream=0, stdout=1, stderr=1)
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert demux(data) == [(1, b"hello\n"), (1, b"world\n"), (2, b"oops\n")]


def test_clients_that_copy_bytes_get_a_frame_per_run_of_lines(api, cleanup):
    """The docker CLI and berth's own write each frame out as it is: they get one frame
    per run of lines from the same stream, the same bytes in the same order per stream
    (the docker CLI's one write(2) per frame made a frame per line slow to read back);
    any other client, docker-py among them, a frame per line."""
    cid = api.run(["sh", "-c", "seq 1 2000; sleep 0.2; echo oops >&2; sleep 0.2; echo back"])  # pauses: two pipes
    cleanup.append(cid)
    assert api.wait(cid) == 0
    lines = [(1, f"{i}\n".encode()) for i in range(1, 2001)] + [(2, b"oops\n"), (1, b"back\n")]
    query = {"stdout": 1, "stderr": 1}
    for agent in ("docker-sdk-python/7.1.0", "docker-compose/1.29.2 docker-py/5.0.3 Linux/6.1"):
        reply = api.request("GET", f"/containers/{cid}/logs", query=query, headers={"User-Agent": agent})
        assert demux(reply.body) == lines, agent
    for agent in ("Docker-Client/28.2.2 (linux)", "berth-cli"):
        got = demux(api.request("GET", f"/containers/{cid}/logs", query=query, headers={"User-Agent": agent}).body)
        assert len(got) < 100, agent
        for stream in (1, 2):  # every byte, in order, on its own stream
            assert b"".join(d for s, d in got if s == stream) == b"".join(d for s, d in lines if s == stream)
        assert got[-1] == (1, b"back\n")  # after the stderr line: order across streams is kept


def test_exec_start_frames_by_the_start_requests_tty(api, cleanup):
    cid = api.run(["sleep", "30"])
    cleanup.append(cid)
    exec_id = api.post(f"/containers/{cid}/exec", {"Cmd": ["printf", "yay"], "Tty": True,
                                                   "AttachStdout": True}).json()["Id"]
    sock, data = api.hijack(f"/exec/{exec_id}/start", {"Tty": False})
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    assert demux(data) == [(1, b"yay")]


def test_exec_detach_keys_end_the_session(api, cleanup):
    cid = api.run(["sleep", "30"], OpenStdin=True)
    cleanup.append(cid)
    exec_id = api.post(f"/containers/{cid}/exec", {"Cmd": ["cat"], "Tty": True, "AttachStdin": True,
                                                   "AttachStdout": True, "DetachKeys": "ctrl-p,x,ctrl-p"}).json()["Id"]
    sock, _ = api.hijack(f"/exec/{exec_id}/start", {"Tty": True})
    sock.sendall(b"\x10")
    time.sleep(0.3)  # the keys' first byte alone is held back, not taken for the end of input
    sock.sendall(b"x\x10")
    sock.settimeout(10)
    while sock.recv(65536):
        pass  # the daemon closes the connection at the keys
    sock.close()


def test_load_of_a_bad_archive_is_an_error_in_a_chunked_200(api):
    reply = api.request("POST", "/images/load", body=b"abc")
    assert reply.status == 200 and reply.headers.get("transfer-encoding") == "chunked"
    [message] = [json.loads(line) for line in reply.body.splitlines()]
    assert message["errorDetail"]["message"].startswith("invalid tar archive") and message["error"]


def test_stats_show_networks(api, cleanup):
    cid = api.run(["sleep", "30"])
    cleanup.append(cid)
    reading = api.get_json(f"/containers/{cid}/stats", stream=0, **{"one-shot": 1})
    assert set(reading["networks"]["eth0"]) >= {"rx_bytes", "rx_packets", "tx_bytes", "tx_dropped"}


def test_commit_names_the_containers_image_as_parent(api, cleanup):
    cid = api.run(["touch", "/made"])
    cleanup.append(cid)
    assert api.wait(cid) == 0
    image = api.post("/commit", container=cid).json()["Id"]
    try:
        assert api.get_json(f"/images/{image}/json")["Parent"] == api.get_json("/images/busybox/json")["Id"]
    finally:
        api.delete(f"/images/{image}")


def test_legacy_links_env_hosts_and_removal(api, cleanup):
    child = api.run(["sleep", "30"], name=name("child"), Env=["SECRET=s1"], ExposedPorts={"8080/tcp": {}})
    cleanup.append(child)
    child_name = api.get_json(f"/containers/{child}/json")["Name"][1:]
    parent_name = name("parent")
    parent = api.run(["sh", "-c", "env; cat /etc/hosts; sleep 30"], name=parent_name,
                     HostConfig={"Links": [f"{child_name}:my-db"]})
    cleanup.append(parent)
    ip = api.get_json(f"/containers/{child}/json")["NetworkSettings"]["IPAddress"]
    deadline = time.monotonic() + 10
    while "my-db" not in stdout(api, parent).split("MY_DB_NAME")[-1]:
        assert time.monotonic() < deadline, stdout(api, parent)
        time.sleep(0.1)
    text = stdout(api, parent)
    for line in (f"MY_DB_NAME=/{parent_name}/my-db", "MY_DB_ENV_SECRET=s1", f"MY_DB_PORT=tcp://{ip}:8080",
                 f"MY_DB_PORT_8080_TCP_ADDR={ip}", "MY_DB_PORT_8080_TCP_PORT=8080", "MY_DB_PORT_8080_TCP_PROTO=tcp"):
        assert line in text.splitlines(), line
    assert f"{ip}\tmy-db" in text
    assert api.delete(f"/containers/{parent_name}/my-db", link=1).status == 204
    assert api.get_json(f"/containers/{parent}/json")["HostConfig"]["Links"] is None
    assert api.delete(f"/containers/{parent_name}/my-db", link=1).status == 404
    reply = api.delete(f"/containers/{parent_name}", link=1)
    assert (reply.status, reply.message) == (409, "Conflict, cannot remove the default link name of the container")
