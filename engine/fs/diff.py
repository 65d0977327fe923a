"""What a container changed: its writable layer (the overlay upper dir) against its image.

`walk` reads the upper directory, which exists whether the container runs or not, and
looks each entry up in the image's layers (top layer first, honouring their whiteouts and
opaque directories): an entry the image does not have is **added**, one whose type,
mode, owner, or (for non-directories) size or mtime differ is **modified** (directory
mtimes and sizes are not a measure of change: moby's rule), an overlay whiteout (a 0/0
character device) is **deleted**, and so, for the layer, is an opaque directory (the
`trusted.overlay.opaque` xattr: the image's directory was removed and made again), whose
new contents are then additions (the API lists it as changed, as dockerd does). A directory whose subtree holds changes is reported modified before them,
as moby does, so that a commit keeps its metadata. The order is the walk's: parents
before children, names sorted.

The files an OCI runtime creates in the upper dir as mount points for the container's
`/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` (empty files), and the like, are
not the container's changes: dockerd keeps them in an init layer below the writable
one, so `docker diff` and `docker commit` never show them. They are left out here.

The same entries make the layer tar of `commit`: whiteouts become `.wh.<name>` files and
opaque directories get a `.wh..wh..opq` marker, the image format `layers.apply_tar`
turns back into overlay whiteouts.

Everything is read through descriptors without following symlinks (`inroot`): a running
container may swap a directory for a symlink to the host while we read its upper dir.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import msgspec

from . import inroot
from ..images.layers import OPAQUE_MARKER, WHITEOUT_PREFIX
from .tarstream import TarWriter, is_whiteout

MODIFIED, ADDED, DELETED = 0, 1, 2

# dockerd's init layer (daemon/initlayer): mount points made for every container.
INIT_PATHS = frozenset({"/.dockerenv", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
                        "/dev/console", "/dev/pts", "/dev/shm", "/proc", "/sys"})
OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Change(msgspec.Struct, rename="pascal"):
    """One line of `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted."""

    path: str
    kind: int


class Entry(msgspec.Struct, frozen=True):
    """A change as the walk found it; `whiteout`/`opaque` say how the layer tar writes it."""

    path: str
    kind: int
    whiteout: bool = False
    opaque: bool = False


class ImageLayers:
    """The image's unpacked layers, top first, for looking paths up as overlayfs would."""

    def __init__(self, dirs_top_first: list[Path]):
        self._fds: list[int] = []
        try:
            for d in dirs_top_first:
                self._fds.append(os.open(d, inroot.DIR_FLAGS))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lookup(self, path: str) -> os.stat_result | None:
        """The lstat of `path` as the image shows it, None if the image has no such path."""
        return self._find(path)[0]

    def _find(self, path: str) -> tuple[os.stat_result | None, str | None]:
        """(lstat, the link's target when it is a symlink) of `path` in the image."""
        for fd in self._fds:
            found, hides_below, target = _lookup_in_layer(fd, inroot.components(path))
            if found is not None:
                return (None, None) if is_whiteout(found) else (found, target)
            if hides_below:
                return None, None
        return None, None

    def resolve(self, path: str) -> tuple[str, os.stat_result | None]:
        """`path` with every symlink on it followed inside the image, the last one too (as
        moby's FollowSymlinkInScope, what dockerd's builder copies to): (the path
        reached, its stat, None when missing; a missing part's rest goes on lexically).
        Raises NotADirectoryError for a non-directory on the way, OSError(ELOOP) for loops."""
        todo, done, links = inroot.components(path), [], 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            st, target = self._find("/" + "/".join([*done, name]))
            if st is None:
                for rest in [name, *todo]:
                    if rest != "..":
                        done.append(rest)
                    elif done:
                        done.pop()
                return "/" + "/".join(done), None
            if target is not None:
                links += 1
                if links > inroot.MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    done = []
                todo[:0] = inroot.components(target)
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/" + "/".join([*done, name]))
            done.append(name)
        where = "/" + "/".join(done)
        return where, self.lookup(where)


def _lookup_in_layer(layer_fd: int, names: list[str]) -> tuple[os.stat_result | None, bool, str | None]:
    """(lstat of the path in this one layer or None, whether this layer hides the path
    in the layers below: an opaque directory, a whiteout or a file on the way, and the
    target when it is a symlink)."""
    if not names:
        return os.stat(layer_fd), False, None
    fd, hides = os.open(".", inroot.DIR_FLAGS, dir_fd=layer_fd), False
    try:
        for name in names[:-1]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return None, hides, None
            if not stat.S_ISDIR(st.st_mode):
                return None, True, None
            nxt = os.open(name, _DIR_READ, dir_fd=fd)
            os.close(fd)
            fd = nxt
            hides = hides or _is_opaque(fd)
        try:
            st = os.stat(names[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, hides, None
        return st, hides, os.readlink(names[-1], dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
    finally:
        os.close(fd)


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def _same_time(a: int, b: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side lacking nanoseconds
    (tar keeps whole seconds)."""
    return a == b or (a // 10**9 == b // 10**9 and (a % 10**9 == 0 or b % 10**9 == 0))


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    return not stat.S_ISDIR(new.st_mode) and (old.st_size != new.st_size
                                              or not _same_time(old.st_mtime_ns, new.st_mtime_ns))


def _is_init_stub(path: str, st: os.stat_result, dir_fd: int, name: str) -> bool:
    """A runtime-made mount point at one of the init-layer paths (empty file or dir)."""
    if path not in INIT_PATHS:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, _DIR_READ, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            return not os.listdir(fd)
        finally:
            os.close(fd)
    return False


def walk(upper: Path, image: ImageLayers) -> list[Entry]:
    """The changes in the upper directory `upper` against `image`, in walk order."""
    out: list[Entry | None] = []
    real = 0  # entries in `out` that are not placeholders
    root = os.open(upper, _DIR_READ)
    # Each frame: (dir fd, names left, path, whether the image has this dir, the slot of
    # its placeholder in `out` or -1, `real` when it was entered).
    stack = [(root, iter(sorted(os.listdir(root))), "", True, -1, 0)]
    try:
        while stack:
            fd, names, path, in_image, slot, real_before = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                if slot >= 0 and real > real_before:  # changes inside: the dir is reported too
                    out[slot] = Entry(path, MODIFIED)
                    real += 1
                continue
            child = f"{path}/{name}"
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if _is_init_stub(child, st, fd, name):
                continue
            if is_whiteout(st):
                out.append(Entry(child, DELETED, whiteout=True))
                real += 1
                continue
            old = image.lookup(child) if in_image else None
            if not stat.S_ISDIR(st.st_mode):
                if old is None or _differs(old, st):
                    out.append(Entry(child, ADDED if old is None else MODIFIED))
                    real += 1
                continue
            try:
                sub = os.open(name, _DIR_READ, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            entry: Entry | None
            if _is_opaque(sub) and old is not None:
                entry, below = Entry(child, DELETED, opaque=True), False
            elif old is None:
                entry, below = Entry(child, ADDED), False
            elif _differs(old, st):
                entry, below = Entry(child, MODIFIED), stat.S_ISDIR(old.st_mode)
            else:
                entry, below = None, True
            out.append(entry)
            real += entry is not None
            stack.append((sub, iter(sorted(os.listdir(sub))), child, below, -1 if entry else len(out) - 1, real))
    finally:
        for frame in stack:
            os.close(frame[0])
    return [e for e in out if e is not None]


def api_changes(entries: list[Entry]) -> list[Change]:
    """The entries as `GET /containers/{id}/changes` lists them: a directory made again
    where the image had one (or a file), which the layer writes as opaque, is there, so
    changed (`C`, as dockerd's overlay diff says), not deleted."""
    return [Change(e.path, MODIFIED if e.opaque else e.kind) for e in entries]


def layer_chunks(upper: Path, entries: list[Entry]) -> Iterator[bytes]:
    """The layer tar of the entries (image format: AUFS-style whiteouts), in chunks."""
    tar = TarWriter()
    base = os.open(upper, inroot.DIR_FLAGS)
    try:
        for entry in entries:
            parent_path, _, name = entry.path.rpartition("/")
            arcname = entry.path.lstrip("/")
            try:
                parent = inroot.open_beneath(base, parent_path, inroot.DIR_FLAGS) if parent_path else os.dup(base)
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone since the walk (a running container)
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if entry.whiteout:
                    marker = f"{parent_path}/{WHITEOUT_PREFIX}{name}".lstrip("/")
                    yield from tar.add_empty(marker, st, 0)
                    continue
                yield from tar.add(parent, name, arcname, st)
                if entry.opaque:
                    yield from tar.add_empty(f"{arcname}/{OPAQUE_MARKER}", st, stat.S_IMODE(st.st_mode) & 0o777)
            except FileNotFoundError:
                continue
            finally:
                os.close(parent)
    finally:
        os.close(base)
    yield from tar.finish()
