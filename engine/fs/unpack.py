"""One unpacker for every untrusted tar: image layers (import, load, and later pulls and
build contexts) and archives copied into containers (`PUT /containers/{id}/archive`).

The tar is untrusted, and so is what it is unpacked into: a container root (whose files
a running container changes while we write) or a layer being built (whose symlinks the
tar itself planted a few members earlier). The kernel resolves a path string against the
*daemon's* root, so no path from the tar or the destination is ever handed to it whole.

**Where a member lands.** The member's name is cleaned (leading `/` dropped, empty and
`.` components removed); a `..` component anywhere is refused. The member's directory is
then found from the destination's root descriptor with `openat2(RESOLVE_IN_ROOT)` (or,
without openat2, `inroot`'s component-by-component walk, which answers the same): every
symlink on the way, absolute or relative, planted by the tar or found in the container,
is followed as if the root were `/`, and `..` in a link target stops at the root. Missing
directories are made on the way, inside the root. The entry itself is created relative to
that directory descriptor with one name, never following a symlink (`O_EXCL|O_NOFOLLOW`,
`*at(..., AT_SYMLINK_NOFOLLOW)`), and its owner, mode and times are set on its own
descriptor or without following links. A name that already exists is removed first
(without following it; a directory by a descriptor-based tree walk), so a later member
never writes through an earlier link. Directory descriptors are kept by path for the
members that follow and forgotten whenever a directory or symlink is removed.

**Hard links** name a member already unpacked: the target is resolved the same way,
relative to the destination directory (a leading `/` is the destination, `..` is
refused), never following its last component; it must exist and not be a directory or
the member itself. So a hard link can only ever join a file of the layer (or directory)
being unpacked, never a host file.

**Symlinks** are stored as written: they are only ever followed inside the root. Image
layers refuse a relative target that climbs above the layer root (`../../..`), as Docker
does; archives copied into a container keep it (it stays inside when followed).

**Device nodes** (block and character) are refused everywhere with a 400: berth runs
image content and copies with no business creating them (dockerd, as root, would create
them). The only character device berth makes is the overlay whiteout (0/0), from `.wh.`
members of a layer. FIFOs are created; other member types are refused.

**Layers** (`LAYER`): `.wh.<name>` becomes an overlay whiteout (a 0/0 character device)
at `<name>` in the same directory, `.wh..wh..opq` marks its directory opaque
(`trusted.overlay.opaque=y`); other `.wh..wh.` names are AUFS metadata and are skipped.
A whiteout of `.`, `..` or nothing is refused. A `.` directory member sets the layer
root's owner, mode and time. A member may not replace a directory the tar made (a 400).

**The stream** is read strictly: every header must be valid (a bad checksum, a malformed
extended header, data or headers cut short are 400s, never an early end), the archive must
end with its end-of-archive block, and extended headers are limited to 1 MiB. A regular
file whose data ends early is removed. Layers are unpacked into a scratch directory that
the image store renames into place only when complete, so a refused layer leaves nothing.

The sha256 of the uncompressed stream (a layer's DiffID) is computed in the same pass,
and a recorder (`images.tarsplit.Recorder`) is handed every byte of the stream, file
contents as references to where they were unpacked, to give the exact tar back later.
Such a reference stays true unless a later member displaced the file (removed what was
at a name, whiteouts included) or the file was written below a symlink the tar made (its
recorded name then leads nowhere): the unpacker notes either (`Unpacked.in_place`), so
the image store reads a layer back to check it only when one happened. A file is never
written twice otherwise: each is a new inode (`O_EXCL`) filled once from the stream.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import queue
import stat
import sys
import tarfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO, Protocol

import msgspec

from . import inroot, tree
from ..errors import BadRequest, EngineError

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
HEADER_LIMIT = 1 << 20  # extended headers (PAX records, GNU long names): as Go's archive/tar
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_DIRS_KEPT = 256  # directory descriptors kept for the members that follow
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SERVER_SIDE = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


class Recorder(Protocol):
    """Is handed every byte of the stream once, in order (see `images.tarsplit`)."""

    def raw(self, data: bytes | memoryview) -> None: ...

    def content(self, path: str, size: int) -> None: ...

    def close(self) -> int: ...


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """What one kind of destination accepts beyond the rules every tar obeys."""

    refused: str  # how a refusal starts: "invalid layer", "invalid tar archive"
    failed: str  # how a member the filesystem would not take starts
    where: str  # what the destination is called in messages
    whiteouts: bool = False  # `.wh.` members become overlay whiteouts (image layers)
    root_metadata: bool = False  # a `.` directory member sets the root's owner, mode, time
    replace_dirs: bool = True  # a non-directory member may replace a directory
    no_overwrite_dir_non_dir: bool = False  # neither replaces the other (the cp option)
    chown_to: tuple[int, int] | None = None  # owner of every entry (cp's copyUIDGID)


LAYER = Policy(refused="invalid layer", failed="invalid layer", where="layer", whiteouts=True,
               root_metadata=True, replace_dirs=False)


def copy_policy(*, no_overwrite_dir_non_dir: bool = False, chown_to: tuple[int, int] | None = None) -> Policy:
    """Archives copied into a container (`PUT /containers/{id}/archive`), and volumes
    seeded from an image."""
    return Policy(refused="invalid tar archive", failed="cannot extract the archive", where="destination directory",
                  no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown_to=chown_to)


class Unpacked(msgspec.Struct, frozen=True):
    digest: str  # "sha256:<hex>" of the uncompressed stream ("" when not asked for)
    size: int  # bytes of the uncompressed stream
    # Into an empty destination: every regular file is still at its member's name, with
    # the member's bytes (nothing was displaced, nothing was written below a symlink).
    in_place: bool = True


def uncompressed(raw: BinaryIO) -> BinaryIO:
    """Layers, imports, loads and copies may be compressed: gzip, bzip2 or xz, as
    dockerd's DecompressStream reads them (told by their first bytes); the DiffID is of
    the plain tar. zstd is refused by name rather than read as a bad tar."""
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if head.startswith(b"\x1f\x8b"):
        from isal import igzip  # with the first gzip stream, not at the daemon's start (see read_errors)

        return igzip.IGzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(raw, "rb")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise BadRequest("zstd-compressed archives are not supported; decompress it first")
    return raw


def read_errors() -> tuple[type[BaseException], ...]:
    """What reading a truncated or corrupt compressed stream raises. isal's and lzma's
    own errors are in only once they are loaded (`uncompressed` imports them with the
    first such stream, and before that nothing can raise them): ~1 MB of the daemon's
    memory until an image is pulled, loaded, imported or built. bzip2's is an OSError,
    which only a read of the bz2 stream itself is taken to mean."""
    isal_zlib, lzma = sys.modules.get("isal.isal_zlib"), sys.modules.get("lzma")
    return ((EOFError, zlib.error, gzip.BadGzipFile) + ((isal_zlib.error,) if isal_zlib else ())
            + ((lzma.LZMAError,) if lzma else ()))


def unpack(src: BinaryIO, root_fd: int, dest: str, policy: Policy, *,
           recorder: Recorder | None = None, digest: bool = False) -> Unpacked:
    """Unpack the tar read from `src` (plain or gzip) into the directory `dest`, a path
    inside `root_fd` whose symlinks the caller has resolved ("/" for the root itself).
    Raises BadRequest for anything the archive asks that cannot or must not be done."""
    reader = Reader(uncompressed(src), digest=digest, recorder=recorder)
    unpacker = _Unpacker(root_fd, dest, policy, reader)
    name = ""
    try:
        for member in reader:
            name = member.name
            unpacker.member(member)
        name = ""
        unpacker.finish()
        reader.drain()
    except OSError as exc:
        if exc.errno in _SERVER_SIDE:
            raise EngineError(f"{policy.failed}: {_reason(exc, name)}") from None
        raise BadRequest(f"{policy.failed}: {_reason(exc, name)}") from None
    except (OverflowError, ValueError) as exc:  # a time, id or name the system cannot take
        raise BadRequest(f"{policy.failed}: member {name!r}: {exc}") from None
    finally:
        unpacker.close()
        reader.close()
    if recorder is not None:
        recorder.close()
    return Unpacked(reader.digest, reader.tell(), not unpacker.displaced)


def _reason(exc: OSError, name: str) -> str:
    what = exc.strerror or str(exc)
    return f"member {name!r}: {what}" if name else what


# --- reading the stream ------------------------------------------------------------------


class _TarShim:
    """What `tarfile.TarInfo.fromtarfile` (a documented API) needs of a TarFile: the
    stream, the name encoding, the global PAX headers and where the next header starts."""

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, fileobj: Reader):
        self.fileobj = fileobj
        self.pax_headers: dict[str, str] = {}
        self.offset = 0


def _data_size(info: tarfile.TarInfo) -> int:
    """Bytes of member data in the archive (a sparse file holds only its data runs)."""
    if not info.isreg():
        return 0
    if info.sparse is not None:
        return sum(size for _, size in info.sparse)
    return info.size


class Reader:
    """A tar stream, member by member, read strictly (see the module docstring).

    Iterating yields each member's `TarInfo` once its headers are read; its data is then
    written out with `copy_to` / `copy_sparse_to`, or skipped when the next member is
    asked for. Every byte read is hashed when `digest` is set and handed to `recorder`
    (file contents by reference when `copy_to` is given a path). With neither, a seekable
    `raw` is read in place: member data is seeked over (`Archive` indexes in this way).
    """

    def __init__(self, raw: BinaryIO, *, digest: bool = False, recorder: Recorder | None = None):
        self._raw = raw
        self._sha = _Sha256() if digest else None
        self._recorder = recorder
        self._seek = not digest and recorder is None and _seekable(raw)
        self._chunk = (64 << 10) if self._seek else CHUNK
        self._data = b""  # bytes read from `raw`; `_data[_at:]` not consumed yet
        self._at = 0
        self._base = 0  # stream offset of `_data[0]`
        self._capture: bytearray | None = None  # header bytes while a header is read
        self._end = 0  # where the current member's data and padding end
        self._left = 0  # the current member's data not consumed yet
        self._shim = _TarShim(self)
        self._done = False

    # tarfile's header parsing reads through these two
    def tell(self) -> int:
        return self._base + self._at

    def read(self, n: int) -> bytes:
        if n > HEADER_LIMIT:
            raise BadRequest(f"invalid tar archive: an extended header of {n} bytes at byte {self.tell()} "
                             f"(at most {HEADER_LIMIT})")
        end = self._at + n
        if end <= len(self._data):
            out = self._data[self._at:end]
            self._at = end
        else:
            parts = [self._data[self._at:]]
            got = len(parts[0])
            self._at = len(self._data)
            while got < n and self._fill():
                take = min(n - got, len(self._data))
                parts.append(self._data[:take])
                self._at = take
                got += take
            out = b"".join(parts)
        if self._capture is not None:
            self._capture += out
        return out

    def _fill(self) -> bool:
        """Replace the consumed buffer with the next chunk of the stream; False at its end."""
        self._base += len(self._data)
        try:
            chunk = self._raw.read(self._chunk)
        except read_errors() as exc:  # a truncated or corrupt gzip stream
            raise BadRequest(f"invalid tar archive: {exc or 'compressed data ends early'}") from None
        self._data, self._at = chunk or b"", 0
        if chunk and self._sha is not None:
            self._sha.update(chunk)
        return bool(chunk)

    def _take(self, n: int) -> Iterator[memoryview]:
        """The next `n` bytes, in pieces; a stream that ends first is truncated."""
        while n:
            if self._at == len(self._data) and not self._fill():
                raise BadRequest(f"invalid tar archive: unexpected end of data at byte {self.tell()}: "
                                 "the archive is truncated")
            k = min(n, len(self._data) - self._at)
            yield memoryview(self._data)[self._at:self._at + k]
            self._at += k
            n -= k

    def _skip_to(self, end: int) -> None:
        """Consume up to `end` (recorded as raw bytes)."""
        n = end - self.tell()
        if n <= 0:
            return
        if self._seek and n > len(self._data) - self._at:
            self._raw.seek(end)
            self._base, self._data, self._at = end, b"", 0
            return
        for piece in self._take(n):
            if self._recorder is not None:
                self._recorder.raw(piece)

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while not self._done:
            self._left = 0
            self._skip_to(self._end)
            start = self.tell()
            self._capture = bytearray() if self._recorder is not None else None
            try:
                info = tarfile.TarInfo.fromtarfile(self._shim)
            except tarfile.EOFHeaderError:  # a zero block: the end of the archive
                self._done = True
                self._recorded()
                return
            except tarfile.EmptyHeaderError:
                if start == 0:
                    raise BadRequest("invalid tar archive: the archive is empty") from None
                raise BadRequest(f"invalid tar archive: unexpected end of data at byte {start}, where the "
                                 "end-of-archive block should be: the archive is truncated") from None
            except tarfile.TruncatedHeaderError:
                raise BadRequest(f"invalid tar archive: unexpected end of data in a header at byte {start}: "
                                 "the archive is truncated") from None
            except (tarfile.HeaderError, ValueError, UnicodeError, OverflowError) as exc:
                if start == 0:
                    raise BadRequest(f"invalid tar archive: not a tar archive ({exc})") from None
                raise BadRequest(f"invalid tar archive: bad header at byte {start} ({exc}): "
                                 "the archive is corrupt") from None
            self._recorded()
            self._end = self._shim.offset
            self._left = _data_size(info)
            if info.isreg() and self._left > self._end - info.offset_data:
                raise BadRequest(f"invalid tar archive: member {info.name!r}: its sparse map holds more data "
                                 "than the member")
            yield info

    def _recorded(self) -> None:
        if self._capture is not None:
            self._recorder.raw(self._capture)
        self._capture = None

    def copy_to(self, fd: int, ref: str | None = None) -> None:
        """Write the current member's data to `fd`; with a recorder, `ref` is where the
        file lies in the layer (its content is recorded by reference), else it is raw."""
        n, self._left = self._left, 0
        by_ref = self._recorder is not None and ref is not None
        if by_ref:
            self._recorder.content(ref, n)
        for piece in self._take(n):
            if self._recorder is not None and not by_ref:
                self._recorder.raw(piece)
            while piece:
                piece = piece[os.write(fd, piece):]

    def copy_sparse_to(self, fd: int, runs: list[tuple[int, int]]) -> None:
        """Write a sparse member's data runs at their offsets in `fd` (the holes stay holes)."""
        self._left = 0
        for offset, size in runs:
            for piece in self._take(size):
                if self._recorder is not None:
                    self._recorder.raw(piece)
                while piece:
                    written = os.pwrite(fd, piece, offset)
                    piece, offset = piece[written:], offset + written

    def drain(self) -> None:
        """After the end-of-archive block: read (hash, record) the rest of the stream. A
        reader that neither hashes nor records stops at the end-of-archive block."""
        if self._sha is None and self._recorder is None:
            return
        while True:
            rest = memoryview(self._data)[self._at:]
            self._at = len(self._data)
            if rest and self._recorder is not None:
                self._recorder.raw(rest)
            if not self._fill():
                return

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest() if self._sha is not None else ""

    def close(self) -> None:
        """Stop the hashing thread (the digest stays readable)."""
        if self._sha is not None:
            self._sha.close()


class _Sha256:
    """sha256 of a stream, updated in a thread of its own, in order: hashlib releases the
    GIL for large updates, so a layer is hashed on one CPU while it is unpacked on another
    (hashing is ~0.6 s of a 200 MB import here, the unpack as much; docs/performance.md).
    At most `_QUEUED` chunks wait; `close` (or the digest) ends the thread."""

    _QUEUED = 8

    def __init__(self):
        self._sha = hashlib.sha256()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = threading.Semaphore(self._QUEUED)
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._sha.update(chunk)
            self._room.release()

    def update(self, chunk: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()
        self._room.acquire()
        self._queue.put(chunk)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        self.close()
        return self._sha.hexdigest()


def _seekable(raw: BinaryIO) -> bool:
    try:
        return raw.seekable()
    except (AttributeError, ValueError):
        return False


def members(raw: BinaryIO) -> Iterator[tarfile.TarInfo]:
    """The members of a tar read in place (their data is seeked over), strictly."""
    return iter(Reader(raw))


class Section(io.RawIOBase):
    """`size` bytes of the open file `fd` from `offset`: a member's data read in place
    (wrap it in `io.BufferedReader`). A file shorter than that raises EOFError."""

    def __init__(self, fd: int, offset: int, size: int):
        super().__init__()
        self._fd, self._offset, self._size, self._pos = fd, offset, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._offset + self._pos)
        if not data:
            raise EOFError(f"unexpected end of data at byte {self._offset + self._pos}: the archive is truncated")
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


# --- writing into the destination ---------------------------------------------------------


class _Dirs:
    """Directories of the destination found so far, by path inside the root: an `O_PATH`
    descriptor each (the most recent `_DIRS_KEPT`), so the members of one directory cost
    one resolution between them."""

    def __init__(self, root_fd: int):
        self._root = root_fd
        self._fds: OrderedDict[str, int] = OrderedDict()

    def get(self, path: str, *, make: bool) -> int:
        """The directory `path` (inside the root, symlinks followed there); `make` creates
        what is missing. The descriptor stays owned by this object."""
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        fd = inroot.open_dir(self._root, path, make=make)
        self._fds[path] = fd
        return fd

    def trim(self) -> None:
        """Close the least recently used beyond `_DIRS_KEPT` (between members only: a
        descriptor handed out stays open for the member that asked for it)."""
        while len(self._fds) > _DIRS_KEPT:
            os.close(self._fds.popitem(last=False)[1])

    def forget(self, keep: str) -> None:
        """A directory or symlink was removed: a kept path may lead elsewhere now."""
        for path in [p for p in self._fds if p != keep]:
            os.close(self._fds.pop(path))

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _ns(mtime: float) -> int:
    return int(mtime) * 10**9 + round((mtime - int(mtime)) * 10**9)


def _kind(info: tarfile.TarInfo) -> str:
    return ("directory" if info.isdir() else "symlink" if info.issym() else "hard link" if info.islnk()
            else "fifo" if info.isfifo() else "file")


class _Unpacker:
    """Applies members, one at a time, under a policy (see the module docstring)."""

    def __init__(self, root_fd: int, dest: str, policy: Policy, reader: Reader):
        names = inroot.components(dest)
        if ".." in names:
            raise ValueError(f"the destination {dest!r} must be resolved by the caller")
        self.dest = "/".join(names)  # inside the root; "" is the root
        self.root_fd = root_fd
        self.policy = policy
        self.reader = reader
        self.dirs = _Dirs(root_fd)
        self.dir_times: list[tuple[str, int]] = []
        self.symlinks: set[str] = set()  # made by this tar, by path inside the root
        self.displaced = False  # see Unpacked.in_place

    def close(self) -> None:
        self.dirs.close()

    def refuse(self, what: str) -> BadRequest:
        return BadRequest(f"{self.policy.refused}: {what}")

    def clean(self, raw: str, what: str = "member") -> str:
        """The name below the destination ("" for the destination itself)."""
        parts = [p for p in raw.split("/") if p and p != "."]
        if ".." in parts:
            depth = 0
            for part in parts:
                depth += -1 if part == ".." else 1
                if depth < 0:
                    raise self.refuse(f"{what} {raw!r} points outside the {self.policy.where}")
            raise self.refuse(f"{what} {raw!r} has a '..' component")
        return "/".join(parts)

    def join(self, name: str) -> str:
        return f"{self.dest}/{name}" if self.dest and name else self.dest or name

    def member(self, info: tarfile.TarInfo) -> None:
        p = self.policy
        self.dirs.trim()
        name = self.clean(info.name)
        if info.ischr() or info.isblk():  # (tarfile's isdev() counts FIFOs too)
            raise self.refuse(f"device node {info.name!r} is not allowed")
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk() or info.isfifo()):
            raise self.refuse(f"member {info.name!r} has an unsupported type {info.type!r}")
        if not name:  # the destination itself: `.`, `./`, `/`
            if p.root_metadata and info.isdir():
                self.root_metadata(info)
            return
        if p.whiteouts and name.startswith(WHITEOUT_META) and name != OPAQUE_MARKER:
            return  # AUFS metadata (.wh..wh.plnk/…, .wh..wh.aufs): not part of the image, as in moby
        path = self.join(name)
        parent, _, base = path.rpartition("/")
        if p.whiteouts and base.startswith(WHITEOUT_PREFIX):
            self.whiteout(info, parent, base)
            return
        target = self.link_target(info) if info.islnk() else None
        pfd = self.dirs.get(parent, make=True)
        existing = _lstat(pfd, base)
        if existing is not None and not (info.isdir() and stat.S_ISDIR(existing.st_mode)):
            if target is not None and (target[2].st_dev, target[2].st_ino) == (existing.st_dev, existing.st_ino) \
                    and target[1] == base and os.path.samestat(os.fstat(target[0]), os.fstat(pfd)):
                raise self.refuse(f"hard link {info.name!r} does not point to a file already in the "
                                  f"{p.where}: it names itself")
            pfd = self.make_room(info, path, parent, pfd, base, existing)
            if target is not None:  # looked up again: its descriptor may have been forgotten
                target = self.link_target(info)
        uid, gid = p.chown_to or (info.uid, info.gid)
        mode = info.mode & 0o7777
        if p.chown_to and uid != 0:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        mtime = _ns(info.mtime)
        if info.isreg():
            self.file(info, path, pfd, base, uid, gid, mode, mtime)
        elif info.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=pfd)
            self.set_dir(pfd, base, uid, gid, mode)
            self.dir_times.append((path, mtime))
        elif info.issym():
            os.symlink(info.linkname, base, dir_fd=pfd)
            self.symlinks.add(path)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)
        elif info.islnk():
            os.link(target[1], base, src_dir_fd=target[0], dst_dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISLNK(target[2].st_mode):  # a hard link to a symlink is that symlink too
                self.symlinks.add(path)
        else:
            self.fifo(pfd, base, uid, gid, mode, mtime)

    def make_room(self, info: tarfile.TarInfo, path: str, parent: str, pfd: int, base: str,
                  existing: os.stat_result) -> int:
        """Remove what is at `base` for `info` (never following it); the parent's
        descriptor, found again if kept descriptors had to be forgotten."""
        p = self.policy
        is_dir = stat.S_ISDIR(existing.st_mode)
        if p.no_overwrite_dir_non_dir and is_dir:
            raise BadRequest(f"cannot overwrite directory {'/' + path!r} with non-directory {info.name!r}")
        if p.no_overwrite_dir_non_dir and info.isdir():
            raise BadRequest(f"cannot overwrite non-directory {'/' + path!r} with directory {info.name!r}")
        if is_dir and not p.replace_dirs:
            raise self.refuse(f"{_kind(info)} {info.name!r} would replace a directory")
        self.displaced = True
        if is_dir:
            tree.remove(base, dir_fd=pfd)  # the descriptor-based walk: never follows a link
        else:
            os.unlink(base, dir_fd=pfd)
        if is_dir or stat.S_ISLNK(existing.st_mode):
            self.dirs.forget(keep=parent)
        return self.dirs.get(parent, make=True)

    def file(self, info: tarfile.TarInfo, path: str, pfd: int, base: str,
             uid: int, gid: int, mode: int, mtime: int) -> None:
        if self.symlinks and not self.displaced:
            parts = path.split("/")
            self.displaced = any("/".join(parts[:i]) in self.symlinks for i in range(1, len(parts)))
        fd = os.open(base, _NEW_FILE, 0o600, dir_fd=pfd)
        try:
            if info.sparse is not None:
                self.reader.copy_sparse_to(fd, info.sparse)
                os.ftruncate(fd, info.size)
            else:
                self.reader.copy_to(fd, ref=path)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(mtime, mtime))
        except BaseException:
            try:
                os.unlink(base, dir_fd=pfd)  # no half file left behind
            except OSError:
                pass
            raise
        finally:
            os.close(fd)

    def set_dir(self, pfd: int, base: str, uid: int, gid: int, mode: int) -> None:
        fd = os.open(base, _DIR_READ, dir_fd=pfd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def fifo(self, pfd: int, base: str, uid: int, gid: int, mode: int, mtime: int) -> None:
        os.mkfifo(base, 0o600, dir_fd=pfd)
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):  # the object just made, by descriptor
                proc = f"/proc/self/fd/{fd}"
                os.chown(proc, uid, gid)
                os.chmod(proc, mode)
                os.utime(proc, ns=(mtime, mtime))
        finally:
            os.close(fd)

    def root_metadata(self, info: tarfile.TarInfo) -> None:
        """A layer's `.` member: the layer root's owner and mode now, its time at the end."""
        self.set_dir(self.root_fd, ".", info.uid, info.gid, info.mode & 0o7777)
        self.dir_times.append(("", _ns(info.mtime)))

    def link_target(self, info: tarfile.TarInfo) -> tuple[int, str, os.stat_result]:
        """(directory descriptor, name, lstat) of a hard link's target, which must be a
        non-directory already in the destination."""
        where = self.policy.where
        name = self.clean(info.linkname, what=f"hard link {info.name!r} to")
        if not name:
            raise self.refuse(f"hard link {info.name!r} does not point to a file already in the {where}")
        parent, _, base = self.join(name).rpartition("/")
        try:
            tfd = self.dirs.get(parent, make=False)
        except (FileNotFoundError, NotADirectoryError):
            tfd = -1
        st = _lstat(tfd, base) if tfd >= 0 else None
        if st is None:
            raise self.refuse(f"hard link {info.name!r} does not point to a file already in the {where}")
        if stat.S_ISDIR(st.st_mode):
            raise self.refuse(f"hard link {info.name!r} does not point to a file already in the {where}: "
                              f"it points to a directory")
        return tfd, base, st

    def whiteout(self, info: tarfile.TarInfo, parent: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.dirs.get(parent, make=True))
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            return
        if base.startswith(WHITEOUT_META):
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the image
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise self.refuse(f"bad whiteout {info.name!r}")
        pfd = self.dirs.get(parent, make=True)
        existing = _lstat(pfd, hidden)
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise self.refuse(f"whiteout {info.name!r} would replace a directory")
            self.displaced = True
            os.unlink(hidden, dir_fd=pfd)
            if stat.S_ISLNK(existing.st_mode):
                self.dirs.forget(keep=parent)
                pfd = self.dirs.get(parent, make=True)
        os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)

    def finish(self) -> None:
        """Directory times last (creating entries changes them), deepest first."""
        for path, mtime in reversed(self.dir_times):
            self.dirs.trim()
            parent, _, base = path.rpartition("/")
            try:
                pfd = self.dirs.get(parent, make=False) if base else self.root_fd
                os.utime(base or ".", ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)
            except OSError:
                pass  # replaced by a later member, or removed by the container meanwhile
