"""The context upload, unpacked as it arrives.

`POST /build`'s body goes straight into the one contained unpacker (`fs/unpack.py`):
a trio task receives the body's chunks into a bounded channel, and the unpacker runs
in a worker thread reading from it through `_Body` (a blocking file-like object that
asks the trio side for what has arrived so far). Nothing is written twice: the upload
never lands on disk as a tar, and the unpacking overlaps the transfer. The channel
bounds what is held in memory (a slow disk slows the upload, as TCP would).

A body that is no tar (plain, gzip, bzip2 or xz) is the Dockerfile alone
(`docker build - < Dockerfile`); it is read whole, up to 16 MiB.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from ..errors import BadRequest
from ..fs import unpack
from . import context

_QUEUE = 64  # chunks held between the receiving task and the unpacking thread
_BATCH = 1 << 20  # what one call from the thread takes at most (fewer thread round trips)
_DOCKERFILE_LIMIT = 16 << 20
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


class _Body:
    """The upload as a blocking, readable, peekable file for the unpacking thread."""

    def __init__(self, receive: trio.MemoryReceiveChannel):
        self._receive = receive
        self._buf = b""
        self._at = 0
        self._eof = False
        self._size = 0
        self.tar = False  # set once the body is known to be a plain tar

    async def _take(self) -> bytes:
        try:
            parts = [await self._receive.receive()]
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return b""
        size = len(parts[0])
        while size < _BATCH:
            try:
                chunk = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            parts.append(chunk)
            size += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _fill(self) -> bool:
        if self._eof:
            return False
        more = trio.from_thread.run(self._take)
        self._size += len(more)
        if not more and self._size % 512 and self.tar:
            # the docker CLI's upload with `-f` outside the context ends in the last
            # member's data (the `.dockerignore` it appends), unpadded and without the
            # end-of-archive blocks, which dockerd's Go reader forgives: complete them
            more = b"\0" * (512 - self._size % 512 + 1024)
            self._size += len(more)
        if not more:
            self._eof = True
            return False
        self._buf = self._buf[self._at:] + more if self._at < len(self._buf) else more
        self._at = 0
        return True

    def readable(self) -> bool:
        return True

    def peek(self, n: int = 1) -> bytes:
        while len(self._buf) - self._at < n and self._fill():
            pass
        return self._buf[self._at:self._at + max(n, 1)]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buf[self._at:]]
            self._buf, self._at = b"", 0
            while self._fill():
                parts.append(self._buf)
                self._buf, self._at = b"", 0
            return b"".join(parts)
        if self._at >= len(self._buf) and not self._fill():
            return b""
        out = self._buf[self._at:self._at + n]
        self._at += len(out)
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def _is_tar(head: bytes) -> bool:
    return head.startswith(_COMPRESSED) or (len(head) >= 262 and head[257:262] == b"ustar")


def _unpack(body: _Body, root: Path, tar_only: bool) -> None:
    root.mkdir(parents=True, exist_ok=tar_only)
    head = body.peek(512)
    if not tar_only and not _is_tar(head):
        data = body.read(_DOCKERFILE_LIMIT + 1)
        while len(data) <= _DOCKERFILE_LIMIT and (more := body.read(_DOCKERFILE_LIMIT + 1 - len(data))):
            data += more
        if len(data) > _DOCKERFILE_LIMIT:
            raise BadRequest("the build context is no tar archive, and too large to be a Dockerfile "
                             f"(over {_DOCKERFILE_LIMIT >> 20} MiB)")
        (root / "Dockerfile").write_bytes(data)
        return
    body.tar = not head.startswith(_COMPRESSED)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        unpack.unpack(context.decompressed(body), fd, "/", unpack.copy_policy())  # type: ignore[arg-type]
    finally:
        os.close(fd)


async def receive(chunks: AsyncIterator[bytes], root: Path, *, tar_only: bool = False) -> None:
    """Unpack the context tar arriving in `chunks` into `root` (made here unless
    `tar_only`: then it may hold files already, and the body is a tar, even empty), or
    take the body as the Dockerfile alone when it is no tar."""
    send, recv = trio.open_memory_channel[bytes](_QUEUE)
    body = _Body(recv)

    async def produce() -> None:
        async with send:  # closed however this ends: the thread then sees the end
            async for chunk in chunks:
                if chunk:
                    await send.send(chunk)

    failed: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        try:
            await trio.to_thread.run_sync(_unpack, body, root, tar_only)
        except Exception as exc:  # raised below, not as the nursery's exception group
            failed.append(exc)
            nursery.cancel_scope.cancel()
        else:
            # the unpacker stops at the tar's end-of-archive blocks; what follows is
            # drained so the request is read whole before the answer streams
            async for _ in recv:
                pass
    if failed:
        raise failed[0]
