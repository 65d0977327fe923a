"""Directory trees of any depth: removed and walked without recursion.

Python 3.11's `shutil.rmtree` and `os.walk` take a Python frame per level, so a tree a
container, an image or a build context makes a few thousand levels deep raises
RecursionError (which `ignore_errors` does not catch) wherever the daemon removes or
walks it. `remove` works through descriptors, one open directory at a time: it goes
down by name and comes back up by `..`, checking that each parent is still the
directory it came from, and never follows a symlink. `walk` is `os.walk` with a stack.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator

log = logging.getLogger("berth.fs")

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove(path: str | os.PathLike, *, dir_fd: int | None = None, ignore_errors: bool = False) -> None:
    """Remove `path` and everything below it (a file or a symlink: that alone); nothing
    there is no error. With `ignore_errors`, a failure leaves what could not go, logged."""
    try:
        _remove(os.fspath(path), dir_fd)
    except OSError as exc:
        if not ignore_errors:
            raise
        log.warning("could not remove %s: %s", path, exc)


def _remove(path: str, dir_fd: int | None) -> None:
    try:
        st = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path, dir_fd=dir_fd)
        return
    fd = os.open(path, _DIR, dir_fd=dir_fd)
    ids = [_identity(os.fstat(fd))]  # the directories on the way down, each checked on the way up
    names: list[str] = []
    try:
        while True:
            child = _clear_files(fd)
            if child is not None:
                sub = os.open(child, _DIR, dir_fd=fd)
                os.close(fd)
                fd = sub
                names.append(child)
                ids.append(_identity(os.fstat(fd)))
                continue
            if not names:
                break
            parent = os.open("..", _DIR, dir_fd=fd)
            os.close(fd)
            fd = parent
            ids.pop()
            if _identity(os.fstat(fd)) != ids[-1]:  # moved meanwhile: never remove elsewhere
                raise OSError(errno.ESTALE, "a directory was moved while it was removed", path)
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path, dir_fd=dir_fd)


def _clear_files(fd: int) -> str | None:
    """Unlink every non-directory in the directory `fd`; the name of a subdirectory left, if any."""
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    return entry.name
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                continue
    return None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def walk(top: str | os.PathLike, *, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(top, topdown)` without recursion: (dirpath, dirnames, filenames), symlinks
    to directories among the files and not followed, unreadable directories skipped;
    with `topdown`, the caller may sort or prune `dirnames` in place."""
    stack: list[str | tuple[str, list[str], list[str]]] = [os.fspath(top)]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            yield item
            continue
        try:
            with os.scandir(item) as it:
                entries = list(it)
        except OSError:
            continue
        dirs, files = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry.name)
        if topdown:
            yield item, dirs, files
        else:
            stack.append((item, dirs, files))
        stack.extend(os.path.join(item, name) for name in reversed(dirs))
