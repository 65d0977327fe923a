"""Tar streams of a container's files: written out in chunks, extracted in safely.

**Out** (`TarWriter`): `cp` from a container, `export`, and the layer tar of `commit`.
Entries are read through directory descriptors (`inroot`), one directory level open at a
time, and come out as ~1 MiB chunks from a generator, so a tar of any size streams with
bounded memory (a file's content is read in chunks too). Headers are what moby's archive
package writes: PAX format, numeric uid/gid without user names, mtime truncated to the
second, directories with a trailing `/`, a second name of an inode already written as a
hard link to the first. Sockets are left out (tar cannot hold them) and a file that
vanishes during the walk is skipped, as moby does.

**In** (`extract`): `PUT /containers/{id}/archive`. The archive is untrusted and so is the
container. Every member name is cleaned and must stay below the extraction directory
(`..` that climbs out, or nothing but `..`, is a 400); the member's parent is then
resolved inside the container root (`inroot.resolve`, symlinks followed as a chroot
would), and the entry is created relative to that directory descriptor with `O_EXCL`/
`O_NOFOLLOW`; ownership, mode and times are set on the created object's own descriptor,
never by name. So symlinks in the container or planted by earlier members, absolute or
relative, can only lead to places inside the container. Hard-link targets are resolved
the same way, relative to the extraction directory as moby does. Device nodes are
refused (a copy has no business creating them; dockerd would create them). A member whose
data ends early is a 400 and its partial file is removed. Modes are kept as in the archive,
setuid and setgid included, as dockerd keeps them: only an API client can write an
archive, and the archive's owner is kept with them. With `chown_to` (copyUIDGID) the files
take the container user's uid/gid instead, and when that user is not root the setuid and
setgid bits are cleared, as the kernel clears them on chown: a set-id bit that would now
name the container's user is not what the archive asked for.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from . import inroot
from ..errors import BadRequest
from ..images.layers import uncompressed

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


# --- out ------------------------------------------------------------------------------


class TarWriter:
    """Builds a tar stream from files reached by descriptor; every `add*` method is a
    generator of chunks, and `finish()` yields the end-of-archive blocks."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inodes: dict[tuple[int, int], str] = {}

    def _flush(self, force: bool = False) -> Iterator[bytes]:
        if self._buf and (force or len(self._buf) >= CHUNK):
            yield bytes(self._buf)
            self._buf.clear()

    def _header(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        self._buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        yield from self._flush()

    def add_empty(self, arcname: str, st: os.stat_result, mode: int) -> Iterator[bytes]:
        """An empty regular file with `st`'s owner and time (whiteout markers)."""
        info = _info(arcname, st)
        info.type, info.mode = tarfile.REGTYPE, mode
        yield from self._header(info)

    def add(self, dir_fd: int, name: str, arcname: str, st: os.stat_result | None = None) -> Iterator[bytes]:
        """One entry (no recursion): `name` in `dir_fd`, stored as `arcname`."""
        try:
            if st is None:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            info = _info(arcname, st)
            key = (st.st_dev, st.st_ino)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in self._inodes:
                info.type, info.linkname = tarfile.LNKTYPE, self._inodes[key]
                yield from self._header(info)
                return
            if stat.S_ISREG(st.st_mode):
                yield from self._regular(dir_fd, name, info, key, st)
                return
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
            else:
                return  # a socket: tar has no type for it
        except FileNotFoundError:
            return  # vanished while we walked (a running container)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            self._inodes[key] = arcname
        yield from self._header(info)

    def _regular(self, dir_fd: int, name: str, info: tarfile.TarInfo, key: tuple[int, int],
                 st: os.stat_result) -> Iterator[bytes]:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb", buffering=0) as f:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != key:
                return  # replaced since the stat: it will not be what the header says
            info.size = opened.st_size
            yield from self._header(info)
            left = info.size
            while left:
                # The header promised `size` bytes: a file that shrinks meanwhile is padded
                # with zeros, one that grows is cut, so the stream stays a valid tar.
                data = f.read(min(left, CHUNK)) or bytes(min(left, CHUNK))
                self._buf += data
                left -= len(data)
                yield from self._flush()
            self._buf += bytes(-info.size % BLOCK)
        if st.st_nlink > 1:
            self._inodes[key] = info.name

    def add_contents(self, dir_fd: int, name: str, prefix: str) -> Iterator[bytes]:
        """Everything below the directory `name`, each stored as `prefix` + its relative
        path (`prefix` is "" for bare names, else ends with "/").

        Depth-first with an explicit stack (a container can nest directories deeper than
        Python's recursion limit); one descriptor is open per level."""
        try:
            top = os.open(name, _DIR_READ, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            return
        stack = [(top, iter(sorted(os.listdir(top))), prefix)]
        try:
            while stack:
                fd, names, base = stack[-1]
                child = next(names, None)
                if child is None:
                    os.close(stack.pop()[0])
                    continue
                arcname = base + child
                try:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield from self.add(fd, child, arcname, st)
                if stat.S_ISDIR(st.st_mode):
                    try:
                        sub = os.open(child, _DIR_READ, dir_fd=fd)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    stack.append((sub, iter(sorted(os.listdir(sub))), arcname + "/"))
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    def finish(self) -> Iterator[bytes]:
        """The two zero blocks that end an archive, and whatever is still buffered."""
        self._buf += bytes(2 * BLOCK)
        yield from self._flush(force=True)


def _info(arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


# --- in -------------------------------------------------------------------------------


def extract(src: BinaryIO, root_fd: int, dest: str, *, no_overwrite_dir_non_dir: bool = False,
            chown_to: tuple[int, int] | None = None) -> None:
    """Extract the tar read from `src` (plain or gzip) into the directory `dest`, a path
    inside the container whose symlinks are already resolved (see the module docstring).
    Raises BadRequest for anything the archive asks that cannot or must not be done."""
    dir_times: list[tuple[str, int]] = []
    try:
        with tarfile.open(fileobj=uncompressed(io.BufferedReader(src, CHUNK)), mode="r|") as tar:
            for member in tar:
                name = _member_name(member.name)
                if name is None:
                    continue
                _extract_member(tar, member, root_fd, dest, name, no_overwrite_dir_non_dir, chown_to)
                if member.isdir():
                    dir_times.append((f"{dest}/{name}", _ns(member.mtime)))
    except (tarfile.TarError, EOFError) as exc:  # truncated data, a bad header or checksum
        raise BadRequest(f"invalid tar archive: {exc}") from None
    except OSError as exc:  # a member that cannot exist as written (not gzip, a file where a dir must be…)
        raise BadRequest(f"cannot extract the archive: {_reason(exc)}") from None
    # Directory times last: creating entries in a directory changes its mtime.
    for path, mtime in reversed(dir_times):
        try:
            with inroot.resolve(root_fd, path, follow=False) as found:
                fd = found.open(_DIR_READ)
            try:
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        except OSError:
            pass  # replaced by a later member, or removed by the container meanwhile


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def _member_name(raw: str) -> str | None:
    """The member's path below the extraction directory; None to skip it ("." itself)."""
    name = posixpath.normpath(raw.lstrip("/")) if raw.strip("/") else "."
    if name == ".":
        return None
    if name == ".." or name.startswith("../"):
        raise BadRequest(f"invalid tar archive: member {raw!r} points outside the destination directory")
    return name


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, dest: str, name: str,
                    no_overwrite_dir_non_dir: bool, chown_to: tuple[int, int] | None) -> None:
    if member.ischr() or member.isblk():  # (tarfile's isdev() counts FIFOs too)
        raise BadRequest(f"invalid tar archive: device node {member.name!r} is not allowed")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()):
        raise BadRequest(f"invalid tar archive: member {member.name!r} has an unsupported type {member.type!r}")
    with inroot.resolve(root_fd, f"{dest}/{name}", follow=False, missing_ok=True, make_dirs=True) as found:
        if found.name in ("", "."):  # a cleaned name always ends in a real component
            raise BadRequest(f"invalid tar archive: cannot place {member.name!r}")
        existing = found.stat
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if no_overwrite_dir_non_dir and is_dir and not member.isdir():
                raise BadRequest(f"cannot overwrite directory {found.path!r} with non-directory {member.name!r}")
            if no_overwrite_dir_non_dir and not is_dir and member.isdir():
                raise BadRequest(f"cannot overwrite non-directory {found.path!r} with directory {member.name!r}")
            if not (is_dir and member.isdir()):
                _remove(found.dir_fd, found.name, existing)
        uid, gid = chown_to if chown_to else (member.uid, member.gid)
        mode = member.mode & 0o7777
        if chown_to and uid != 0:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        mtime = _ns(member.mtime)
        parent, base = found.dir_fd, found.name
        if member.isreg():
            _write_file(tar, member, parent, base, uid, gid, mode, mtime)
        elif member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, _DIR_READ, dir_fd=parent)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        elif member.issym():
            # The target is stored as written: it is only ever followed inside the root.
            os.symlink(member.linkname, base, dir_fd=parent)
            os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
            os.utime(base, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
        elif member.islnk():
            _hard_link(root_fd, dest, member, parent, base)
        else:
            os.mkfifo(base, 0o600, dir_fd=parent)
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):  # the object just made, by descriptor
                    proc = f"/proc/self/fd/{fd}"
                    os.chown(proc, uid, gid)
                    os.chmod(proc, mode)
                    os.utime(proc, ns=(mtime, mtime))
            finally:
                os.close(fd)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, base: str,
                uid: int, gid: int, mode: int, mtime: int) -> None:
    fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    written = 0
    try:
        data = tar.extractfile(member)
        with os.fdopen(os.dup(fd), "wb", CHUNK) as out:
            while chunk := data.read(CHUNK):
                out.write(chunk)
                written += len(chunk)
        if written != member.size:
            raise BadRequest(f"invalid tar archive: member {member.name!r} has {written} bytes, "
                             f"its header says {member.size}")
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # after chown, which clears setuid/setgid
        os.utime(fd, ns=(mtime, mtime))
    except BaseException:
        try:
            os.unlink(base, dir_fd=parent)  # no half file left behind
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def _hard_link(root_fd: int, dest: str, member: tarfile.TarInfo, parent: int, base: str) -> None:
    target = posixpath.normpath(member.linkname.lstrip("/")) if member.linkname.strip("/") else "."
    if target == "." or target == ".." or target.startswith("../"):
        raise BadRequest(f"invalid tar archive: hard link {member.name!r} points outside the destination directory")
    with inroot.resolve(root_fd, f"{dest}/{target}", follow=False) as found:
        if stat.S_ISDIR(found.stat.st_mode):
            raise BadRequest(f"invalid tar archive: hard link {member.name!r} points to a directory")
        os.link(found.name, base, src_dir_fd=found.dir_fd, dst_dir_fd=parent, follow_symlinks=False)


def _remove(dir_fd: int, name: str, st: os.stat_result) -> None:
    """Remove `name` (a whole tree for a directory) without following any symlink."""
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # the descriptor-based walk: never follows a link
    else:
        os.unlink(name, dir_fd=dir_fd)


def _ns(mtime: float) -> int:
    return int(mtime) * 10**9 + round((mtime - int(mtime)) * 10**9)
