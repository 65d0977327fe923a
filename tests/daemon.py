"""Start an isolated berthd for tests and prove it left nothing behind.

Each daemon gets its own root (state, run dir, socket) and cgroup parent, so it can run
beside others and be removed completely. `leaks()` lists what is still on the host after
the daemon stopped: mounts under its root, its cgroups, processes naming its root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from tests.api import Api

REPO = Path(__file__).resolve().parent.parent
# The environment of every engine the tests start: a registry off this machine is reached
# only through a proxy that is a closed port on loopback (no DNS lookup, no packet leaves),
# while the tests' own registries on loopback are reached directly.
LOOPBACK_ONLY = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                 "NO_PROXY": "127.0.0.1,localhost,::1"}


def processes_naming(text: str) -> dict[int, str]:
    """Processes (other than this one) whose command line contains `text`: pid → command line."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found[int(pid)] = cmdline.strip()
    return found


class Daemon:
    def __init__(self, *args: str, root: Path | None = None):
        self.root = root or Path(tempfile.mkdtemp(prefix="berth-test-"))
        suffix = self.root.name.rsplit('-', 1)[-1]
        self.cgroup_parent = f"berth-test-{suffix}"
        # its own bridge and subnet, so test daemons side by side never share a network
        self.bridge = f"bt-{suffix[:8]}"
        self.subnet = f"10.250.{zlib.crc32(suffix.encode()) % 256}.0/24"
        self.sock = self.root / "run" / "berth.sock"
        self.host = f"unix://{self.sock}"
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.log = self.root.parent / f"{self.root.name}.log"
        self.config_file = self.root / "berthd.toml"  # tests write plugin settings here
        self.plugins_dir = self.root / "plugins.d"

    @property
    def api(self) -> Api:
        return Api(str(self.sock))

    def start(self, timeout: float = 30) -> Daemon:
        self.sock.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "engine.daemon", "--root", str(self.root),
               "--cgroup-parent", self.cgroup_parent, "--config-file", str(self.config_file),
               "--plugins-dir", str(self.plugins_dir), "--bridge", self.bridge, "--bridge-subnet", self.subnet,
               *self.args]
        if any(arg in ("-H", "--host") or arg.startswith("--host=") for arg in self.args):
            cmd += ["-H", self.host]  # hosts of the test's own, and the socket this helper uses
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=LOOPBACK_ONLY, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"berthd exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.sock.exists():
                try:
                    if self.api.get("/_ping").status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"berthd did not come up:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the daemon and wait for it; returns its exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def mounts(self) -> list[str]:
        """Mount points under the daemon's root, as the daemon sees them (on a hybrid
        cgroup host it runs in a mount namespace of its own)."""
        pid = self.proc.pid if self.proc and self.proc.poll() is None else "self"
        lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        points = [line.split()[4].encode().decode("unicode_escape") for line in lines]
        return [p for p in points if p.startswith(str(self.root))]

    def leaks(self) -> list[str]:
        """What this daemon left on the host (empty when clean)."""
        found = []
        root = str(self.root)
        found += [f"mount {point}" for point in self.mounts()]
        for controller in Path("/sys/fs/cgroup").iterdir():
            if (controller / self.cgroup_parent).exists():
                found.append(f"cgroup {controller / self.cgroup_parent}")
        found += [f"directory {path} beneath the v2 tree's mount" for path in hidden_beneath_v2(self.cgroup_parent)]
        found += [f"process {pid}: {cmdline}" for pid, cmdline in processes_naming(root).items()]
        links = set(os.listdir("/sys/class/net"))
        bridges = {self.bridge} | {json.loads(p.read_bytes()).get("bridge", "") for p in (self.root / "networks").glob("*.json")}
        found += [f"link {name}" for name in sorted(bridges & links)]
        return found

    @contextlib.contextmanager
    def running(self) -> Iterator[Daemon]:
        """The daemon, started; then stopped by SIGTERM, which it must answer with exit 0
        and nothing leaked. Cleaned up whatever happens."""
        try:
            self.start()
            yield self
            status = self.stop()
            leaks = self.leaks()
            assert status == 0, f"berthd exited with {status} on SIGTERM:\n{self.log.read_text()[-4000:]}"
            assert not leaks, "berthd leaked:\n" + "\n".join(leaks)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        """Last resort after a failed test run: kill what remains, unmount, remove the root."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        pids = set()
        for leak in self.leaks():
            kind, _, rest = leak.partition(" ")
            if kind == "process":
                pids.add(int(rest.split(":")[0]))
            elif kind == "cgroup":  # containers of a daemon that was killed: they name no root
                for dirpath, _, files in os.walk(rest):
                    if "cgroup.procs" in files:
                        pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # a cgroup can be removed only once its processes are gone
        for leak in sorted(self.leaks(), reverse=True):
            kind, _, rest = leak.partition(" ")
            if kind == "mount":
                subprocess.run(["umount", "-l", rest], check=False)
            elif kind == "link":
                subprocess.run(["ip", "link", "delete", rest], check=False)
            elif kind == "cgroup":
                for dirpath, _, _ in sorted(os.walk(rest), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        shutil.rmtree(self.root, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def state(self, ref: str) -> dict:
        return self.api.get_json(f"/containers/{ref}/json")["State"]


def hidden_beneath_v2(cgroup_parent: str) -> list[str]:
    """On a hybrid cgroup host: what lies under `cgroup_parent` in the tmpfs directory the
    v2 tree is mounted on, invisible from the host (crun made a directory per container
    there while berthd's namespace still had that directory; see
    engine/runtime/cgroups.py). Looked at from a mount namespace of its own."""
    if not os.path.ismount("/sys/fs/cgroup/unified"):
        return []
    script = f'umount -l /sys/fs/cgroup/unified && cd /sys/fs/cgroup/unified/{cgroup_parent} && ls -A'
    seen = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if seen.returncode != 0:  # no such directory: nothing left
        return []
    return [f"/sys/fs/cgroup/unified/{cgroup_parent}/{name}" for name in seen.stdout.split()] or [
        f"/sys/fs/cgroup/unified/{cgroup_parent}"]
