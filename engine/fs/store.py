"""Files on disk: every piece of state berth keeps is written through `atomic_write`, every
log and journal record through `append_whole`; `tree_size` measures what a directory holds.

A reader after a crash (kill -9 at any instant) sees either the old file or the new one,
never a torn mix: write a temp file in the same directory, fsync it, rename it over the
target, fsync the directory so the rename itself is durable. A write that fails (a full
disk: `errors.InsufficientStorage`, naming the file) leaves the old file as it was and no
temp file behind. Each write has a temp file of its own (as dockerd's atomic writer), so two
writes of one file at once never write into, or rename away, each other's; which of them
lands last is for the caller to order (`Containers.save` does for records). A crash in
the middle of a write can leave its temp file (`.NAME.*.tmp`), which nothing reads.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..errors import NO_SPACE, no_space
from . import tree


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically and, unless not `durable`, durably. Not
    durable: atomic against the daemon's death only (what lives no longer than the
    machine's uptime, as a running container's state), without the cost of two flushes."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    created = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        created = True
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        if created:
            tmp.unlink(missing_ok=True)
        if exc.errno in NO_SPACE:
            raise no_space(exc, str(path)) from None
        raise
    if durable:
        fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`, or raise what stopped it: a nearly full disk takes part of a
    write, and refuses the rest with ENOSPC."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_whole(fd: int, data: bytes, size: int) -> None:
    """Append `data` to the file open on `fd` (O_APPEND), `size` bytes long: all of it, or
    none (the file cut back to `size`, so it still ends with a whole record) and the
    OSError that stopped it."""
    try:
        write_all(fd, data)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass  # shrinking needs no space; the write's error is the one to tell
        raise


def fsync_dir(path: Path) -> None:
    """Make renames and creations inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(path: Path) -> int:
    """Bytes in the files below `path` (what removing it frees, hard links aside)."""
    total = 0
    for dirpath, _, files in tree.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
