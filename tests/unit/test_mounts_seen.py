"""A container's overlay and namespace pin are seen mounted by their filesystem, which is
not their directory's; anything else is checked against the mount list."""

from __future__ import annotations

import os

import pytest

from engine.runtime import rootfs, syscalls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


def test_own_filesystem_seen_by_its_device(tmp_path):
    target = tmp_path / "merged"
    target.mkdir()
    assert not rootfs.holds_own_fs(target)
    assert not rootfs.holds_own_fs(tmp_path / "absent")
    syscalls.mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
    try:
        assert rootfs.holds_own_fs(target) and rootfs.is_mounted(target)
        rootfs.unmount(target, own_fs=True)
        assert not rootfs.holds_own_fs(target) and not rootfs.is_mounted(target)
    finally:
        if rootfs.is_mounted(target):
            syscalls.umount(str(target), syscalls.MNT_DETACH)


def test_bind_mount_from_the_same_filesystem_needs_the_mount_list(tmp_path):
    """What a volume's bind mount looks like: the device stays, so only `is_mounted`
    (which `unmount` uses unless told `own_fs`) sees it."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    syscalls.mount(str(source), str(target), "none", syscalls.MS_BIND)
    try:
        assert rootfs.is_mounted(target) and not rootfs.holds_own_fs(target)
        rootfs.unmount(target)
        assert not rootfs.is_mounted(target)
    finally:
        if rootfs.is_mounted(target):
            syscalls.umount(str(target), syscalls.MNT_DETACH)
