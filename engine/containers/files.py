"""A container's files from the daemon's side: `cp` (archive), `diff`, `export`.

Each operation holds the container's action lock for its whole run, so `start`, `stop`
and `rm` wait for it (dockerd holds its container lock the same way, until the archive
has been read). It works on the container's root as the daemon sees it:

* a running (or paused) container's mounted overlay, held by a descriptor taken after
  checking the mount is really there (if the container exits meanwhile, its unmount
  detaches lazily and our descriptor still reads the same tree);
* a created or exited one's overlay mounted for the time of the operation at its usual
  mount point, and unmounted after, even on cancellation;
* a container between runs of its restart policy is waited for, without holding its lock
  (so `stop` and `rm` go ahead): its supervisor may mount the overlay at any moment, and
  one upper dir must never be in two mounts.

A copy (`cp`, both ways, and its stat) sees the root as the container does: with its
volumes, bind mounts and /etc files mounted over it, in a private mount namespace of the
daemon's (`runtime.mountview`), as dockerd mounts them for a copy. So a copy lands in the
volume a path (or a symlink on it) leads to, a copy out of `/` holds the volumes' files,
and a file bind mount cannot be replaced (EBUSY, as dockerd says). `export` is the root
alone, as dockerd's.

`diff` needs no mount: it reads the upper dir, which exists either way. Paths inside the
container are resolved by `inroot` (never by the host's path functions), bulk work runs in
worker threads, and tars stream in ~1 MiB chunks both ways. On a hybrid cgroup host the
overlay mounts exist only in berthd's mount namespace: all of this runs inside berthd.

Events: `archive-path` when a GET archive starts streaming, `extract-to-dir` after a PUT
succeeded, `export` when an export starts streaming, as dockerd publishes them.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import h11
import msgspec
import outcome
import trio

from ..fs import diff as fsdiff, inroot, tarstream
from .. import timefmt
from .container import Container
from ..errors import BadRequest, Conflict, EngineError, Forbidden, NotFound, no_such_container
from ..lifecycle import State
from ..models import MountPoint
from ..images.store import ImageStore
from ..runtime import bundle, mountview, rootfs
from .records import Containers


T = TypeVar("T")

# Go's os.FileMode type bits (what the docker CLI decodes from the stat header).
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


class PathStat(msgspec.Struct):
    """Docker's `ContainerPathStat`, sent base64-encoded in `X-Docker-Container-Path-Stat`."""

    name: str
    size: int
    mode: int
    mtime: str
    linkTarget: str


class Sender(Protocol):
    async def send(self, data: bytes) -> None: ...


def go_file_mode(st_mode: int) -> int:
    """A POSIX st_mode as Go's os.FileMode (permission bits plus Go's type/flag bits)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFBLK: GO_MODE_DEVICE,
             stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE, stat.S_IFIFO: GO_MODE_NAMED_PIPE,
             stat.S_IFSOCK: GO_MODE_SOCKET}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


class _Target:
    """A path as a cp request names it, with Docker's reading of its spelling: a trailing
    `/` or `/.` asks for a directory (a final symlink is then followed), and the archive's
    top entry is named after the last element (`.` for `dir/.`, `/` for the root)."""

    def __init__(self, raw: str):
        if not raw:
            raise BadRequest("bad parameter: path cannot be empty")
        if "\0" in raw:
            raise BadRequest("bad parameter: path cannot hold a NUL byte")
        self.raw = raw
        self.path = posixpath.normpath("/" + raw.lstrip("/"))
        self.current_dir = raw == "." or raw.endswith("/.")
        self.follow = self.current_dir or raw.endswith("/")
        self.base = "." if self.current_dir else (posixpath.basename(self.path) or "/")


def _mount_holding(mounts: list[MountPoint], path: str) -> MountPoint | None:
    """The deepest bind or volume mount whose destination is `path` or holds it."""
    found = None
    for m in mounts:
        if m.type in ("bind", "volume") and m.source and (
                path == m.destination or path.startswith(m.destination.rstrip("/") + "/")):
            if found is None or len(m.destination) > len(found.destination):
                found = m
    return found


def _view_mounts(c: Container) -> list[mountview.BindMount]:
    """The container's volumes, bind mounts and own files, in the order its runtime
    mounts them (tmpfs mounts have nothing to show from outside)."""
    own = bundle.own_file_mounts(c.dir, bundle.joined(c.record.host_config.network_mode))
    return [mountview.BindMount(m["source"], m["destination"], "ro" in m["options"])
            for m in bundle.with_user_mounts([], own, c.record) if m["type"] == "bind"]


def _not_found(target: _Target, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {target.raw} in container {ref}")


def _find(root_fd: int, target: _Target, ref: str) -> inroot.Found:
    try:
        found = inroot.resolve(root_fd, target.path, follow=target.follow)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(target, ref) from None
    except OSError as exc:
        raise BadRequest(f"{target.raw}: {exc.strerror}") from None
    if target.follow and not stat.S_ISDIR(found.stat.st_mode):
        found.close()
        raise BadRequest(f"{target.raw}: not a directory")
    return found


def path_stat(root_fd: int, target: _Target, ref: str) -> PathStat:
    """What dockerd's `Stat` answers: the lstat of the path (a symlink as such unless the
    path asks for a directory), with the link's target resolved inside the container."""
    with _find(root_fd, target, ref) as found:
        st = found.stat
    link = ""
    if stat.S_ISLNK(st.st_mode):
        try:
            with inroot.resolve(root_fd, target.path, follow=True, missing_ok=True) as resolved:
                link = resolved.path
        except OSError as exc:  # a link loop, or a file where a directory should be
            raise BadRequest(f"{target.raw}: {exc.strerror}") from None
    return PathStat(name=target.base, size=st.st_size, mode=go_file_mode(st.st_mode),
                    mtime=timefmt.rfc3339(st.st_mtime_ns), linkTarget=link)


def archive_chunks(root_fd: int, target: _Target, ref: str) -> Iterator[bytes]:
    """The tar of the path: a directory whole under its base name, anything else alone."""
    found = _find(root_fd, target, ref)
    try:
        tar = tarstream.TarWriter()
        if stat.S_ISDIR(found.stat.st_mode):
            # moby renames the walk's "." to the base name; the root's base is "/", whose
            # entries come out as `/`, `/bin`, `/bin/sh`…
            yield from tar.add(found.dir_fd, found.name, target.base, found.stat)
            yield from tar.add_contents(found.dir_fd, found.name, target.base.rstrip("/") + "/")
        else:
            yield from tar.add(found.dir_fd, found.name, target.base, found.stat)
        yield from tar.finish()
    finally:
        found.close()


def export_chunks(root_fd: int) -> Iterator[bytes]:
    """The whole root filesystem as a tar of relative names (`bin/`, `bin/sh`, …)."""
    tar = tarstream.TarWriter()
    yield from tar.add_contents(root_fd, ".", "")
    yield from tar.finish()


# --- holding a container's root ---------------------------------------------------------


def _open_mounted(c: Container) -> int | None:
    """A descriptor on the container's mounted root, None if it is not mounted now."""
    fd = os.open(c.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # The mount point's own directory is on the host's filesystem; the overlay is not.
    if os.fstat(fd).st_dev != os.stat(c.dir).st_dev:
        return fd
    os.close(fd)
    return None


def _mount_and_open(lowers: list[Path], c: Container) -> int:
    rootfs.mount_overlay(lowers, c.upper, c.work, c.rootfs, volatile=c.volatile_layer)
    try:
        return os.open(c.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        rootfs.unmount(c.rootfs, own_fs=True)
        raise


def _release(fd: int, mountpoint: Path | None) -> None:
    os.close(fd)
    if mountpoint is not None:
        rootfs.unmount(mountpoint, own_fs=True)


def _check_present(c: Container, ref: str) -> None:
    if c.removed:
        raise no_such_container(ref)
    if c.state is State.REMOVING:
        raise Conflict(f"Container {c.id} is being removed")


async def send_chunks(chunks: Iterator[bytes], out: Sender) -> None:
    """Drive a chunk generator in worker threads and send each chunk as it comes."""
    try:
        while (chunk := await trio.to_thread.run_sync(next, chunks, None)) is not None:
            await out.send(chunk)
    finally:
        chunks.close()


async def feed_thread(chunks: AsyncIterator[bytes], consume: Callable[[BinaryIO], T]) -> T:
    """Run `consume(file)` in a worker thread on a pipe fed with `chunks`; return its
    result or raise its exception (as itself, not in an exception group).

    The pipe bounds memory and gives backpressure; if `consume` stops early (an error,
    or the end of the archive) the feeding stops at its next write. If the feeding fails
    (the client left mid-body), the pipe closes and `consume` sees the archive end early."""
    read_end, write_end = os.pipe()

    async def feed() -> None:
        try:
            async with trio.lowlevel.FdStream(write_end) as pipe:
                async for chunk in chunks:
                    await pipe.send_all(chunk)
        except (trio.BrokenResourceError, h11.RemoteProtocolError, OSError):
            pass  # the reader is done, or the client is gone: the reader sees the end

    # `feed` closes the write end whatever happens (even cancelled before its first
    # checkpoint), so the reader always sees an end; the read end is closed here.
    with os.fdopen(read_end, "rb", buffering=0) as src:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            result = await outcome.acapture(trio.to_thread.run_sync, consume, src)
            nursery.cancel_scope.cancel()  # the reader has finished: stop feeding it
    return result.unwrap()


# --- the operations ----------------------------------------------------------------------


def _changes(upper: Path, lowers: list[Path]) -> list[fsdiff.Change]:
    if not upper.exists():  # created, never started: nothing written yet
        return []
    with fsdiff.ImageLayers(lowers[::-1]) as image:
        return fsdiff.api_changes(fsdiff.walk(upper, image))


class Files:
    """The files of containers: paths resolved inside their roots, held under their locks."""

    def __init__(self, containers: Containers, images: ImageStore):
        self.containers = containers
        self.images = images

    def lower_dirs(self, c: Container) -> list[Path]:
        """The unpacked layers of the container's image, bottom first."""
        image = self.images.images.get(c.record.image_id)
        if image is None:
            raise EngineError(f"image {c.record.image_id} of container {c.name} is gone")
        return [self.images.layer_dir(chain) for chain in self.images.layer_chain(image)]

    @asynccontextmanager
    async def locked(self, ref: str) -> AsyncIterator[Container]:
        """The container, under its action lock (404 if it is gone, 409 while it is removed)."""
        c = self.containers.get(ref)
        async with c.lock:
            _check_present(c, ref)
            yield c

    async def _open_root(self, c: Container) -> tuple[int, bool] | None:
        """(root descriptor, whether we mounted it), or None if the supervisor may mount or
        unmount it any moment now. Shielded: a mount made or a descriptor opened by the
        thread must reach the caller's `finally` even if the request is cancelled meanwhile."""
        with trio.CancelScope(shield=True):
            if not c.supervised:
                return await trio.to_thread.run_sync(_mount_and_open, self.lower_dirs(c), c), True
            if c.has_process:
                fd = await trio.to_thread.run_sync(_open_mounted, c)
                return None if fd is None else (fd, False)
        return None

    @asynccontextmanager
    async def container_root(self, ref: str) -> AsyncIterator[tuple[Container, int]]:
        """(container, descriptor of its root directory), under the container's lock."""
        c = self.containers.get(ref)
        while True:
            await c.lock.acquire()
            try:
                _check_present(c, ref)
                opened = await self._open_root(c)
            except BaseException:
                c.lock.release()
                raise
            if opened is not None:
                break
            # Between runs of its restart policy (or being torn down): wait for the next change
            # without the lock, so that `stop` and `rm` are not held up by a waiting copy.
            changed = c.changed
            c.lock.release()
            await changed.wait()
        fd, mounted_here = opened
        try:
            yield c, fd
        finally:
            try:
                with trio.CancelScope(shield=True):  # an unmount must happen even when cancelled
                    await trio.to_thread.run_sync(_release, fd, c.rootfs if mounted_here else None)
            finally:
                c.lock.release()

    @asynccontextmanager
    async def container_view(self, ref: str) -> AsyncIterator[tuple[Container, mountview.View]]:
        """(container, its root as it sees it: volumes, binds and own files mounted), under
        the container's lock, for a copy (an export does without: dockerd's leaves the
        volumes out)."""
        while True:
            async with self.container_root(ref) as (c, fd):
                held = os.fstat(fd)
                with trio.CancelScope(shield=True):  # a view the thread made must reach the `finally`
                    try:
                        view = await trio.to_thread.run_sync(mountview.View, c.rootfs, _view_mounts(c),
                                                             c.dir.parent.parent, held)
                    except mountview.RootGone:
                        view = None  # its run ended meanwhile (the descriptor held its root): again
                if view is not None:
                    try:
                        yield c, view
                    finally:
                        view.close()
                    return

    async def stat_path(self, ref: str, path: str) -> PathStat:
        """`HEAD /containers/{id}/archive?path=`: the path's stat."""
        async with self.container_view(ref) as (_, view):
            return await trio.to_thread.run_sync(path_stat, view.root_fd, _Target(path), ref)

    async def archive_path(self, ref: str, path: str,
                           open_stream: Callable[[PathStat], Awaitable[Sender]]) -> None:
        """`GET /containers/{id}/archive?path=`: stat, then `open_stream(stat)` and the tar."""
        async with self.container_view(ref) as (c, view):
            target = _Target(path)
            found = await trio.to_thread.run_sync(path_stat, view.root_fd, target, ref)
            self.containers.publish(c, "archive-path")
            out = await open_stream(found)
            await send_chunks(archive_chunks(view.root_fd, target, ref), out)

    async def extract_to_dir(self, ref: str, path: str, body: AsyncIterator[bytes], *,
                             no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        """`PUT /containers/{id}/archive?path=`: extract the tar in `body` into the directory."""
        target = _Target(path)
        async with self.container_view(ref) as (c, view):
            root_fd = view.root_fd

            def prepare() -> tuple[str, tuple[int, int] | None]:
                try:
                    found = inroot.resolve(root_fd, target.path, follow=True)  # a link to a dir is fine
                except (FileNotFoundError, NotADirectoryError):
                    raise _not_found(target, ref) from None
                except OSError as exc:  # a name too long, a link loop: the path asked for is bad
                    raise BadRequest(f"{target.raw}: {exc.strerror}") from None
                with found:
                    if not stat.S_ISDIR(found.stat.st_mode):
                        raise BadRequest("extraction point is not a directory")
                    dest = found.path
                owner = None
                if copy_uid_gid and c.record.config.user:
                    uid, gid, _ = bundle.resolve_user(inroot.InRootPath(root_fd), c.record.config.user)
                    owner = (uid, gid)
                return dest, owner

            dest, owner = await trio.to_thread.run_sync(prepare)
            mount = _mount_holding(c.record.mounts, dest)  # where the copy lands, symlinks followed
            if mount is not None and not mount.rw:
                raise Forbidden("mounted volume is marked read-only")
            if mount is None and c.record.host_config.readonly_rootfs:
                raise Forbidden("container rootfs is marked read-only")
            await feed_thread(body, lambda src: view.call(
                tarstream.extract, src, root_fd, dest, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, chown_to=owner))
            self.containers.publish(c, "extract-to-dir")

    async def export(self, ref: str, open_stream: Callable[[], Awaitable[Sender]]) -> None:
        """`GET /containers/{id}/export`: the flattened root filesystem as a tar stream."""
        async with self.container_root(ref) as (c, root_fd):
            if c.state is State.DEAD:
                raise Conflict(f"You cannot export container {c.id} which is Dead")
            self.containers.publish(c, "export")
            out = await open_stream()
            await send_chunks(export_chunks(root_fd), out)

    async def changes(self, ref: str) -> list[fsdiff.Change]:
        """`GET /containers/{id}/changes`: the writable layer against the image."""
        async with self.locked(ref) as c:
            lowers = self.lower_dirs(c)
            return await trio.to_thread.run_sync(_changes, c.upper, lowers)
