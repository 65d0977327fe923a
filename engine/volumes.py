"""Volumes: the `local` driver's store, what containers mount from it, and its events.

**On disk** (`<root>/volumes/<name>/`): `volume.json` (a `VolumeRecord`, written with
`atomic_write`) and `_data`, the directory containers see. A directory without
`volume.json` is a create or remove cut short by a crash and is deleted at load (create
writes `_data` first and the record last; remove deletes the record first).

**Device volumes.** Driver options `type`/`device`/`o` (`type=tmpfs,device=tmpfs,o=size=64m`
or `type=none,o=bind,device=/host/dir`) make `_data` a mount point: the device is mounted
there when the first container using the volume starts a run and unmounted when the last
one's run ends — dockerd's local driver counts users the same way. Between runs `_data`
is an empty directory, so removing a volume never reaches into a bind's host directory
(it is unmounted, and checked, before anything is deleted). On a hybrid cgroup host the
daemon lives in a mount namespace of its own, so these mounts exist only there; after a
crash elsewhere, `load` unmounts what the previous daemon left.

**Seeding.** A volume mounted with `copy_data` (any volume mount without `nocopy`) that is
empty when a run starts is filled with what the container's root holds at the mount's
destination (the image's content there), keeping modes, owners, times and links, and
`_data` takes that directory's owner and mode — dockerd's rule, checked at every start.

**In use.** A volume is in use while any container (running or not) lists it among its
mounts: such a volume cannot be removed (409, even forced) or pruned.

**Events** (`Type` volume, `Actor.ID` the name, `driver` attribute): `create`, `mount`
(`container`, `destination`, `read/write`, `propagation`) and `unmount` (`container`) per
container run, `destroy`, and `prune` (`reclaimed`).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import msgspec
import trio

from .events import filters as flt
from .fs import inroot, tarstream, tree
from .events.bus import Bus
from .containers.container import Container
from .containers.files import feed_thread
from .errors import BadRequest, Conflict, EngineError, NotFound, StartFailed
from .events import constructors
from .models import MountPoint, VolumeCreateRequest, VolumeRecord
from .containers.mounts import ANONYMOUS_LABEL, check_volume_name
from .runtime import rootfs, syscalls
from .fs.store import atomic_write, fsync_dir, tree_size

log = logging.getLogger("berth.volumes")

LIST_FILTERS = ("name", "label", "dangling", "driver")
PRUNE_FILTERS = ("label", "label!", "all")
DRIVER_OPTIONS = ("type", "device", "o")
_TRUE, _FALSE = ("1", "true"), ("0", "false")
# mount(2) flags that `o=` may name; the other words are the filesystem's own data.
_MS_REMOUNT = 0x20
_FLAGS = {"ro": syscalls.MS_RDONLY, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "sync": 0x10,
          "noatime": 0x400, "nodiratime": 0x800, "relatime": 0x200000, "strictatime": 0x1000000,
          "bind": syscalls.MS_BIND, "rbind": syscalls.MS_BIND | syscalls.MS_REC, "rw": 0}


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # Docker's volume CreatedAt: whole seconds


def _check_options(opts: dict[str, str]) -> dict[str, str]:
    """The local driver's options, as dockerd validates them."""
    for key in opts:
        if key not in DRIVER_OPTIONS:
            raise BadRequest(f'invalid option: "{key}"')
    if opts:
        for key in ("type", "device"):
            if not opts.get(key):
                raise BadRequest(f'missing required option: "{key}"')
    return dict(opts)


def mount_device(options: dict[str, str], target: Path) -> None:
    """Mount a device volume's `device` at `target` as `type` with the `o` options."""
    flags, data = 0, []
    for word in filter(None, options.get("o", "").split(",")):
        if word in _FLAGS:
            flags |= _FLAGS[word]
        else:
            data.append(word)
    if flags & syscalls.MS_BIND:
        binding = flags & (syscalls.MS_BIND | syscalls.MS_REC)
        syscalls.mount(options["device"], str(target), "none", binding)
        rest = flags & ~binding
        if rest:  # a bind takes its other flags only from a remount
            syscalls.mount("none", str(target), "none", _MS_REMOUNT | syscalls.MS_BIND | rest)
    else:
        syscalls.mount(options["device"], str(target), options["type"], flags, ",".join(data))


class VolumeUsage(NamedTuple):
    """One volume in `system df`."""

    volume: VolumeRecord
    size: int  # bytes of its content
    users: int  # containers (running or not) that mount it


class Volumes:
    """The volume store of one daemon; `users` names the containers that mount a volume
    (what decides whether it is in use: `Containers.using_volume`)."""

    def __init__(self, root: Path, bus: Bus, users: Callable[[str], list[str]]):
        self.root = root
        self.bus = bus
        self.users = users
        self.volumes: dict[str, VolumeRecord] = {}
        self._users: dict[str, set[str]] = {}  # volume → containers whose current run mounts it
        self._out_of_reach: set[str] = set()  # device volumes adopted users hold that this daemon could not mount
        self._attached: dict[str, list[MountPoint]] = {}  # container → its volume mounts this run
        self.lock = trio.Lock()  # one change of the store or of device mounts at a time

    # --- paths and lookups ----------------------------------------------------

    def data_path(self, name: str) -> Path:
        """Where a volume's content lives (its `Mountpoint`)."""
        return self.root / name / "_data"

    def get(self, name: str) -> VolumeRecord:
        try:
            return self.volumes[name]
        except KeyError:
            raise NotFound(f"get {name}: no such volume") from None

    def list(self, filters: flt.Filters | None = None) -> list[VolumeRecord]:
        """Volumes by name, filtered as `GET /volumes` (name, label, dangling, driver)."""
        f = flt.check(filters, LIST_FILTERS)
        dangling = None
        for value in f.get("dangling", []):
            if value.lower() not in _TRUE + _FALSE:
                raise BadRequest(f"Invalid filter 'dangling={value}'")
            dangling = value.lower() in _TRUE
        out = []
        for vol in sorted(self.volumes.values(), key=lambda v: v.name):
            if "name" in f and not any(_name_match(p, vol.name) for p in f["name"]):
                continue
            if "label" in f and not flt.label_match(f["label"], vol.labels):
                continue
            if "driver" in f and vol.driver not in f["driver"]:
                continue
            if dangling is not None and (not self.users(vol.name)) != dangling:
                continue
            out.append(vol)
        return out

    async def usage(self) -> list[VolumeUsage]:
        """Every volume by name, with its size and users."""
        return [VolumeUsage(vol, await trio.to_thread.run_sync(tree_size, self.data_path(vol.name)),
                            len(self.users(vol.name))) for vol in self.list()]

    # --- start-up ------------------------------------------------------------------

    def load(self) -> None:
        """Read every volume's record; finish what a crash cut short (blocking: run it in a
        worker thread, before any container is recovered)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir():
                continue
            record = directory / "volume.json"
            if not record.exists():
                _delete_dir(directory)
                continue
            vol = msgspec.json.decode(record.read_bytes(), type=VolumeRecord)
            self.volumes[vol.name] = vol

    async def settle(self) -> None:
        """After the containers a previous daemon left running were adopted: unmount the
        device mounts it left that none of them uses (a crash's leftovers)."""
        async with self.lock:
            for name, vol in self.volumes.items():
                if vol.options and not self._users.get(name):
                    await trio.to_thread.run_sync(rootfs.unmount, self.data_path(name))

    # --- create, remove, prune --------------------------------------------------------

    async def create(self, req: VolumeCreateRequest) -> VolumeRecord:
        """`POST /volumes/create`: a new volume, or the existing one of that name."""
        driver = req.driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        name = req.name or secrets.token_hex(32)
        check_volume_name(name)
        options = _check_options(req.driver_opts or {})
        async with self.lock:
            existing = self.volumes.get(name)
            if existing is not None:
                return existing
            vol = VolumeRecord(name=name, created_at=_created_at(), labels=dict(req.labels or {}), options=options)
            await trio.to_thread.run_sync(self._write_new, vol)
            self.volumes[name] = vol
        self._publish(vol, "create")
        return vol

    def _write_new(self, vol: VolumeRecord) -> None:
        self.data_path(vol.name).mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(self.root / vol.name / "volume.json", msgspec.json.encode(vol))

    async def remove(self, name: str, force: bool = False) -> None:
        """`DELETE /volumes/{name}`: 409 while a container uses it (forced or not); a
        missing volume is a 404, or nothing with `force`."""
        async with self.lock:
            vol = self.volumes.get(name)
            if vol is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            await trio.to_thread.run_sync(_delete_dir, self.root / name)
            del self.volumes[name]
        self._publish(vol, "destroy")

    async def prune(self, filters: flt.Filters | None = None) -> tuple[list[str], int]:
        """Remove unused volumes; returns (names, bytes reclaimed).

        berth speaks API 1.41, where prune takes every unused local volume (dockerd 23+
        does so for clients below 1.42, and the docker CLI 28 warns so); the `all=false`
        filter narrows it to anonymous ones, as newer API versions do by default."""
        f = dict(flt.check(filters, PRUNE_FILTERS))
        all_ = True
        for value in f.pop("all", []):
            if value.lower() not in _TRUE + _FALSE:
                raise BadRequest(f"invalid filter 'all={value}'")
            all_ = value.lower() in _TRUE
        gone, reclaimed = [], 0
        for vol in list(self.volumes.values()):
            if not all_ and ANONYMOUS_LABEL not in vol.labels:
                continue
            if f.get("label") and not flt.label_match(f["label"], vol.labels):
                continue
            if f.get("label!") and any(flt.label_match([item], vol.labels) for item in f["label!"]):
                continue
            if self.users(vol.name):
                continue
            size = await trio.to_thread.run_sync(tree_size, self.data_path(vol.name))
            try:
                await self.remove(vol.name)
            except EngineError:
                continue  # taken into use or removed meanwhile
            gone.append(vol.name)
            reclaimed += size
        self.bus.publish(constructors.pruned("volume", reclaimed))
        return gone, reclaimed

    async def provide(self, wanted: list[VolumeCreateRequest]) -> None:
        """Create the volumes a new container names that do not exist yet (`-v name:/p`
        creates `name` on first use; anonymous ones are always new)."""
        for req in wanted:
            if req.name not in self.volumes:
                await self.create(req)

    async def release(self, c: Container, remove_anonymous: bool) -> None:
        """After `c` was removed: with `remove_anonymous` (`rm -v`, AutoRemove) remove the
        anonymous volumes it created, unless another container uses them too."""
        if not remove_anonymous:
            return
        for m in c.record.mounts:
            if m.type == "volume" and m.anonymous:
                try:
                    await self.remove(m.name)
                except (Conflict, NotFound):
                    pass  # shared with another container, or already gone: dockerd keeps quiet too

    # --- a container's runs ----------------------------------------------------------

    async def attach(self, c: Container) -> None:
        """Before a run of `c` (its root mounted): make missing bind sources, mount device
        volumes for their first user, seed empty volumes; publish `mount` per volume.
        Raises StartFailed (what the runtime's own failures are) when a mount fails."""
        points = [m for m in c.record.mounts if m.type == "volume"]
        binds = [m for m in c.record.mounts if m.type == "bind"]
        try:
            for m in binds:  # dockerd creates a missing `-v` host directory at start
                await trio.to_thread.run_sync(_make_missing_dir, m.source)
            async with self.lock:
                for m in points:
                    vol = self.volumes.get(m.name)
                    if vol is None:  # removed between the container's create and now
                        vol = VolumeRecord(name=m.name, created_at=_created_at())
                        await trio.to_thread.run_sync(self._write_new, vol)
                        self.volumes[m.name] = vol
                        self._publish(vol, "create")
                    if m.name in self._out_of_reach:  # never the bare directory in its place
                        raise OSError(errno.EBUSY, "its device is held by containers started before the daemon's "
                                      "restart, out of this daemon's reach; start this container once they stop",
                                      m.name)
                    users = self._users.setdefault(m.name, set())
                    if vol.options and not users:
                        await trio.to_thread.run_sync(mount_device, vol.options, self.data_path(m.name))
                    users.add(c.id)
                    self._attached.setdefault(c.id, []).append(m)
                    if m.copy_data:
                        await self._seed(c.rootfs, m)
        except OSError as exc:
            raise StartFailed(f"error while mounting volume '{exc.filename or ''}': {exc.strerror or exc}") from None
        except EngineError as exc:
            raise StartFailed(f"error while populating a volume: {exc.message}") from None
        for m in points:
            self._publish(self.volumes[m.name], "mount", container=c.id, destination=m.destination,
                          **{"read/write": str(m.rw).lower()}, propagation=m.propagation)

    async def adopt(self, c: Container) -> None:
        """A run a previous daemon started: count `c` as a user of its volumes again, as
        `attach` did for that daemon, and mount each device volume again where this
        daemon sees its directory (`load` found it unmounted, or it was mounted in the
        previous daemon's mount namespace only): the container keeps its own mount, and
        the next container must get the device too, not the bare directory beneath.
        Nothing is seeded or published: nothing changed for the container."""
        async with self.lock:
            for m in c.record.mounts:
                if m.type == "volume":
                    users = self._users.setdefault(m.name, set())
                    vol = self.volumes.get(m.name)
                    data = self.data_path(m.name)
                    if vol is not None and vol.options and not users and not rootfs.is_mounted(data):
                        try:
                            if vol.options.get("type") in ("tmpfs", "ramfs") and "bind" not in vol.options.get("o", ""):
                                # its data is that mount, in the previous daemon's namespace: a new
                                # one would be another volume under the same name
                                raise OSError(errno.EXDEV, "its mount is in the previous daemon's mount namespace")
                            await trio.to_thread.run_sync(mount_device, vol.options, data)
                        except OSError as exc:
                            log.error("volume %s: could not mount its device again (%s): it is refused to other "
                                      "containers until those started before this daemon are done with it",
                                      m.name, exc.strerror or exc)
                            self._out_of_reach.add(m.name)
                    users.add(c.id)
                    self._attached.setdefault(c.id, []).append(m)

    async def detach(self, c: Container) -> None:
        """After a run of `c`: unmount device volumes it was the last user of; publish
        `unmount`. Does nothing for a container `attach` did not handle (idempotent)."""
        points = self._attached.pop(c.id, [])
        if not points:
            return
        async with self.lock:
            for m in points:
                users = self._users.get(m.name, set())
                users.discard(c.id)
                if not users:
                    self._users.pop(m.name, None)
                    self._out_of_reach.discard(m.name)
                    await trio.to_thread.run_sync(rootfs.unmount, self.data_path(m.name))
        for m in points:
            vol = self.volumes.get(m.name)
            self._publish(vol or VolumeRecord(name=m.name, created_at=""), "unmount", container=c.id)

    async def _seed(self, root: Path, m: MountPoint) -> None:
        """Fill an empty volume with the container root's directory at `m.destination`."""
        data = self.data_path(m.name)

        def source() -> inroot.Found | None:
            if os.listdir(data):
                return None  # a volume with content is never seeded over
            root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                found = inroot.resolve(root_fd, m.destination, missing_ok=True)
            finally:
                os.close(root_fd)
            if found.stat is None or not stat.S_ISDIR(found.stat.st_mode):
                found.close()
                return None
            return found

        found = await trio.to_thread.run_sync(source)
        if found is None:
            return
        with found:
            writer = tarstream.TarWriter()
            chunks = itertools.chain(writer.add_contents(found.dir_fd, found.name, ""), writer.finish())

            async def tar() -> AsyncIterator[bytes]:
                while (chunk := await trio.to_thread.run_sync(next, chunks, None)) is not None:
                    yield chunk

            data_fd = os.open(data, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                await feed_thread(tar(), lambda src: tarstream.extract(src, data_fd, "/"))
            finally:
                os.close(data_fd)
            os.chown(data, found.stat.st_uid, found.stat.st_gid)
            os.chmod(data, stat.S_IMODE(found.stat.st_mode))

    def _publish(self, vol: VolumeRecord, action: str, **attrs: str) -> None:
        self.bus.publish(constructors.volume(vol.name, action, vol.driver, **attrs))


def _name_match(pattern: str, name: str) -> bool:
    """The `name` filter: a regular expression searched in the name, as dockerd matches."""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _delete_dir(directory: Path) -> None:
    """Delete a volume's directory: record first (a crash then leaves a directory that
    load finishes deleting), then `_data` once it is certainly not a mount point."""
    (directory / "volume.json").unlink(missing_ok=True)
    fsync_dir(directory)
    data = directory / "_data"
    rootfs.unmount(data)
    if rootfs.is_mounted(data):
        raise EngineError(f"volume directory {data} is still mounted")
    tree.remove(directory)


def _make_missing_dir(path: str) -> None:
    """A bind source that does not exist becomes a directory; anything there (a file, a
    socket, a link) is bound as it is."""
    if not os.path.lexists(path):
        os.makedirs(path, 0o755, exist_ok=True)
