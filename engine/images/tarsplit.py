"""Tar-split: keep what a layer tar holds besides file contents, to rebuild it byte for byte.

An image config names its layers by DiffID, the sha256 of each uncompressed layer tar, and
the image ID is the sha256 of that config. `docker save` must therefore hand out layer
tars that hash to the recorded DiffIDs, although berth keeps layers only unpacked (they
are overlay lower directories). Generating a tar again from the directory cannot give
back another tool's bytes (header formats, PAX records, member order, padding all vary
between writers), and keeping a second, packed copy of every layer doubles the disk
cost. So berth does what Docker does with its tar-split files: while a layer is
unpacked, every byte of the stream that is *not* the content of a regular file (headers,
PAX/GNU records, padding, the end-of-archive blocks and anything after them) is recorded
in order, and each file's content is recorded as a reference to the unpacked file
(`path`, `size`). Rebuilding is concatenation: recorded bytes as they are, contents read
from the layer directory. The record costs the headers, gzip-compressed: 3.4 KB for the
~400 members of the built-in busybox layer (2.1 MB as a tar).

Whiteouts need no conversion on the way out: a `.wh.` entry is an empty regular file in
the tar, so its header is recorded and comes back as it was, while the overlay whiteout
(a 0:0 character device) on disk is never read.

On disk: a gzip stream of records, each a 4-byte big-endian length and a msgpack
`Piece`. A `Piece` with a `path` stands for `size` bytes of that file; one without is raw
bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..errors import EngineError

_FLUSH_AT = 64 * 1024  # raw bytes are written in pieces of about this size
_READ = 1 << 20
_LENGTH = struct.Struct(">I")


class Piece(msgspec.Struct, array_like=True, omit_defaults=True):
    """Raw tar bytes, or (when `path` is set) the `size` bytes of an unpacked file."""

    raw: bytes = b""
    path: str = ""
    size: int = 0


class LayerChanged(EngineError):
    """An unpacked layer no longer holds what its tar held: it cannot be exported."""


class Recorder:
    """Record a tar stream's non-content bytes while `layers.apply_tar` reads it.

    `feed` sees every byte of the uncompressed stream, in order; `member` is told about
    each member after its header was parsed and before its content is read. Bytes up to
    a member's data offset are raw; the content of a member given a `path` is not kept.
    tarfile reads ahead, so a member's content may already have been fed when `member`
    is called: bytes are held back (`_pending`) until their kind is known.
    """

    def __init__(self, out: BinaryIO):
        self._out = out
        self._encoder = msgspec.msgpack.Encoder()
        self._pending = bytearray()  # bytes from offset `_pending_at` to `size`
        self._pending_at = 0
        self._skip_to = 0  # fed bytes before this offset are file content: not kept
        self._raw = bytearray()  # classified raw bytes not yet written
        self.size = 0  # bytes fed so far: at the end, the size of the tar

    def feed(self, data: bytes) -> None:
        """The next bytes of the uncompressed stream."""
        start = self.size
        self.size += len(data)
        if start < self._skip_to:
            data = data[self._skip_to - start:]
        self._pending += data

    def member(self, info: tarfile.TarInfo, path: str | None) -> None:
        """`info` was parsed; its content is the file `path` in the layer (None: keep it raw)."""
        self._take_raw(info.offset_data)
        if path is None or info.size == 0:
            return
        self._flush_raw()
        self._write(Piece(path=path, size=info.size))
        end = info.offset_data + info.size
        # Content already read ahead is dropped now; the rest is dropped as it is fed.
        del self._pending[:max(0, min(end, self.size) - self._pending_at)]
        self._pending_at = end
        self._skip_to = end

    def close(self) -> int:
        """Write what is left (the end-of-archive blocks and trailing bytes); return the tar size."""
        self._take_raw(self.size)
        self._flush_raw()
        return self.size

    def _take_raw(self, upto: int) -> None:
        count = upto - self._pending_at
        if count <= 0:
            return
        self._raw += self._pending[:count]
        del self._pending[:count]
        self._pending_at = upto
        if len(self._raw) >= _FLUSH_AT:
            self._flush_raw()

    def _flush_raw(self) -> None:
        if self._raw:
            self._write(Piece(raw=bytes(self._raw)))
            self._raw.clear()

    def _write(self, piece: Piece) -> None:
        data = self._encoder.encode(piece)
        self._out.write(_LENGTH.pack(len(data)) + data)


def _pieces(path: Path) -> Iterator[Piece]:
    decoder = msgspec.msgpack.Decoder(Piece)
    with gzip.open(path, "rb") as records:
        while head := records.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(head)
            yield decoder.decode(records.read(length))


def _content(root: str, path: str, size: int) -> Iterator[bytes]:
    full = os.path.join(root, path)
    # The record was written by berth from a checked member name, but the directory is
    # read long after: never follow a link out of the layer or read something else.
    if os.path.commonpath([os.path.realpath(os.path.dirname(full)), root]) != root:
        raise LayerChanged(f"layer file {path!r} now lies outside its layer")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LayerChanged(f"layer file {path!r} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise LayerChanged(f"layer file {path!r} changed since the layer was stored")
        left = size
        while left:
            chunk = f.read(min(_READ, left))
            if not chunk:
                raise LayerChanged(f"layer file {path!r} is shorter than when it was stored")
            left -= len(chunk)
            yield chunk


def rebuild(split: Path, root: Path) -> Iterator[bytes]:
    """The layer tar, byte for byte as it was unpacked into `root`, in chunks."""
    base = os.path.realpath(root)
    for piece in _pieces(split):
        if piece.path:
            yield from _content(base, piece.path, piece.size)
        else:
            yield piece.raw


def digest(chunks: Iterator[bytes]) -> str:
    """`sha256:<hex>` of the concatenated chunks."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def reproduces(split: Path, root: Path, diff_id: str) -> bool:
    """Whether `rebuild` gives back the tar whose sha256 is `diff_id`.

    It does not when a later member of the same tar changed a file whose content was
    recorded by reference (the same path twice, a write through a hard link): the
    caller then keeps the original tar instead."""
    try:
        return digest(rebuild(split, root)) == diff_id
    except LayerChanged:
        return False
