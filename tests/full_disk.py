"""A small filesystem of the test's own that can be filled to the last byte: a tmpfs,
mounted for the test and unmounted after it, so a full disk is real (ENOSPC from the
kernel, short writes included) and the machine's own disk is never touched."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_filesystem(size: str = "8m") -> Iterator[Path]:
    """A fresh tmpfs of `size`, mounted on a new directory, gone afterwards."""
    point = Path(tempfile.mkdtemp(prefix="berth-small-fs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def fill(directory: Path) -> Path:
    """Take every free byte of `directory`'s filesystem with one file; returns it (unlink it
    to give the space back)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = 1 << 16
        while size:  # halving at the end, so that not even a small write fits
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler
