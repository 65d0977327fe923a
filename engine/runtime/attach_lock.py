"""The kernel's cgroup attach lock, taken ahead of the runtime.

Moving a process into a cgroup (a write to `cgroup.procs`) takes the kernel's
`cgroup_threadgroup_rwsem` for writing. That lock is a per-CPU rwsem: a writer that
finds it idle waits for an RCU grace period before it gets in (5–16 ms measured on this
project's cgroup v1 hosts), while a writer that follows another within ~10 ms gets in at
once (0.1 ms). crun pays that wait once per container start and once per exec, after the
daemon has done all its own preparing: 10 ms of a 50 ms `run --rm`.

So the daemon takes the lock first, from a thread of its own, as soon as a container or
an exec session is created (a start follows within milliseconds: `run`, `exec`, compose)
and again when a start or an exec begins: it writes its own PID to the `cgroup.procs`
of the cgroup it is already in, a move that moves nothing. The grace period then passes
while the client asks for the start, the daemon prepares the container and the runtime
starts, and the runtime's own writes find the lock warm (taken at create rather than at
start, a `run --rm` ends 1-3 ms sooner here, where the grace period is ~13 ms: a bare
`crun run --detach` took 8.3 ms right after another and 21 ms 50 ms after one). The
host pays nothing more: the grace period is the one crun would have waited for, a few
milliseconds earlier; a container created and never started costs one more move.

Only on cgroup v1, where it was measured; a v1 hierarchy without controllers (systemd's
`name=systemd`) is used when there is one, so that the move runs no controller's code.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from .cgroups import CGROUP_ROOT, Layout

log = logging.getLogger("berth.runtime")


def procs_file(own_cgroups: str, root: Path = CGROUP_ROOT) -> Path | None:
    """The `cgroup.procs` of this process's own cgroup in a v1 hierarchy, from the text
    of /proc/self/cgroup: a named hierarchy first, then `pids`; None if neither is
    mounted."""
    found: dict[str, Path] = {}
    for line in own_cgroups.splitlines():
        hierarchy_id, controllers, path = line.split(":", 2)
        if hierarchy_id == "0":
            continue  # the v2 tree of a hybrid host
        name = controllers.removeprefix("name=")
        procs = root / name / path.lstrip("/") / "cgroup.procs"
        if procs.exists():
            found["named" if controllers.startswith("name=") else controllers] = procs
    return found.get("named") or found.get("pids")


class AttachLock:
    """Takes the attach lock in the background on `take_ahead`; does nothing where there
    is no file to write (cgroup v2 hosts, unusual layouts)."""

    def __init__(self, procs: Path | None):
        self._procs = procs
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_host(cls, layout: Layout) -> AttachLock:
        if layout.version != 1:
            return cls(None)
        with open("/proc/self/cgroup") as f:
            return cls(procs_file(f.read()))

    def take_ahead(self) -> None:
        """A runtime is about to move a process into a cgroup: start the lock's grace
        period now. Calls while a move is under way are folded into one more move."""
        if self._procs is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._move, name="berth cgroup attach lock", daemon=True)
            self._thread.start()
        self._wanted.set()

    def _move(self) -> None:
        pid = str(os.getpid()).encode()
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                fd = os.open(self._procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError as exc:  # the runtime pays the wait itself, as without this
                log.warning("taking the cgroup attach lock ahead through %s failed (%s); not trying again",
                            self._procs, exc)
                return
