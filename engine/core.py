"""The Engine facade: the one door to containers, images, volumes, networks and events.

HTTP handlers, plugins and tests call these methods and nothing below them. The Engine
builds the services (each handed the collaborators it needs, none holding the Engine),
opens and shuts them down in order, and passes each call to the one service that owns
it: the containers service for what a user does to a container, the supervisor for a
run, the images service for the store, `Volumes`, the `NetworkManager`, `Execs`, `Files`
and the `PluginHost`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import trio

from .config import DaemonConfig
from .containers import stats
from .containers.container import Container
from .containers.execs import Execs
from .containers.files import Files
from .containers.oom import OomWatcher
from .containers.registry import Containers
from .containers.service import LIST_FILTERS as CONTAINER_FILTERS
from .containers.service import ContainerService
from .containers.supervisor import Supervisor
from .errors import EngineError, NotFound
from .events import filters as flt
from .events.bus import Bus
from .events.journal import Journal
from .images.commit import CommitOptions
from .images.service import LIST_FILTERS as IMAGE_FILTERS
from .images.service import Images, PruneReport, User
from .images.store import Image, ImageStore
from .models import ContainerRecord, CreateRequest, UpdateRequest
from .network import netns
from .network.manager import NetworkManager
from .network.networks import Networks
from .plugin_host import PluginHost
from .runtime import cgroups, oci, rootfs
from .volumes import Volumes

__all__ = ["CONTAINER_FILTERS", "IMAGE_FILTERS", "Engine"]

log = logging.getLogger("berth.engine")


class Engine:
    def __init__(self, config: DaemonConfig, layout: cgroups.Layout):
        self.config = config
        self.journal = Journal(config.root / "journal", segment_bytes=config.journal_segment_bytes,
                               max_bytes=config.journal_max_bytes, max_age=config.journal_max_age)
        if self.journal.dropped_bytes:
            log.warning("event journal: dropped a torn record (%d bytes) left by a crash", self.journal.dropped_bytes)
        self.bus = Bus(self.journal)
        self.layout = layout  # the host's cgroup layout, as found before berthd hid anything
        self.runtimes = oci.detect(self.layout, config.exec_root / "runtime")
        if config.default_runtime not in self.runtimes:
            raise SystemExit(f"berthd: runtime {config.default_runtime!r} is not installed "
                             f"(found: {', '.join(self.runtimes) or 'none'})")
        self._registry = Containers(config.root / "containers", config.exec_root / "netns", self.bus)
        self.containers = self._registry.by_id
        self.images = ImageStore(config.root / "images")
        self._images = Images(self.images, self.bus, self._image_users)
        self.volumes = Volumes(config.root / "volumes", self.bus, self._registry.by_id)
        self.network = NetworkManager(Networks(config.root, config.bridge, config.bridge_subnet), self._registry,
                                      self.bus)
        console_dir = config.exec_root / "console"  # runtimes hand terminals over here
        self._console_dir = console_dir
        self.oom = OomWatcher(config.cgroup_parent, lambda cid: self._containers.oom_killed(cid))
        self._supervisor = Supervisor(self._registry, self.images, self.volumes, self.network, self.runtimes,
                                      self.oom, cgroup_parent=config.cgroup_parent, console_dir=console_dir,
                                      init_binary=config.init_binary)
        self.files = Files(self._registry, self.images)
        self.execs = Execs(self._registry, self.images, self.runtimes, console_dir)
        self._containers = ContainerService(self._registry, self._supervisor, self._images, self.volumes,
                                            self.network, self.files, layout,
                                            default_runtime=config.default_runtime, init=config.init)
        self.event_listeners = 0  # API clients streaming /events (Docker's NEventsListener)
        self.plugins = PluginHost(self.bus, self, config.config_file, config.plugins_dir or config.root / "plugins.d",
                                  config.root / "plugins")
        self.started_at = time.time()

    def _image_users(self, image_id: str) -> list[User]:
        return [User(c.id, c.live) for c in self._registry.using_image(image_id)]

    # --- start-up and shutdown ---------------------------------------------

    async def open(self, nursery: trio.Nursery) -> None:
        """Recover state from disk, ensure the built-in image, restart what should run."""
        self._supervisor.open(nursery)
        self.network.nursery = nursery
        self.nursery = nursery  # for work that outlives the request that began it (detached execs)
        if self.oom.open():
            nursery.start_soon(self.oom.run, name="oom watcher")
        nursery.start_soon(self.bus.flush_forever, name="journal flush")
        self._registry.root.mkdir(parents=True, exist_ok=True)
        self._console_dir.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(self.network.networks.load)
        await self.network.recover()
        for rt in self.runtimes.values():
            rt.state_root.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(self.volumes.load)
        for directory in sorted(self._registry.root.iterdir()):
            record_path = directory / "record.json"
            if not record_path.exists():  # a create or remove cut short by a crash
                await trio.to_thread.run_sync(rootfs.unmount, directory / "rootfs")
                await trio.to_thread.run_sync(shutil.rmtree, directory, True)
                continue
            record = msgspec.json.decode(record_path.read_bytes(), type=ContainerRecord)
            c = Container(record, directory, self._registry.netns_dir)
            self._registry.add(c)
            await self._supervisor.recover(c)
        if self._registry.netns_dir.exists():
            for pin in self._registry.netns_dir.iterdir():
                if pin.name not in self.containers:
                    await trio.to_thread.run_sync(netns.remove, pin)
        try:
            await self._images.ensure_busybox()
        except NotFound as exc:
            log.warning("%s", exc.message)
        for c in self._registry:
            policy = c.record.host_config.restart_policy.name
            if policy == "always" or (policy == "unless-stopped" and not c.record.manually_stopped):
                try:
                    await self.start(c.id)
                except EngineError as exc:
                    log.warning("could not restart %s: %s", c.name, exc.message)
        await self.plugins.run(nursery)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop every live container gracefully (in parallel), as `SIGTERM` to the daemon asks."""
        await self._containers.stop_all(timeout)
        for rt in self.runtimes.values():
            shutil.rmtree(rt.state_root, ignore_errors=True)
        await trio.to_thread.run_sync(cgroups.remove, self.layout, self.config.cgroup_parent)
        await self.network.shutdown()
        self.journal.close()

    # --- events -------------------------------------------------------------

    async def events(self, filters: flt.Filters, since_ns: int | None, until_ns: int | None) -> AsyncIterator:
        """Events matching `filters`: replayed from `since_ns`, then live, until `until_ns`."""
        self.event_listeners += 1
        try:
            async for record in self.bus.subscribe(flt.EventFilter(filters), since_ns=since_ns, until_ns=until_ns):
                yield record.event
        finally:
            self.event_listeners -= 1

    def publish_container(self, c: Container, action: str, **attrs: str) -> None:
        """Publish an event about a container that changes nothing (attach, detach, top…)."""
        self._registry.publish(c, action, **attrs)

    # --- containers -----------------------------------------------------------

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without `/`) or unique ID prefix."""
        return self._registry.get(ref)

    def cgroup_path(self, c: Container) -> str:
        return self._supervisor.cgroup_path(c)

    async def create(self, req: CreateRequest, name: str | None = None) -> Container:
        """Create a container from `req` (the body of `POST /containers/create`)."""
        return await self._containers.create(req, name)

    async def start(self, ref: str) -> Container:
        """Start a created or exited container; 304 if it already runs."""
        return await self._containers.start(ref)

    async def stop(self, ref: str, timeout: float | None = None) -> Container:
        """SIGTERM (or the image's stop signal), then SIGKILL after `timeout` seconds."""
        return await self._containers.stop(ref, timeout)

    async def kill(self, ref: str, sig: str | int | None = None) -> Container:
        return await self._containers.kill(ref, sig)

    async def restart(self, ref: str, timeout: float | None = None) -> Container:
        return await self._containers.restart(ref, timeout)

    async def pause(self, ref: str) -> Container:
        """Freeze every process of a running container (the cgroup freezer)."""
        return await self._containers.pause(ref)

    async def unpause(self, ref: str) -> Container:
        return await self._containers.unpause(ref)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Delete a container and its writable layer; with `force`, kill it first; with
        `volumes` (`rm -v`), its anonymous volumes too."""
        await self._containers.remove(ref, force, volumes)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until `condition` (not-running, next-exit, removed); return the exit code."""
        return await self._containers.wait(ref, condition)

    async def rename(self, ref: str, new_name: str) -> None:
        await self._containers.rename(ref, new_name)

    async def update(self, ref: str, req: UpdateRequest) -> None:
        await self._containers.update(ref, req)

    def list_containers(self, all_: bool = False, filters: flt.Filters | None = None) -> list[Container]:
        """Containers newest first; live ones only unless `all_`."""
        return self._containers.list(all_, filters)

    async def prune_containers(self, filters: flt.Filters | None = None, until: str = "") -> tuple[list[str], int]:
        return await self._containers.prune(filters, until)

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: str = "", until: str = "",
             times: bool = True):
        return self._containers.logs(ref, follow=follow, tail=tail, since=since, until=until, times=times)

    def attach(self, ref: str, *, replay: bool = False):
        return self._containers.attach(ref, replay=replay)

    async def write_stdin(self, c: Container, data: bytes) -> bool:
        return await self._containers.write_stdin(c, data)

    async def close_stdin(self, c: Container) -> None:
        await self._containers.close_stdin(c)

    async def resize(self, ref: str, height: int, width: int) -> None:
        await self._containers.resize(ref, height, width)

    async def set_health(self, c: Container, health) -> None:
        """Record a container's health (healthcheck plugin); publish `health_status` on change."""
        await self._containers.set_health(c, health)

    async def exec_run(self, ref: str, cmd: list[str], *, user: str = "", workdir: str = "", env: list[str] = (),
                       timeout: float | None = None) -> tuple[int, bytes]:
        """Run `cmd` inside a running container; return (exit code, stdout+stderr)."""
        return await self.execs.run_to_end(ref, cmd, user=user, workdir=workdir, env=env, timeout=timeout)

    async def commit(self, ref: str, options: CommitOptions) -> Image:
        """`POST /commit`: a new image from the container's writable layer."""
        return await self._containers.commit(ref, options)

    async def top(self, ref: str, ps_args: str) -> dict:
        c = self.get(ref)
        found = await stats.top(self.layout, self.cgroup_path(c), c, ps_args)
        self.publish_container(c, "top")
        return found

    def stats(self, c: Container, *, follow: bool, one_shot: bool) -> AsyncIterator[dict]:
        return stats.stream(self.layout, self.cgroup_path(c), c, follow=follow, one_shot=one_shot)

    def counts(self) -> dict[str, int]:
        return self._containers.counts()

    # --- images ---------------------------------------------------------------

    async def import_image(self, tar_path: Path, *, repo: str = "", changes: list[str] = (), message: str = "") -> Image:
        """`docker import`: a one-layer image from a rootfs tar, tagged `repo` if given."""
        return await self._images.import_rootfs(tar_path, repo=repo, changes=changes, message=message)

    async def tag(self, source: str, repo: str, tag: str = "") -> None:
        await self._images.tag(source, repo, tag)

    async def remove_image(self, ref: str, force: bool = False) -> list[dict[str, str]]:
        """`rmi`: untag, and delete once no tag and no container refers to the image."""
        return await self._images.remove(ref, force)

    async def prune_images(self, filters: flt.Filters | None = None) -> PruneReport:
        """Delete unused images: dangling ones, or all with `dangling=false`."""
        return await self._images.prune(filters)

    def list_images(self, filters: flt.Filters | None = None) -> list[Image]:
        return self._images.list(filters)

    async def save_images(self, names: list[str], open_stream: Callable[[], Awaitable]) -> None:
        """`docker save`: the images as one archive, sent once planned."""
        await self._images.save(names, open_stream)

    async def load_images(self, upload: Path, quiet: bool):
        """`docker load` of the archive spooled at `upload`."""
        return await self._images.load(upload, quiet)
