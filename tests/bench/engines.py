"""The engines a benchmark compares: a berthd and (when installed) a dockerd, each
started here with its own state and socket, and stopped by its own PID afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.images import busybox
from engine.runtime import syscalls

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
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_berthd(work: Path) -> Daemon:
    root = work / "berth"
    d = Daemon([str(VENV_BIN / "berthd"), "--root", str(root), "--cgroup-parent", f"berth-bench-{os.getpid()}",
                "--config-file", str(work / "none.toml")], root / "run" / "berth.sock", work / "berthd.log")
    _wait_for(lambda: d.sock.exists() and _ok([str(VENV_BIN / "berth"), "-H", f"unix://{d.sock}", "version"]), "berthd")
    return d


def start_dockerd(work: Path) -> Daemon | None:
    if not shutil.which("dockerd"):
        return None
    root = work / "docker"
    sock = root / "docker.sock"
    root.mkdir()
    d = Daemon(["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge=none",
                "--iptables=false", "--ip6tables=false", "--containerd-namespace", f"bench{os.getpid()}"],
               sock, work / "dockerd.log")
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    _wait_for(lambda: sock.exists() and _ok(["docker", "version"], env), "dockerd", 90)
    tar = work / "busybox.tar"
    busybox.write_rootfs_tar(busybox.find_busybox(), tar)
    subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(tar), "busybox:latest"], env=env, check=True,
                   capture_output=True)
    return d


def unmount_below(path: Path) -> list[str]:
    """Detach every mount below `path`, deepest first, and return their mount points:
    removing a scratch directory must never reach through a mount a daemon left behind
    (berthd's mounts live and die in its own namespace; dockerd's are in ours)."""
    prefix = f"{path}/"
    with open("/proc/self/mountinfo") as info:  # field 5 is the mount point, spaces as \040
        targets = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4]) for line in info]
    left = sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True)
    for target in left:
        syscalls.umount(target, syscalls.MNT_DETACH)
    return left


def _ok(argv: list[str], env: dict | None = None) -> bool:
    return subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0


def arguments(doc: str, **numbers: int):
    """Parse a benchmark's options: its own integer options (name=default) plus the shared
    `--skip-docker` and `--json FILE`."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in numbers.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--skip-docker", action="store_true", help="measure berth only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


@contextlib.contextmanager
def running(with_docker: bool):
    """A scratch directory, a berthd, and a dockerd when asked for and installed (else
    None); everything is stopped and removed on the way out, failures included."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: containers need it")
    work = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    daemons: list[Daemon] = []
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
