"""The daemon itself: one per root, graceful SIGTERM, truthful state after restarts and
crashes, nothing left mounted or running that no container needs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon import REPO


def test_second_daemon_on_same_root_refuses(fresh_daemon):
    d = fresh_daemon()
    second = subprocess.run([sys.executable, "-m", "engine.daemon", "--root", str(d.root),
                             "--cgroup-parent", d.cgroup_parent], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert f"already running on root {d.root}" in second.stderr
    assert d.api.get("/_ping").status == 200  # the first one is untouched


def test_sigterm_stops_containers_and_exits_zero(fresh_daemon):
    d = fresh_daemon()
    cid = d.api.run(["sleep", "300"], HostConfig={"Init": True})
    stubborn = d.api.run(["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"], StopTimeout=1)
    assert d.stop() == 0
    assert d.leaks() == []
    d.start()
    assert d.state(cid)["Status"] == "exited" and d.state(cid)["ExitCode"] == 143
    assert d.state(stubborn)["ExitCode"] == 137


def test_a_build_cut_short_leaves_nothing_after_the_next_start(fresh_daemon):
    """The builder is made at the first build, but what a crashed build left in its
    scratch directory goes when the daemon starts, before any build."""
    def crashed_build(d):
        leftover = d.root / "build" / "tmp" / "0123abcd" / "context"
        leftover.mkdir(parents=True)
        (leftover / "big.bin").write_bytes(b"x" * 4096)

    d = fresh_daemon(setup=crashed_build)
    assert not any((d.root / "build").rglob("*"))


def test_removed_containers_leave_nothing_even_when_the_daemon_dies_meanwhile(fresh_daemon):
    """`rm` renames the container's directory aside and deletes its files in the
    background; one that a crash left half deleted goes at the next start, and is not
    taken for a container."""
    d = fresh_daemon()
    gone = d.api.run(["true"], name="gone")
    d.api.wait(gone)
    d.api.remove(gone)
    kept = d.api.create(["true"], name="kept")
    assert d.stop() == 0
    assert sorted(p.name for p in (d.root / "containers").iterdir()) == [kept]
    half = d.root / "containers" / f"{gone}.removing"  # as a crash mid-deletion leaves it
    shutil.copytree(d.root / "containers" / kept, half)
    d.start()
    assert [c["Names"][0] for c in d.api.get_json("/containers/json", all=1)] == ["/kept"]
    assert sorted(p.name for p in (d.root / "containers").iterdir()) == [kept]
    d.api.remove(kept)


def test_state_survives_restart(fresh_daemon):
    d = fresh_daemon()
    api = d.api
    created = api.create(["true"], name="still-created", HostConfig={"RestartPolicy": {"Name": "always"}})
    exited = api.run(["sh", "-c", "exit 7"], name="exited-7")
    api.wait(exited)
    always = api.run(["sleep", "300"], name="always", HostConfig={"Init": True, "RestartPolicy": {"Name": "always"}})
    before = api.get_json("/containers/json", all=1)
    assert d.stop() == 0
    d.start()
    after = {c["Names"][0]: c for c in d.api.get_json("/containers/json", all=1)}
    assert {c["Names"][0] for c in before} == set(after)
    assert after["/still-created"]["State"] == "created"  # never started: no policy starts it, as dockerd
    assert d.state(exited)["ExitCode"] == 7 and d.state(exited)["Status"] == "exited"
    assert after["/always"]["State"] == "running"  # restart policy applies at daemon start
    d.api.remove(always)
    d.api.remove(created)


def test_a_record_that_cannot_be_read_leaves_its_container_aside(fresh_daemon):
    """A record that comes back empty (saved atomically but not flushed, then the machine
    crashed) does not stop the daemon: that container stays on disk as it is, and every
    other one is served."""
    d = fresh_daemon()
    kept = d.api.create(["true"], name="kept")
    broken = d.api.create(["true"], name="broken")
    assert d.stop() == 0
    (d.root / "containers" / broken / "record.json").write_bytes(b"")
    d.start()
    assert {c["Names"][0] for c in d.api.get_json("/containers/json", all=1)} == {"/kept"}
    assert (d.root / "containers" / broken / "record.json").exists()  # left as it was
    d.api.remove(kept)


def test_kill_9_of_daemon_leaves_its_containers_running(fresh_daemon):
    """The keeper holds the container: a daemon killed with -9 takes nothing with it, and
    the next one takes it back (same process), stops it and runs new ones as before."""
    d = fresh_daemon()
    cid = d.api.run(["sleep", "300"], name="survivor")
    pid = d.state(cid)["Pid"]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    assert b"sleep" in open(f"/proc/{pid}/cmdline", "rb").read()
    d.start()
    state = d.state(cid)
    assert state["Status"] == "running" and state["Running"] and state["Pid"] == pid
    assert d.api.post(f"/containers/{cid}/stop", t="1").status == 204
    assert d.state(cid)["ExitCode"] == 137
    assert not Path(f"/proc/{pid}").exists() or b"sleep" not in open(f"/proc/{pid}/cmdline", "rb").read()
    cid2 = d.api.run(["echo", "after crash"])  # and the engine works as before
    assert d.api.wait(cid2) == 0


def test_auto_remove_containers_do_not_outlive_a_crash(fresh_daemon):
    """As dockerd's restore: a `--rm` container whose run ended while no daemon watched
    (the daemon and its keeper gone, as after the machine's crash) is removed by the next
    daemon; another container is recorded as ended, and kept."""
    d = fresh_daemon()
    gone = d.api.run(["sleep", "300"], name="rm-me", HostConfig={"AutoRemove": True})
    kept = d.api.run(["sleep", "300"], name="keep-me")
    pids = [d.state(c)["Pid"] for c in (gone, kept)]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    pids += [int(leak.split(" ")[1].split(":")[0]) for leak in d.leaks() if leak.startswith("process ")]  # the keeper
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    d.start()
    assert d.api.get(f"/containers/{gone}/json").status == 404
    assert d.state(kept)["Status"] == "exited" and d.state(kept)["ExitCode"] == 255
    d.api.remove(kept)


def test_cleanup_after_a_killed_daemon_leaves_nothing(fresh_daemon):
    """The suite's last resort when a run fails (tests must clean up even then): after
    berthd is killed with a container running, cleanup() ends the container, which names
    no root, and removes its cgroups, the bridge and the mounts."""
    d = fresh_daemon()
    d.api.run(["sleep", "300"])  # on the daemon's own bridge
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    left = d.leaks()
    assert any(leak.startswith("cgroup") for leak in left) and f"link {d.bridge}" in left, left
    d.cleanup()
    assert d.leaks() == []


def test_events_replay_across_restart_and_crash(fresh_daemon):
    import json

    d = fresh_daemon()
    since = f"{time.time():.9f}"
    cid = d.api.run(["true"], name="journaled")
    d.api.wait(cid)
    assert d.stop() == 0
    d.start()
    d.api.remove(cid)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    d.start()
    until = f"{time.time():.9f}"
    reply = d.api.get("/events", since=since, until=until, filters=json.dumps({"container": ["journaled"]}))
    actions = [json.loads(line)["Action"] for line in reply.body.splitlines()]
    assert actions == ["create", "start", "die", "destroy"]


def test_kill_9_during_event_burst_loses_nothing_delivered(fresh_daemon):
    """Events a subscriber received before the daemon was killed are all in the replay."""
    import json
    import socket
    import threading

    d = fresh_daemon()
    cid = d.api.create(["true"], name="burst")
    since = f"{time.time():.9f}"
    received: list[list[int]] = [[] for _ in range(4)]

    def subscribe(slot: int, slow: bool) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(d.sock))
        s.sendall(f"GET /events?since={since} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        try:
            while chunk := s.recv(4096 if not slow else 512):
                buf += chunk
                for line in buf.split(b"\n")[:-1]:
                    if line.startswith(b"{"):
                        received[slot].append(json.loads(line)["timeNano"])
                buf = buf.split(b"\n")[-1]
                if slow:
                    time.sleep(0.001)
        except OSError:
            pass

    def burst(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                d.api.post(f"/containers/{cid}/attach", stream=0)
            except OSError:
                return

    readers = [threading.Thread(target=subscribe, args=(i, i == 0), daemon=True) for i in range(4)]
    for t in readers:
        t.start()
    stop = threading.Event()
    writers = [threading.Thread(target=burst, args=(stop,), daemon=True) for _ in range(6)]
    for t in writers:
        t.start()
    time.sleep(2)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    stop.set()
    for t in writers + readers:
        t.join(10)
    d.start()
    reply = d.api.get("/events", since=since, until=f"{time.time():.9f}")
    replay = [json.loads(line)["timeNano"] for line in reply.body.splitlines()]
    assert len(max(received, key=len)) > 500  # a real burst
    for got in received:
        assert got == replay[:len(got)]  # in order, nothing missing, nothing extra
    d.api.remove(cid)


def test_runc_as_the_daemon_default(fresh_daemon):
    d = fresh_daemon("--runtime", "runc")
    assert d.api.get_json("/info")["DefaultRuntime"] == "runc"
    cid = d.api.run(["echo", "via runc"])
    assert d.api.wait(cid) == 0
    assert d.api.get_json(f"/containers/{cid}/json")["HostConfig"]["Runtime"] == "runc"
    assert d.api.logs(cid) == [(1, b"via runc\n")]
    d.api.remove(cid)


def test_built_in_image_from_an_older_berth_is_rebuilt_to_be_saved(fresh_daemon):
    """A store made before layers kept their tar record: at start the built-in busybox is
    made again (the same bytes), its layer gets the record, and `save` works."""
    import json as jsonlib

    d = fresh_daemon()
    assert d.stop() == 0
    (layer,) = (d.root / "images" / "layers").iterdir()
    (layer / "tar-split.gz").unlink()
    meta = jsonlib.loads((layer / "layer.json").read_text())
    (layer / "layer.json").write_text(jsonlib.dumps({**meta, "tar_size": 0}))
    d.start()
    assert (layer / "tar-split.gz").exists()
    images = d.api.get_json("/images/json")
    assert [i["RepoTags"] for i in images] == [["busybox:latest"]]  # the old one is gone, not left dangling
    saved = d.api.get("/images/busybox/get")
    assert saved.status == 200 and len(saved.body) > 1_000_000


def test_the_fd_table_is_grown_before_any_thread(daemon):
    """Grown later, each doubling of berthd's fd table waits for an RCU grace period in the
    thread whose open needed it (the event loop's too): it is sized at start instead."""
    status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
    slots = int(next(line.split()[1] for line in status.splitlines() if line.startswith("FDSize:")))
    soft = int(next(line.split()[3] for line in Path(f"/proc/{daemon.proc.pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files")))
    assert slots >= min(4096, soft)


def test_a_second_daemon_on_the_same_cgroup_parent_leaves_the_first_ones_containers(fresh_daemon):
    """Two daemons (two roots) given one `--cgroup-parent`: the second's start takes the
    first's running containers for nobody's leftovers no more (it killed them)."""
    first = fresh_daemon()
    cid = first.api.run(["sleep", "60"], name="first-ones")
    second = fresh_daemon("--cgroup-parent", first.cgroup_parent)
    assert second.api.get_json("/containers/json", all=1) == []
    time.sleep(0.5)
    assert first.api.get_json(f"/containers/{cid}/json")["State"]["Running"]
    assert second.stop() == 0
    assert first.api.get_json(f"/containers/{cid}/json")["State"]["Running"]  # its stop left them too
    first.api.remove(cid)
