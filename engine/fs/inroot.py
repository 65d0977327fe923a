"""Path resolution inside a container's root, as if the daemon were chrooted there.

A container's files are untrusted: any component of a path in it may be a symlink,
absolute or relative, aimed at `/`, at `../../..` or at the host's /etc. The daemon reads
and writes those files from outside the container, and the kernel resolves a path string
against the *daemon's* root — so no container path is ever handed to the kernel whole.

`resolve` walks a path one component at a time on file descriptors, the way moby's
`symlink.FollowSymlinkInScope` walks strings: it holds an `O_PATH` descriptor for every
directory on the way, looks each component up relative to its parent without following
it, reads symlinks itself (an absolute target restarts at the container root, a relative
one continues from the link's directory), and handles `..` by popping its own stack, so
it cannot climb above the root. Because it works on descriptors, not strings, a process
in a running container that renames directories or swaps in symlinks while the daemon
walks can change *which* file inside the container is reached, never make the walk leave
the container. Callers then act on the returned directory descriptor and a single name
(`*at` calls with `follow_symlinks=False`, `O_NOFOLLOW`), which keeps the same guarantee
for what they create, change or read.

Where the kernel has `openat2` (Linux 5.6), `open_dir` and `open_beneath` hand a whole
path to the kernel with `RESOLVE_IN_ROOT` (symlinks and `..` resolved as if the
directory were `/`) or `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (a literal path that may
not leave the directory): one system call instead of one per component, with the same
answer the walk gives. Where it has not (ENOSYS, or a seccomp filter that refuses it),
or for a path longer than PATH_MAX, they walk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from typing import Self

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS: a symlink loop ends with ELOOP
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# --- openat2(2) -------------------------------------------------------------------------

_SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table)
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x08, 0x10
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_openat2_works: bool | None = None  # unknown until first tried


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2); raises OSError like `os.open`, ENOSYS where the kernel lacks it."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    fd = _syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path)),
                  ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def has_openat2() -> bool:
    """Whether openat2 can be used here (tried once; a seccomp filter may refuse it)."""
    global _openat2_works
    if _openat2_works is None:
        try:
            os.close(openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, RESOLVE_NO_MAGICLINKS))  # AT_FDCWD
            _openat2_works = True
        except OSError:
            _openat2_works = False
    return _openat2_works


# Errors after which the walk is tried instead: no openat2 (ENOSYS, EPERM from seccomp),
# a path longer than PATH_MAX, a rename racing a `..` (EAGAIN), a kernel too old for a flag.
_WALK_INSTEAD = {errno.ENOSYS, errno.EPERM, errno.ENAMETOOLONG, errno.EAGAIN, errno.EINVAL, errno.E2BIG}


def components(path: str) -> list[str]:
    """The names in a path, without empty and `.` ones (`..` is kept: it is resolved)."""
    return [part for part in path.split("/") if part not in ("", ".")]


class Found:
    """Where a path led: the directory holding the entry and the entry's name in it.

    `dir_fd` is an `O_PATH` descriptor owned by this object (`close()`, or use it as a
    context manager). `name` is "." when the path names a directory as a whole (the root,
    or a path ending in `..`). `path` is the entry's path inside the container with the
    symlinks on the way resolved. `stat` is the entry's lstat, None when it is missing."""

    def __init__(self, dir_fd: int, name: str, path: str, st: os.stat_result | None):
        self.dir_fd, self.name, self.path, self.stat = dir_fd, name, path, st

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self, flags: int) -> int:
        """Open the entry itself, never following a symlink in its place."""
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)


def resolve(root_fd: int, path: str, *, follow: bool = True, missing_ok: bool = False,
            make_dirs: bool = False) -> Found:
    """Resolve `path` (absolute or not, always taken from the root) inside `root_fd`.

    follow: a symlink as the last component is followed too (`stat` vs `lstat`).
    missing_ok: a missing component ends the walk with `stat` None instead of raising
      FileNotFoundError; `name` is that component if it was the last one, else "", and
      `path` goes on lexically (what FollowSymlinkInScope answers for a dangling link).
    make_dirs: missing directories before the last component are created (0755).
    Raises NotADirectoryError for a non-directory in the middle, OSError(ELOOP) for
    symlink loops.
    """
    stack: list[tuple[int, str]] = [(os.open(".", DIR_FLAGS, dir_fd=root_fd), "")]
    todo = components(path)
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            top = stack[-1][0]
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop()[0])
                continue
            last = not todo
            try:
                st = os.stat(name, dir_fd=top, follow_symlinks=False)
            except FileNotFoundError:
                if make_dirs and not last:
                    try:
                        os.mkdir(name, 0o755, dir_fd=top)
                    except FileExistsError:
                        pass  # created meanwhile: look again
                    todo.insert(0, name)
                    continue
                if not missing_ok:
                    raise
                return Found(_take(stack), name if last else "", _lexical(stack, [name, *todo]), None)
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=top)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                todo[:0] = components(target)
                continue
            if last:
                return Found(_take(stack), name, _joined(stack, name), st)
            # O_NOFOLLOW with O_DIRECTORY fails on a symlink swapped in since the stat.
            stack.append((os.open(name, DIR_FLAGS, dir_fd=top), name))
        top = stack[-1][0]
        return Found(_take(stack), ".", _joined(stack, ""), os.stat(top))
    finally:
        for fd, _ in stack:
            os.close(fd)


def _take(stack: list[tuple[int, str]]) -> int:
    """Hand the top directory's descriptor to the caller (the rest are closed)."""
    return os.dup(stack[-1][0])


def _joined(stack: list[tuple[int, str]], name: str) -> str:
    return "/" + "/".join([n for _, n in stack[1:]] + ([name] if name else []))


def _lexical(stack: list[tuple[int, str]], rest: list[str]) -> str:
    names = [n for _, n in stack[1:]]
    for name in rest:
        if name == "..":
            if names:
                names.pop()
        else:
            names.append(name)
    return "/" + "/".join(names)


def open_dir(root_fd: int, path: str, *, make: bool = False) -> int:
    """An `O_PATH` descriptor of the directory `path` resolved inside `root_fd` (as
    `resolve` does: symlinks followed, absolute ones and `..` kept inside the root).

    make: missing directories on the way, the last one included, are created (0755)
    inside the root, as `resolve(make_dirs=True)` does (a dangling symlink's target too).
    Raises FileNotFoundError, NotADirectoryError, OSError(ELOOP)."""
    if has_openat2():
        try:
            # the last component too is followed if a symlink (inside the root)
            return openat2(root_fd, path.lstrip("/") or ".", os.O_PATH | os.O_DIRECTORY, IN_ROOT)
        except FileNotFoundError:
            if not make:
                raise
        except OSError as exc:
            if exc.errno not in _WALK_INSTEAD:
                raise
    for _ in range(MAX_LINKS):
        with resolve(root_fd, path, missing_ok=make, make_dirs=make) as found:
            if found.stat is not None or found.name == ".":
                return found.open(DIR_FLAGS)  # O_NOFOLLOW | O_DIRECTORY: anything else fails
            if not found.name:  # cannot happen with make_dirs; be explicit anyway
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            try:
                os.mkdir(found.name, 0o755, dir_fd=found.dir_fd)
            except FileExistsError:
                pass  # made meanwhile, or a dangling symlink: resolve again
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def open_beneath(base_fd: int, path: str, flags: int = os.O_RDONLY) -> int:
    """Open `path` under `base_fd` following no symlink at all (for layer directories,
    whose paths are literal): a symlink anywhere on the way is ENOTDIR or ELOOP (EXDEV
    or ELOOP from openat2)."""
    names = components(path)
    if ".." in names:
        raise OSError(errno.EINVAL, "'..' in a layer path", path)
    if has_openat2() and names:
        try:
            return openat2(base_fd, "/".join(names), flags, BENEATH)
        except OSError as exc:
            # ELOOP/EXDEV: a symlink or mount on the way; the walk says which errno the
            # component-by-component answer is (ENOTDIR in the middle, ELOOP at the end).
            if exc.errno not in _WALK_INSTEAD and exc.errno not in (errno.ELOOP, errno.EXDEV):
                raise
    fd = os.open(".", DIR_FLAGS, dir_fd=base_fd)
    try:
        for name in names[:-1]:
            nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        if not names:
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=fd)
        return os.open(names[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def read_file(root_fd: int, path: str, limit: int = 4 << 20) -> bytes:
    """The first `limit` bytes of a regular file in the container (symlinks followed in
    the root); OSError(EINVAL) for anything else. Opened without blocking: a FIFO put in
    a file's place must not hold the daemon's thread until something writes to it."""
    fd = -1
    if has_openat2():  # one system call where the kernel has it, the same answer as the walk
        try:
            fd = openat2(root_fd, path.lstrip("/") or ".", os.O_RDONLY | os.O_NONBLOCK, IN_ROOT)
        except OSError as exc:
            if exc.errno not in _WALK_INSTEAD:
                raise
    if fd < 0:
        with resolve(root_fd, path) as found:
            fd = found.open(os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return f.read(limit)


class InRootPath:
    """Just enough of `pathlib.Path` for readers of a rootfs such as `bundle.resolve_user`
    (`/` to join, `read_text`), reading inside the container root instead of the host's."""

    def __init__(self, root_fd: int, path: str = "/"):
        self.root_fd, self.path = root_fd, path

    def __truediv__(self, name: str) -> InRootPath:
        return InRootPath(self.root_fd, self.path.rstrip("/") + "/" + name)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return read_file(self.root_fd, self.path).decode(encoding, errors)


@contextlib.contextmanager
def rooted(path) -> Iterator[InRootPath]:
    """The container root mounted at host path `path`, as an `InRootPath` for the block."""
    fd = os.open(path, DIR_FLAGS)
    try:
        yield InRootPath(fd)
    finally:
        os.close(fd)
