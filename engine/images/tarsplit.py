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
`Piece`. A `Piece` with a `path` (or, for a path that is no UTF-8, its bytes as `name`)
stands for `size` bytes of that file; one without is raw bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..errors import EngineError
from ..fs import inroot

_FLUSH_AT = 64 * 1024  # raw bytes are written in pieces of about this size
_READ = 1 << 20
_LENGTH = struct.Struct(">I")


class Piece(msgspec.Struct, array_like=True, omit_defaults=True):
    """Raw tar bytes, or (when `path` is set) the `size` bytes of an unpacked file."""

    raw: bytes = b""
    path: str = ""
    size: int = 0
    name: bytes = b""  # the path, for one that is no UTF-8 (msgpack strings must be)


class LayerChanged(EngineError):
    """An unpacked layer no longer holds what its tar held: it cannot be exported."""


class Recorder:
    """Record a tar stream's non-content bytes while `unpack` reads it.

    The unpacker hands over every byte of the uncompressed stream once, in order: as
    `raw` (headers, extended headers, padding, contents not kept by reference, the
    end-of-archive blocks and anything after them), or as `content` (the bytes of a
    regular file that the layer holds at `path`, which are not kept)."""

    def __init__(self, out: BinaryIO):
        self._out = out
        self._encoder = msgspec.msgpack.Encoder()
        self._raw = bytearray()  # raw bytes not yet made a piece
        self._records = bytearray()  # encoded pieces not yet written (written in batches)
        self.size = 0  # bytes handed over so far: at the end, the size of the tar

    def raw(self, data: bytes | memoryview) -> None:
        """The next bytes of the stream, kept as they are."""
        self._raw += data
        self.size += len(data)
        if len(self._raw) >= _FLUSH_AT:
            self._flush_raw()

    def content(self, path: str, size: int) -> None:
        """The next `size` bytes of the stream are the content of the layer file `path`."""
        self.size += size
        if size:
            self._flush_raw()
            try:
                path.encode()
            except UnicodeEncodeError:  # a tar name's undecodable bytes, as surrogates
                self._write(Piece(name=os.fsencode(path), size=size))
            else:
                self._write(Piece(path=path, size=size))

    def close(self) -> int:
        """Write what is left; return the tar size."""
        self._flush_raw()
        self._out.write(self._records)
        self._records.clear()
        return self.size

    def _flush_raw(self) -> None:
        if self._raw:
            self._write(Piece(raw=bytes(self._raw)))
            self._raw.clear()

    def _write(self, piece: Piece) -> None:
        data = self._encoder.encode(piece)
        self._records += _LENGTH.pack(len(data))
        self._records += data
        if len(self._records) >= _FLUSH_AT:
            self._out.write(self._records)
            self._records.clear()


def _pieces(path: Path) -> Iterator[Piece]:
    from isal import igzip  # at the first image operation (see fs.unpack.read_errors)

    decoder = msgspec.msgpack.Decoder(Piece)
    with igzip.open(path, "rb") as records:
        while head := records.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(head)
            yield decoder.decode(records.read(length))


def _content(root_fd: int, path: str, size: int) -> Iterator[bytes]:
    # The record was written by berth from a checked member name, but the directory is
    # read long after: the path is opened beneath the layer following no symlink at all,
    # so nothing outside the layer (or another file through a link) is ever read.
    try:
        fd = inroot.open_beneath(root_fd, path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO now: no wait
    except OSError as exc:
        raise LayerChanged(f"layer file {path!r} cannot be read: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:  # (a directory now, say)
        os.close(fd)
        raise LayerChanged(f"layer file {path!r} changed since the layer was stored")
    with os.fdopen(fd, "rb", buffering=0) as f:
        left = size
        while left:
            chunk = f.read(min(_READ, left))
            if not chunk:
                raise LayerChanged(f"layer file {path!r} is shorter than when it was stored")
            left -= len(chunk)
            yield chunk


def rebuild(split: Path, root: Path) -> Iterator[bytes]:
    """The layer tar, byte for byte as it was unpacked into `root`, in chunks."""
    root_fd = os.open(root, inroot.DIR_FLAGS)
    try:
        for piece in _pieces(split):
            if piece.path or piece.name:
                yield from _content(root_fd, piece.path or os.fsdecode(piece.name), piece.size)
            else:
                yield piece.raw
    finally:
        os.close(root_fd)


def digest(chunks: Iterator[bytes]) -> str:
    """`sha256:<hex>` of the concatenated chunks."""
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def reproduces(split: Path, root: Path, diff_id: str) -> bool:
    """Whether `rebuild` gives back the tar whose sha256 is `diff_id`.

    It may not when a later member of the same tar displaced a file whose content was
    recorded by reference (the same path twice), or when a file was unpacked below a
    symlink of the tar's (its recorded path leads nowhere): the caller then keeps the
    original tar instead. The unpacker tells when either happened (`Unpacked.in_place`)."""
    try:
        return digest(rebuild(split, root)) == diff_id
    except LayerChanged:
        return False
