"""A container's root filesystem: an overlay of the image layers and a writable upper dir.

The layers are shared read-only lower directories; `upper` and `work` belong to the
container and are deleted with it, which is what makes the writable layer die with the
container.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from . import syscalls


def mount_overlay(lowers: list[Path], upper: Path, work: Path, merged: Path, *, volatile: bool = False) -> None:
    """Mount `merged` as overlay(lowers bottom-first, upper); idempotent. `volatile`, for
    a writable layer nobody keeps (an AutoRemove container's): the overlay never syncs
    its upper filesystem, neither for the container's fsyncs nor at the unmount, where
    the sync flushed the dirty data of the whole filesystem the layer lives on (a
    kernel before 5.10, without the option, mounts it as any other)."""
    if holds_own_fs(merged):
        return
    fresh = not upper.exists()
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    if fresh:  # dockerd's init layer gives every container an empty /.dockerenv (scripts look for it)
        os.close(os.open(upper / ".dockerenv", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755))
    # overlayfs lists lower directories top-most first.
    lower = ":".join(str(p) for p in reversed(lowers))
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if volatile:
        # An earlier volatile mount's mark (a directory) would refuse this one; what it
        # guards, a layer known to be synced, is not wanted here.
        shutil.rmtree(work / "work" / "incompat" / "volatile", ignore_errors=True)
        try:
            syscalls.mount("overlay", str(merged), "overlay", 0, options + ",volatile")
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    syscalls.mount("overlay", str(merged), "overlay", 0, options)


def unmount(merged: Path, *, own_fs: bool = False) -> None:
    """Unmount `merged` if it is mounted; detach lazily if something still holds it.
    `own_fs`: only a filesystem of its own is ever mounted there (see `holds_own_fs`)."""
    if not (holds_own_fs(merged) if own_fs else is_mounted(merged)):
        return
    try:
        syscalls.umount(str(merged))
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        syscalls.umount(str(merged), syscalls.MNT_DETACH)


def is_mounted(path: Path) -> bool:
    """Whether anything is mounted on `path`, a bind mount from the same filesystem too."""
    return str(path) in syscalls.mountpoints()


def holds_own_fs(path: Path) -> bool:
    """Whether `path` is the root of another filesystem than its directory's, as an
    overlay or a namespace pinned on a file is: two stats, where reading the namespace's
    mount list costs ~1 µs a line (two lines per running container) on every start and
    exit. A bind mount from the same filesystem does not show: `is_mounted` for those."""
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except (FileNotFoundError, NotADirectoryError):
        return False
