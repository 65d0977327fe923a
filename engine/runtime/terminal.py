"""The terminal of a container or exec started with a tty: the pty master that berth
reads, writes and resizes.

A container's runtime runs detached (`run --detach`, its init the keeper's child): both
crun and runc then send the master over `--console-socket` (SCM_RIGHTS). An exec runs in
the foreground, where the two hand it over differently, measured here:

* crun, in the foreground, sends the master over `--console-socket` (SCM_RIGHTS) and
  exits with the process's status; resizing is an ioctl on that master.
* runc refuses a console socket unless it detaches (then its process is no child of
  ours and its exit status is lost). In the foreground it makes the pty itself and
  copies between it and its own stdio. So berth gives runc a pty of its own as stdio,
  raw so that it passes bytes untouched. runc copies its stdin's window size to the
  container's pty on SIGWINCH, but loses a SIGWINCH that comes soon after the start;
  berth sets the size on the process's own terminal instead (its fd 0, through /proc),
  which the kernel treats like a resize from the master.
"""

from __future__ import annotations

import array
import fcntl
import os
import secrets
import socket
import struct
import termios
import tty
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio


class Terminal:
    """A pty master: `stream` for the bytes both ways, `resize` for the window size.
    `pid_of`, for a pty relayed by the runtime, gives the process whose terminal to
    resize (0 while not known yet)."""

    def __init__(self, master: int, pid_of: Callable[[], int] | None = None):
        self.master = master
        self._pid_of = pid_of
        self.stream = trio.lowlevel.FdStream(os.dup(master))

    def resize(self, height: int, width: int) -> None:
        """Set the window size (rows, columns); the process sees SIGWINCH."""
        size = struct.pack("HHHH", height, width, 0, 0)
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        pid = self._pid_of() if self._pid_of else 0
        if pid:
            try:
                fd = os.open(f"/proc/{pid}/fd/0", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError:
                return  # it has just ended
            try:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
            finally:
                os.close(fd)

    async def aclose(self) -> None:
        await self.stream.aclose()
        os.close(self.master)


def raw_pty() -> tuple[int, int]:
    """A pty pair whose slave side passes bytes as they are (a runtime's stdio)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave


@asynccontextmanager
async def console_socket(directory: Path):
    """A listening unix socket for `--console-socket`; yields (path, receive) where
    `await receive()` returns the pty master the runtime sends."""
    path = directory / f"console-{secrets.token_hex(6)}.sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await listener.bind(str(path))
        listener.listen(1)

        async def receive() -> int:
            conn, _ = await listener.accept()
            with conn:
                _, ancillary, _, _ = await conn.recvmsg(1024, socket.CMSG_SPACE(array.array("i").itemsize))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(data[:fds.itemsize])
                    return fds[0]
            raise OSError("the runtime sent no terminal over the console socket")

        yield path, receive
    finally:
        listener.close()
        path.unlink(missing_ok=True)
