"""Devices a container may use: Docker's default allow-list, and the host's for `--privileged`.

By default the runtime creates /dev/null, zero, full, random, urandom and tty (and
/dev/console with a terminal, /dev/ptmx → pts/ptmx) on the container's /dev tmpfs, and
the device cgroup lets the container use those and its pseudo-terminals, and mknod
(`m`) any device without using it. A privileged container gets every device node of the
host's /dev (as runc's `HostDevices` finds them) and may use any device.
"""

from __future__ import annotations

import os
import stat

# (major, minor) of the character devices usable by default: null, zero, full, random,
# urandom, tty, console, ptmx
DEFAULT_CHAR = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)]
PTS_MAJOR = 136
# /dev subdirectories that hold no host devices of their own (as runc skips them)
_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def default_rules() -> list[dict]:
    """The OCI `linux.resources.devices` of an unprivileged container."""
    return ([{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": PTS_MAJOR, "access": "rwm"},
             {"allow": True, "type": "c", "access": "m"},
             {"allow": True, "type": "b", "access": "m"}]
            + [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for ma, mi in DEFAULT_CHAR])


def privileged_rules() -> list[dict]:
    return [{"allow": True, "access": "rwm"}]


def host_devices(root: str = "/dev") -> list[dict]:
    """Every character and block device node below `root` (not /dev/console, not through
    symlinks, not in pts, shm, mqueue, fd), as OCI `linux.devices` entries at the same
    path below the container's /dev."""
    found: list[dict] = []

    def walk(directory: str) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in _SKIP_DIRS:
                    walk(entry.path)
            elif entry.path == f"{root}/console":
                continue
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append({"path": "/dev" + entry.path[len(root):], "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                              "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})

    walk(root)
    return sorted(found, key=lambda d: d["path"])
