"""The keeper on its own: real processes, a real keeper per test, in a directory of ours.

Every keeper and every process a test starts is killed by PID at the end (also on
failure): the fixture kills the keeper of its directory and every process naming that
directory (payloads take a pid file inside it as an argument, so they do).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import trio

from engine.keeper import protocol
from engine.keeper.client import Held, Keeper, KeeperError, KeeperUnavailable

REPO = Path(__file__).resolve().parents[1]

# What `crun create` does, as far as the keeper can tell: fork the payload, write its pid,
# exit. Modes: sleep, count<N> (print 0..N-1 then exit 0), exit<N>, go<N> (exit N once
# the file <pid file>.go exists).
PAYLOAD = """
import os, sys, time
pid_file, mode = sys.argv[1], sys.argv[2]
pid = os.fork()
if pid:
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(pid))
    os.rename(pid_file + ".tmp", pid_file)
    os._exit(0)
if mode == "sleep":
    time.sleep(300)
elif mode.startswith("count"):
    out = os.fdopen(1, "w", buffering=1)
    for i in range(int(mode[5:])):
        out.write(f"{i}\\n")
elif mode.startswith("exit"):
    os._exit(int(mode[4:]))
elif mode.startswith("go"):
    while not os.path.exists(pid_file + ".go"):
        time.sleep(0.01)
    os._exit(int(mode[2:]))
"""


class Place:
    """A keeper's state directory, and what was started under it."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "state"
        self.payload = root / "payload.py"
        self.payload.write_text(PAYLOAD)
        self.pids: list[int] = []
        self.keeper_pids: set[int] = set()

    def keeper_pid(self) -> int:
        return int((self.state / protocol.PID_FILE).read_text())

    def argv(self, name: str, mode: str) -> list[str]:
        return [sys.executable, str(self.payload), str(self.root / f"{name}.pid"), mode]

    def pid_of(self, name: str) -> int:
        pid = int((self.root / f"{name}.pid").read_text())
        self.pids.append(pid)
        return pid

    def start_keeper(self) -> int:
        """Start the keeper with the command line (`--daemon`), as Keeper.connect does."""
        subprocess.run([sys.executable, "-m", "engine.keeper", "--state", str(self.state), "--daemon"],
                       cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True, timeout=10)
        pid = self.keeper_pid()
        self.keeper_pids.add(pid)
        return pid


def naming(root: Path) -> list[int]:
    """Processes whose command line names `root` (only this test's can)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if str(root).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    """Running (a zombie does not count)."""
    try:
        return status(pid).get("State", "Z").split()[0] != "Z"
    except OSError:
        return False


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"{pid} still runs"
        time.sleep(0.01)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def place():
    root = Path(tempfile.mkdtemp(prefix="berth-keeper-", dir="/tmp"))  # short: AF_UNIX paths are
    p = Place(root)
    try:
        yield p
    finally:
        try:
            p.keeper_pids.add(p.keeper_pid())
        except (OSError, ValueError):
            pass
        # payloads first, so that a live keeper reaps them
        keepers = {pid for pid in p.keeper_pids if alive(pid)}
        for victims in (set(p.pids) | set(naming(root)) - keepers, keepers):
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in victims:
                gone(pid)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def devnull():
    fd = os.open(os.devnull, os.O_RDWR)
    yield fd
    os.close(fd)


async def read_to_eof(fd: int) -> bytes:
    """Everything until EOF (fd is closed)."""
    chunks = []
    with trio.fail_after(30):
        async with trio.lowlevel.FdStream(fd) as stream:
            while chunk := await stream.receive_some(65536):
                chunks.append(chunk)
    return b"".join(chunks)


async def spawn_held(keeper: Keeper, place: Place, name: str, mode: str, devnull: int,
                     **fds: int) -> int:
    """Run a payload the way a container runs (`crun create`), hold it with `fds`; its pid."""
    assert await keeper.spawn(place.argv(name, mode), stdin=devnull, stdout=fds.get("stdout", devnull),
                              stderr=devnull) == 0
    pid = place.pid_of(name)
    await keeper.hold(name, pid, fds)
    return pid


@pytest.mark.trio
async def test_container_init_is_the_keepers_child_and_its_signal_death_is_reported(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        assert keeper.pid == place.keeper_pid()
        keeper_status = status(keeper.pid)
        assert os.getsid(keeper.pid) == keeper.pid and keeper_status["PPid"] != str(os.getpid())
        r, w = os.pipe()
        pid = await spawn_held(keeper, place, "c1", "sleep", devnull, stdout=r)
        os.close(w)
        os.close(r)
        assert status(pid)["PPid"] == str(keeper.pid)  # reparented to the subreaper
        assert os.getsid(pid) != keeper.pid  # spawned in a session of its own
        assert await keeper.held() == [Held("c1", pid, None, None)]
        before = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        code, when = await keeper.wait_exit("c1")
        assert code == 128 + signal.SIGKILL and before <= when <= time.time_ns()
        assert await keeper.wait_exit("c1") == (code, when)  # at once, the second time
        assert await keeper.held() == [Held("c1", pid, code, when)]
        await keeper.release("c1")
        assert await keeper.held() == []


COUNTING_CLIENT = """
import os, sys, trio
from pathlib import Path
from engine.keeper.client import Keeper

state, argv, log = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3]

async def main():
    keeper = await Keeper.connect(state)
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    await keeper.spawn(argv, stdin=null, stdout=w, stderr=null)
    os.close(w)
    await keeper.hold("counter", int(Path(argv[2]).read_text()), {"stdout": r})
    got = b""
    while got.count(b"\\n") < 1000:
        got += os.read(r, 4096)
    Path(log).write_bytes(got)  # what this daemon wrote into the container's log
    print("ready", flush=True)
    await trio.sleep_forever()

trio.run(main)
"""


@pytest.mark.trio
async def test_output_waits_in_the_pipe_while_the_daemon_is_dead(place):
    """A client (berthd) reads part of a counter and is killed with SIGKILL; the keeper
    keeps the pipe, the counter blocks on it; the next client takes the read end and gets
    the rest: every line once, in order."""
    lines = 30000  # ~170 kB: more than a pipe holds
    log = place.root / "log"
    first = subprocess.Popen([sys.executable, "-c", COUNTING_CLIENT, str(place.state),
                              " ".join(place.argv("counter", f"count{lines}")), str(log)],
                             cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert first.stdout.readline() == b"ready\n"
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
    pid = place.pid_of("counter")
    await trio.sleep(0.2)
    assert alive(pid), "the counter must wait for a reader, not die"
    async with Keeper.open(place.state, start=False) as keeper:
        place.keeper_pids.add(keeper.pid)
        assert await keeper.held() == [Held("counter", pid, None, None)]
        fds = await keeper.take("counter")
        assert list(fds) == ["stdout"]
        rest = await read_to_eof(fds["stdout"])
        assert await keeper.wait_exit("counter") == (0, (await keeper.held())[0].exited_ns)
        await keeper.release("counter")
    assert (log.read_bytes() + rest).decode().splitlines() == [str(i) for i in range(lines)]


@pytest.mark.trio
async def test_an_exit_while_no_client_is_connected_is_kept_for_the_next(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        pid = await spawn_held(keeper, place, "c1", "go7", devnull)
    before = time.time_ns()
    (place.root / "c1.pid.go").touch()
    gone(pid)
    after = time.time_ns()
    async with Keeper.open(place.state, start=False) as keeper:
        [held] = await keeper.held()
        assert held.id == "c1" and held.pid == pid and held.exit_code == 7
        assert before <= held.exited_ns <= after
        assert await keeper.wait_exit("c1") == (7, held.exited_ns)


@pytest.mark.trio
async def test_an_exit_before_the_hold_is_found_by_the_hold(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        assert await keeper.spawn(place.argv("c1", "exit3"), stdin=devnull, stdout=devnull, stderr=devnull) == 0
        pid = place.pid_of("c1")
        gone(pid)
        await keeper.hold("c1", pid, {})
        assert (await keeper.wait_exit("c1"))[0] == 3
        with pytest.raises(KeeperError, match="not the keeper's child"):
            await keeper.hold("c2", os.getpid(), {})


@pytest.mark.trio
async def test_held_fds_are_passed_back_and_closed_on_release(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        await keeper.held()  # a round trip: the keeper has accepted this connection
        baseline = fd_count(keeper.pid)
        out, err, inp = os.pipe(), os.pipe(), os.pipe()
        pid = await spawn_held(keeper, place, "c1", "sleep", devnull,
                               stdout=out[0], stderr=err[0], stdin=inp[1])
        assert fd_count(keeper.pid) == baseline + 3
        fds = await keeper.take("c1")
        assert sorted(fds) == ["stderr", "stdin", "stdout"]
        os.write(out[1], b"through the keeper")  # the taken read end is the same pipe
        assert os.read(fds["stdout"], 100) == b"through the keeper"
        os.write(fds["stdin"], b"in")
        assert os.read(inp[0], 100) == b"in"
        for fd in [*fds.values(), *out, *err, *inp]:
            os.close(fd)
        await keeper.held()  # a round trip: the keeper is past sending the take
        assert fd_count(keeper.pid) == baseline + 3  # what it sent is closed once sent
        assert await keeper.take("nothing") == {}
        await keeper.release("c1")  # live: the keeper just stops holding
        assert fd_count(keeper.pid) == baseline
        assert await keeper.held() == []
        os.kill(pid, signal.SIGKILL)
        gone(pid)


def request(sock: socket.socket, payload: bytes, fds: list[int] = ()) -> dict:
    sock.sendmsg([payload], protocol.ancillary(fds))
    return json.loads(sock.recv(protocol.MAX_MESSAGE))


def test_malformed_requests_get_an_error_and_leak_nothing(place):
    keeper = place.start_keeper()
    baseline = fd_count(keeper)
    r, w = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.settimeout(10)
            sock.connect(str(place.state / protocol.SOCKET))
            bad = [b"not json", b"[1, 2]", b'{"id": 1}', b'{"op": "nope", "id": 2}', b'{"op": "hold", "id": 3}',
                   b'{"op": "hold", "id": 4, "container": "x", "pid": 1, "names": ["stdout"]}',
                   b'{"op": "hold", "id": 5, "container": "x", "pid": -1, "names": []}',
                   b'{"op": "spawn", "id": 6, "argv": []}', b'{"op": "spawn", "id": 7, "argv": ["true"]}',
                   b'{"op": "status", "id": 8, "container": "x"}', b'{"op": "take", "id": 9}',
                   b"\xff\xfe", b"x" * (protocol.MAX_MESSAGE + 10)]
            for payload in bad:
                reply = request(sock, payload, [r, w])
                assert reply["op"] == "reply" and reply["ok"] is False and reply["error"], payload
            too_many = request(sock, b'{"op": "held", "id": 10}', [r] * (protocol.MAX_FDS + 4))
            assert too_many["ok"] is False and too_many["id"] is None
            assert request(sock, b'{"op": "held", "id": 11}') == {"op": "reply", "id": 11, "ok": True,
                                                                  "held": [], "more": False}
            assert fd_count(keeper) == baseline + 1  # this connection
        assert alive(keeper)
        assert "error" not in (place.state / protocol.LOG_FILE).read_text()
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.trio
async def test_shutdown_is_refused_while_a_container_lives(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        pid = await spawn_held(keeper, place, "c1", "sleep", devnull)
        os.kill(keeper.pid, signal.SIGTERM)  # ignored while it holds a live container
        assert await keeper.shutdown() is False
        assert alive(keeper.pid)
        os.kill(pid, signal.SIGTERM)
        assert (await keeper.wait_exit("c1"))[0] == 128 + signal.SIGTERM
        assert await keeper.shutdown() is True  # exited-not-released does not hold it back
        gone(keeper.pid)
        assert not (place.state / protocol.SOCKET).exists() and not (place.state / protocol.PID_FILE).exists()
        with pytest.raises(KeeperUnavailable):
            await keeper.held()
    with pytest.raises(KeeperUnavailable):
        await Keeper.connect(place.state, start=False)


def test_sigterm_stops_a_keeper_that_holds_nothing(place):
    keeper = place.start_keeper()
    os.kill(keeper, signal.SIGTERM)
    gone(keeper)
    assert "exiting" in (place.state / protocol.LOG_FILE).read_text()


@pytest.mark.trio
async def test_the_keeper_outlives_a_client_killed_mid_request_and_serves_many(place, devnull):
    """Clients come and go (one killed with SIGKILL), several at once; the keeper stays
    the same process and started only once."""
    async with trio.open_nursery() as nursery:
        keepers = []

        async def connect():
            keepers.append(await Keeper.connect(place.state))

        for _ in range(4):
            nursery.start_soon(connect)
    assert len({k.pid for k in keepers}) == 1
    keeper_pid = keepers[0].pid
    place.keeper_pids.add(keeper_pid)
    killed = subprocess.Popen([sys.executable, "-c", COUNTING_CLIENT, str(place.state),
                               " ".join(place.argv("counter", "count100000")), str(place.root / "log")],
                              cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert killed.stdout.readline() == b"ready\n"
    killed.kill()
    killed.wait()
    killed.stdout.close()
    place.pid_of("counter")
    # several clients at once, every one told of every exit
    pids = [await spawn_held(keepers[i % 4], place, f"c{i}", "sleep", devnull) for i in range(6)]
    results = {}

    async def wait(keeper: Keeper, name: str):
        results[keeper, name] = await keeper.wait_exit(name)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for keeper in keepers:
                for i in range(6):
                    nursery.start_soon(wait, keeper, f"c{i}")
            with trio.move_on_after(0.1):  # a cancelled wait leaves the others be
                await keepers[0].wait_exit("c0")
            await trio.sleep(0.1)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
    assert len(results) == 24 and {code for code, _ in results.values()} == {137}
    assert len({results[k, "c3"] for k in keepers}) == 1  # the same exit, the same time
    assert status(keeper_pid)["PPid"] != str(os.getpid()) and alive(keeper_pid)
    names = {h.id for h in await keepers[1].held()}
    assert names == {"counter"} | {f"c{i}" for i in range(6)}
    for keeper in keepers:
        await keeper.aclose()


@pytest.mark.trio
async def test_a_dead_keeper_fails_waiting_calls(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        await spawn_held(keeper, place, "c1", "sleep", devnull)

        async def kill_soon():
            await trio.sleep(0.2)
            os.kill(keeper.pid, signal.SIGKILL)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon)
                with pytest.raises(KeeperUnavailable):
                    await keeper.wait_exit("c1")
        with pytest.raises(KeeperUnavailable):
            await keeper.held()


@pytest.mark.trio
async def test_spawn_reports_exit_codes_and_exec_failures(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        r, w = os.pipe()
        # the fds still open once the glob's own directory fd is closed again
        open_fds = 'for f in /proc/$$/fd/*; do [ -e "$f" ] && printf " %s" "${f##*/}"; done'
        code = await keeper.spawn(["sh", "-c", f'printf "$GREETING $(pwd)"; {open_fds}; exit 5'], stdin=devnull,
                                  stdout=w, stderr=devnull, env={"GREETING": "hi", "PATH": os.environ["PATH"]})
        os.close(w)
        # in /, and with no fd but its 0, 1, 2 (the keeper's own are all close-on-exec)
        assert code == 5 and os.read(r, 100) == b"hi / 0 1 2"
        os.close(r)
        assert await keeper.spawn(["sh", "-c", "kill -9 $$"], stdin=devnull, stdout=devnull, stderr=devnull) == 137
        with pytest.raises(FileNotFoundError):
            await keeper.spawn(["/nonexistent/crun"], stdin=devnull, stdout=devnull, stderr=devnull)


def test_the_keeper_is_small(place, record_property):
    """Measured: ~10.5 MB RSS, ~7 MB PSS (a bare python3.11 is ~9.8 MB RSS)."""
    keeper = place.start_keeper()
    rss = int(status(keeper)["VmRSS"].split()[0])
    pss = next(int(line.split()[1]) for line in Path(f"/proc/{keeper}/smaps_rollup").read_text().splitlines()
               if line.startswith("Pss:"))
    record_property("keeper_rss_kb", rss)
    record_property("keeper_pss_kb", pss)
    print(f"keeper memory: RSS {rss} kB, PSS {pss} kB")
    assert rss < 20_000


@pytest.mark.trio
async def test_a_restarted_container_is_held_again_under_its_id(place, devnull):
    async with Keeper.open(place.state) as keeper:
        place.keeper_pids.add(keeper.pid)
        first = await spawn_held(keeper, place, "c1", "exit4", devnull)
        assert (await keeper.wait_exit("c1"))[0] == 4
        with pytest.raises(KeeperError, match="not held"):
            await keeper.wait_exit("c2")
        async with trio.open_nursery() as nursery:
            second = await spawn_held(keeper, place, "c1", "sleep", devnull)  # the restart
            assert second != first
            results = []

            async def wait():
                results.append(await keeper.wait_exit("c1"))

            nursery.start_soon(wait)
            await trio.sleep(0.1)
            assert results == []  # the earlier init's exit is not this one's
            with pytest.raises(KeeperError, match="held running"):
                await keeper.hold("c1", first, {})
            os.kill(second, signal.SIGKILL)
        assert results[0][0] == 137
        assert await keeper.held() == [Held("c1", second, 137, results[0][1])]


def _open_fds() -> set[int]:
    """The fds open here (not the listing's own, closed by then)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
            found.add(int(name))
        except OSError:
            pass
    return found


def test_spawn_failures_leave_no_fd_behind(devnull):
    """Whatever stops a spawn (a bad argument, no such program, no fd left to place the
    child's) leaves the keeper with the fds it had: it runs for as long as containers do."""
    from engine.keeper import server

    before = _open_fds()
    for argv, env in ((["/nonexistent/crun"], None), (["no-such-program-here"], {"PATH": "/usr/bin:/bin"}),
                      (["true\0"], None), (["true"], {"A=B": "1", "PATH": "/usr/bin"})):
        with pytest.raises(server.RequestError) as failure:
            server.spawn(argv, env, [devnull, devnull, devnull])
        assert failure.value.errno in (errno.ENOENT, errno.EINVAL), failure.value
    free = [fd for fd in range(3, max(before) + 3) if fd not in before]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free[1], hard))  # room for one of the three copies
    try:
        with pytest.raises(server.RequestError) as failure:
            server.spawn(["true"], None, [devnull, devnull, devnull])
        assert failure.value.errno == errno.EMFILE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert _open_fds() == before
