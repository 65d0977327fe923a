"""Containers outlive their daemon: the keeper holds them through a kill -9 or a
live-restore stop, and the next daemon takes them back (output, exits, ports, DNS,
restart policies), or removes what nobody wants any more."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path


from engine.keeper import protocol
from tests.daemon import Daemon

# Trials of the crash test: 5 in the suite (bounded in time); the 20 in a row with
# BERTH_CRASH_TRIALS=20.
CRASH_TRIALS = int(os.environ.get("BERTH_CRASH_TRIALS", "5"))


def keeper_pid(d: Daemon) -> int | None:
    return protocol.running_pid(d.root / "run" / "keeper")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def events(d: Daemon, since: float, **filters) -> list[dict]:
    reply = d.api.get("/events", since=f"{since:.9f}", until=f"{time.time():.9f}",
                      filters=json.dumps({k: [v] for k, v in filters.items()}))
    return [json.loads(line) for line in reply.body.splitlines()]


def test_output_through_a_kill_9_is_logged_whole_and_in_order(fresh_daemon):
    d = fresh_daemon()
    cid = d.api.run(["sh", "-c", "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo line-$i; sleep 0.005; done"])
    pid = d.state(cid)["Pid"]
    time.sleep(0.5)
    keeper = keeper_pid(d)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(1)  # the container goes on writing into its pipe, which the keeper holds open
    assert alive(pid) and keeper_pid(d) == keeper
    d.start()
    assert keeper_pid(d) == keeper  # the same keeper, taken back
    assert d.state(cid)["Pid"] == pid
    assert d.api.wait(cid) == 0
    lines = [payload for _, payload in d.api.logs(cid)]
    assert b"".join(lines).decode().split() == [f"line-{i}" for i in range(1, 601)]


def test_exits_while_no_daemon_is_there_get_their_die_event_and_policy(fresh_daemon):
    d = fresh_daemon()
    since = time.time()
    quick = d.api.run(["sh", "-c", "sleep 0.5; exit 7"], name="quick")
    again = d.api.run(["sh", "-c", "sleep 0.5; exit 3"], name="again",
                      HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1}})
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = time.time()
    time.sleep(1.5)
    d.start()
    state = d.state(quick)
    assert state["Status"] == "exited" and state["ExitCode"] == 7
    finished = state["FinishedAt"]  # RFC 3339 with nanoseconds: compare as epoch seconds
    from datetime import datetime
    when = datetime.strptime(finished[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() + 0  # UTC
    offset = datetime.now().astimezone().utcoffset().total_seconds()
    assert killed_at - 1 < when + offset < killed_at + 1.5  # when it ended, not when it was noticed
    died = [e for e in events(d, since, container="quick") if e["Action"] == "die"]
    assert [e["Actor"]["Attributes"]["exitCode"] for e in died] == ["7"]
    # on-failure: its exit meanwhile counts, and the policy starts it again
    deadline = time.monotonic() + 10
    while d.state(again)["Status"] != "exited" or d.api.get_json(f"/containers/{again}/json")["RestartCount"] < 1:
        assert time.monotonic() < deadline, d.api.get_json(f"/containers/{again}/json")
        time.sleep(0.1)
    assert d.state(again)["ExitCode"] == 3


def test_exits_as_the_daemon_dies_keep_their_codes(fresh_daemon):
    """Containers that exit together just as the daemon is killed: each exit is recorded
    with its own code by one daemon or the next (the keeper forgets an exit only once
    its record is written), never as 255."""
    d = fresh_daemon()
    at = time.time() + 2
    ids = [d.api.run(["sh", "-c", f"while [ $(date +%s%N) -lt {int(at * 1e9)} ]; do sleep 0.01; done; exit 3"])
           for _ in range(12)]
    time.sleep(max(0.0, at - time.time()) + 0.03)
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    d.start()
    for cid in ids:
        d.api.wait(cid)
    assert sorted(d.state(cid)["ExitCode"] for cid in ids) == [3] * 12, [d.state(c) for c in ids]


def test_on_failure_containers_come_back_with_the_daemon(fresh_daemon):
    """As dockerd's restore: a daemon stop killed an on-failure container (137), the next
    daemon starts it again; one that exited 0 stays exited."""
    d = fresh_daemon()
    failing = d.api.run(["sleep", "300"], HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    done = d.api.run(["true"], HostConfig={"RestartPolicy": {"Name": "on-failure"}})
    d.api.wait(done)
    assert d.stop() == 0
    d.start()
    assert d.state(failing)["Status"] == "running" and d.state(done)["Status"] == "exited"
    d.api.post(f"/containers/{failing}/kill")


def test_ports_and_dns_are_served_again_after_a_kill_9(fresh_daemon):
    d = fresh_daemon()
    assert d.api.post("/networks/create", {"Name": "adopted", "Driver": "bridge"}).status == 201
    web = d.api.run(["sh", "-c", "mkdir /www && echo hello-again > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    name="web", HostConfig={"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                                            "NetworkMode": "adopted"})
    port = int(d.api.get_json(f"/containers/{web}/json")["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
    client = d.api.run(["sleep", "300"], name="client", HostConfig={"NetworkMode": "adopted"})
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    d.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read() == b"hello-again\n"
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    exec_id = d.api.post(f"/containers/{client}/exec", {"Cmd": ["wget", "-q", "-O", "-", "http://web:8080/"],
                                                        "AttachStdout": True}).json()["Id"]
    reply = d.api.post(f"/exec/{exec_id}/start", {"Detach": False})
    assert b"hello-again" in reply.body
    for cid in (web, client):
        d.api.delete(f"/containers/{cid}", force=1)
    assert d.api.delete("/networks/adopted").status == 204


def test_live_restore_stop_leaves_them_running_and_a_plain_stop_ends_them(fresh_daemon):
    d = fresh_daemon("--live-restore")
    assert d.api.get_json("/info")["LiveRestoreEnabled"] is True
    cid = d.api.run(["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    pid = d.state(cid)["Pid"]
    assert d.stop() == 0  # SIGTERM with --live-restore
    assert alive(pid) and keeper_pid(d) is not None
    time.sleep(0.3)
    d.args.remove("--live-restore")
    d.start()
    assert d.state(cid)["Pid"] == pid and d.state(cid)["Running"]
    keeper = keeper_pid(d)
    assert d.stop() == 0  # SIGTERM without it: the containers stop, and the keeper goes
    assert not alive(pid) and not alive(keeper)
    d.start()
    assert d.state(cid)["Status"] == "exited"


def test_a_container_no_record_wants_is_killed_at_start(fresh_daemon):
    """A start the previous daemon never finished recording (here: its record removed
    while no daemon ran) leaves a process the keeper holds: the next daemon kills it."""
    d = fresh_daemon()
    cid = d.api.run(["sleep", "300"])
    pid = d.state(cid)["Pid"]
    assert d.stop(signal.SIGKILL) == -signal.SIGKILL
    (d.root / "containers" / cid / "record.json").unlink()
    d.start()
    deadline = time.monotonic() + 5
    while alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert d.api.get(f"/containers/{cid}/json").status == 404


def test_repeated_kill_9_under_concurrent_clients_leaves_nothing_wrong(fresh_daemon):
    """Kill -9 of the daemon at a random instant of run -d / create / rm -f / run --rm
    traffic, several times: afterwards every container the daemon lists has the state its
    processes have, nothing it does not list runs, and rm -f of everything leaves
    nothing (the fixture's leak check)."""
    d = fresh_daemon()
    rng = random.Random(16)
    for trial in range(CRASH_TRIALS):
        stop = threading.Event()

        def client(kind: int) -> None:
            while not stop.is_set():
                try:
                    if kind == 0:
                        d.api.run(["sleep", "600"])
                    elif kind == 1:
                        d.api.create(["true"])
                    elif kind == 2:
                        found = d.api.get_json("/containers/json", all=1)
                        if found:
                            d.api.delete(f"/containers/{rng.choice(found)['Id']}", force=1)
                    else:
                        cid = d.api.run(["true"], HostConfig={"AutoRemove": True})
                        d.api.wait(cid)
                except (OSError, AssertionError, json.JSONDecodeError, http.client.HTTPException):
                    return  # the daemon went away mid-request
                except KeyError:  # a wait answered 404: another client's rm -f came first
                    continue

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3 + rng.random() * 0.7)
        assert d.stop(signal.SIGKILL) == -signal.SIGKILL
        stop.set()
        for t in threads:
            t.join(10)
        d.start()
        for summary in d.api.get_json("/containers/json", all=1):
            found = d.api.get(f"/containers/{summary['Id']}/json")
            if found.status == 404:
                continue  # an AutoRemove container whose end the new daemon just recorded
            state = found.json()["State"]
            if state["Running"]:
                assert alive(state["Pid"]), (trial, summary, state)
        listed = {c["Id"] for c in d.api.get_json("/containers/json", all=1)}
        for cgroup in (Path("/sys/fs/cgroup/pids") / d.cgroup_parent).glob("*"):
            if cgroup.is_dir() and (cgroup / "cgroup.procs").read_text().split():
                assert cgroup.name in listed, (trial, cgroup.name)
    for summary in d.api.get_json("/containers/json", all=1):
        assert d.api.delete(f"/containers/{summary['Id']}", force=1).status in (204, 404)
