"""The directories holding one subdirectory per container are marked as tops of directory
hierarchies (`chattr +T`) where the filesystem keeps the flag, and left alone elsewhere."""

from __future__ import annotations

import array
import fcntl
import os

import pytest

from engine.runtime import syscalls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="inode flags and mounts need root")


def _flags(path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, syscalls.FS_IOC_GETFLAGS, flags, True)
        return flags[0]
    finally:
        os.close(fd)


def test_marked_where_the_filesystem_keeps_inode_flags(tmp_path):
    containers = tmp_path / "containers"
    containers.mkdir()
    if not syscalls.mark_top_dir(containers):
        pytest.skip("the test directory's filesystem keeps no inode flags")
    before = _flags(tmp_path)
    assert _flags(containers) & syscalls.FS_TOPDIR_FL
    assert syscalls.mark_top_dir(containers)  # again: nothing changes
    assert _flags(containers) & syscalls.FS_TOPDIR_FL and _flags(tmp_path) == before


def test_a_filesystem_without_inode_flags_is_left_alone(tmp_path):
    target = tmp_path / "tmpfs"
    target.mkdir()
    syscalls.mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
    try:
        assert not syscalls.mark_top_dir(target)
    finally:
        syscalls.umount(str(target))
