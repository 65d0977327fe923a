"""Apply a layer tar into a directory, safely, converting whiteouts for overlayfs.

A layer is untrusted input. Every member is checked against the destination before it is
written: absolute names are made relative, `..` and writes through symlinks that leave
the destination are refused (the stdlib `tar` filter does the path arithmetic), device
nodes are refused, and ownership is kept numerically (host user names mean nothing in a
container). AUFS-style whiteouts (`.wh.name`, `.wh..wh..opq`) become overlayfs whiteouts
(a 0:0 character device, the `trusted.overlay.opaque` xattr) so each unpacked layer can
be an overlay lower directory as it is.

The sha256 of the uncompressed stream (the layer's DiffID) is computed in the same pass,
and a `tarsplit.Recorder` given to `apply_tar` keeps what is needed to rebuild the exact
tar later (for `docker save`).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
from typing import BinaryIO

from ..errors import BadRequest
from .tarsplit import Recorder

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class _HashingReader:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO, recorder: Recorder | None = None):
        self._raw = raw
        self._recorder = recorder
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self._recorder is not None:
            self._recorder.feed(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def uncompressed(raw: BinaryIO) -> BinaryIO:
    """Layers and imports may be gzip-compressed; the DiffID is of the plain tar."""
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def _checked(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    if member.isdev():
        raise BadRequest(f"invalid layer: device node {member.name!r} is not allowed")
    if member.islnk():
        target = os.path.realpath(os.path.join(dest, member.linkname.lstrip("/")))
        if os.path.commonpath([target, dest]) != dest:
            raise BadRequest(f"invalid layer: hard link {member.name!r} points outside the layer")
    mode = member.mode
    try:
        safe = tarfile.tar_filter(member, dest)
    except tarfile.FilterError as exc:
        raise BadRequest(f"invalid layer: {exc}") from None
    _refuse_link_loops(safe, dest)
    # The tar filter clears setuid and group-write bits; image files legitimately carry
    # them (e.g. /bin/su), and the destination is a container rootfs, not the host.
    return safe.replace(mode=mode, deep=False) if mode is not None and not safe.issym() else safe


def _refuse_link_loops(member: tarfile.TarInfo, dest: str) -> None:
    """When tarfile cannot make a link it extracts the link's target member again; in
    stream mode, for a hard link to itself or to a directory, or a symlink over a
    directory, that recursion never ends. Such members are refused up front."""
    path = os.path.join(dest, member.name)
    if member.islnk() or member.issym():
        parent = os.path.dirname(path)
        while len(parent) > len(dest):  # a file where a directory must be: the link cannot be made
            if os.path.lexists(parent) and not os.path.isdir(parent):
                raise BadRequest(f"invalid layer: {member.name!r} lies under {os.path.relpath(parent, dest)!r}, "
                                 "which is not a directory")
            parent = os.path.dirname(parent)
    if member.islnk():
        target = os.path.join(dest, member.linkname.lstrip("/"))
        if os.path.isdir(target) or not os.path.lexists(target) or os.path.normpath(target) == os.path.normpath(path):
            raise BadRequest(f"invalid layer: hard link {member.name!r} does not point to a file already in the layer")
    elif member.issym() and os.path.isdir(path) and not os.path.islink(path):
        raise BadRequest(f"invalid layer: symlink {member.name!r} would replace a directory")


def _whiteout(dest: str, member: tarfile.TarInfo) -> None:
    parent, base = posixpath.split(member.name.lstrip("/"))
    target_dir = os.path.join(dest, parent)
    real = os.path.realpath(target_dir)
    if os.path.commonpath([real, dest]) != dest:
        raise BadRequest(f"invalid layer: whiteout {member.name!r} is outside the layer")
    os.makedirs(target_dir, exist_ok=True)
    if base == OPAQUE_MARKER:
        os.setxattr(target_dir, "trusted.overlay.opaque", b"y")
        return
    name = base[len(WHITEOUT_PREFIX):]
    if not name or name in (".", "..") or "/" in name:
        raise BadRequest(f"invalid layer: bad whiteout {member.name!r}")
    path = os.path.join(target_dir, name)
    if os.path.lexists(path):
        os.unlink(path)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _content_path(member: tarfile.TarInfo) -> str | None:
    """Where the member's content lands in the layer, if it is a plain file's content
    that can be read back from there (sparse members are stored raw)."""
    if member.isreg() and not member.issparse():
        return member.name.lstrip("/")  # as the tar filter strips it
    return None


def apply_tar(raw: BinaryIO, dest: str, recorder: Recorder | None = None) -> tuple[str, int]:
    """Unpack the layer tar read from `raw` into `dest`; return (diff_id, tar size).

    With a `recorder`, the tar's headers and padding are recorded as they pass."""
    dest = os.path.realpath(dest)
    reader = _HashingReader(uncompressed(raw), recorder)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                whiteout = posixpath.basename(member.name).startswith(WHITEOUT_PREFIX)
                if recorder is not None:
                    recorder.member(member, None if whiteout else _content_path(member))
                if whiteout:
                    _whiteout(dest, member)
                    continue
                tar.extract(member, dest, numeric_owner=True, filter=_checked)
        reader.drain()
        if recorder is not None:
            recorder.close()
    except RecursionError:  # tarfile's fallback for a link it cannot make, chasing itself
        raise BadRequest("invalid layer: a link that cannot be made refers back to itself") from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, KeyError) as exc:
        raise BadRequest(f"invalid tar archive: {exc}") from None
    except OSError as exc:  # a member that cannot exist as written (e.g. a file where a dir is)
        raise BadRequest(f"invalid layer: {exc}") from None
    return "sha256:" + reader.sha.hexdigest(), reader.size
