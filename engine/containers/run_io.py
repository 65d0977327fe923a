"""A run's standard streams: the pipes (or terminal) between a container and the daemon.

The daemon makes the pipes; the keeper spawns the runtime with the container's ends and
holds duplicates of the daemon's ends (read ends of stdout and stderr, write end of
stdin, the pty master), so they outlive the daemon: a new daemon takes copies back and
reads on where the pipes stand.
"""

from __future__ import annotations

import os

import trio

from ..runtime.terminal import Terminal


class Pipes:
    """The pipes made for one start: the container's ends (given to the runtime, then
    closed here) and the daemon's ends (handed to the keeper, then to `RunIO`)."""

    def __init__(self, open_stdin: bool):
        self.out_r, self.out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, self.err_w = os.pipe2(os.O_CLOEXEC)
        if open_stdin:
            self.in_r, self.in_w = os.pipe2(os.O_CLOEXEC)
        else:
            self.in_r, self.in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        self._child_open = True

    def close_child_ends(self) -> None:
        """Once the runtime has them: only the container holds its ends now, so the
        daemon's read ends see EOF when the container's processes are gone."""
        if self._child_open:
            for fd in (self.in_r, self.out_w, self.err_w):
                os.close(fd)
            self._child_open = False

    def daemon_ends(self) -> dict[str, int]:
        ends = {"stdout": self.out_r, "stderr": self.err_r}
        if self.in_w >= 0:
            ends["stdin"] = self.in_w
        return ends

    def close(self) -> None:
        """After a start that failed: every end goes."""
        self.close_child_ends()
        for fd in self.daemon_ends().values():
            os.close(fd)


class RunIO:
    """The daemon's ends of a running container's streams (it owns the descriptors)."""

    def __init__(self, fds: dict[str, int]):
        self.stdout = trio.lowlevel.FdStream(fds["stdout"]) if "stdout" in fds else None
        self.stderr = trio.lowlevel.FdStream(fds["stderr"]) if "stderr" in fds else None
        self.stdin = trio.lowlevel.FdStream(fds["stdin"]) if "stdin" in fds else None
        self.terminal = Terminal(fds["terminal"]) if "terminal" in fds else None

    async def aclose(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                await stream.aclose()
        if self.terminal is not None:
            await self.terminal.aclose()
