"""Acting on running containers through the Engine API: pause/unpause, exec, top, port,
rename, update, stats, prune."""

from __future__ import annotations

import json
import os
import time

import pytest

from engine.runtime import cgroups

RUNTIMES = ["crun", "runc"]
COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done"]


def lines_out(api, cid) -> int:
    return b"".join(p for s, p in api.logs(cid) if s == 1).count(b"\n")


def state(api, cid) -> dict:
    return api.get_json(f"/containers/{cid}/json")["State"]


def events(api, cid, since: float) -> list[str]:
    reply = api.get("/events", since=f"{since:.9f}", until=f"{time.time():.9f}",
                    filters=json.dumps({"container": [cid]}))
    return [json.loads(line)["Action"] for line in reply.body.splitlines() if line.strip()]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pause_freezes_and_unpause_thaws(api, daemon, runtime):
    started = time.time()
    cid = api.run(COUNTER, HostConfig={"Runtime": runtime})
    time.sleep(0.2)
    assert api.post(f"/containers/{cid}/pause").status == 204
    st = state(api, cid)
    assert (st["Status"], st["Running"], st["Paused"]) == ("paused", True, True)
    layout = cgroups.detect()
    assert cgroups.is_frozen(layout, f"/{daemon.cgroup_parent}/{cid}") is True
    row = api.get_json("/containers/json", filters=json.dumps({"status": ["paused"]}))
    assert [c["Id"] for c in row] == [cid] and row[0]["Status"].endswith("(Paused)")
    frozen_at = lines_out(api, cid)
    time.sleep(0.3)
    assert lines_out(api, cid) == frozen_at  # nothing ran while frozen

    assert api.post(f"/containers/{cid}/pause").message == f"Container {cid} is already paused"
    assert api.post(f"/containers/{cid}/unpause").status == 204
    assert state(api, cid)["Status"] == "running" and not state(api, cid)["Paused"]
    time.sleep(0.3)
    assert lines_out(api, cid) > frozen_at
    assert api.post(f"/containers/{cid}/unpause").message == f"Container {cid} is not paused"
    api.remove(cid)
    assert events(api, cid, started)[:4] == ["create", "start", "pause", "unpause"]


def test_pause_refusals(api):
    cid = api.create(["true"])
    reply = api.post(f"/containers/{cid}/pause")
    assert reply.status == 409 and reply.message == f"Container {cid} is not running"
    assert api.post("/containers/nope/pause").status == 404
    api.remove(cid)


def test_a_paused_container_stops_kills_and_goes(api):
    # sh as PID 1 ignores SIGTERM: stop must end with SIGKILL, delivered although frozen
    cid = api.run(["sh", "-c", "sleep 60"])
    api.post(f"/containers/{cid}/pause")
    assert api.post(f"/containers/{cid}/start").status == 409
    reply = api.delete(f"/containers/{cid}")
    assert reply.status == 409 and "paused" in reply.message
    assert api.post(f"/containers/{cid}/stop", t=1).status == 204
    st = state(api, cid)
    assert (st["Status"], st["Paused"], st["ExitCode"]) == ("exited", False, 137)

    cid2 = api.run(["sleep", "60"], HostConfig={"Init": True})
    api.post(f"/containers/{cid2}/pause")
    assert api.post(f"/containers/{cid2}/kill").status == 204
    assert api.wait(cid2) == 137

    cid3 = api.run(["sleep", "60"])
    api.post(f"/containers/{cid3}/pause")
    assert api.delete(f"/containers/{cid3}", force=1).status == 204
    assert api.get(f"/containers/{cid3}/json").status == 404
    for c in (cid, cid2):
        api.remove(c)


def read_all(sock, first: bytes = b"") -> bytes:
    data = first
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def exec_in(api, cid, cmd, **config) -> str:
    reply = api.post(f"/containers/{cid}/exec", {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True, **config})
    assert reply.status == 201, reply.body
    return reply.json()["Id"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_streams_env_workdir_user_and_exit_code(api, runtime):
    from tests.api import demux

    started = time.time()
    cid = api.run(["sleep", "60"], HostConfig={"Runtime": runtime})
    eid = exec_in(api, cid, ["sh", "-c", "echo $XV $(pwd) $(id -u); echo err >&2; exit 4"],
                  Env=["XV=42"], WorkingDir="/etc", User="nobody")
    assert api.get_json(f"/exec/{eid}/json")["Running"] is False
    sock, first = api.hijack(f"/exec/{eid}/start", {"Detach": False, "Tty": False})
    frames = demux(read_all(sock, first))
    assert b"".join(p for s, p in frames if s == 1) == b"42 /etc 65534\n"
    assert b"".join(p for s, p in frames if s == 2) == b"err\n"
    info = api.get_json(f"/exec/{eid}/json")
    assert (info["ExitCode"], info["Running"], info["ContainerID"]) == (4, False, cid)
    assert info["Pid"] > 0  # as dockerd: the PID it had stays shown
    again = api.post(f"/exec/{eid}/start", {"Detach": True})
    assert again.status == 409 and "has already run" in again.message
    actions = events(api, cid, started)
    assert [a.split(":")[0] for a in actions if a.startswith("exec")] == ["exec_create", "exec_start", "exec_die"]
    api.remove(cid)


def test_exec_stdin_detach_and_missing_executable(api):
    from tests.api import demux

    cid = api.run(["sleep", "60"])
    eid = exec_in(api, cid, ["sh", "-c", "tr a-z A-Z"], AttachStdin=True)
    sock, first = api.hijack(f"/exec/{eid}/start", {})
    sock.sendall(b"hello\n")
    sock.shutdown(2 - 1)  # SHUT_WR: the end of stdin, not of the session
    assert demux(read_all(sock, first)) == [(1, b"HELLO\n")]

    eid = exec_in(api, cid, ["sh", "-c", "sleep 0.3; echo later > /tmp/mark"])
    assert api.post(f"/exec/{eid}/start", {"Detach": True}).status == 200
    assert api.get_json(f"/exec/{eid}/json")["Running"] is True
    deadline = time.time() + 10
    while api.get_json(f"/exec/{eid}/json")["Running"] and time.time() < deadline:
        time.sleep(0.05)
    assert api.get_json(f"/exec/{eid}/json")["ExitCode"] == 0

    started = time.time()
    for tty in (False, True):  # dockerd's words, not the runtime's raw line, with a terminal or without
        eid = exec_in(api, cid, ["nosuchthing"], Tty=tty)
        sock, first = api.hijack(f"/exec/{eid}/start", {"Tty": tty})
        said = read_all(sock, first)
        assert (b'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchthing": '
                b'executable file not found in $PATH: unknown\r\n') in said and b"No such file" not in said, said
        assert said.count(b"unable to start container process") == 1 and b"level=" not in said, said
        assert api.get_json(f"/exec/{eid}/json")["ExitCode"] == 126
    # as dockerd: the command alone is followed by a space in the actions; never started, no exec_die
    assert [a for a in events(api, cid, started) if a.startswith("exec")] == ["exec_create: nosuchthing ",
                                                                              "exec_start: nosuchthing "] * 2
    eid = exec_in(api, cid, ["sh", "-c", "echo early >&2; sleep 5"])  # the process's own stderr: on at once
    sock, first = api.hijack(f"/exec/{eid}/start", {})
    sock.settimeout(3)
    got = first
    while b"early" not in got:
        got += sock.recv(4096)
    sock.close()
    for user, missing in (("nosuchuser", b"unable to find user nosuchuser"), ("root:nosuchgroup", b"unable to find group nosuchgroup")):
        eid = exec_in(api, cid, ["id"], User=user)
        sock, first = api.hijack(f"/exec/{eid}/start", {})
        assert missing in read_all(sock, first)  # as dockerd: the start succeeds, the reason is the output
        assert api.get_json(f"/exec/{eid}/json")["ExitCode"] == 126
    nobody = api.run(["sleep", "60"], User="nobody")
    eid = exec_in(api, nobody, ["id", "-u"])  # as dockerd: an exec runs as the container's user by default
    sock, first = api.hijack(f"/exec/{eid}/start", {})
    assert read_all(sock, first).endswith(b"65534\n")
    api.remove(nobody)
    eid = exec_in(api, cid, ["sh", "-c", "echo $HOSTNAME ${BARE-unset} $X"], Env=["X=1", "BARE"])
    sock, first = api.hijack(f"/exec/{eid}/start", {})
    assert read_all(sock, first).endswith(f"{cid[:12]} unset 1\n".encode())  # as dockerd: HOSTNAME too
    assert api.post(f"/containers/{cid}/exec", {"Cmd": []}).status == 400
    assert api.get("/exec/nope/json").status == 404
    api.post(f"/containers/{cid}/stop", t=0)
    reply = api.post(f"/containers/{cid}/exec", {"Cmd": ["true"]})
    assert reply.status == 409 and reply.message == f"Container {cid} is not running"
    api.remove(cid)


def exec_output(api, cid, cmd, **config) -> bytes:
    from tests.api import demux

    sock, first = api.hijack(f"/exec/{exec_in(api, cid, cmd, **config)}/start", {})
    return b"".join(p for _, p in demux(read_all(sock, first)))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_has_the_groups_and_confinement_dockerd_gives_it(api, runtime):
    setup = "echo staff2:x:700:root2,nobody >> /etc/group && sleep 60"
    cid = api.run(["sh", "-c", setup], HostConfig={"Runtime": runtime, "GroupAdd": ["123"]})
    deadline = time.time() + 10
    while b"staff2" not in exec_output(api, cid, ["cat", "/etc/group"]) and time.time() < deadline:
        time.sleep(0.05)
    # as the container's own process: its group, the user's other groups, then --group-add
    assert exec_output(api, cid, ["id", "-G"]) == b"0 123\n"
    assert exec_output(api, cid, ["id", "-G"], User="nobody") == b"65534 123 700\n"  # the kernel sorts them
    assert exec_output(api, cid, ["id", "-G"], User="nobody:123") == b"123\n"  # a group given: no memberships
    homes = exec_output(api, cid, ["sh", "-c", "echo $HOME"]), exec_output(api, cid, ["sh", "-c", "echo $HOME"], User="1000")
    assert homes == (b"/root\n", b"/\n")  # as runc sets it: from passwd, else /
    null = os.stat("/dev/null")  # the host's: an exec as a user must not be given it (the runtime chowns stdio)
    assert (null.st_uid, null.st_gid) == (0, 0)
    status = exec_output(api, cid, ["cat", "/proc/self/status"]).decode()
    assert "CapEff:\t00000000a80425fb" in status and "Seccomp:\t2" in status
    privileged = exec_output(api, cid, ["cat", "/proc/self/status"], Privileged=True).decode()
    cap_eff = int(privileged.split("CapEff:\t")[1].split()[0], 16)
    assert cap_eff & 0xa80425fb == 0xa80425fb and cap_eff > 0xa80425fb  # every capability the daemon holds
    api.remove(cid)


def test_the_users_files_are_read_inside_the_container_and_never_block(api, tmp_path):
    # A host file the container's /etc/passwd points at by its host path: never read.
    host_passwd = tmp_path / "passwd"
    host_passwd.write_text("hostuser:x:4242:4242::/:/bin/sh\n")
    cid = api.run(["sh", "-c", f"ln -sf {host_passwd} /etc/passwd && mkfifo /tmp/fifo && sleep 60"])
    deadline = time.time() + 10
    while b"fifo" not in exec_output(api, cid, ["ls", "/tmp"]) and time.time() < deadline:
        time.sleep(0.05)
    assert b"unable to find user hostuser" in exec_output(api, cid, ["id", "-u"], User="hostuser")
    # the same at a container's start, from an image with such a link
    image = api.post("/commit", container=cid, repo="passwd-link").json()["Id"]
    created = api.post("/containers/create", {"Image": image, "Cmd": ["true"], "User": "hostuser"})
    if created.status == 201:
        reply = api.post(f"/containers/{created.json()['Id']}/start")
        api.remove(created.json()["Id"])
        assert reply.status >= 400 and "unable to find user hostuser" in reply.message
    else:
        assert "unable to find user hostuser" in created.message
    # a FIFO in the passwd file's place: no entries, at once, not a thread held forever
    exec_output(api, cid, ["sh", "-c", "rm /etc/passwd && ln -s /tmp/fifo /etc/passwd"])
    started = time.time()
    assert b"unable to find user nobody" in exec_output(api, cid, ["id"], User="nobody")
    assert time.time() - started < 5
    # a number needs no entry (HOME given: the runtime would look it up in that FIFO itself)
    uids = exec_output(api, cid, ["grep", "Uid", "/proc/self/status"], User="4242", Env=["HOME=/h"])
    assert uids == b"Uid:\t4242\t4242\t4242\t4242\n"
    api.remove(cid)
    assert api.delete(f"/images/{image}").status == 200


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_with_a_terminal_and_resize(api, runtime):
    cid = api.run(["sleep", "60"], HostConfig={"Runtime": runtime})
    eid = exec_in(api, cid, ["sh", "-c", "tty; read line; stty size; echo got $line"], Tty=True, AttachStdin=True)
    sock, out = api.hijack(f"/exec/{eid}/start", {"Tty": True})
    assert api.post(f"/exec/{eid}/resize", h=40, w=100).status == 200  # at once, as the docker CLI does
    while b"/dev/pts/" not in out:  # typing before the shell reads would echo out of order
        out += sock.recv(65536)
    sock.sendall(b"typed\r")
    out = read_all(sock, out)
    assert out.startswith(b"/dev/pts/") and b"40 100\r\n" in out and out.endswith(b"got typed\r\n"), out
    assert api.get_json(f"/exec/{eid}/json")["ExitCode"] == 0
    api.remove(cid)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_a_terminal_stdin_resize_and_detach_keys(api, runtime):
    cid = api.create(["sh"], Tty=True, OpenStdin=True, AttachStdin=True, HostConfig={"Runtime": runtime})
    sock, out = api.hijack(f"/v1.41/containers/{cid}/attach", stream=1, stdin=1, stdout=1, stderr=1)
    sock.sendall(b"stty size; tty\r")  # typed before the start: held until the shell runs
    assert api.post(f"/containers/{cid}/start").status == 204
    assert api.post(f"/containers/{cid}/resize", h=33, w=77).status == 200
    while b"/dev/pts/" not in out:
        out += sock.recv(65536)
    sock.sendall(b"stty size\r")
    while b"33 77" not in out:
        out += sock.recv(65536)
    sock.sendall(b"\x10\x11")  # Ctrl-P Ctrl-Q: detach, the shell runs on
    out = read_all(sock, out)
    assert state(api, cid)["Running"] is True
    assert b"\x1b" not in out.split(b"33 77")[0][-5:]  # raw bytes, no frame headers
    sock, out = api.hijack(f"/containers/{cid}/attach", stream=1, stdin=1, stdout=1)
    sock.sendall(b"exit 5\r")
    read_all(sock, out)
    assert api.wait(cid) == 5
    logs = api.get(f"/containers/{cid}/logs", stdout=1).body
    assert b"33 77" in logs and not logs.startswith(b"\x01\x00")  # a terminal's log is raw
    api.remove(cid)


def test_stdin_once_closes_stdin_at_the_clients_eof(api):
    from tests.api import demux

    cid = api.create(["sh", "-c", "cat; echo done"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    sock, out = api.hijack(f"/containers/{cid}/attach", stream=1, stdin=1, stdout=1, stderr=1)
    api.post(f"/containers/{cid}/start")
    sock.sendall(b"line one\n")
    sock.shutdown(1)
    assert b"".join(p for _, p in demux(read_all(sock, out))) == b"line one\ndone\n"
    assert api.wait(cid) == 0
    api.remove(cid)


def test_top_lists_the_containers_processes(api):
    cid = api.run(["sh", "-c", "sleep 60 & sleep 61; true"])  # `; true`: sh stays, not exec'd away
    time.sleep(0.2)
    found = api.get_json(f"/containers/{cid}/top")
    assert found["Titles"][:3] == ["UID", "PID", "PPID"] and found["Titles"][-1] == "CMD"
    commands = sorted(row[-1] for row in found["Processes"])
    assert commands == ["sh -c sleep 60 & sleep 61; true", "sleep 60", "sleep 61"]
    assert all(isinstance(v, str) for row in found["Processes"] for v in row)
    custom = api.get_json(f"/containers/{cid}/top", ps_args="-o pid,comm")
    assert custom["Titles"] == ["PID", "COMMAND"] and sorted(r[1] for r in custom["Processes"]) == ["sh", "sleep", "sleep"]
    api.post(f"/containers/{cid}/pause")
    assert len(api.get_json(f"/containers/{cid}/top")["Processes"]) == 3
    api.remove(cid)
    stopped = api.create(["true"])
    assert api.get(f"/containers/{stopped}/top").status == 409
    api.remove(stopped)


def test_stats_from_the_cgroup(api):
    cid = api.run(["sh", "-c", "i=0; while true; do i=$((i+1)); done"], HostConfig={"Memory": 64 * 2**20, "PidsLimit": 50})
    reading = api.get_json(f"/containers/{cid}/stats", stream=0)
    assert reading["id"] == cid and reading["name"].startswith("/")
    cpu, pre = reading["cpu_stats"], reading["precpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0  # a second apart, busy
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] and cpu["online_cpus"] >= 1
    assert reading["memory_stats"]["limit"] == 64 * 2**20 and reading["memory_stats"]["usage"] > 0
    assert reading["pids_stats"] == {"current": 1, "limit": 50}
    quick = api.get_json(f"/containers/{cid}/stats", stream=0, **{"one-shot": 1})
    assert quick["preread"] == "0001-01-01T00:00:00Z"
    assert quick["precpu_stats"]["throttling_data"]["periods"] == 0 and "io_time_recursive" in quick["blkio_stats"]
    # stopped: answered at once, zeros in the full shape, as dockerd
    api.post(f"/containers/{cid}/stop", t=0)
    began = time.monotonic()
    idle = api.get_json(f"/containers/{cid}/stats", stream=0)
    assert time.monotonic() - began < 0.5 and idle["read"] == "0001-01-01T00:00:00Z"
    assert idle["cpu_stats"]["cpu_usage"]["usage_in_usermode"] == 0 and idle["blkio_stats"]["io_time_recursive"] is None
    api.remove(cid)


def test_rename_update_and_prune(api, daemon):
    started = time.time()
    cid = api.run(["sleep", "60"], name="before-rename")
    other = api.create(["true"], name="taken-name")
    assert api.post(f"/containers/{cid}/rename", name="taken-name").status == 409
    assert api.post(f"/containers/{cid}/rename", name="bad name!").status == 400
    assert api.post(f"/containers/{cid}/rename", name="after-rename").status == 204
    assert api.get_json("/containers/after-rename/json")["Id"] == cid
    assert api.get("/containers/before-rename/json").status == 404
    reply = api.get("/events", since=f"{started:.9f}", until=f"{time.time():.9f}",
                    filters=json.dumps({"event": ["rename"]}))
    assert json.loads(reply.body.splitlines()[0])["Actor"]["Attributes"]["oldName"] == "/before-rename"

    assert api.post(f"/containers/{cid}/update", {"Memory": 32 * 2**20, "PidsLimit": 20,
                                                  "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}).status == 200
    limits = cgroups.read_limits(cgroups.detect(), f"/{daemon.cgroup_parent}/{cid}")
    assert (limits.memory, limits.pids) == (32 * 2**20, 20)
    hc = api.get_json(f"/containers/{cid}/json")["HostConfig"]
    assert (hc["Memory"], hc["PidsLimit"], hc["RestartPolicy"]["Name"]) == (32 * 2**20, 20, "on-failure")
    assert api.post(f"/containers/{cid}/update", {"Memory": 1024}).status == 400
    # as dockerd: zeros change nothing; the rest of Resources is refused by name, not ignored
    assert api.post(f"/containers/{cid}/update", {"CpuShares": 512, "Memory": 0, "CpusetCpus": "",
                                                  "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}).status == 200
    hc = api.get_json(f"/containers/{cid}/json")["HostConfig"]
    assert (hc["Memory"], hc["CpuShares"], hc["RestartPolicy"]["Name"]) == (32 * 2**20, 512, "on-failure")
    assert cgroups.read_limits(cgroups.detect(), f"/{daemon.cgroup_parent}/{cid}").memory == 32 * 2**20
    # `update --restart no` turns the policy off (it is no zero value)
    assert api.post(f"/containers/{cid}/update", {"RestartPolicy": {"Name": "no"}}).status == 200
    assert api.get_json(f"/containers/{cid}/json")["HostConfig"]["RestartPolicy"]["Name"] == "no"
    refused = api.post(f"/containers/{cid}/update", {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 10}]})
    assert refused.status == 400 and refused.message.startswith("Ulimits: an update cannot change")
    assert api.post(f"/containers/{cid}/update", {"CpuQuota": 50000}).status == 200
    conflict = api.post(f"/containers/{cid}/update", {"NanoCpus": 10**9})
    assert (conflict.status, conflict.message) == (
        409, "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")

    labelled = api.create(["true"], Labels={"prune": "yes"})
    api.post(f"/containers/{labelled}/start")
    api.wait(labelled)
    # `until` as a Go duration, as the docker CLI passes `--filter until=1h` on: not an hour old yet
    young = api.post("/containers/prune", filters=json.dumps({"label": ["prune=yes"], "until": ["1h"]})).json()
    assert young["ContainersDeleted"] is None
    pruned = api.post("/containers/prune", filters=json.dumps({"label": ["prune=yes"], "until": ["0s"]})).json()
    assert pruned["ContainersDeleted"] == [labelled]
    assert api.get(f"/containers/{other}/json").status == 200  # no label: kept
    assert api.get(f"/containers/{cid}/json").status == 200  # running: kept
    for c in (cid, other):
        api.remove(c)


def test_system_df(api):
    cid = api.run(["sh", "-c", "echo 12345 > /data; sleep 60"])
    deadline = time.time() + 10
    while api.get_json(f"/containers/{cid}/json")["State"]["Running"] and time.time() < deadline:
        df = api.get_json("/system/df")
        row = next(c for c in df["Containers"] if c["Id"] == cid)
        if row["SizeRw"]:
            break
        time.sleep(0.05)
    assert row["SizeRw"] == 6 and row["SizeRootFs"] > 6
    busybox = next(i for i in df["Images"] if "busybox:latest" in i["RepoTags"])
    assert busybox["Containers"] >= 1 and busybox["Size"] > 0 and df["LayersSize"] >= busybox["Size"]
    newer = api.create(["true"])
    listed = [c["Id"] for c in api.get_json("/system/df")["Containers"]]
    assert listed.index(newer) < listed.index(cid)  # newest first, as dockerd lists them
    api.remove(newer)
    api.remove(cid)


def test_oom_kill_is_reported(api):
    started = time.time()
    cid = api.run(["sh", "-c", "head -c 300000000 /dev/zero | tail > /dev/null"], HostConfig={"Memory": 16 * 2**20, "MemorySwap": 16 * 2**20})
    assert api.wait(cid) == 137
    st = state(api, cid)
    assert st["OOMKilled"] is True and st["ExitCode"] == 137
    actions = events(api, cid, started)
    assert actions.index("oom") < actions.index("die")
    api.post(f"/containers/{cid}/start")
    api.post(f"/containers/{cid}/stop", t=0)
    api.remove(cid)


def test_exec_detach_keys_leave_the_process_running(api):
    cid = api.run(["sleep", "60"])
    eid = exec_in(api, cid, ["sh", "-c", "read x; echo $x > /tmp/after"], Tty=True, AttachStdin=True, DetachKeys="ctrl-x")
    sock, out = api.hijack(f"/exec/{eid}/start", {"Tty": True})
    sock.sendall(b"\x18")  # Ctrl-X: the session ends, the exec goes on
    read_all(sock, out)
    assert api.get_json(f"/exec/{eid}/json")["Running"] is True
    bad = api.post(f"/containers/{cid}/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-"})
    assert bad.status == 400 and "Invalid detach keys" in bad.message
    api.remove(cid)
