"""Tar streams of a container's files: written out in chunks, extracted in safely.

**Out** (`TarWriter`): `cp` from a container, `export`, and the layer tar of `commit`.
Entries are read through directory descriptors (`inroot`), one directory level open at a
time, and come out as ~1 MiB chunks from a generator, so a tar of any size streams with
bounded memory (a file's content is read in chunks too). Headers are what moby's archive
package writes: PAX format, numeric uid/gid without user names, mtime truncated to the
second, directories with a trailing `/`, a second name of an inode already written as a
hard link to the first. Sockets are left out (tar cannot hold them) and a file that
vanishes during the walk is skipped, as moby does.

**In** (`extract`): `PUT /containers/{id}/archive`, and volumes seeded from an image.
The archive is untrusted and so is the container: extraction is `fs.unpack`, the one
unpacker for every untrusted tar, under `unpack.copy_policy`. Every name and link target
is resolved inside the container root by directory descriptors, entries are created
with `O_EXCL`/`O_NOFOLLOW` and changed by their own descriptor, so symlinks in the
container or planted by earlier members, absolute or relative, only lead to places inside
the container; `..` that climbs out, device nodes and truncated archives are 400s (see
`unpack` for the rules). Hard-link targets are resolved relative to the extraction
directory, as moby does. Modes are kept as in the archive, setuid and setgid included,
as dockerd keeps them: only an API client can write an archive, and the archive's owner
is kept with them. With `chown_to` (copyUIDGID) the files take the container user's
uid/gid instead, and when that user is not root the setuid and setgid bits are cleared,
as the kernel clears them on chown: a set-id bit that would now name the container's user
is not what the archive asked for.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from . import unpack

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
    policy = unpack.copy_policy(no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown_to=chown_to)
    unpack.unpack(io.BufferedReader(src, CHUNK), root_fd, dest, policy)
