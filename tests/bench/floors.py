"""Floors: what no engine driving crun from Python can beat here, measured in the same run
as the engines (bare crun on the same busybox rootfs, the cgroup freezer, the
interpreter's start, one API round trip)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from engine.images import busybox
from engine.runtime import cgroups


class Crun:
    """Bare crun over one read-only busybox rootfs, with state below the scratch directory.

    crun 1.8 refuses a hybrid cgroup host while /sys/fs/cgroup/unified is mounted. berthd
    hides that tree in its own mount namespace; here a helper `sleep` holds such a
    namespace and every crun call enters it with nsenter (~1-2 ms, counted in the floors)."""

    def __init__(self, work: Path, crun: str, prefix: list[str]):
        self.work, self.crun, self.prefix = work, crun, prefix
        self.rootfs = work / "crun-rootfs"

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, self.crun, "--root", str(self.work / "crun-state"), *args]

    def bundle(self, name: str, args: list[str]) -> Path:
        """A `crun spec` bundle running `args` (no terminal) on the shared rootfs."""
        bundle = self.work / f"crun-{name}"
        bundle.mkdir()
        subprocess.run([self.crun, "spec"], cwd=bundle, check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"].update(terminal=False, args=args)
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def run_argv(self, name: str, args: list[str]) -> list[str]:
        """`crun run` of a new bundle; it deletes the container when it exits, so one name
        serves every run."""
        return self.argv("run", "--bundle", str(self.bundle(name, args)), name)

    @contextlib.contextmanager
    def detached(self, name: str, args: list[str]):
        """A container running `args` in the background (`crun run --detach`); yields the
        path of its freezer.state, and kills and deletes it afterwards."""
        bundle = self.bundle(name, args)
        subprocess.run(self.argv("run", "--detach", "--bundle", str(bundle), name), check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pid = json.loads(subprocess.run(self.argv("state", name), check=True, capture_output=True).stdout)["pid"]
            yield freezer_state(pid)
        finally:
            subprocess.run(self.argv("delete", "--force", name), capture_output=True, check=False)


def freezer_state(pid: int) -> Path | None:
    """The freezer.state of the v1 freezer cgroup `pid` is in, if there is one."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return Path("/sys/fs/cgroup/freezer") / path.lstrip("/") / "freezer.state"
    return None


@contextlib.contextmanager
def crun(work: Path):
    """A Crun, or None when crun or a static busybox is missing."""
    path, static_busybox = shutil.which("crun"), busybox.find_busybox()
    if not path or not static_busybox:
        yield None
        return
    rootfs = work / "crun-rootfs"
    rootfs.mkdir()
    busybox.write_rootfs_tar(static_busybox, work / "floor.tar")
    # GNU tar: our own busybox tar, its absolute applet links kept (any Python)
    subprocess.run(["tar", "-xf", str(work / "floor.tar"), "-C", str(rootfs)], check=True)
    layout = cgroups.detect()
    if not layout.hybrid:
        yield Crun(work, path, [])
        return
    # preexec_fn is safe here: the benchmark runs no threads.
    holder = subprocess.Popen(["sleep", "infinity"], preexec_fn=lambda: cgroups.hide_hybrid_v2(layout))  # noqa: PLW1509
    try:
        yield Crun(work, path, ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt"])
    finally:
        holder.kill()
        holder.wait()


def freeze_thaw(state: Path) -> float:
    """Seconds to freeze a cgroup and thaw it again, each until the kernel reports it done:
    what `pause` + `unpause` cannot go below."""
    started = time.perf_counter()
    for want in (b"FROZEN", b"THAWED"):
        state.write_bytes(want)
        while state.read_bytes().strip() != want:
            pass
    return time.perf_counter() - started


def api_ping(sock: Path) -> float:
    """Seconds for one `GET /_ping` on a new connection, as a CLI makes it."""
    started = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(sock))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: api\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"OK"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    finally:
        s.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/_ping: {reply[:200]!r}")
    return time.perf_counter() - started
