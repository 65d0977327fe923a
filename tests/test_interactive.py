"""Terminals end to end: `run -it`, `exec -it`, `attach` and the detach keys, driven
through a pseudo-terminal as a user's keyboard would, with the real docker CLI and with
berth's own."""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.daemon import REPO


class Terminal:
    """A command on a pty of a given size: type into it, read its screen's bytes."""

    def __init__(self, argv: list[str], env: dict, rows: int = 30, cols: int = 100):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
                                     start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.seen = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, wanted: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"{wanted!r} never came; the terminal shows {self.seen[-500:]!r}")
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:  # the command ended and closed its side
                raise AssertionError(f"{wanted!r} never came; the terminal shows {self.seen[-500:]!r}") from None
        return self.seen

    def expect_times(self, wanted: bytes, times: int, timeout: float = 15) -> bytes:
        """Read until `wanted` was shown `times` times."""
        deadline = time.monotonic() + timeout
        while self.seen.count(wanted) < times:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"{wanted!r} not shown {times} times: {self.seen[-500:]!r}")
            self.seen += os.read(self.master, 65536)
        return self.seen

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.killpg(self.proc.pid, 28)  # SIGWINCH, as a terminal emulator sends it

    def close(self) -> int:
        try:
            code = self.proc.wait(timeout=30)
        finally:
            os.close(self.master)
        return code


CLIENTS = {
    "docker": lambda: ["docker"],
    "berth": lambda: [sys.executable, "-m", "shell.cli"],
}


@pytest.fixture(params=sorted(CLIENTS))
def client(request, daemon, tmp_path):
    if request.param == "docker" and not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_HOST": daemon.host, "BERTH_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path),
           "TERM": "xterm"}
    return lambda *args, **kw: Terminal([*CLIENTS[request.param](), *args], env, **kw)


def test_run_it_resize_detach_attach_exec(client, api):
    name = f"it-{os.getpid()}-{time.monotonic_ns()}"
    run = client("run", "-it", "--name", name, "busybox", "sh")
    run.expect(b"/ # ")
    run.type(b"stty size; echo T=$TERM\r")
    run.expect(b"30 100\r\nT=xterm")
    run.resize(25, 90)
    time.sleep(0.3)
    run.type(b"stty size\r")
    run.expect(b"25 90\r\n")
    run.type(b"\x10\x11")  # Ctrl-P Ctrl-Q
    assert run.close() == 0
    assert api.get_json(f"/containers/{name}/json")["State"]["Running"] is True

    exe = client("exec", "-it", name, "sh", "-c", "read x; echo got $x; exit 4")
    exe.type(b"abc\r")
    exe.expect(b"got abc")
    assert exe.close() == 4

    att = client("attach", name)
    time.sleep(0.5)
    att.type(b"exit 3\r")
    assert att.close() == 3
    api.remove(name)


def test_live_stats_until_ctrl_c(daemon, api):
    env = {**os.environ, "BERTH_HOST": daemon.host, "TERM": "xterm"}
    cid = api.run(["sleep", "60"], name=f"stats-{os.getpid()}")
    term = Terminal([sys.executable, "-m", "shell.cli", "stats", cid[:12]], env)
    term.expect_times(b"\x1b[H\x1b[J", 2)  # a second reading, drawn over the first (cursor home, clear)
    assert term.seen.count(f"stats-{os.getpid()}".encode()) >= 2
    term.type(b"\x03")  # Ctrl-C
    assert term.close() == 130
    api.remove(cid)


def test_start_ai(client, api):
    name = f"ai-{os.getpid()}-{time.monotonic_ns()}"
    assert api.post("/containers/create", {"Image": "busybox", "Cmd": ["sh"], "Tty": True, "OpenStdin": True,
                                           "AttachStdin": True}, name=name).status == 201
    term = client("start", "-ai", name)
    term.expect(b"/ # ")
    term.type(b"exit 7\r")
    assert term.close() == 7
    api.remove(name)


def test_run_it_rm_exits_with_the_containers_status(client, api):
    """The auto-removed container may be gone by the time the session ends: that is an
    exit, not an error (the inspect that tells a detach from an exit gets a 404)."""
    for _ in range(5):
        run = client("run", "-it", "--rm", "busybox", "sh")
        run.expect(b"/ # ")
        run.type(b"exit 3\r")
        assert run.close() == 3
        assert b"No such container" not in run.seen
