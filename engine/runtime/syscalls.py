"""The kernel calls berth makes itself (Python 3.11 has no os.setns/os.unshare).

Every mount, unmount and namespace switch goes through this one seam, so the rest of the
engine stays testable and the list of privileged operations stays short.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import fcntl
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MNT_DETACH = 0x2
CLONE_FS = 0x200
CLONE_NEWNS = 0x20000
CLONE_NEWNET = 0x40000000
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode(), flags,
                       data.encode() if data else None), f"mount {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def name_thread(name: str) -> None:
    """Name the calling thread as `ps -L` and profilers show it (15 bytes at most)."""
    _libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def _mounts(table: str) -> list[tuple[str, list[str]]]:
    """(mount point unescaped, optional fields such as `shared:1`) of each mount of a
    mountinfo `table`, in mount order."""
    found = []
    for line in table.splitlines():
        fields = line.split()
        found.append((fields[4].encode().decode("unicode_escape"), fields[6:fields.index("-")]))
    return found


def mountpoints(pid: int | str = "self") -> set[str]:
    """Mount points of a process's mount namespace (this one's by default), unescaped."""
    return {point for point, _ in _mounts(Path(f"/proc/{pid}/mountinfo").read_text())}


# The host's mount table, opened before this process left its mount namespace (berthd on a
# hybrid cgroup host): the descriptor goes on reading the namespace it was opened in.
_host_mountinfo = -1


def keep_host_mounts() -> None:
    """About to leave the host's mount namespace: keep a way to read its mount table."""
    global _host_mountinfo
    _host_mountinfo = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)


def _host_table() -> str:
    if _host_mountinfo < 0:
        return Path("/proc/self/mountinfo").read_text()
    os.lseek(_host_mountinfo, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(_host_mountinfo, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def mount_of(path: str) -> tuple[str, list[str]]:
    """The mount point `path` lies under on the host, and its optional fields (`shared:N`,
    `master:N`: its propagation; neither when private). The host's table, not this
    process's where it has a namespace of its own (berthd on a hybrid cgroup host, made
    a slave of the host's: there every shared mount of the host shows as a slave)."""
    path = os.path.realpath(path)
    best = ("/", [])
    for point, optional in _mounts(_host_table()):  # the last mount on a point is the one seen
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
            best = (point, optional)
    return best


def mark_top_dir(path: Path) -> bool:
    """Mark the directory `path` as a top of directory hierarchies (`chattr +T`), where
    the filesystem knows the flag (ext2/3/4); False where it does not.

    ext4 then places each subdirectory in a block group of its own choosing, as it does
    home directories, instead of packing them all into the parent's. Why it matters: ext4
    without a journal, when it allocates an inode, skips one by one every inode of the
    group freed in the last minute (six while its table block is unwritten). With every
    container's ~20 files in one group, each allocation in a burst that follows removals
    scanned thousands of them: a fifth of the machine's CPU (docs/performance.md)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & FS_TOPDIR_FL:
            flags[0] |= FS_TOPDIR_FL
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags, True)
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP: a filesystem without the flag (tmpfs, xfs), or read-only
        return False
    finally:
        os.close(fd)
