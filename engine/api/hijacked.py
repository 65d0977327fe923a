"""The raw stream of a hijacked connection (attach, exec start), after its response head.

docker-py reads a hijack's head through http.client's buffered reader, then reads the
stream from the socket beneath that reader: whatever arrived together with the head stays
in the reader's buffer and is lost (docker/docker-py#425). `attach(logs=True,
stream=False)` then returns nothing although the log holds lines: berth sends those
frames right after the head, and lost them in 45 of 100 tries. dockerd rarely loses them,
only because it is slower to produce its first frame.

So the first bytes sent after the head wait until the client has read the head. A unix
socket tells how much of what it sent the peer has not read yet (SIOCOUTQ); the wait lasts
at most FIRST_SEND_WAIT, for a client that reads nothing. Later sends go at once, and so
does everything on TCP and TLS, where the count means "not acknowledged" rather than
"not read". A stream whose first bytes come later never waits, because by then the client
has read the head: a run's output, an exec's, a live attach.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

import trio

FIRST_SEND_WAIT = 0.05  # seconds
_POLL = 0.0005  # seconds between looks (the event loop rounds a sleep up to 1 ms)
_SIOCOUTQ = termios.TIOCOUTQ  # the same request number on Linux


def unread_by_peer(sock: trio.socket.SocketType) -> int:
    """Bytes sent on the unix socket `sock` that its peer has not read yet."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]


class HijackedStream(trio.abc.HalfCloseableStream):
    """`stream` after the hijack's head has been sent on it; see the module's doc."""

    def __init__(self, stream: trio.abc.HalfCloseableStream):
        self._stream = stream
        raw = getattr(stream, "socket", None)  # a trio.SocketStream's; TLS has none
        self._head_sent_on = raw if raw is not None and raw.family == socket.AF_UNIX else None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._head_sent_on is not None:
            sock, self._head_sent_on = self._head_sent_on, None
            with trio.move_on_after(FIRST_SEND_WAIT):
                try:
                    while unread_by_peer(sock):
                        await trio.sleep(_POLL)
                except OSError:
                    pass  # closed meanwhile: the send below reports it as any send would
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
