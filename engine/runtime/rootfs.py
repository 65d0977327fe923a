"""A container's root filesystem: an overlay of the image layers and a writable upper dir.

The layers are shared read-only lower directories; `upper` and `work` belong to the
container and are deleted with it, which is what makes the writable layer die with the
container.
"""

from __future__ import annotations

import errno
from pathlib import Path

from . import syscalls


def mount_overlay(lowers: list[Path], upper: Path, work: Path, merged: Path) -> None:
    """Mount `merged` as overlay(lowers bottom-first, upper); idempotent."""
    if is_mounted(merged):
        return
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    # overlayfs lists lower directories top-most first.
    lower = ":".join(str(p) for p in reversed(lowers))
    syscalls.mount("overlay", str(merged), "overlay", 0, f"lowerdir={lower},upperdir={upper},workdir={work}")


def unmount(merged: Path) -> None:
    """Unmount `merged` if it is mounted; detach lazily if something still holds it."""
    if not is_mounted(merged):
        return
    try:
        syscalls.umount(str(merged))
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        syscalls.umount(str(merged), syscalls.MNT_DETACH)


def is_mounted(path: Path) -> bool:
    return str(path) in syscalls.mountpoints()
