"""OOM kills of containers, read from the kernel's log (/dev/kmsg).

When a container passes its memory limit the kernel kills a process in it and logs
`oom-kill:…,oom_memcg=/<cgroup>,…`. That line is the one trace left: cgroup v1 keeps no
hierarchical OOM counter for the daemon's parent cgroup, and the runtime deletes the
container's own cgroup (and its counters) the moment the container exits. berthd reads
the log from its end onwards, so only kills that happen while it runs are seen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import trio

log = logging.getLogger("berth.oom")
KMSG = "/dev/kmsg"


def killed_cgroup(record: str) -> str | None:
    """The memory cgroup an `oom-kill:` kernel log record names, if it is one."""
    _, _, message = record.partition(";")
    if not message.startswith("oom-kill:"):
        return None
    for field in message.strip().split(","):
        key, _, value = field.partition("=")
        if key == "oom_memcg":
            return value
    return None


class OomWatcher:
    """Calls `on_oom(container_id)` for each OOM kill in a cgroup under `parent`."""

    def __init__(self, parent: str, on_oom: Callable[[str], None]):
        self._prefix = "/" + parent.strip("/") + "/"
        self._on_oom = on_oom
        self._fd: int | None = None

    def open(self) -> bool:
        """Start reading at the log's end; False when the log cannot be read here."""
        try:
            self._fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            log.warning("OOM kills will not be reported: cannot read %s: %s", KMSG, exc.strerror)
            self._fd = None
        return self._fd is not None

    def drain(self) -> None:
        """Handle every record logged so far (call before recording an exit, so that an
        OOM kill is known when the container's death is)."""
        while self._fd is not None:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # records were overwritten before we read them: go on with the next
            cgroup = killed_cgroup(record.decode(errors="replace"))
            if cgroup and cgroup.startswith(self._prefix):
                self._on_oom(cgroup[len(self._prefix):])

    async def run(self) -> None:
        """Follow the log for as long as the daemon runs."""
        if self._fd is None:
            return
        try:
            while True:
                await trio.lowlevel.wait_readable(self._fd)
                self.drain()
        finally:
            os.close(self._fd)
            self._fd = None
