"""Bad input is a 400 that names it, and a full disk a 507 that names what could not be
written: never a 500, never a silent close, and the daemon serves on (issue 12, item 4).

Times (`since`/`until` of logs, events and prune) that are no representable time, network
names outside Docker's rule for names, IPAM gateways, ranges and auxiliary addresses outside
their subnet. The full disk is real: a daemon whose --root is a small tmpfs of the test's
own, filled to the last byte, then freed again.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.full_disk import fill, small_filesystem
from tests.test_images import import_, rootfs_tar

BAD_TIMES = ["99999999999999999999", "-99999999999999999999", "9" * 5000, "253402300800",
             "10000-01-01T00:00:00Z", "yesterday", "1e5"]


def events(api, **query) -> list[dict]:
    reply = api.get("/events", **query)
    assert reply.status == 200, (reply.status, reply.body)
    return [json.loads(line) for line in reply.body.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def quiet(daemon):
    """A container that has run (`echo hi`), for its logs."""
    api = daemon.api
    cid = api.run(["echo", "hi"])
    api.wait(cid)
    yield cid
    api.remove(cid)


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_log_and_event_times_out_of_range_are_400(api, quiet, param, value):
    for path in (f"/containers/{quiet}/logs", "/events"):
        reply = api.get(path, stdout=1, **{param: value})
        assert reply.status == 400, (path, reply.status, reply.body[:200])
        assert reply.message.startswith(f"invalid value for {param}: ") and len(reply.message) < 200


def test_times_at_the_edges_of_the_range(api, quiet):
    assert api.logs(quiet, until="253402300799.999999999") == [(1, b"hi\n")]
    assert api.logs(quiet, since="253402300799") == []
    assert api.logs(quiet, since="-62135596800") == [(1, b"hi\n")]
    assert events(api, since="-62135596800", until="1") == []
    reply = api.post("/containers/prune", filters=json.dumps({"until": ["99999999999999999999"]}))
    assert reply.status == 400 and reply.message.startswith("invalid value for until: ")


@pytest.mark.parametrize("name", ["a/b", "..", ".", "a\x00b", ""])  # dockerd takes "a b", "-a": so does berth
def test_network_names_outside_dockers_rule_are_400(api, name):
    since = time.time()
    reply = api.post("/networks/create", {"Name": name})
    assert reply.status == 400, (reply.status, reply.body)
    assert name not in [n["Name"] for n in api.get_json("/networks")]
    created = events(api, since=f"{since:.9f}", until=f"{time.time():.9f}", filters='{"type":["network"]}')
    assert [e for e in created if e["Actor"]["Attributes"]["name"] == name] == []


@pytest.mark.parametrize("pool,message", [
    ({"Subnet": "10.77.0.0/16", "Gateway": "not-an-address"}, "invalid gateway not-an-address: invalid address"),
    ({"Subnet": "10.77.0.0/16", "Gateway": "10.78.0.1"}, "invalid gateway 10.78.0.1: parent subnet 10.77.0.0/16"),
    ({"Subnet": "10.77.0.0/16", "Gateway": "fd00::1"}, "invalid gateway fd00::1: parent subnet is an IPv4 block"),
    ({"Subnet": "10.77.0.0/16", "IPRange": "bogus"}, "invalid ip-range bogus: invalid CIDR block notation"),
    ({"Subnet": "10.77.0.0/16", "IPRange": "10.0.0.0/8"}, "invalid ip-range 10.0.0.0/8: parent subnet"),
    ({"Subnet": "10.77.0.0/16", "IPRange": "10.77.1.1/24"}, "invalid ip-range 10.77.1.1/24: it should be 10.77.1.0/24"),
    ({"Subnet": "10.77.0.0/16", "AuxiliaryAddresses": {"r": "10.1.1.1"}}, "invalid auxiliary address r=10.1.1.1"),
    ({"Subnet": "10.77.0.1/16"}, "invalid subnet 10.77.0.1/16: it should be 10.77.0.0/16"),
])
def test_ipam_outside_its_subnet_is_400(api, pool, message):
    name = f"ipam-{secrets.token_hex(4)}"
    reply = api.post("/networks/create", {"Name": name, "IPAM": {"Config": [pool]}})
    assert reply.status == 400 and reply.message.startswith(message), (reply.status, reply.body)
    assert api.get(f"/networks/{name}").status == 404


def test_ipam_inside_its_subnet_and_a_bad_bridge_name(api):
    pool = {"Subnet": "10.77.0.0/16", "Gateway": "10.77.0.254", "IPRange": "10.77.8.0/22",
            "AuxiliaryAddresses": {"router": "10.77.0.2"}}
    reply = api.post("/networks/create", {"Name": "ipam-ok", "IPAM": {"Config": [pool]}})
    assert reply.status == 201, reply.body
    assert api.get_json("/networks/ipam-ok")["IPAM"]["Config"][0]["Gateway"] == "10.77.0.254"
    assert api.delete("/networks/ipam-ok").status == 204
    reply = api.post("/networks/create", {"Name": "bad-bridge", "Options": {"com.docker.network.bridge.name": "a/b"}})
    assert reply.status == 400 and "invalid bridge name" in reply.message


# --- a full disk -------------------------------------------------------------------


@pytest.fixture
def small_root():
    """A root on a tmpfs of 16 MiB (set up before the daemon, so unmounted after it stopped)."""
    with small_filesystem("16m") as point:
        yield point / f"berth-{secrets.token_hex(4)}"


@pytest.fixture
def small(small_root, fresh_daemon) -> Daemon:
    """A daemon whose whole root is on the small tmpfs."""
    return fresh_daemon(root=small_root)


def no_space(reply, what: str = "") -> bool:
    return reply.status == 507 and reply.message.startswith("no space left on device: could not write ") \
        and what in reply.message


def test_a_full_disk_is_a_507_naming_what_and_the_daemon_serves_on(small):
    api, root = small.api, small.root
    named = api.create(["true"], name="before-full")
    idle = api.create(["echo", "later"])
    record = root / "containers" / named / "record.json"
    filler = fill(root.parent)
    try:
        assert no_space(api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]}))
        assert no_space(api.post(f"/containers/{named}/rename", name="renamed"), str(record))
        assert json.loads(record.read_bytes())["name"] == "before-full"  # the old record, whole
        assert api.get_json(f"/containers/{named}/json")["Name"] == "/before-full"  # and memory agrees
        assert not list(record.parent.glob(".*.tmp"))
        assert no_space(api.post("/networks/create", {"Name": "full-net"}), str(root / "networks"))
        assert no_space(api.post("/volumes/create", {"Name": "full-vol"}), "volume.json")
        assert no_space(api.post("/images/busybox/tag", repo="full-tag"), "repositories.json")
        assert no_space(import_(api, rootfs_tar({"big": b"x" * 100_000}), repo="full-img"))
        assert no_space(api.post(f"/containers/{idle}/start"))
        assert idle not in Path(f"/proc/{small.proc.pid}/mounts").read_text()  # the failed start mounted nothing it kept
        assert api.get("/_ping").status == 200
        assert api.get("/networks/full-net").status == 404 and api.get("/images/full-img/json").status == 404
    finally:
        filler.unlink()
    assert api.post(f"/containers/{named}/rename", name="renamed-again").status == 204
    assert json.loads(record.read_bytes())["name"] == "renamed-again"
    assert api.post(f"/containers/{idle}/start").status == 204 and api.wait(idle) == 0
    assert api.logs(idle) == [(1, b"later\n")]
    assert api.post("/networks/create", {"Name": "full-net"}).status == 201
    assert api.delete("/networks/full-net").status == 204
    for cid in (named, idle):
        api.remove(cid)


def test_a_container_outlives_a_full_disk_under_its_log(small):
    """While the disk is full its output waits in its pipe (the container blocks once the
    pipe is full, as behind a slow reader) and its events are held in memory; it runs on,
    and once there is room again every line is logged, none lost, none twice."""
    api, root = small.api, small.root
    cid = api.run(["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.01; done"])
    time.sleep(0.2)
    since = time.time()
    filler = fill(root.parent)
    try:
        time.sleep(0.5)
        reply = api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})  # an event while the journal is full
        assert reply.status == 201, reply.body
        assert api.get("/_ping").status == 200
    finally:
        filler.unlink()
    time.sleep(1.5)  # the next try of the blocked write (at most a second apart)
    assert api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "running"
    numbers = [int(m) for m in re.findall(rb"line (\d+)\n", b"".join(data for _, data in api.logs(cid)))]
    assert numbers == list(range(len(numbers))) and len(numbers) > 100  # every line, in order, once
    log = small.log.read_text()
    assert log.count(f"{cid}-json.log: could not write the container's log: [Errno 28]") == 1
    assert f"{cid}-json.log: the log is written again" in log
    replay = events(api, since=f"{since:.9f}", until=f"{time.time():.9f}", filters=json.dumps({"container": [cid]}))
    actions = [e["Action"] for e in replay]
    assert actions[0] == "log_blocked" and actions[-1] == "log_resumed" and "exec_create: true " in actions, actions
    assert replay[0]["Actor"]["Attributes"]["error"] == "No space left on device"
    api.remove(cid)
    assert api.get(f"/containers/{cid}/json").status == 404


@pytest.mark.parametrize("body,message", [
    ({"Image": "busybox", "HostConfig": {"Memory": 2**63}}, "does not fit in a 64-bit integer"),
    ({"Image": "busybox", "HostConfig": {"MemorySwap": -(2**63) - 1}}, "does not fit in a 64-bit integer"),
    ({"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 2**64, "Hard": 1}]}}, "64-bit"),
    ({"Image": "busybox", "Tty": True, "HostConfig": {"ConsoleSize": [70000, 70000]}}, "from 0 to 65535"),
    ({"Image": "busybox", "Env": [""]}, "invalid environment variable"),
    ({"Image": "busybox", "Cmd": ["echo", "a\0b"]}, "NUL"),
    ({"Image": "busybox", "WorkingDir": "/a\0b"}, "NUL"),
])
def test_values_no_go_client_could_read_back_are_400(api, body, message):
    """Stored, an integer beyond 64 bits would break `inspect` for every Go client; a
    size a terminal cannot hold, an empty variable and a NUL (which the runtime would
    cut at) are refused at create too."""
    reply = api.post("/containers/create", body)
    assert reply.status == 400 and message in reply.json()["message"], (reply.status, reply.body)


def test_deep_json_terminal_sizes_and_digest_tags_are_400(api, quiet):
    deep = api.request("POST", "/containers/create", body=b"[" * 50000, headers={"Content-Type": "application/json"})
    assert deep.status == 400 and "nested too deeply" in deep.json()["message"]
    for h, w in ((70000, 70000), (-1, -1)):
        assert api.post(f"/containers/{quiet}/resize", h=h, w=w).status == 400
    exec_id = api.post(f"/containers/{quiet}/exec", {"Cmd": ["true"], "ConsoleSize": [70000, 1]})
    assert exec_id.status in (400, 409), exec_id.body  # a stopped container: 409 comes first
    tagged = api.post("/images/busybox/tag", repo="a@sha256:" + "0" * 64)
    assert tagged.status == 400 and "digest" in tagged.json()["message"]
    assert api.post("/images/busybox/tag", repo="a" * 256).status == 400
