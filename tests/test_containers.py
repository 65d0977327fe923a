"""Containers through the Engine API: real crun/runc, overlayfs, namespaces and cgroups."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from engine.runtime import cgroups
from tests.api import Api, demux

RUNTIMES = ["crun", "runc"]


def out(api, cid) -> bytes:
    return b"".join(p for s, p in api.logs(cid) if s == 1)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_output_and_exit_code(api, runtime):
    cid = api.run(["sh", "-c", "echo out; echo err >&2; exit 3"], HostConfig={"Runtime": runtime})
    assert api.wait(cid) == 3
    frames = api.logs(cid)
    assert (1, b"out\n") in frames and (2, b"err\n") in frames
    state = api.get_json(f"/containers/{cid}/json")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3 and not state["Running"]
    assert state["FinishedAt"] > state["StartedAt"]
    api.remove(cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_namespaces_are_private(api, runtime):
    cid = api.run(["sh", "-c", "echo $$; hostname; ls /sys/class/net | tr '\\n' ' '; echo; head -1 /proc/self/mountinfo"],
                  Hostname="boxname", HostConfig={"Runtime": runtime, "NetworkMode": "none"})
    assert api.wait(cid) == 0
    pid1, hostname, links, *_ = out(api, cid).decode().split("\n")
    assert pid1 == "1"                      # own pid namespace
    assert hostname == "boxname"            # own uts namespace
    assert links == "lo "                   # own network namespace: loopback only with --network none
    inspect = api.get_json(f"/containers/{cid}/json")
    assert inspect["GraphDriver"]["Name"] == "overlay"
    api.remove(cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_resource_limits_land_in_cgroup(api, daemon, runtime):
    cid = api.run(["sleep", "30"], HostConfig={"Runtime": runtime, "Memory": 64 * 1024 * 1024,
                                               "NanoCpus": 500_000_000, "CpuShares": 512, "PidsLimit": 42})
    try:
        limits = cgroups.read_limits(cgroups.detect(), f"/{daemon.cgroup_parent}/{cid}")
        assert limits.memory == 64 * 1024 * 1024
        assert (limits.cpu_quota, limits.cpu_period) == (50_000, 100_000)
        assert limits.cpu_shares == 512
        assert limits.pids == 42
    finally:
        api.remove(cid)
    assert not cgroups.existing(cgroups.detect(), f"/{daemon.cgroup_parent}/{cid}")


def test_writable_layer_dies_with_container(api, daemon):
    cid = api.run(["sh", "-c", "echo data > /tmp/f; cat /tmp/f"])
    assert api.wait(cid) == 0
    upper = Path(api.get_json(f"/containers/{cid}/json")["GraphDriver"]["Data"]["UpperDir"])
    assert (upper / "tmp" / "f").read_text() == "data\n"
    assert not [m for m in daemon.mounts() if cid in m]  # unmounted after exit, in the daemon's own namespace
    api.remove(cid)
    assert not upper.exists()
    other = api.run(["cat", "/tmp/f"])
    assert api.wait(other) == 1  # the image itself was never written
    api.remove(other)


def test_health_options_merge_with_the_images(api):
    """As dockerd's merge: each health field the container leaves zero is the image's."""
    base = api.create(["true"])
    reply = api.post("/commit", container=base, repo="health-merge",
                     changes=['HEALTHCHECK --interval=1s --retries=1 CMD ["true"]'])
    assert reply.status == 201, reply.body
    try:
        cid = api.create(["true"], image="health-merge", Healthcheck={"Interval": 2_000_000_000})
        assert api.get_json(f"/containers/{cid}/json")["Config"]["Healthcheck"] == {
            "Test": ["CMD", "true"], "Interval": 2_000_000_000, "Retries": 1}
        api.remove(cid)
    finally:
        api.remove(base)
        api.delete("/images/health-merge")


def test_create_options(api):
    cid = api.run(["sh", "-c", "pwd; id -u; echo $GREETING"], Env=["GREETING=hello"], WorkingDir="/tmp",
                  User="nobody", Labels={"app": "t"}, name="opts")
    assert api.wait(cid) == 0
    assert out(api, cid) == b"/tmp\n65534\nhello\n"
    inspect = api.get_json("/containers/opts/json")
    assert inspect["Name"] == "/opts" and inspect["Config"]["Labels"] == {"app": "t"}
    # as dockerd merges them: the container's own variables, then the image's it does not set
    assert inspect["Config"]["Env"] == ["GREETING=hello", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    api.remove(cid)
    # a bare name unsets (`docker run -e NAME` with NAME unset in the client's environment)
    cid = api.run(["sh", "-c", "echo ${BARE-unset} ${GONE-unset} $KEPT"], Env=["GONE=x", "BARE", "GONE", "KEPT=k"])
    assert api.wait(cid) == 0 and out(api, cid) == b"unset unset k\n"
    api.remove(cid)
    # as dockerd: PATH and HOSTNAME first, the container's variables after, overriding them
    cid = api.run(["env"], Env=["HOSTNAME=forced", "A=1"], Hostname="named")
    assert api.wait(cid) == 0
    assert out(api, cid).decode().splitlines()[:3] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                                       "HOSTNAME=forced", "A=1"]
    api.remove(cid)


def test_entrypoint_and_cmd(api):
    cid = api.run(["hello"], Entrypoint=["echo", "say"])
    assert api.wait(cid) == 0 and out(api, cid) == b"say hello\n"
    api.remove(cid)


def test_stop_escalates_to_sigkill_when_pid1_ignores_sigterm(api):
    cid = api.run(["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    started = time.monotonic()
    assert api.post(f"/containers/{cid}/stop", t=1).status == 204
    assert 0.9 < time.monotonic() - started < 10
    state = api.get_json(f"/containers/{cid}/json")["State"]
    assert state["ExitCode"] == 137
    assert api.post(f"/containers/{cid}/stop").status == 304  # already stopped
    api.remove(cid)


def test_init_forwards_sigterm(api):
    cid = api.run(["sleep", "60"], HostConfig={"Init": True})
    assert out(api, cid) == b""
    top = time.monotonic()
    assert api.post(f"/containers/{cid}/stop", t=20).status == 204
    assert time.monotonic() - top < 5  # tini passed SIGTERM on; no 20 s wait
    assert api.get_json(f"/containers/{cid}/json")["State"]["ExitCode"] == 143
    api.remove(cid)


def test_kill_with_signal_and_not_running(api):
    cid = api.run(["sleep", "60"], HostConfig={"Init": True})
    assert api.post(f"/containers/{cid}/kill", signal="SIGUSR1").status == 204
    assert api.wait(cid) == 128 + 10
    reply = api.post(f"/containers/{cid}/kill")
    assert reply.status == 409 and "is not running" in reply.message
    assert api.post(f"/containers/{cid}/kill", signal="NOPE").status == 400
    api.remove(cid)


def test_restart_and_start_again(api):
    cid = api.run(["sh", "-c", "echo run; sleep 60"], HostConfig={"Init": True})
    assert api.post(f"/containers/{cid}/start").status == 304
    assert api.post(f"/containers/{cid}/restart", t=1).status == 204
    assert api.get_json(f"/containers/{cid}/json")["State"]["Running"]
    api.post(f"/containers/{cid}/stop", t=1)
    assert api.post(f"/containers/{cid}/start").status == 204
    deadline = time.monotonic() + 10  # the third run's output is logged soon after its start
    while out(api, cid) != b"run\nrun\nrun\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out(api, cid) == b"run\nrun\nrun\n"
    api.remove(cid)


def test_remove_running_needs_force(api):
    cid = api.run(["sleep", "60"])
    reply = api.delete(f"/containers/{cid}")
    assert reply.status == 409 and "cannot remove a running container" in reply.message
    assert api.delete(f"/containers/{cid}", force=1).status == 204
    assert api.get(f"/containers/{cid}/json").status == 404


def test_wait_conditions(api):
    cid = api.create(["sh", "-c", "exit 4"], HostConfig={"AutoRemove": True})
    assert api.wait(cid) == 0  # created: not running already
    api.post(f"/containers/{cid}/start")
    assert api.wait(cid, "removed") == 4
    assert api.get(f"/containers/{cid}/json").status == 404


def _volatile_root(api, cid) -> bool:
    """Whether the container's root overlay syncs nothing (`volatile`, shown as
    `fsync=volatile` by kernels that have the fsync option)."""
    exec_id = api.post(f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "grep '^overlay / ' /proc/mounts"],
                                                   "AttachStdout": True}).json()["Id"]
    reply = api.post(f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    line = b"".join(p for s, p in demux(reply.body) if s == 1).decode()
    return bool({"volatile", "fsync=volatile"} & set(line.split()[3].split(",")))


def test_a_layer_nobody_keeps_is_never_synced(api):
    """An AutoRemove container's overlay is volatile (its fsyncs and its unmount sync
    nothing); it restarts as in dockerd, not removed by the restart's stop (and the mark
    of the earlier volatile mount is cleared); a `stop` then succeeds and removes it. A
    kept container's layer syncs as usual."""
    gone = api.run(["sleep", "30"], HostConfig={"AutoRemove": True, "NetworkMode": "none"})
    kept = api.run(["sleep", "30"], HostConfig={"NetworkMode": "none"})
    try:
        assert _volatile_root(api, gone)
        assert not _volatile_root(api, kept)
        assert api.post(f"/containers/{gone}/restart", t=0).status == 204
        assert api.get_json(f"/containers/{gone}/json")["State"]["Running"]
        assert _volatile_root(api, gone)
        assert api.post(f"/containers/{gone}/stop", t=0).status == 204
        deadline = time.monotonic() + 10
        while api.get(f"/containers/{gone}/json").status != 404:
            assert time.monotonic() < deadline, "the stopped AutoRemove container was not removed"
            time.sleep(0.05)
    finally:
        for cid in (gone, kept):
            api.delete(f"/containers/{cid}", force=1)


def test_force_remove_meets_autoremove(api):
    """`rm -f` of a running AutoRemove container with an anonymous volume: the removal
    its exit starts and the one asked for are one removal (it answered 500 every time:
    the second found the container already removing); the volume goes with it."""
    cid = api.run(["sleep", "30"], HostConfig={"AutoRemove": True, "NetworkMode": "none"}, Volumes={"/data": {}})
    volume = api.get_json(f"/containers/{cid}/json")["Mounts"][0]["Name"]
    assert api.delete(f"/containers/{cid}", force=1).status == 204
    assert api.get(f"/containers/{cid}/json").status == 404
    assert api.get(f"/volumes/{volume}").status == 404


@pytest.mark.parametrize("policy,expected", [("on-failure:2", 2), ("always", None)])
def test_restart_policy(api, policy, expected):
    name, _, count = policy.partition(":")
    cid = api.run(["sh", "-c", "echo x; exit 1"],
                  HostConfig={"RestartPolicy": {"Name": name, "MaximumRetryCount": int(count or 0)}})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        inspect = api.get_json(f"/containers/{cid}/json")
        if expected is not None and inspect["State"]["Status"] == "exited" and inspect["RestartCount"] == expected:
            break
        if expected is None and inspect["RestartCount"] >= 3:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"restart policy {policy} did not act: {inspect['State']} {inspect['RestartCount']}")
    assert api.post(f"/containers/{cid}/stop", t=1).status in (204, 304)
    assert api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "exited"
    api.remove(cid)


def test_a_start_by_hand_resets_the_count_and_kill_ends_a_restart_loop(api):
    """As dockerd: `start` gives on-failure:N its N retries again; `kill` of a container
    waiting to restart ends the loop (no process to signal) and it stays exited."""
    cid = api.run(["sh", "-c", "echo run; exit 2"],
                  HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1}})
    def runs() -> int:
        return len(api.logs(cid))

    deadline = time.monotonic() + 15
    while not (api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "exited" and runs() == 2):  # the run and its one retry
        assert time.monotonic() < deadline, api.get_json(f"/containers/{cid}/json")
        time.sleep(0.1)
    assert api.post(f"/containers/{cid}/start").status == 204
    while runs() < 4:  # the start, and a retry again (without the reset: none)
        assert time.monotonic() < deadline, api.logs(cid)
        time.sleep(0.1)
    looping = api.run(["sh", "-c", "exit 1"], HostConfig={"RestartPolicy": {"Name": "always"}})
    while api.get_json(f"/containers/{looping}/json")["State"]["Status"] != "restarting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.post(f"/containers/{looping}/kill", signal="HUP").status == 204
    state = api.get_json(f"/containers/{looping}/json")["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 1), state
    time.sleep(1.5)  # longer than the back-off: nothing starts it again
    assert api.get_json(f"/containers/{looping}/json")["State"]["Status"] == "exited"
    for c in (cid, looping):
        assert api.delete(f"/containers/{c}").status == 204


def test_an_attached_client_that_stops_reading_holds_the_container_not_its_stop(api):
    """A client that reads nothing holds the output back (the container waits in its
    writes, nothing lost), but not a `stop`: once the process has ended, it is dropped."""
    cid = api.run(["sh", "-c", "while true; do cat /bin/busybox; done"], HostConfig={"NetworkMode": "none"})
    sock, _ = api.hijack(f"/containers/{cid}/attach", stream=1, stdout=1, stderr=1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        time.sleep(1)  # the tap fills, then the pumps wait
        began = time.monotonic()
        assert api.post(f"/containers/{cid}/stop", t=1).status == 204
        assert time.monotonic() - began < 10
        assert api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "exited"
    finally:
        sock.close()
        api.remove(cid)


def test_which_kill_ends_the_restart_policy(api):
    """As dockerd: SIGKILL, the container's own stop signal, or any signal when it has
    none ends its restart policy; another signal that ends it gets it restarted."""
    always = {"RestartPolicy": {"Name": "always"}, "Init": True}
    quits = api.run(["sleep", "60"], StopSignal="SIGQUIT", HostConfig=always)
    hup = api.run(["sleep", "60"], HostConfig=always)  # no stop signal of its own
    term = api.run(["sleep", "60"], StopSignal="SIGUSR2", HostConfig=always)
    for cid, sig in ((quits, "QUIT"), (hup, "HUP"), (term, "TERM")):
        assert api.post(f"/containers/{cid}/kill", signal=sig).status == 204
    deadline = time.monotonic() + 15
    while api.get_json(f"/containers/{term}/json")["RestartCount"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for cid, code in ((quits, 131), (hup, 129)):
        state = api.get_json(f"/containers/{cid}/json")
        assert (state["State"]["Status"], state["State"]["ExitCode"], state["RestartCount"]) == ("exited", code, 0)
    for cid in (quits, hup, term):
        api.remove(cid)


def test_a_tree_deeper_than_pythons_recursion_limit_is_removed(api):
    """A container's own 1,500-level tree goes with it; the daemon serves on."""
    cid = api.run(["sh", "-c", "cd /tmp; i=0; while [ $i -lt 1500 ]; do mkdir d; cd d; i=$((i+1)); done"],
                  HostConfig={"NetworkMode": "none"})
    assert api.wait(cid) == 0
    assert api.delete(f"/containers/{cid}").status == 204
    time.sleep(0.5)  # the tree goes after the answer, in the background
    assert api.get("/_ping").status == 200 and api.get("/system/df").status == 200


def test_inspect_lists_the_execs_that_have_not_ended(api):
    cid = api.run(["sleep", "30"], HostConfig={"NetworkMode": "none"})
    assert api.get_json(f"/containers/{cid}/json")["ExecIDs"] is None
    exec_id = api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]}).json()["Id"]
    assert api.get_json(f"/containers/{cid}/json")["ExecIDs"] == [exec_id]
    assert api.post(f"/exec/{exec_id}/start", {"Detach": True}).status == 200
    deadline = time.monotonic() + 10
    while api.get_json(f"/exec/{exec_id}/json")["Running"] or api.get_json(f"/exec/{exec_id}/json")["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get_json(f"/containers/{cid}/json")["ExecIDs"] is None
    api.delete(f"/containers/{cid}", force=1)


def test_ps_filters(api):
    a = api.run(["sleep", "60"], name="ps-a", Labels={"tier": "web"})
    b = api.run(["sh", "-c", "exit 2"], name="ps-b")
    api.wait(b)
    try:
        ids = lambda **q: [c["Id"] for c in api.get_json("/containers/json", **q)]
        assert a in ids() and b not in ids()
        assert {a, b} <= set(ids(all=1))
        assert ids(all=1, filters='{"label":{"tier=web":true}}') == [a]
        assert ids(all=1, filters='{"name":["ps-b"]}') == [b]
        assert ids(all=1, filters='{"exited":["2"]}') == [b]
        assert ids(all=1, filters='{"status":{"running":true},"name":{"ps-":true}}') == [a]
        assert ids(all=1, filters=f'{{"id":["{a[:10]}"]}}') == [a]
        assert {a, b} <= set(ids(all=1, filters='{"ancestor":["busybox"]}'))
        assert ids(limit=1) == [b]  # `ps -l`, `ps -n 1`: the newest of every state, as dockerd
        assert ids(all=1, filters='{"name":["^ps-a$"]}') == [a]  # a name matches with or without its slash
        assert a in ids(filters='{"health":["none"]}') and ids(filters='{"health":["healthy"],"name":["ps-a"]}') == []
        assert a in ids(filters='{"is-task":["false"]}') and ids(filters='{"is-task":["true"]}') == []
        exposing = api.create(["true"], ExposedPorts={"80/tcp": {}, "53/udp": {}},
                              HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}})
        try:
            for key, value, found in (("expose", "80", True), ("expose", "53/udp", True), ("expose", "53", False),
                                      ("expose", "70-90/tcp", True), ("publish", "80", True),
                                      ("publish", "53/udp", False)):
                assert (exposing in ids(all=1, filters=json.dumps({key: [value]}))) is found, (key, value)
            assert api.get("/containers/json", filters='{"publish":["x"]}').status == 400
        finally:
            api.remove(exposing)
        networks = list(api.get_json(f"/containers/{a}/json")["NetworkSettings"]["Networks"])
        assert a in ids(filters=f'{{"network":["{networks[0]}"]}}') and ids(filters='{"network":["nonet"]}') == []
        for bad, words in (("status", "Invalid filter 'status=bogus'"), ("exited", 'parsing "bogus"'),
                           ("health", "Unrecognised filter value for health: bogus")):
            reply = api.get("/containers/json", filters=f'{{"{bad}":["bogus"]}}')
            assert reply.status == 400 and words in reply.message
        row = next(c for c in api.get_json("/containers/json") if c["Id"] == a)
        assert row["Names"] == ["/ps-a"] and row["Status"].startswith("Up ") and row["State"] == "running"
        row = next(c for c in api.get_json("/containers/json", all=1) if c["Id"] == b)
        assert row["Command"] == "sh -c 'exit 2'"  # as dockerd quotes an argument with a space
        assert api.get("/containers/json", filters='{"bogus":["x"]}').status == 400
    finally:
        api.remove(a)
        api.remove(b)


def test_ps_shows_the_image_name_while_it_names_the_image(api):
    image = api.get_json("/images/busybox/json")["Id"]
    assert api.post("/images/busybox/tag", repo="ps-img", tag="1").status == 201
    cid = api.create(["true"], image="ps-img:1")
    shown = lambda: next(c["Image"] for c in api.get_json("/containers/json", all=1) if c["Id"] == cid)
    try:
        assert shown() == "ps-img:1"
        assert api.delete("/images/ps-img:1").status == 200  # untagged: busybox still names it
        assert shown() == image  # as dockerd: the ID once the name leads elsewhere or nowhere
    finally:
        api.remove(cid)


def test_logs_options(api):
    cid = api.run(["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.2; echo oops >&2"])
    api.wait(cid)
    assert b"".join(p for _, p in api.logs(cid, tail=2)) == b"line5\noops\n"
    assert [p for _, p in api.logs(cid, stderr=0)][-1] == b"line5\n"
    stamped = api.logs(cid, timestamps=1)[0][1]
    assert stamped.endswith(b"Z line1\n") and stamped[:4].isdigit()
    # as dockerd: the attributes (none here) and a space before each line, after its time
    assert [p for _, p in api.logs(cid, details=1)][:2] == [b" line1\n", b" line2\n"]
    assert api.logs(cid, details=1, timestamps=1)[0][1].endswith(b"Z  line1\n")
    assert api.logs(cid, since=int(time.time()) + 5) == []
    assert len(api.logs(cid, until=int(time.time()) + 5)) == 6
    assert api.get(f"/containers/{cid}/logs").status == 400  # no stream chosen
    api.remove(cid)
    # --log-opt labels/env/tag: attributes in every entry, shown by --details, as dockerd
    cid = api.run(["echo", "hi"], name="log-attrs", Labels={"app": "web,b=c d"}, Env=["STAGE=prod"],
                  HostConfig={"LogConfig": {"Type": "json-file", "Config": {"labels": "app", "env": "STAGE",
                                                                           "tag": "{{.Name}}"}}})
    api.wait(cid)
    # each side query-escaped, as dockerd's
    assert api.logs(cid, details=1) == [(1, b"STAGE=prod,app=web%2Cb%3Dc+d,tag=log-attrs hi\n")]
    log_path = api.get_json(f"/containers/{cid}/json")["LogPath"]
    entry = json.loads(Path(log_path).read_text().splitlines()[0])
    assert list(entry) == ["log", "stream", "attrs", "time"]
    assert entry["attrs"] == {"app": "web,b=c d", "STAGE": "prod", "tag": "log-attrs"}
    bad = api.post("/containers/create", {"Image": "busybox", "HostConfig": {"LogConfig": {
        "Type": "json-file", "Config": {"compress": "true"}}}})
    assert bad.status == 400 and "compress" in bad.message
    api.remove(cid)


def test_logs_follow_ends_when_container_stops(api):
    cid = api.run(["sh", "-c", "echo a; sleep 0.5; echo b"])
    frames = api.logs(cid, follow=1)
    assert b"".join(p for _, p in frames) == b"a\nb\n"
    api.remove(cid)


def test_output_still_logged_with_many_containers_running(api):
    """Each running container holds a pump thread per output pipe for its whole run: the
    45 here hold 90, beyond trio's default of 40 worker threads, and the next container's
    output (and with it its exit, recorded once its pipes are drained) still gets through."""
    cids = [api.run(["sh", "-c", "echo up; exec sleep 600"]) for _ in range(45)]
    try:
        last = api.run(["echo", "still-logged"])
        assert Api(api.sock, timeout=20).wait(last) == 0  # a stalled pump would hold it up
        assert api.logs(last) == [(1, b"still-logged\n")]
        api.remove(last)
        assert all(api.logs(c) == [(1, b"up\n")] for c in (cids[0], cids[-1]))
    finally:
        for c in cids:
            api.remove(c)


def test_attach_stream_before_start(api):
    import socket

    cid = api.create(["sh", "-c", "echo out; echo err >&2"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(api.sock)
    s.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
              "Host: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    api.post(f"/containers/{cid}/start")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    assert sorted(demux(data)) == [(1, b"out\n"), (2, b"err\n")]
    api.remove(cid)


def test_missing_executable(api):
    cid = api.create(["nosuchcmd"])
    reply = api.post(f"/containers/{cid}/start")
    assert reply.status == 400 and "executable file not found" in reply.message
    assert api.get_json(f"/containers/{cid}/json")["State"]["ExitCode"] == 127
    api.remove(cid)


def test_errors(api):
    reply = api.post("/containers/create", {"Image": "nope:1", "Cmd": ["true"]})
    assert reply.status == 404 and reply.message == "No such image: nope:1"
    assert api.get("/containers/nothere/json").status == 404
    assert api.get("/containers/nothere/json").message == "No such container: nothere"
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]}, name="bad name")
    assert reply.status == 400 and "Invalid container name" in reply.message
    reply = api.request("POST", "/containers/create", body=b'{"Image": "busybox", "Cmd": [', headers={"Content-Type": "application/json"})
    assert reply.status == 400 and "JSON" in reply.message
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Memory": "lots"}})
    assert reply.status == 400 and "HostConfig.Memory" in reply.message
    cid = api.create(["true"], name="taken")
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]}, name="taken")
    assert reply.status == 409 and f'"/taken" is already in use by container "{cid}"' in reply.message
    assert api.get("/v1.99/version").status == 400
    assert api.get("/nope").message == "page not found"
    # nothing stored was harmed by the bad requests
    assert api.get_json(f"/containers/{cid}/json")["Name"] == "/taken"
    api.remove(cid)


def test_one_name_created_at_once_goes_to_one_container(api):
    """A create awaits its files and record between the name's check and taking it; the
    name must be held from the check on, and given back when the create fails."""
    body = {"Image": "busybox", "Cmd": ["true"]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: api.post("/containers/create", body, name="twin"), range(8)))
    assert sorted(r.status for r in replies) == [201] + [409] * 7
    winner = next(r.json()["Id"] for r in replies if r.status == 201)
    assert all('"/twin" is already in use by container "' in r.message for r in replies if r.status == 409)
    assert [c["Id"] for c in api.get_json("/containers/json", all=1) if "/twin" in c["Names"]] == [winner]
    api.remove(winner)
    assert api.post("/containers/create", {"Image": "nope:1", "Cmd": ["true"]}, name="twin").status == 404
    api.remove(api.create(["true"], name="twin"))  # the failed create gave the name back


def test_an_image_is_not_deleted_under_a_create(api):
    """`rmi` of an image's last tag while containers are being created from it: either it
    is refused (a container uses it), or the creates fail with no such image; never a
    container left whose image is gone."""
    maker = api.run(["sh", "-c", "echo x > /solo"])
    assert api.wait(maker) == 0
    assert api.post("/commit", container=maker, repo="solo", tag="1").status == 201
    api.remove(maker)
    body = {"Image": "solo:1", "Cmd": ["true"]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        creates = [pool.submit(api.post, "/containers/create", body) for _ in range(6)]
        time.sleep(0.002)
        rmi = pool.submit(api.delete, "/images/solo:1")
        created = [r.json()["Id"] for r in (f.result() for f in creates) if r.status == 201]
        removed = rmi.result()
    assert removed.status in (200, 409), removed.message
    for cid in created:
        image = api.get_json(f"/containers/{cid}/json")["Image"]
        assert api.get(f"/images/{image}/json").status == 200, "a container's image was deleted"
        assert api.post(f"/containers/{cid}/start").status == 204
        assert api.wait(cid) == 0
        api.remove(cid)
    if api.get("/images/solo:1/json").status == 200:
        assert api.delete("/images/solo:1").status == 200


def test_a_volume_is_not_removed_under_a_create(api):
    """`volume rm` while containers that mount the volume are being created: refused, as
    for a container that exists; never a container left whose volume is gone."""
    assert api.post("/volumes/create", {"Name": "claimed"}).status == 201
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["claimed:/v"]}}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        creates = [pool.submit(api.post, "/containers/create", body) for _ in range(4)]
        rm = pool.submit(api.delete, "/volumes/claimed")
        created = [r.json()["Id"] for r in (f.result() for f in creates) if r.status == 201]
        removed = rm.result()
    assert created and removed.status == 409 and "volume is in use" in removed.message
    assert api.get("/volumes/claimed").status == 200
    for cid in created:
        api.remove(cid)
    assert api.delete("/volumes/claimed").status == 204


def test_unversioned_and_versioned_paths(api):
    assert api.get("/version").json()["ApiVersion"] == "1.41"
    assert api.get("/v1.41/version").status == 200
    assert api.request("HEAD", "/_ping").headers["api-version"] == "1.41"


def test_info_reports_runtime_path(api):
    info = api.get_json("/info")
    assert set(info["Runtimes"]) == {"crun", "runc"} and info["DefaultRuntime"] == "crun"
    # what scripts read of dockerd's info: seccomp on, the local volume driver, no live restore here
    assert info["SecurityOptions"] == ["name=seccomp,profile=default"] and info["Plugins"]["Volume"] == ["local"]
    assert info["LiveRestoreEnabled"] is False
    assert str(uuid.UUID(info["ID"])) == info["ID"] == api.get_json("/info")["ID"]  # its own, and kept
    layout = cgroups.detect()
    assert info["CgroupVersion"] == str(layout.version)
    if layout.hybrid:
        assert "own mount namespace" in info["Runtimes"]["crun"]["berthPath"]
        assert any("crun" in w for w in info["Warnings"])


def test_the_runtime_finds_no_v2_directory_to_fill(api, daemon):
    """On a hybrid host berthd hides the v2 tree; crun joins every hierarchy whose
    directory it finds under /sys/fs/cgroup, so the daemon's namespace must not keep the
    empty one the v2 tree was mounted on (it filled the host's tmpfs beneath the mount)."""
    if not cgroups.detect().hybrid:
        pytest.skip("hybrid cgroup hosts only")
    cid = api.run(["true"])
    assert api.wait(cid) == 0
    seen_by_daemon = Path(f"/proc/{daemon.proc.pid}/root/sys/fs/cgroup")
    assert not (seen_by_daemon / "unified").exists()
    assert (seen_by_daemon / "memory" / daemon.cgroup_parent).is_dir()  # the v1 hierarchies are all there
    api.remove(cid)
    from tests.daemon import hidden_beneath_v2

    assert hidden_beneath_v2(daemon.cgroup_parent) == []


def test_no_process_left_after_exit(api, daemon):
    cid = api.run(["true"])
    api.wait(cid)
    time.sleep(0.1)
    assert not [leak for leak in daemon.leaks() if leak.startswith("process") and cid in leak]
    api.remove(cid)


def test_concurrent_actions_are_serialised(api):
    from concurrent.futures import ThreadPoolExecutor

    cid = api.create(["sleep", "30"])
    with ThreadPoolExecutor(4) as pool:
        starts = sorted(pool.map(lambda _: api.post(f"/containers/{cid}/start").status, range(4)))
    assert starts == [204, 304, 304, 304]
    with ThreadPoolExecutor(3) as pool:
        removals = sorted(pool.map(lambda _: api.delete(f"/containers/{cid}", force=1).status, range(3)))
    assert removals == [204, 404, 404]


def test_log_rotation_options(api, daemon):
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"],
                                            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-file": "0"}}}})
    assert reply.status == 400 and "max-file" in reply.message
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "syslog"}}})
    assert reply.status == 400 and "syslog" in reply.message
    cid = api.run(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done"],
                  HostConfig={"LogConfig": {"Type": "json-file", "Config": {"max-size": "20k", "max-file": "3"}}})
    assert api.wait(cid) == 0
    logs = sorted(p.name for p in (daemon.root / "containers" / cid).glob("*-json.log*"))
    assert logs == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    lines = b"".join(p for _, p in api.logs(cid)).splitlines()
    assert lines[-1] == b"line 2999" and lines == [b"line %d" % i for i in range(3000 - len(lines), 3000)]
    assert b"".join(p for _, p in api.logs(cid, tail=5)).splitlines() == lines[-5:]
    api.remove(cid)


def test_restart_back_off_grows(api):
    import json

    since = f"{time.time():.9f}"
    cid = api.run(["false"], HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 4}})
    deadline = time.monotonic() + 15
    while True:  # the first run and four restarts: five deaths
        reply = api.get("/events", since=since, until=f"{time.time():.9f}",
                        filters=json.dumps({"container": [cid], "event": ["start", "die"]}))
        events = [json.loads(line) for line in reply.body.splitlines()]
        dies = [e["timeNano"] for e in events if e["Action"] == "die"]
        starts = [e["timeNano"] for e in events if e["Action"] == "start"]
        if len(dies) == 5:
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.1)
    gaps = [(s - d) / 1e9 for d, s in zip(dies, starts[1:])]
    # Each back-off (100 ms, doubling) is a floor under its gap; a start adds a varying
    # few tens of ms on top, so the gaps are checked against the floors, not each other.
    assert len(gaps) == 4 and all(gap >= 0.098 * 2**i for i, gap in enumerate(gaps)), gaps
    assert 0.08 < gaps[0] < 0.5
    api.remove(cid)
