"""The engines a benchmark compares: a berthd and (when installed) a dockerd, each
started here with its own state and socket, and stopped by its own PID afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.dockerd import PrivateDockerd, terminate, unmount_below

VENV_BIN = Path(sys.executable).parent


def _wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class Daemon:
    """A daemon process this benchmark started, stopped by its own PID afterwards."""

    def __init__(self, argv: list[str], sock: Path, log: Path):
        self.sock = sock
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        terminate(self.proc)


def start_berthd(work: Path) -> Daemon:
    root = work / "berth"
    d = Daemon([str(VENV_BIN / "berthd"), "--root", str(root), "--cgroup-parent", f"berth-bench-{os.getpid()}",
                "--config-file", str(work / "none.toml"), "--bridge", f"bb-{os.getpid() % 100000}",
                "--bridge-subnet", f"10.252.{os.getpid() % 256}.0/24"], root / "run" / "berth.sock", work / "berthd.log")
    _wait_for(lambda: d.sock.exists() and _ok([str(VENV_BIN / "berth"), "-H", f"unix://{d.sock}", "version"]), "berthd")
    return d


def start_dockerd(work: Path) -> PrivateDockerd | None:
    """Debian's dockerd with a busybox imported from the host's (never pulled); None if
    dockerd is not installed."""
    if not shutil.which("dockerd"):
        return None
    d = PrivateDockerd(work / "dockerd").start()
    d.import_busybox()
    return d


def _ok(argv: list[str], env: dict | None = None) -> bool:
    return subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0


def arguments(doc: str, **numbers: int):
    """Parse a benchmark's options: its own integer options (name=default) plus the shared
    `--skip-docker`, `--json FILE` and `--no-record` (see record.py)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in numbers.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--skip-docker", action="store_true", help="measure berth only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-record", action="store_true",
                        help="compare with tests/bench/last.json but do not record this run there")
    return parser.parse_args()


@contextlib.contextmanager
def running(with_docker: bool):
    """A scratch directory, a berthd, and a dockerd when asked for and installed (else
    None); everything is stopped and removed on the way out, failures included."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: containers need it")
    work = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    daemons: list[Daemon | PrivateDockerd] = []
    try:
        daemons.append(start_berthd(work))
        dockerd = start_dockerd(work) if with_docker else None
        if dockerd:
            daemons.append(dockerd)
        yield work, daemons[0], dockerd
    finally:
        for d in reversed(daemons):
            d.stop()
        left = unmount_below(work)
        if left:
            print(f"note: detached {len(left)} mount(s) a daemon left below {work}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
