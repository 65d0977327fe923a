"""A container's root as the container sees it, for `cp`: its volumes, bind mounts and
own files (/etc/hosts…) mounted over it, in a private mount namespace of the daemon's.

The runtime makes those mounts in the container's own namespace, which a stopped
container no longer has and the daemon never enters. Without them a copy into a path
that is a volume's lands in the writable layer under the mount (hidden from the
container, kept by a commit), a copy out of an ancestor returns empty mount points, and
a symlink into a volume leads nowhere. dockerd mounts the volumes over the root for a
copy; so does berth, but where nobody else sees them:

* a short-lived thread unshares its mount namespace (a copy of the daemon's, the
  container's overlay included), makes every mount in it private (so nothing it mounts
  propagates back, even where / is shared), and bind-mounts each source at its
  destination, resolved inside the root (`inroot`: a symlink in the container cannot
  aim a mount at the host), parents first, read-only ones read-only;
* it hands back a descriptor on the root in that namespace, and one on the namespace
  itself, then ends. Lookups from the root descriptor cross into the mounts; the
  namespace lives as long as its descriptor is open, and closing it takes every mount of
  the view down with it, even if the daemon is killed;
* what writes (an extraction) runs in a thread that joins the namespace (`View.call`),
  so that the kernel refuses to replace a mount point there (EBUSY), as it refuses
  dockerd, instead of detaching the container's own mount.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from ..errors import EngineError
from ..fs import inroot
from . import syscalls

T = TypeVar("T")


class BindMount(NamedTuple):
    """A host path (a volume's data, a bind source, a file of the container's) mounted
    at `destination` inside the container."""

    source: str
    destination: str
    read_only: bool


class View:
    """A directory descriptor (`root_fd`) on `root`, a mounted container root, with
    `mounts` over it (parents listed before what they contain), until `close()`. The
    daemon's other mounts under `daemon_root` (other containers' roots and namespaces)
    are detached from the view, which must not keep them alive. Blocking: build it in a
    worker thread. `held` is the stat of the root the caller holds: if `root` no longer
    leads there (the container's run ended and its mount went meanwhile), RootGone."""

    def __init__(self, root: Path, mounts: list[BindMount], daemon_root: Path, held: os.stat_result):
        self.root_fd, self._ns_fd = _in_thread(_build, root, mounts, daemon_root, held)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` in a thread of its own inside the view's namespace (blocking): what
        replaces or removes files must be, for the kernel to refuse (EBUSY) what would
        detach a mount (a file bind mount, the container's /etc/hosts) in every
        namespace, as it refuses it to dockerd. Lookups alone need not: they cross the
        view's mounts from `root_fd` wherever they run."""
        def joined() -> T:
            syscalls.unshare(syscalls.CLONE_FS)  # a thread joins a mount namespace only with its own cwd and root
            syscalls.setns(self._ns_fd, syscalls.CLONE_NEWNS)
            return fn(*args, **kwargs)
        return _in_thread(joined)

    def close(self) -> None:
        """Close the view: its namespace, and every mount in it, goes."""
        if self._ns_fd >= 0:
            os.close(self.root_fd)
            os.close(self._ns_fd)
            self._ns_fd = -1


def _in_thread(fn: Callable[..., T], *args) -> T:
    """`fn(*args)` in a new thread, which ends with it (and so does any namespace it
    entered); its result, or its exception raised here."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="berth-mountview")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


class RootGone(Exception):
    """The root the caller holds is no longer mounted where it was."""


def _build(root: Path, mounts: list[BindMount], daemon_root: Path, held: os.stat_result) -> tuple[int, int]:
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount("none", "/", "", syscalls.MS_REC | syscalls.MS_PRIVATE)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        found = os.fstat(root_fd)
        if (found.st_dev, found.st_ino) != (held.st_dev, held.st_ino):
            raise RootGone(str(root))
        for m in mounts:
            _bind(root_fd, m)
        _detach_others(str(daemon_root), str(root))
        return root_fd, os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(root_fd)
        raise


def _detach_others(daemon_root: str, root: str) -> None:
    """Detach this namespace's copies of the daemon's mounts other than the view's."""
    for point in sorted(syscalls.mountpoints("thread-self"), key=len, reverse=True):
        if point.startswith(daemon_root + "/") and point != root and not point.startswith(root + "/"):
            try:
                syscalls.umount(point, syscalls.MNT_DETACH)
            except OSError:
                pass  # under one detached already


def _bind(root_fd: int, m: BindMount) -> None:
    try:
        is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
    except FileNotFoundError:
        return  # a bind source gone from the host: the container's own path it is
    try:
        with inroot.resolve(root_fd, m.destination, missing_ok=True, make_dirs=True) as found:
            if found.stat is None:  # never started: the mount point the runtime would make
                if is_dir:
                    os.mkdir(found.name, 0o755, dir_fd=found.dir_fd)
                else:
                    os.close(found.open(os.O_CREAT | os.O_WRONLY | os.O_EXCL))
            target = found.open(os.O_PATH)
            try:
                if stat.S_ISDIR(os.fstat(target).st_mode) != is_dir:
                    raise NotADirectoryError(f"{m.destination} and {m.source} are not both directories")
                syscalls.mount(m.source, f"/proc/thread-self/fd/{target}", "", syscalls.MS_BIND | syscalls.MS_REC)
            finally:
                os.close(target)
            if m.read_only:
                mounted = found.open(os.O_PATH)  # the same name now leads into the mount
                try:
                    syscalls.mount("", f"/proc/thread-self/fd/{mounted}", "",
                                   syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
                finally:
                    os.close(mounted)
    except OSError as exc:
        raise EngineError(f"cannot mount {m.source} at {m.destination} for the copy: {exc.strerror or exc}") from None
