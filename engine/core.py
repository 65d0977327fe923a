"""The Engine facade: the one door to containers, images, volumes, networks and events.

HTTP handlers, plugins and tests call these methods and nothing below them: the services
are private attributes, and what a caller gets back is typed (the Structs of `models`,
and the objects named in `__all__`, which are the facade's vocabulary too). The Engine
builds the services (each handed the collaborators it needs, none holding the Engine),
opens and shuts them down in order, and passes each call to the one service that owns
it: the containers service for what a user does to a container, the supervisor for a
run, the images service for the store, `Volumes`, the `NetworkManager`, `Execs`, `Files`
and the `PluginHost`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec
import trio

from . import timefmt
from .build.changes import compile_changes
from .build.options import BuildOptions, CacheRecord, ContextAnswer, ContextOffer, Emit as BuildEmit, PruneResult
from .config import DaemonConfig
from .containers import checks, logs, pump, stats
from .containers.container import Container
from .containers.execs import Exec, Execs, Output
from .containers.files import Files, PathStat, Sender
from .containers.oom import OomWatcher
from .containers.records import REMOVING, Containers
from .containers.service import ContainerService, ContainerUsage
from .containers.supervisor import Supervisor
from .errors import EngineError, NotFound
from .events import filters as flt
from .events.bus import Bus
from .events.journal import Journal
from .fs import tree
from .fs.store import atomic_write
from .fs.diff import Change
from .images.archive_load import LoadResult
from .images.service import ImageFacts, Images, ImageUsage, PruneReport, User
from .images.store import Image, ImageStore
from .lifecycle import State
from .models import (AuthConfig, BusStatistics, CommitOptions, ContainerRecord, CreateRequest, DistributionInspect,
                     EndpointSettings, Event, ExecConfig, Health, ImageRuntimeConfig, IPAMPool, NetworkRecord,
                     PluginView, ResourceUsage, RuntimeInfo, SearchResult, SystemInfo, UpdateRequest,
                     VolumeCreateRequest, VolumeRecord, ZERO_TIME)
from .network import netns
from .network.manager import NetworkManager
from .network.networks import Networks
from .plugin_host import PluginHost
from .registry import auth as authn
from .registry.progress import Emit
from .registry.service import Registries
from .runtime import cgroups, oci, rootfs, syscalls
from .runtime.attach_lock import AttachLock
from .volumes import Volumes, VolumeUsage

if TYPE_CHECKING:
    from .build.builder import Builder
    from .build.contexts import Contexts

__all__ = ["BuildOptions", "Container", "ContextOffer", "DiskUsage", "Engine", "Image", "PathStat", "State"]

log = logging.getLogger("berth.engine")


class DiskUsage(NamedTuple):
    """`system df`: layer bytes in all, then images, containers and volumes with theirs,
    and the build cache (the kept contexts)."""

    layers_size: int
    images: list[ImageUsage]
    containers: list[ContainerUsage]
    volumes: list[VolumeUsage]
    build_cache: list[CacheRecord]


class Engine:
    def __init__(self, config: DaemonConfig, layout: cgroups.Layout):
        self._config = config
        self._journal = Journal(config.root / "journal", segment_bytes=config.journal_segment_bytes,
                                max_bytes=config.journal_max_bytes, max_age=config.journal_max_age)
        if self._journal.dropped_bytes:
            log.warning("event journal: dropped a torn record (%d bytes) left by a crash", self._journal.dropped_bytes)
        self._bus = Bus(self._journal)
        self._layout = layout  # the host's cgroup layout, as found before berthd hid anything
        self._runtimes = oci.detect(layout, config.exec_root / "runtime")
        if config.default_runtime not in self._runtimes:
            raise SystemExit(f"berthd: runtime {config.default_runtime!r} is not installed "
                             f"(found: {', '.join(self._runtimes) or 'none'})")
        self._records = Containers(config.root / "containers", config.exec_root / "netns", self._bus)
        self._image_store = ImageStore(config.root / "images")
        self._images = Images(self._image_store, self._bus, self._image_users)
        self._registries = Registries(self._image_store, self._images.lock, self._bus,
                                      insecure=config.insecure_registries, mirrors=config.registry_mirrors)
        self._volumes = Volumes(config.root / "volumes", self._bus, self._records.using_volume)
        self._network = NetworkManager(Networks(config.root, config.bridge, config.bridge_subnet), self._records,
                                       self._bus)
        console_dir = config.exec_root / "console"  # runtimes hand terminals over here
        self._console_dir = console_dir
        self._oom = OomWatcher(config.cgroup_parent, lambda cid: self._containers.oom_killed(cid))
        attach_lock = AttachLock.for_host(layout)
        self._supervisor = Supervisor(self._records, self._image_store, self._volumes, self._network,
                                      self._runtimes, self._oom, layout=layout, cgroup_parent=config.cgroup_parent,
                                      console_dir=console_dir, init_binary=config.init_binary,
                                      attach_lock=attach_lock)
        self._files = Files(self._records, self._image_store)
        self._execs = Execs(self._records, self._image_store, self._runtimes, console_dir, attach_lock)
        self._containers = ContainerService(self._records, self._supervisor, self._images, self._volumes,
                                            self._network, self._files, layout,
                                            default_runtime=config.default_runtime, init=config.init)
        self._builder: Builder | None = None  # made at the first build (`_build_service`)
        self._contexts: Contexts | None = None  # made when first needed (`_kept_contexts`)
        self._event_listeners = 0  # API clients streaming /events (Docker's NEventsListener)
        self._plugins = PluginHost(self._bus, self, config.config_file,
                                   config.plugins_dir or config.root / "plugins", config.root / "plugins")
        self._nursery: trio.Nursery | None = None  # from `open`: work that outlives its request (detached execs)

    def _image_users(self, image_id: str) -> list[User]:
        return [*(User(c.id, c.live) for c in self._records.using_image(image_id)),
                *(User(cid, False) for cid in self._records.creating_from(image_id))]

    # --- start-up and shutdown ---------------------------------------------

    async def open(self, nursery: trio.Nursery) -> None:
        """Recover state from disk, ensure the built-in image, restart what should run."""
        self._supervisor.open(nursery)
        self._network.nursery = nursery
        self._nursery = nursery
        if self._oom.open():
            nursery.start_soon(self._oom.run, name="oom watcher")
        nursery.start_soon(self._bus.flush_forever, name="journal flush")
        self._records.root.mkdir(parents=True, exist_ok=True)
        syscalls.mark_top_dir(self._records.root)  # one directory per container: spread them
        self._console_dir.mkdir(parents=True, exist_ok=True)
        # a build cut short by a crash (the builder itself is made at the first build)
        await trio.to_thread.run_sync(functools.partial(tree.remove, self._config.root / "build" / "tmp",
                                                        ignore_errors=True))
        await trio.to_thread.run_sync(self._network.networks.load)
        await self._network.recover()
        for rt in self._runtimes.values():
            rt.state_root.mkdir(parents=True, exist_ok=True)
            syscalls.mark_top_dir(rt.state_root)  # the runtime's directory per container, likewise
        await trio.to_thread.run_sync(self._volumes.load)
        keeper = await self._supervisor.connect_keeper(self._config.keeper_dir)
        held = {h.id: h for h in await keeper.held()}
        adopting: list[Container] = []
        ended: list[Container] = []  # of those, the ones that exited while no daemon was here
        for directory in sorted(self._records.root.iterdir()):
            record_path = directory / "record.json"
            if directory.name.endswith(REMOVING) or not record_path.exists():  # cut short by a crash
                await trio.to_thread.run_sync(functools.partial(rootfs.unmount, directory / "rootfs", own_fs=True))
                await trio.to_thread.run_sync(functools.partial(tree.remove, directory, ignore_errors=True))
                continue
            try:
                record = msgspec.json.decode(record_path.read_bytes(), type=ContainerRecord)
            except msgspec.DecodeError as exc:
                # A state saved atomically but not flushed (pause, a run's state) may come
                # back empty after the machine's crash on a filesystem that does not order
                # renames after data: that container is left on disk as it is, not served
                # and not removed, and the daemon serves the others.
                log.error("container %s left aside: its record cannot be read (%s)", directory.name, exc)
                continue
            c = Container(record, directory, self._records.netns_dir)
            self._records.add(c)
            if c.id in held and c.has_process:
                adopting.append(c)  # it outlived the previous daemon (or exited meanwhile)
                if held.pop(c.id).exit_code is not None:
                    ended.append(c)
            else:
                await self._supervisor.recover(c)
        for orphan in held.values():  # held, but no record wants it (a start cut short)
            await self._supervisor.forget_held(orphan.id)
        await self._supervisor.reconcile({c.id for c in adopting})
        if self._records.netns_dir.exists():
            for pin in self._records.netns_dir.iterdir():
                if pin.name not in self._records.by_id:
                    await trio.to_thread.run_sync(netns.remove, pin)
        try:
            await self._images.ensure_busybox()
        except NotFound as exc:
            log.warning("%s", exc.message)
        for c in adopting:
            await self._supervisor.adopt(c)
        await self._volumes.settle()
        for c in ended:  # their exits are recorded before the API answers anyone
            await c.wait_until(lambda c=c: c.exits > 0)
        if adopting:
            log.info("took back %d containers the keeper kept", len(adopting))
        for c in list(self._records):
            policy = c.record.host_config.restart_policy.name
            if c.live:
                continue  # taken back above
            if c.record.host_config.auto_remove and c not in adopting:
                # As dockerd's restore: a `--rm` container does not outlive its run, even
                # when no daemon saw it end (which lets its states skip the fsync: save).
                await self._supervisor.remove(c)
                continue
            limit = c.record.host_config.restart_policy.maximum_retry_count
            failed = c.record.state.exit_code != 0 and (limit == 0 or c.record.restart_count < limit)
            # as dockerd's restore: on-failure too, for a run that failed (one the stop of
            # the previous daemon killed among them)
            # (and only one that has run before: a container made but never started stays so)
            ran = c.record.state.started_at != ZERO_TIME
            if ran and (policy == "always" or (policy == "unless-stopped" and not c.record.manually_stopped)
                        or (policy == "on-failure" and failed)):
                try:
                    await self.start(c.id)
                except EngineError as exc:
                    log.warning("could not restart %s: %s", c.name, exc.message)
        await self._plugins.run(nursery)

    async def shutdown(self, timeout: float | None = None) -> None:
        """As `SIGTERM` to the daemon asks: stop every live container gracefully (in
        parallel), then the keeper; with live restore, leave them running for the next
        daemon (their output waits in their pipes, which the keeper holds)."""
        if self._config.live_restore:
            pump.stop_reading()  # the journal stays open for the exits recorded until the daemon ends (close)
            for c in self._records:  # a pump waiting for an attached client must see the stop too
                c.taps.close_all()
            return
        await self._containers.stop_all(timeout)
        keeper = self._supervisor.keeper
        if keeper is not None and not await keeper.shutdown():
            log.warning("the keeper still holds live containers: it stays")
        for rt in self._runtimes.values():
            tree.remove(rt.state_root, ignore_errors=True)
        await trio.to_thread.run_sync(cgroups.remove, self._layout, self._config.cgroup_parent)
        await self._network.shutdown()
        self._journal.close()

    def close(self) -> None:
        """After the daemon's tasks ended (the supervisors among them): the event journal."""
        self._journal.close()

    # --- the daemon and its events -------------------------------------------

    def info(self) -> SystemInfo:
        """What `docker info` and `docker version` show of the daemon."""
        config, counts = self._config, self._containers.counts()
        return SystemInfo(
            root=config.root, engine_id=self._engine_id, debug=config.debug, default_runtime=config.default_runtime,
            init_binary=config.init_binary or "", cgroup_version=self._layout.version,
            runtimes=[RuntimeInfo(rt.name, rt.binary, rt.path) for rt in self._runtimes.values()],
            containers=counts["total"], running=counts["running"], paused=counts["paused"],
            stopped=counts["stopped"], images=len(self._image_store.images), event_listeners=self._event_listeners,
            system_time=timefmt.now(), insecure_registries=config.insecure_registries,
            registry_mirrors=config.registry_mirrors, live_restore=config.live_restore)

    @functools.cached_property
    def _engine_id(self) -> str:
        """This state directory's own ID (`docker info`'s ID): a UUID made at its first
        `info`, as dockerd keeps its `engine-id`; read once per daemon."""
        path = self._config.root / "engine-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            made = str(uuid.uuid4())
            atomic_write(path, made.encode())
            return made

    async def disk_usage(self) -> DiskUsage:
        """`docker system df`: what images, containers, volumes and the build cache hold on disk."""
        layers = self._images.layer_usage()
        return DiskUsage(layers.total, layers.images, await self._containers.usage(), await self._volumes.usage(),
                         await self._kept_contexts().usage())

    def events(self, filters: flt.Filters | None, since_ns: int | None, until_ns: int | None) -> AsyncIterator[Event]:
        """Events matching `filters`: replayed from `since_ns`, then live, until `until_ns`
        (with an `until` and no `since`, replayed from the oldest kept, as dockerd).
        Unknown filter keys are refused here, before the first event."""
        match = flt.EventFilter(flt.check(filters, flt.EVENT_FILTERS))
        if until_ns is not None and since_ns is None:
            since_ns = 0
        return self._follow_events(match, since_ns, until_ns)

    async def _follow_events(self, match: flt.EventFilter, since_ns: int | None,
                             until_ns: int | None) -> AsyncIterator[Event]:
        self._event_listeners += 1
        try:
            async for record in self._bus.subscribe(match, since_ns=since_ns, until_ns=until_ns):
                yield record.event
        finally:
            self._event_listeners -= 1

    def bus_statistics(self) -> BusStatistics:
        """How far the event bus has come, and who reads it."""
        return msgspec.convert(self._bus.statistics(), BusStatistics)

    def publish_container(self, c: Container, action: str, **attrs: str) -> None:
        """Publish an event about a container that changes nothing (attach, detach, top…)."""
        self._records.publish(c, action, **attrs)

    # --- containers -----------------------------------------------------------

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without `/`) or unique ID prefix."""
        return self._records.get(ref)

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
        """Send `sig` (SIGKILL by default) to a running container's process."""
        return await self._containers.kill(ref, sig)

    async def restart(self, ref: str, timeout: float | None = None) -> Container:
        """Stop (as `stop`) if running, then start."""
        return await self._containers.restart(ref, timeout)

    async def pause(self, ref: str) -> Container:
        """Freeze every process of a running container (the cgroup freezer)."""
        return await self._containers.pause(ref)

    async def unpause(self, ref: str) -> Container:
        """Thaw a paused container."""
        return await self._containers.unpause(ref)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Delete a container and its writable layer; with `force`, kill it first; with
        `volumes` (`rm -v`), its anonymous volumes too."""
        await self._containers.remove(ref, force, volumes)

    async def remove_link(self, name: str) -> None:
        """Drop the legacy link `parent/alias` from the container `parent` (`rm --link`)."""
        await self._containers.remove_link(name)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until `condition` (not-running, next-exit, removed); return the exit code."""
        return await self._containers.wait(ref, condition)

    async def rename(self, ref: str, new_name: str) -> None:
        """Give a container a new name."""
        await self._containers.rename(ref, new_name)

    async def update(self, ref: str, req: UpdateRequest) -> None:
        """Change a container's limits and restart policy."""
        await self._containers.update(ref, req)

    def list_containers(self, all_: bool = False, filters: flt.Filters | None = None) -> list[Container]:
        """Containers newest first; live ones only unless `all_`."""
        return self._containers.list(all_, filters)

    async def prune_containers(self, filters: flt.Filters | None = None,
                               until: int | None = None) -> tuple[list[str], int]:
        """Remove stopped containers (created before `until`, in nanoseconds, if given);
        returns (their IDs, bytes reclaimed)."""
        return await self._containers.prune(filters, until)

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: int | None = None,
             until: int | None = None, times: bool = True):
        """(container, async iterator of log entry batches); `since`/`until` in nanoseconds."""
        return self._containers.logs(ref, follow=follow, tail=tail, since=since, until=until, times=times)

    def log_details(self, c: Container) -> str:
        """What `logs --details` puts before each of the container's lines."""
        return logs.details_prefix(c.log_files.attrs or {})

    def attach(self, ref: str, *, replay: bool = False, follow: bool = True):
        """For `async with`: (container, its output as (stream, bytes) batches, from now or
        from the start with `replay`, to the run's end; without `follow`, what is logged now)."""
        return self._containers.attach(ref, replay=replay, follow=follow)

    async def write_stdin(self, c: Container, data: bytes) -> bool:
        """Write to an attached container's stdin; False once its run is over."""
        return await self._containers.write_stdin(c, data)

    async def close_stdin(self, c: Container) -> None:
        """End a container's stdin (StdinOnce, at the attached client's EOF)."""
        await self._containers.close_stdin(c)

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Set the size of a container's terminal."""
        await self._containers.resize(ref, height, width)

    async def set_health(self, c: Container, health: Health | None) -> None:
        """Record a container's health (healthcheck plugin); publish `health_status` when a
        running container becomes healthy or unhealthy."""
        await self._containers.set_health(c, health)

    async def commit(self, ref: str, options: CommitOptions) -> Image:
        """`POST /commit`: a new image from the container's writable layer."""
        return await self._containers.commit(ref, options, compile_changes(options.changes or []))

    async def top(self, ref: str, ps_args: str) -> dict:
        """The container's processes as `ps` shows them (Titles, Processes); publishes `top`."""
        c = self.get(ref)
        found = await stats.top(self._layout, self._supervisor.cgroup_path(c), c, ps_args)
        self.publish_container(c, "top")
        return found

    def stats(self, c: Container, *, follow: bool, one_shot: bool) -> AsyncIterator[dict]:
        """`docker stats` readings in Docker's shape, one a second while `follow`."""
        return stats.stream(self._layout, self._supervisor.cgroup_path(c), c, follow=follow, one_shot=one_shot)

    def resource_usage(self, c: Container) -> ResourceUsage:
        """A live container's CPU time and memory, read from its cgroup now."""
        found = cgroups.read_stats(self._layout, self._supervisor.cgroup_path(c))
        return ResourceUsage(found.cpu_total_ns, found.memory)

    # --- a container's files ----------------------------------------------------

    async def stat_path(self, ref: str, path: str) -> PathStat:
        """The stat of `path` inside the container."""
        return await self._files.stat_path(ref, path)

    async def get_archive(self, ref: str, path: str, open_stream: Callable[[PathStat], Awaitable[Sender]]) -> None:
        """`path` inside the container as a tar, sent to `open_stream(its stat)`."""
        await self._files.archive_path(ref, path, open_stream)

    async def put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], *,
                          no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        """Extract the tar in `body` into the directory `path` inside the container."""
        await self._files.extract_to_dir(ref, path, body, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                         copy_uid_gid=copy_uid_gid)

    async def export(self, ref: str, open_stream: Callable[[], Awaitable[Sender]]) -> None:
        """The container's flattened root filesystem as a tar, sent to `open_stream()`."""
        await self._files.export(ref, open_stream)

    async def changes(self, ref: str) -> list[Change]:
        """What the container changed against its image (`docker diff`)."""
        return await self._files.changes(ref)

    # --- exec sessions ------------------------------------------------------------

    @staticmethod
    def create_warnings(c: Container) -> list[str]:
        """What dockerd would have warned about in `c`'s create (its answer's Warnings)."""
        return checks.warnings(c.record.host_config)

    def create_exec(self, ref: str, config: ExecConfig) -> Exec:
        """A new exec session in a running container; publishes `exec_create`."""
        return self._execs.create(ref, config)

    def claim_exec(self, exec_id: str, console_size: list[int] | None = None) -> Exec:
        """Take a session for its one start (409 if started before or its container is
        not running), with the terminal size to start it at, if given."""
        checks.console_size(console_size)  # before the session is taken (and the connection hijacked)
        session = self._execs.claim(exec_id)
        if console_size:
            session.config.console_size = console_size
        return session

    async def run_exec(self, session: Exec, *, output: Output,
                       stdin: trio.abc.ReceiveStream | None = None) -> int:
        """Run a claimed session to its end: output to `output(stream id, bytes)`, `stdin`
        (if the session attaches it) to the process until it ends; the exit code."""
        return await self._execs.run(session, output=output, stdin=stdin)

    def run_exec_detached(self, session: Exec) -> None:
        """Run a claimed session in the background, unattached."""
        self._nursery.start_soon(self._execs.run, session)

    async def exec_run(self, ref: str, cmd: list[str], *, user: str = "", workdir: str = "", env: list[str] = (),
                       timeout: float | None = None) -> tuple[int, bytes]:
        """Run `cmd` inside a running container; return (exit code, stdout+stderr)."""
        return await self._execs.run_to_end(ref, cmd, user=user, workdir=workdir, env=env, timeout=timeout)

    def exec_ids(self, c: Container) -> list[str] | None:
        """The container's exec sessions that have not ended (inspect's `ExecIDs`, null
        for none, as dockerd)."""
        return [i for i, s in self._execs.sessions.items() if s.container is c and s.exit_code is None] or None

    def inspect_exec(self, exec_id: str) -> dict:
        """`GET /exec/{id}/json`, in Docker's shape."""
        return self._execs.get(exec_id).inspect()

    def resize_exec(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of a session's terminal."""
        self._execs.resize(exec_id, height, width)

    # --- images ---------------------------------------------------------------

    def image(self, ref: str) -> Image:
        """An image by `name[:tag]`, full or short ID; 404 if there is none."""
        return self._images.resolve(ref)

    def image_facts(self, image: Image) -> ImageFacts:
        """An image's tags and layers (directories and sizes)."""
        return self._images.facts(image)

    async def import_image(self, body: AsyncIterator[bytes], *, repo: str = "", changes: list[str] = (),
                           message: str = "") -> Image:
        """`docker import`: a one-layer image from the rootfs tar in `body`, tagged `repo` if
        given, its config from the `changes` (each read before the upload is)."""
        runtime = compile_changes(list(changes))(ImageRuntimeConfig())
        return await self._images.import_stream(body, repo=repo, runtime=runtime, message=message)

    async def tag(self, source: str, repo: str, tag: str = "") -> None:
        """Tag the image `source` as `repo[:tag]`."""
        await self._images.tag(source, repo, tag)

    async def remove_image(self, ref: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """`rmi`: untag, and delete once no tag, container or child image refers to the
        image; with `prune`, its untagged parents too."""
        return await self._images.remove(ref, force, prune)

    async def prune_images(self, filters: flt.Filters | None = None, until_ns: int | None = None) -> PruneReport:
        """Delete unused images: dangling ones, or all with `dangling=false`; with
        `until_ns`, only those created before it."""
        return await self._images.prune(filters, until_ns)

    def list_images(self, filters: flt.Filters | None = None) -> list[Image]:
        """Images newest first, filtered as `docker images --filter` does."""
        return self._images.list(filters)

    async def save_images(self, names: list[str], open_stream: Callable[[], Awaitable]) -> None:
        """`docker save`: the images as one archive, sent once planned."""
        await self._images.save(names, open_stream)

    async def load_images(self, body: AsyncIterator[bytes], quiet: bool) -> LoadResult:
        """`docker load` of the archive in `body` (plain or compressed)."""
        async with self._images.spooled(body, "load") as upload:
            return await self._images.load(upload, quiet)

    async def build(self, body: AsyncIterator[bytes], options: BuildOptions, emit: BuildEmit) -> str | None:
        """`POST /build`: an image from the Dockerfile and context tar in `body`, the
        classic builder's messages to `emit`; the image ID (None when the build failed
        after its first message: the error was the stream's last message)."""
        return await self._build_service().build(body, options, emit)

    async def offer_build_context(self, offer: ContextOffer) -> ContextAnswer:
        """berth's `POST /build/context`: which files of a listed context to send, the
        others taken from the context kept from its last build (`build/contexts.py`)."""
        return await self._kept_contexts().offer(offer)

    async def prune_build_cache(self, filters: flt.Filters | None = None, until_ns: int | None = None,
                                keep_bytes: int = 0) -> PruneResult:
        """`POST /build/prune`: drop the kept build contexts (all, those last built before
        `until_ns`, or the oldest down to `keep_bytes`)."""
        return await self._kept_contexts().prune(filters, until_ns, keep_bytes)

    def _kept_contexts(self) -> Contexts:
        """The build contexts kept for berth's CLI, made when first needed (as the builder)."""
        if self._contexts is None:
            from .build.contexts import Contexts

            root = self._config.root / "build"
            self._contexts = Contexts(root / "contexts", root / "tmp")
        return self._contexts

    def _build_service(self) -> Builder:
        """The builder, made at the first build: its modules (the Dockerfile's parser, the
        context's rules, its cache) are ~0.3 MB of a daemon that may never build. What a
        build cut short by a crash left in its scratch directory goes at start (`open`)."""
        if self._builder is None:
            from .build.builder import Builder

            self._builder = Builder(self._config.root / "build", self._kept_contexts(), self._containers, self._images,
                                    self._files)
        return self._builder

    # --- registries -------------------------------------------------------------

    async def pull(self, name: str, tag: str = "", *, auth: AuthConfig | None = None, platform: str = "",
                   progress: Emit) -> str:
        """`docker pull name[:tag][@digest]`: Docker's progress messages to `progress`;
        the image ID. Errors raised before the first message (no such manifest, a bad
        reference or platform) are plain errors; later ones end the transfer."""
        return await self._registries.pull(name, tag, auth, platform, progress)

    async def push(self, name: str, tag: str = "", *, auth: AuthConfig | None = None, progress: Emit) -> None:
        """`docker push name[:tag]` (no tag: every tag of the repository), progress as `pull`'s."""
        await self._registries.push(name, tag, auth, progress)

    async def distribution(self, name: str, *, auth: AuthConfig | None = None) -> DistributionInspect:
        """`GET /distribution/{name}/json`: the registry's descriptor and platforms of `name`."""
        return await self._registries.distribution(name, auth)

    def registry_credentials(self, header: str) -> AuthConfig | None:
        """Credentials from an `X-Registry-Auth` header (base64url JSON); None for none."""
        return authn.decode_header(header)

    async def search_images(self, term: str, limit: int = 25, filters: dict[str, list[str]] | None = None, *,
                            auth: AuthConfig | None = None) -> list[SearchResult]:
        """`docker search TERM`: the registry's v1 search; 404 for a registry without one."""
        return await self._registries.search(term, limit, filters or {}, auth)

    async def login(self, auth: AuthConfig) -> str:
        """`docker login`: check the credentials with the registry; "Login Succeeded" or 401."""
        return await self._registries.login(auth)

    # --- volumes --------------------------------------------------------------

    async def create_volume(self, req: VolumeCreateRequest) -> VolumeRecord:
        """A new volume, or the existing one of that name."""
        return await self._volumes.create(req)

    def list_volumes(self, filters: flt.Filters | None = None) -> list[VolumeRecord]:
        """Volumes by name, filtered as `GET /volumes` does."""
        return self._volumes.list(filters)

    def volume(self, name: str) -> VolumeRecord:
        """A volume by name; 404 if there is none."""
        return self._volumes.get(name)

    def volume_mountpoint(self, name: str) -> Path:
        """Where a volume's content lives on the host."""
        return self._volumes.data_path(name)

    async def remove_volume(self, name: str, force: bool = False) -> None:
        """Delete an unused volume (with `force`, a missing one is no error)."""
        await self._volumes.remove(name, force)

    async def prune_volumes(self, filters: flt.Filters | None = None) -> tuple[list[str], int]:
        """Delete unused volumes; returns (their names, bytes reclaimed)."""
        return await self._volumes.prune(filters)

    # --- networks -------------------------------------------------------------

    def list_networks(self, filters: flt.Filters | None = None) -> list[NetworkRecord]:
        """Networks by name, filtered as `GET /networks` does."""
        return self._network.list(filters)

    def network(self, ref: str) -> NetworkRecord:
        """A network by name, ID or unique ID prefix; 404 if there is none."""
        return self._network.networks.get(ref)

    def network_users(self, record: NetworkRecord) -> list[Container]:
        """The containers with an endpoint on the network."""
        return self._network.users(record)

    def container_networks(self, c: Container) -> list[tuple[str, NetworkRecord]]:
        """(name, record) of each network the container is on or joins at its start."""
        return self._network.joined(c)

    async def create_network(self, name: str, *, driver: str = "bridge", pools: list[IPAMPool] = (),
                             enable_ipv6: bool = False, internal: bool = False, labels: dict[str, str] | None = None,
                             options: dict[str, str] | None = None, attachable: bool = False) -> NetworkRecord:
        """A new user-defined bridge network: its IPv4 pool as given in `pools` (else a
        free subnet is chosen) and, with `enable_ipv6`, the IPv6 one given there."""
        return await self._network.create(name, driver=driver, pools=list(pools), enable_ipv6=enable_ipv6,
                                          internal=internal, labels=labels, options=options, attachable=attachable)

    async def remove_network(self, ref: str) -> None:
        """Delete a user-defined network no container is on."""
        await self._network.remove(ref)

    async def connect_network(self, network: str, container: str, settings: EndpointSettings) -> None:
        """Put a container on one more network (at once if it runs, else at its start)."""
        await self._network.connect(self.get(container), network, settings)

    async def disconnect_network(self, network: str, container: str) -> None:
        """Take a container off a network."""
        await self._network.disconnect(self.get(container), network)

    async def prune_networks(self, filters: flt.Filters | None = None, until_ns: int | None = None) -> list[str]:
        """Delete every unused user-defined network the filters select (`label`, `label!`)
        and created before `until_ns` (None for no bound); their names."""
        return await self._network.prune(filters, "" if until_ns is None else timefmt.rfc3339(until_ns))

    # --- plugins --------------------------------------------------------------

    def list_plugins(self) -> list[PluginView]:
        """Every discovered plugin, by name."""
        return self._plugins.views()

    def plugin(self, name: str) -> PluginView:
        """One plugin; 404 if there is none of that name."""
        return self._plugins.get(name).view()

    async def enable_plugin(self, name: str) -> None:
        """Enable a plugin (remembered) and start it."""
        await self._plugins.enable(name)

    async def disable_plugin(self, name: str) -> None:
        """Disable a plugin (remembered), stopping it."""
        await self._plugins.disable(name)

    async def reload_plugin(self, name: str) -> None:
        """Re-read a plugin's code and configuration; restart it if enabled."""
        await self._plugins.reload(name)
