"""A private dockerd (Debian's docker.io) for interoperability tests and benchmarks.

It gets its own data root, exec root, pid file and socket under a scratch directory, no
networking of its own (`--bridge=none`, no iptables), and a containerd namespace of its
own, so it never touches a system Docker. `stop()` ends it by its PID, ends whatever
else it started that is still running (found by the scratch directory in its command
line), detaches every mount it left below the directory, and removes the directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from engine.images import busybox
from engine.runtime import syscalls
from tests.daemon import LOOPBACK_ONLY, processes_naming


class DockerdUnavailable(RuntimeError):
    """dockerd is not installed or did not come up; the message says why."""


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


def terminate(proc: subprocess.Popen, timeout: float = 60) -> bool:
    """SIGTERM the process we started, SIGKILL it after `timeout`; True if it needed that."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    return False


class PrivateDockerd:
    """A dockerd of our own below `work` (a fresh scratch directory when not given)."""

    def __init__(self, work: Path | None = None, args: list[str] = ()):
        self.args = list(args)  # more dockerd options (`--insecure-registry 127.0.0.1:PORT`)
        self.work = work or Path(tempfile.mkdtemp(prefix="berth-dockerd-"))
        self.root = self.work / "docker"
        self.sock = self.root / "docker.sock"
        self.log = self.work / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_CONFIG": str(self.root / "cli")}

    def start(self, timeout: float = 90) -> PrivateDockerd:
        """Start dockerd and wait until it answers; raise DockerdUnavailable if it cannot."""
        if not shutil.which("dockerd"):
            raise DockerdUnavailable("dockerd is not installed (make install installs docker.io)")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "dockerd.pid"), "-H", f"unix://{self.sock}", "--bridge=none",
                "--iptables=false", "--ip6tables=false", "--containerd-namespace", f"berth{os.getpid()}", *self.args]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=LOOPBACK_ONLY)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                reason = f"dockerd exited with {self.proc.returncode}: {self._log_tail()}"
                break
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        else:
            reason = f"dockerd did not answer within {timeout:.0f} s: {self._log_tail()}"
        self.stop()
        raise DockerdUnavailable(reason)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:].strip() if self.log.exists() else ""

    def docker(self, *args: str, input: bytes | None = None, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the docker CLI against this dockerd."""
        result = subprocess.run(["docker", *args], env=self.env, input=input, capture_output=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {result.returncode}\n{result.stderr.decode()}")
        return result

    def import_busybox(self, tag: str = "busybox:latest") -> None:
        """A busybox image from the host's static busybox (`docker import`: never pulled)."""
        tar = self.work / "busybox-rootfs.tar"
        busybox.write_rootfs_tar(busybox.find_busybox(), tar)
        self.docker("import", "-c", 'CMD ["sh"]', str(tar), tag)

    def stop(self) -> list[str]:
        """End dockerd (SIGTERM, then SIGKILL), then anything else it started; detach its
        mounts and remove the scratch directory. Returns what had to be cleaned up after it."""
        left: list[str] = []
        if self.proc is not None and self.proc.poll() is None and terminate(self.proc):
            left.append("dockerd needed SIGKILL")
        for pid in processes_naming(str(self.work)):  # containerd, shims: started by our dockerd
            try:
                os.kill(pid, signal.SIGKILL)
                left.append(f"process {pid}")
            except ProcessLookupError:
                pass
        left += [f"mount {m}" for m in unmount_below(self.work)]
        shutil.rmtree(self.work, ignore_errors=True)
        return left
