"""The Engine facade: the one door to containers, images and events.

HTTP handlers, plugins and tests call these methods and nothing below them. Every
container action consults the lifecycle table first, persists the new state, then
publishes its events on the bus.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import trio

from .events import filters as flt
from . import lifecycle, timefmt
from .containers import logs, mounts as mountspec, names
from .events.bus import Bus
from .events.journal import Journal
from .plugin_host import PluginHost
from .config import DaemonConfig
from .containers.container import Container
from .errors import BadRequest, Conflict, EngineError, NotFound, no_such_container
from .containers.execs import ExecConfig, Execs
from .containers.oom import OomWatcher
from .images import busybox, reference
from .images.store import Image, ImageStore
from .lifecycle import Action, State
from .models import ContainerConfig, ContainerRecord, CreateRequest, Event, UpdateRequest, ZERO_TIME, Actor
from .network import netns
from .network.manager import NetworkManager, sole_network
from .network.networks import Networks
from .runtime import bundle, cgroups, oci, rootfs
from .fs.store import atomic_write, tree_size
from .containers.supervisor import Supervisor
from .volumes import Volumes

log = logging.getLogger("berth.engine")

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MIN_MEMORY = 6 * 1024 * 1024
CONTAINER_FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since")
IMAGE_FILTERS = ("dangling", "reference", "label", "before", "since")


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
        self.images = ImageStore(config.root / "images")
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.volumes = Volumes(config.root / "volumes", self.bus, self.containers)
        self._containers_dir = config.root / "containers"
        self._netns_dir = config.exec_root / "netns"
        self.console_dir = config.exec_root / "console"  # runtimes hand terminals over here
        self.network = NetworkManager(self, Networks(config.root, config.bridge, config.bridge_subnet))
        self.oom = OomWatcher(config.cgroup_parent, self._oom_killed)
        self.execs = Execs(self)
        self.image_lock = trio.Lock()  # one image-store change at a time (import, commit, load, rmi)
        self.event_listeners = 0  # API clients streaming /events (Docker's NEventsListener)
        self.plugins = PluginHost(self, config.config_file, config.plugins_dir or config.root / "plugins.d",
                                  config.root / "plugins")
        self._supervisor: Supervisor | None = None
        self.started_at = time.time()

    # --- start-up and shutdown ---------------------------------------------

    async def open(self, nursery: trio.Nursery) -> None:
        """Recover state from disk, ensure the built-in image, restart what should run."""
        self._supervisor = Supervisor(self, nursery)
        self.nursery = nursery  # for work that outlives the request that began it (detached execs)
        if self.oom.open():
            nursery.start_soon(self.oom.run, name="oom watcher")
        nursery.start_soon(self.bus.flush_forever, name="journal flush")
        self._containers_dir.mkdir(parents=True, exist_ok=True)
        self.console_dir.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(self.network.networks.load)
        await self.network.recover()
        for rt in self.runtimes.values():
            rt.state_root.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(self.volumes.load)
        for directory in sorted(self._containers_dir.iterdir()):
            record_path = directory / "record.json"
            if not record_path.exists():  # a create or remove cut short by a crash
                await trio.to_thread.run_sync(rootfs.unmount, directory / "rootfs")
                await trio.to_thread.run_sync(shutil.rmtree, directory, True)
                continue
            record = msgspec.json.decode(record_path.read_bytes(), type=ContainerRecord)
            c = Container(record, directory, self._netns_dir)
            self.containers[c.id] = c
            self.names[c.name] = c.id
            await self._recover(c)
        if self._netns_dir.exists():
            for pin in self._netns_dir.iterdir():
                if pin.name not in self.containers:
                    await trio.to_thread.run_sync(netns.remove, pin)
        await self._ensure_busybox()
        for c in list(self.containers.values()):
            policy = c.record.host_config.restart_policy.name
            if policy == "always" or (policy == "unless-stopped" and not c.record.manually_stopped):
                try:
                    await self.start(c.id)
                except EngineError as exc:
                    log.warning("could not restart %s: %s", c.name, exc.message)
        await self.plugins.run(nursery)

    async def _recover(self, c: Container) -> None:
        """A container the previous daemon left live is dead now: record the truth, clean up."""
        runtime = self.runtimes.get(c.record.runtime)
        if runtime and c.live:
            await runtime.delete(c.id)  # kills what a crashed daemon left behind
        await self.teardown(c)
        if c.state in (State.RUNNING, State.PAUSED, State.RESTARTING, State.REMOVING):
            was_removing = c.state is State.REMOVING
            c.record.state = msgspec.structs.replace(
                c.record.state, status="exited", running=False, paused=False, restarting=False, pid=0, exit_code=255,
                error="daemon stopped without stopping the container", finished_at=timefmt.now())
            await self.save_record(c)
            if was_removing:
                await self.remove_stopped(c)

    async def _ensure_busybox(self) -> None:
        """Make the built-in image at first start, and again over one an older berth made
        without its layer's tar record (the same bytes: `save` can then give them back)."""
        current = self.images.tags.get(busybox.REPO_TAG)
        if current is not None and all(self.images.has_tar_record(chain)
                                       for chain in self.images.layer_chain(self.images.images[current])):
            return
        binary = busybox.find_busybox()
        if binary is None:
            log.warning("no static busybox on this host: the built-in busybox image is not available")
            return
        tmp = self.images.tmp / "busybox-rootfs.tar"
        await trio.to_thread.run_sync(busybox.write_rootfs_tar, binary, tmp)
        try:
            await self.import_image(tmp, repo=busybox.REPO_TAG, changes=busybox.CHANGES, message=busybox.MESSAGE)
        finally:
            tmp.unlink(missing_ok=True)
        if current is not None and not any(c.record.image_id == current for c in self.containers.values()):
            await self.remove_image(current)  # the old built-in image, untagged now and unused

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop every live container gracefully (in parallel), as `SIGTERM` to the daemon asks."""
        async with trio.open_nursery() as nursery:
            for c in list(self.containers.values()):
                if c.live:
                    nursery.start_soon(self._stop, c, timeout, False)
        for rt in self.runtimes.values():
            shutil.rmtree(rt.state_root, ignore_errors=True)
        await trio.to_thread.run_sync(cgroups.remove, self.layout, self.config.cgroup_parent)
        await self.network.shutdown()
        self.journal.close()

    # --- lookups ------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without `/`) or unique ID prefix."""
        if ref in self.containers:
            return self.containers[ref]
        cid = self.names.get(ref.lstrip("/"))
        if cid:
            return self.containers[cid]
        if ref and re.fullmatch(r"[0-9a-f]+", ref):
            found = [c for c in self.containers.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise BadRequest(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def runtime_for(self, c: Container) -> oci.Runtime:
        return self.runtimes[c.record.runtime]

    def cgroup_path(self, c: Container) -> str:
        return f"/{self.config.cgroup_parent}/{c.id}"

    # --- events -------------------------------------------------------------

    def publish_container(self, c: Container, action: str, **extra: str) -> None:
        attrs = {**(c.record.config.labels or {}), "image": c.record.image_ref, "name": c.name, **extra}
        self.bus.publish(Event(Type="container", Action=action, Actor=Actor(c.id, attrs), scope="local",
                               status=action, id=c.id, from_=c.record.image_ref))

    def publish_image(self, image_id: str, action: str, name: str | None = None) -> None:
        self.bus.publish(Event(Type="image", Action=action, Actor=Actor(image_id, {"name": name or image_id}),
                               scope="local", status=action, id=image_id))

    def publish_plugin(self, name: str, action: str, **attrs: str) -> None:
        self.bus.publish(Event(Type="plugin", Action=action, Actor=Actor(name, {**attrs, "name": name}), scope="local"))

    async def events(self, filters: flt.Filters, since_ns: int | None, until_ns: int | None) -> AsyncIterator[Event]:
        """Events matching `filters`: replayed from `since_ns`, then live, until `until_ns`."""
        self.event_listeners += 1
        try:
            async for record in self.bus.subscribe(flt.EventFilter(filters), since_ns=since_ns, until_ns=until_ns):
                yield record.event
        finally:
            self.event_listeners -= 1

    # --- containers: create -------------------------------------------------

    async def create(self, req: CreateRequest, name: str | None = None) -> Container:
        """Create a container from `req` (the body of `POST /containers/create`)."""
        if name:
            name = names.validate(name)
            if name in self.names:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{self.names[name]}". You have to remove (or rename) that container to be able to reuse that name.')
        else:
            name = names.generate(set(self.names))
        if not req.image:
            raise BadRequest("config error: Image is required")
        image = self.images.resolve(req.image)
        hc = req.host_config
        runtime = hc.runtime or self.config.default_runtime
        if runtime not in self.runtimes:
            raise BadRequest(f"unknown or invalid runtime name: {runtime}")
        policy = hc.restart_policy.name or "no"
        if policy not in RESTART_POLICIES:
            raise BadRequest(f"invalid restart policy '{policy}'")
        if hc.auto_remove and policy != "no":
            raise BadRequest("can't create 'AutoRemove' container with restart policy")
        if hc.log_config.type not in ("", "json-file"):
            raise BadRequest(f"logging driver {hc.log_config.type!r} is not supported: berth has json-file")
        logs.log_options(hc.log_config.config)
        if hc.memory and hc.memory < MIN_MEMORY:
            raise BadRequest("Minimum memory limit allowed is 6MB")
        if hc.nano_cpus and (hc.cpu_quota or hc.cpu_period):
            raise BadRequest("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        self.network.check_mode(hc.network_mode)
        if (hc.port_bindings or hc.publish_all_ports) and sole_network(hc.network_mode):
            raise BadRequest(f"conflicting options: port publishing and the {hc.network_mode} network mode")
        img = image.config.config
        planned = mountspec.plan(hc.binds, hc.mounts, [*(img.volumes or {}), *(req.volumes or {})],
                                 lambda volume: str(self.volumes.data_path(volume)))
        # Empty Cmd/Entrypoint mean "not given"; `--entrypoint ""` ([""]) clears the image's.
        entrypoint = _words(req.entrypoint) or None
        cmd = _words(req.cmd) or None
        if entrypoint == [""]:
            entrypoint = []
        elif entrypoint is None:
            entrypoint = img.entrypoint or []
            if cmd is None:
                cmd = img.cmd or []
        args = [*entrypoint, *(cmd or [])]
        if not args:
            raise BadRequest("No command specified")
        cid = secrets.token_hex(32)
        config = msgspec.structs.replace(
            req, hostname=req.hostname or cid[:12], image=req.image,
            env=[*(img.env or []), *[e for e in req.env or [] if e]],
            cmd=cmd if cmd else None, entrypoint=entrypoint or None,
            working_dir=req.working_dir or img.working_dir, user=req.user or img.user,
            labels={**(img.labels or {}), **(req.labels or {})},
            healthcheck=req.healthcheck or img.healthcheck,
            volumes={**(img.volumes or {}), **(req.volumes or {})} or None,
        )
        config = ContainerConfig(**{f: getattr(config, f) for f in ContainerConfig.__struct_fields__})
        hc = msgspec.structs.replace(hc, runtime=runtime, restart_policy=msgspec.structs.replace(hc.restart_policy, name=policy),
                                     log_config=msgspec.structs.replace(hc.log_config, type="json-file",
                                                                        config=hc.log_config.config or {}))
        if hc.init is None:
            hc = msgspec.structs.replace(hc, init=self.config.init)
        endpoints = (req.networking_config.endpoints_config if req.networking_config else None) or {}
        record = ContainerRecord(id=cid, name=name, created=timefmt.now(), image_ref=req.image, image_id=image.id,
                                 path=args[0], args=args[1:], config=config, host_config=hc, runtime=runtime,
                                 aliases={net: list(e.aliases) for net, e in endpoints.items() if e and e.aliases},
                                 mounts=[point for point, _ in planned])
        await self.volumes.provide([wanted for _, wanted in planned if wanted is not None])
        c = Container(record, self._containers_dir / cid, self._netns_dir)
        c.dir.mkdir()
        c.log_path.touch(mode=0o640)  # followers (attach before start) open it at once
        await trio.to_thread.run_sync(self._write_etc_files, c)
        await self.save_record(c)
        self.containers[cid] = c
        self.names[name] = cid
        self.publish_container(c, "create")
        return c

    def _write_etc_files(self, c: Container) -> None:
        (c.dir / "hostname").write_text(c.record.config.hostname + "\n")
        self.network.write_hosts(c)
        # berth's bridges have no NAT, so the host's nameservers are out of reach: none is
        # given (user-defined networks get the embedded resolver at 127.0.0.11).
        (c.dir / "resolv.conf").write_text("# no nameserver: berth's networks do not lead off this host\n")

    async def save_record(self, c: Container) -> None:
        """Persist a container's record and wake those waiting on it."""
        data = msgspec.json.encode(c.record)
        await trio.to_thread.run_sync(atomic_write, c.record_path, data)
        c.notify()

    # --- containers: run-time hooks used by the supervisor -------------------

    async def prepare(self, c: Container) -> None:
        """Mount the rootfs, create the network namespace, write the OCI bundle."""
        image = self.images.images.get(c.record.image_id)
        if image is None:
            raise BadRequest(f"image {c.record.image_id} of container {c.name} is gone")
        lowers = [self.images.layer_dir(chain) for chain in self.images.layer_chain(image)]

        def work() -> None:
            rootfs.mount_overlay(lowers, c.upper, c.work, c.rootfs)
            if not c.netns.exists():
                netns.create(c.netns)
            spec = bundle.oci_config(c.record, rootfs=c.rootfs, files=c.dir, netns=c.netns,
                                     cgroups_path=self.cgroup_path(c), image_env=image.config.config.env or [],
                                     init_binary=self.config.init_binary)
            c.bundle.mkdir(exist_ok=True)
            (c.bundle / "config.json").write_bytes(msgspec.json.encode(spec))

        c.prepared = True
        try:
            await trio.to_thread.run_sync(work)
            await self.volumes.attach(c)
            await self.network.start(c)
        except EngineError:
            await self.teardown(c)
            raise

    async def teardown(self, c: Container) -> None:
        """Undo `prepare`: release its volumes, unmount the rootfs, drop the network namespace."""
        await self.volumes.detach(c)
        await self.network.stop(c)

        def work() -> None:
            netns.remove(c.netns)
            rootfs.unmount(c.rootfs)

        await trio.to_thread.run_sync(work)
        c.prepared = False

    async def record_start(self, c: Container, pid: int) -> None:
        c.record.state = msgspec.structs.replace(
            c.record.state, status="running", running=True, restarting=False, pid=pid, exit_code=0, error="", oom_killed=False,
            started_at=timefmt.now(), finished_at=ZERO_TIME)
        await self.save_record(c)

    def _oom_killed(self, cid: str) -> None:
        c = self.containers.get(cid)
        if c is not None and c.has_process:
            c.oom_killed = True
            self.publish_container(c, "oom")

    async def record_exit(self, c: Container, exit_code: int, error: str = "", started: bool = True,
                          restarting: bool = False) -> None:
        """Record the end of a run (or, with `started=False`, a start that failed: the
        container keeps its state, as in Docker, but waiters and attachers are released);
        with `restarting`, the restart policy's back-off begins."""
        if restarting:
            status = "restarting"
        else:
            status = "exited" if started or c.state is not State.CREATED else "created"
        self.oom.drain()  # an OOM kill logged just before this exit belongs to it
        c.record.state = msgspec.structs.replace(
            c.record.state, status=status, running=False, paused=False, restarting=restarting, pid=0, exit_code=exit_code,
            error=error, finished_at=timefmt.now(), oom_killed=c.oom_killed)
        c.oom_killed = False
        c.exits += 1
        await self.save_record(c)
        self.publish_container(c, "die", exitCode=str(exit_code))

    async def stop_restarting(self, c: Container) -> None:
        """`stop` cut the restart policy's back-off short: the container is exited."""
        c.record.state = msgspec.structs.replace(c.record.state, status="exited", restarting=False)
        await self.save_record(c)

    # --- containers: actions --------------------------------------------------

    @asynccontextmanager
    async def _acting(self, ref: str, action: Action) -> AsyncIterator[Container]:
        """Hold the container's action lock and check `action` against the lifecycle
        table under it, so concurrent start/stop/restart/rm see each other's results."""
        c = self.get(ref)
        async with c.lock:
            if c.removed:
                raise no_such_container(ref)
            lifecycle.check(c.state, action, id=c.id, name=c.name)
            yield c

    async def start(self, ref: str) -> Container:
        """Start a created or exited container; 304 if it already runs."""
        async with self._acting(ref, Action.START) as c:
            await self._start(c)
        return c

    async def _start(self, c: Container) -> None:
        await c.wait_until(lambda: not c.supervised)
        c.stop_requested = False
        c.record.manually_stopped = False
        await self._supervisor.start(c)  # which publishes `start`

    async def stop(self, ref: str, timeout: float | None = None) -> Container:
        """SIGTERM (or the image's stop signal), then SIGKILL after `timeout` seconds."""
        async with self._acting(ref, Action.STOP) as c:
            await self._stop(c, timeout, True)
        return c

    async def _stop(self, c: Container, timeout: float | None, manual: bool) -> None:
        c.stop_requested = True
        if manual:
            c.record.manually_stopped = True
        if timeout is None:
            timeout = c.record.config.stop_timeout if c.record.config.stop_timeout is not None else 10
        if c.has_process:
            exits = c.exits
            sig = oci.parse_signal(c.record.config.stop_signal, signal.SIGTERM)
            await self._signal(c, sig)
            with trio.move_on_after(timeout if timeout >= 0 else float("inf")):
                await c.wait_until(lambda: c.exits > exits)
            if c.exits == exits:
                await self._signal(c, signal.SIGKILL)
                await c.wait_until(lambda: c.exits > exits)
        if c.backoff is not None:
            c.backoff.cancel()
        await c.wait_until(lambda: not c.supervised)
        self.publish_container(c, "stop")

    async def _signal(self, c: Container, sig: int) -> None:
        self.publish_container(c, "kill", signal=str(sig))
        try:
            await self.runtime_for(c).kill(c.id, sig)
        except oci.RuntimeFailure as exc:
            if c.has_process and c.record.state.pid and _alive(c.record.state.pid):
                raise EngineError(f"Cannot kill container: {c.name}: {exc.message}") from None
        # dockerd thaws a paused container after sending it SIGKILL or its stop signal
        # (any signal when none is set), so that the signal is acted on.
        stop_signal = c.record.config.stop_signal
        if c.state is State.PAUSED and (sig == signal.SIGKILL or not stop_signal
                                        or oci.parse_signal(stop_signal, signal.SIGTERM) == sig):
            await self._thaw(c)

    async def kill(self, ref: str, sig: str | int | None = None) -> Container:
        c = self.get(ref)
        try:
            number = oci.parse_signal(sig)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        lifecycle.check(c.state, Action.KILL, id=c.id, name=c.name)
        if number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            c.stop_requested = True
            c.record.manually_stopped = True
        await self._signal(c, number)
        return c

    async def restart(self, ref: str, timeout: float | None = None) -> Container:
        async with self._acting(ref, Action.RESTART) as c:
            if c.live:
                await self._stop(c, timeout, False)
            await self._start(c)
            self.publish_container(c, "restart")
        return c

    async def pause(self, ref: str) -> Container:
        """Freeze every process of a running container (the cgroup freezer)."""
        async with self._acting(ref, Action.PAUSE) as c:
            await self._freeze(c, True)
            c.record.state = msgspec.structs.replace(c.record.state, status=State.PAUSED.value, paused=True)
            await self.save_record(c)
            self.publish_container(c, "pause")
        return c

    async def unpause(self, ref: str) -> Container:
        """Thaw a paused container."""
        async with self._acting(ref, Action.UNPAUSE) as c:
            await self._thaw(c)
            self.publish_container(c, "unpause")
        return c

    async def _freeze(self, c: Container, frozen: bool) -> None:
        path = self.cgroup_path(c)
        try:
            await trio.to_thread.run_sync(cgroups.set_frozen, self.layout, path, frozen)
        except FileNotFoundError:
            if not frozen:
                return  # its cgroup is gone with its processes (a kill thawed it): nothing left frozen
            raise Conflict(f"Container {c.id} is not running") from None
        except OSError as exc:
            raise EngineError(f"Cannot {'pause' if frozen else 'unpause'} container {c.id}: "
                              f"the cgroup freezer is not available: {exc.strerror}") from None
        # Freezing completes when every task reached a safe point: usually at once. A
        # thawed container may end at once too (a pending SIGKILL): its cgroup goes, and
        # the state reads None, which is thawed enough.
        with trio.move_on_after(10):
            while (state := cgroups.is_frozen(self.layout, path)) is not frozen:
                if state is None and not frozen:
                    return
                await trio.sleep(0.001)
            return
        raise EngineError(f"Cannot {'pause' if frozen else 'unpause'} container {c.id}: the freezer did not settle in 10 s")

    async def _thaw(self, c: Container) -> None:
        """Thaw a paused container and record it running again."""
        await self._freeze(c, False)
        if c.state is State.PAUSED:
            c.record.state = msgspec.structs.replace(c.record.state, status=State.RUNNING.value, paused=False)
            await self.save_record(c)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Delete a container and its writable layer; with `force`, kill it first; with
        `volumes` (`rm -v`), its anonymous volumes too."""
        async with self._acting(ref, Action.FORCE_REMOVE if force else Action.REMOVE) as c:
            c.stop_requested = True
            if c.has_process:
                exits = c.exits
                await self._signal(c, signal.SIGKILL)
                await c.wait_until(lambda: c.exits > exits)
            if c.backoff is not None:
                c.backoff.cancel()
            await c.wait_until(lambda: not c.supervised)
            await self.remove_stopped(c, volumes)

    async def remove_stopped(self, c: Container, volumes: bool = False) -> None:
        """Remove a container that has no process: its files, name, and record; its
        anonymous volumes too with `volumes` or AutoRemove (as dockerd's `--rm`)."""
        if c.removed:
            return
        c.record.state.status = State.REMOVING.value
        c.notify()
        if c.prepared:
            await self.teardown(c)
        await trio.to_thread.run_sync(shutil.rmtree, c.dir, True)
        self.containers.pop(c.id, None)
        if self.names.get(c.name) == c.id:
            del self.names[c.name]
        await self.volumes.release(c, volumes or c.record.host_config.auto_remove)
        c.removed = True
        self.execs.forget(c)
        self.publish_container(c, "destroy")
        c.notify()

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until `condition` (not-running, next-exit, removed); return the exit code."""
        c = self.get(ref)
        if condition in ("", "not-running"):
            await c.wait_until(lambda: not c.live or c.removed)
        elif condition == "next-exit":
            exits = c.exits
            await c.wait_until(lambda: c.exits > exits or c.removed)
        elif condition == "removed":
            await c.wait_until(lambda: c.removed)
        else:
            raise BadRequest(f"invalid condition: {condition!r}")
        return c.record.state.exit_code

    async def exec_run(self, ref: str, cmd: list[str], *, user: str = "", workdir: str = "", env: list[str] = (),
                       timeout: float | None = None) -> tuple[int, bytes]:
        """Run `cmd` inside a running container; return (exit code, stdout+stderr).

        A process still running after `timeout` seconds is killed (exit code 137).
        Publishes exec_create, exec_start and exec_die as Docker does."""
        session = self.execs.create(ref, ExecConfig(cmd=cmd, user=user, working_dir=workdir, env=list(env),
                                                    attach_stdout=True, attach_stderr=True))
        output = bytearray()

        async def collect(_stream: int, data: bytes) -> None:
            output.extend(data)

        try:
            code = await self.execs.run(self.execs.claim(session.id), output=collect, timeout=timeout)
        finally:
            self.execs.sessions.pop(session.id, None)  # nobody will inspect it
        return code, bytes(output)

    async def set_health(self, c: Container, health) -> None:
        """Record a container's health (healthcheck plugin); publish `health_status` on change."""
        before = c.record.state.health.status if c.record.state.health else None
        c.record.state = msgspec.structs.replace(c.record.state, health=health)
        await self.save_record(c)
        if health is not None and health.status != before:
            self.publish_container(c, f"health_status: {health.status}")

    def list_containers(self, all_: bool = False, filters: flt.Filters | None = None) -> list[Container]:
        """Containers newest first; live ones only unless `all_`."""
        f = filters or {}
        found = sorted(self.containers.values(), key=lambda c: c.record.created, reverse=True)
        if not all_ and not ({"status", "exited"} & f.keys()):
            found = [c for c in found if c.live]
        ancestors = set()
        for ref in f.get("ancestor", []):
            try:
                ancestors.add(self.images.resolve(ref).id)
            except NotFound:
                pass

        def keep(c: Container) -> bool:
            if "id" in f and not any(c.id.startswith(v) for v in f["id"]):
                return False
            if "name" in f and not any(re.search(v, "/" + c.name) for v in f["name"]):
                return False
            if "label" in f and not flt.label_match(f["label"], c.record.config.labels or {}):
                return False
            if "status" in f and c.state.value not in f["status"]:
                return False
            if "ancestor" in f and c.record.image_id not in ancestors:
                return False
            if "exited" in f and (c.state is not State.EXITED or str(c.record.state.exit_code) not in f["exited"]):
                return False
            return True

        for key in ("before", "since"):
            if key in f:
                pivot = self.get(f[key][0]).record.created
                found = [c for c in found if (c.record.created < pivot if key == "before" else c.record.created > pivot)]
        return [c for c in found if keep(c)]

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: str = "", until: str = "",
             times: bool = True):
        """(container, async iterator of log entry batches) for `logs`; `times` as in logs.read."""
        c = self.get(ref)
        return c, logs.read(c.log_files, tail=tail, since=since, until=until, follow=follow, times=times,
                            grown=c.follow, done=lambda: not c.live)

    def attach(self, ref: str, *, replay: bool = False):
        """(container, output iterator) from now (or the start with `replay`) to the end of
        the current run, or of the next one if the container is not running yet."""
        c = self.get(ref)
        target = c.exits
        self.publish_container(c, "attach")
        return c, logs.read(c.log_files, from_end=not replay, follow=True, times=False,
                            grown=c.follow, done=lambda: c.exits > target or c.removed)

    async def rename(self, ref: str, new_name: str) -> None:
        """Give a container a new name; publishes `rename` with the old one."""
        c = self.get(ref)
        new_name = names.validate(new_name.lstrip("/"))
        if new_name == c.name:
            raise Conflict(f"Renaming a container with the same name as its current name")
        if new_name in self.names:
            raise Conflict(f'Conflict. The container name "/{new_name}" is already in use by container '
                           f'"{self.names[new_name]}". You have to remove (or rename) that container to be able to reuse that name.')
        old = c.name
        del self.names[old]
        self.names[new_name] = c.id
        c.record.name = new_name
        await self.save_record(c)
        self.publish_container(c, "rename", oldName="/" + old)

    async def update(self, ref: str, req: UpdateRequest) -> None:
        """Change a container's limits (applied at once to a running one) and restart
        policy; publishes `update`."""
        c = self.get(ref)
        hc = c.record.host_config
        changes = {f: v for f in UpdateRequest.__struct_fields__ if (v := getattr(req, f)) is not None}
        if changes.get("restart_policy") is not None and not changes["restart_policy"].name:
            del changes["restart_policy"]  # the docker CLI sends an empty policy when none was given
        policy = changes.get("restart_policy")
        if policy is not None and policy.name not in RESTART_POLICIES:
            raise BadRequest(f"invalid restart policy '{policy.name}'")
        if policy is not None and policy.name != "no" and hc.auto_remove:
            raise BadRequest("Restart policy cannot be updated because AutoRemove is enabled for the container")
        if changes.get("memory") and changes["memory"] < MIN_MEMORY:
            raise BadRequest("Minimum memory limit allowed is 6MB")
        if changes.get("nano_cpus") and (changes.get("cpu_quota") or changes.get("cpu_period")):
            raise BadRequest("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        updated = msgspec.structs.replace(hc, **changes)
        if changes.get("nano_cpus"):
            updated = msgspec.structs.replace(updated, cpu_quota=0, cpu_period=0)
        elif changes.get("cpu_quota") or changes.get("cpu_period"):
            updated = msgspec.structs.replace(updated, nano_cpus=0)
        record = msgspec.structs.replace(c.record, host_config=updated)
        if c.has_process:
            limits = {k: v for k, v in bundle.resources(record).items() if k != "devices"}
            try:
                await self.runtime_for(c).update(c.id, limits, c.bundle / "update.json")
            except oci.RuntimeFailure as exc:
                raise EngineError(f"Cannot update container {c.id}: {exc.message}") from None
        c.record.host_config = updated
        await self.save_record(c)
        self.publish_container(c, "update")

    async def prune_containers(self, filters: flt.Filters | None = None, until: str = "") -> tuple[list[str], int]:
        """Remove every stopped container matching `label` filters and created before
        `until` (RFC 3339, "" for no limit); returns (removed IDs, bytes reclaimed from
        their writable layers)."""
        gone, reclaimed = [], 0
        for c in list(self.containers.values()):
            if c.live or c.state is State.REMOVING or not _prune_match(c, filters or {}, until):
                continue
            size = await trio.to_thread.run_sync(tree_size, c.upper)
            try:
                await self.remove(c.id)
            except EngineError:
                continue  # started or removed meanwhile
            gone.append(c.id)
            reclaimed += size
        self.bus.publish(Event(Type="container", Action="prune", Actor=Actor("", {"reclaimed": str(reclaimed)}),
                               scope="local"))
        return gone, reclaimed

    async def write_stdin(self, c: Container, data: bytes) -> bool:
        """Write to the container's stdin, waiting for it to start if it has not yet;
        False when the run this attach belongs to is over."""
        target = c.exits
        await c.wait_until(lambda: c.stdin is not None or c.exits > target or c.removed)
        if c.stdin is None:
            return False
        async with c.stdin_lock:  # several attached clients may type at once
            try:
                await c.stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return True

    async def close_stdin(self, c: Container) -> None:
        """End the container's stdin (StdinOnce, after the attached client's EOF); with a
        terminal, EOF is the terminal's own business (Ctrl-D), so it stays open."""
        if c.stdin is not None and c.terminal is None:
            async with c.stdin_lock:
                await c.stdin.aclose()

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Set the size of a container's terminal (kept for its next runs too)."""
        c = self.get(ref)
        if not c.has_process:
            raise Conflict(f"Container {c.id} is not running")
        c.console_size = (height, width)
        if c.terminal is not None:
            c.terminal.resize(height, width)
        self.publish_container(c, "resize", height=str(height), width=str(width))

    # --- images ---------------------------------------------------------------

    async def import_image(self, tar_path: Path, *, repo: str = "", changes: list[str] = (), message: str = "") -> Image:
        """`docker import`: a one-layer image from a rootfs tar, tagged `repo` if given."""
        ref = reference.parse(repo) if repo else None
        async with self.image_lock:
            image = await trio.to_thread.run_sync(
                lambda: self.images.import_rootfs(tar_path, changes=list(changes), message=message))
        if ref:
            await self.tag(image.id, ref.repo, ref.tag)
        self.publish_image(image.id, "import")
        return image

    async def tag(self, source: str, repo: str, tag: str = "") -> None:
        image = self.images.resolve(source)
        ref = reference.parse(repo, tag)
        async with self.image_lock:
            await trio.to_thread.run_sync(self.images.tag, image, ref)
        self.publish_image(image.id, "tag", str(ref))

    async def remove_image(self, ref: str, force: bool = False) -> list[dict[str, str]]:
        """`rmi`: untag, and delete once no tag and no container refers to the image.

        Removing one of several tags only untags. The last reference (or the image by ID)
        is refused while a container uses the image, unless forced; forced, the tags go
        but the image stays until its containers are gone (their rootfs needs its layers).
        """
        image = self.images.resolve(ref)
        tags = self.images.tags_of(image.id)
        users = [c for c in self.containers.values() if c.record.image_id == image.id]
        short = image.id[7:19]
        by_name = not image.id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
        if by_name:
            to_untag = [str(reference.parse(ref))]
            last = len(tags) == 1
            if last and users and not force:
                raise Conflict(f'conflict: unable to remove repository reference "{to_untag[0]}" (must force) - '
                               f"container {users[0].id[:12]} is using its referenced image {short}")
        else:
            to_untag = tags
            running = [c for c in users if c.live]
            if running:
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is being used by running container {running[0].id[:12]}")
            if not force and len(tags) > 1:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
            if not force and users:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is being used by stopped container {users[0].id[:12]}")
        report: list[dict[str, str]] = []
        async with self.image_lock:
            for key in to_untag:
                await trio.to_thread.run_sync(self.images.untag, key)
                report.append({"Untagged": key})
                self.publish_image(image.id, "untag")
            if not self.images.tags_of(image.id) and not users:
                await trio.to_thread.run_sync(self.images.delete, image)
                report.append({"Deleted": image.id})
                self.publish_image(image.id, "delete")
        return report

    async def prune_images(self) -> list[dict[str, str]]:
        """Delete dangling images (no tag) that no container uses; report what went."""
        used = {c.record.image_id for c in self.containers.values()}
        report: list[dict[str, str]] = []
        for image in self.list_images({"dangling": ["true"]}):
            if image.id not in used:
                report += await self.remove_image(image.id)
        return report

    def list_images(self, filters: flt.Filters | None = None) -> list[Image]:
        f = filters or {}
        found = sorted(self.images.images.values(), key=lambda i: i.config.created, reverse=True)
        out = []
        for image in found:
            tags = self.images.tags_of(image.id)
            if "dangling" in f and (f["dangling"][0].lower() in ("1", "true")) != (not tags):
                continue
            if "reference" in f and not any(_glob_match(p, t) for p in f["reference"] for t in tags):
                continue
            if "label" in f and not flt.label_match(f["label"], image.config.config.labels or {}):
                continue
            out.append(image)
        return out

    # --- system -------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        states = [c.state for c in self.containers.values()]
        return {"total": len(states), "running": states.count(State.RUNNING),
                "paused": states.count(State.PAUSED),
                "stopped": len(states) - states.count(State.RUNNING) - states.count(State.PAUSED)}


def _words(value: list[str] | str | None) -> list[str] | None:
    """Docker accepts Cmd/Entrypoint as a list or a single string (shell form)."""
    if isinstance(value, str):
        return [value] if value else []
    return value


def _prune_match(c: Container, filters: flt.Filters, until: str) -> bool:
    """`prune`'s filters: label (k, k=v), label! (not), until (created before; RFC 3339
    times are fixed-width, so they compare as strings)."""
    labels = c.record.config.labels or {}
    if filters.get("label") and not flt.label_match(filters["label"], labels):
        return False
    if filters.get("label!") and any(flt.label_match([item], labels) for item in filters["label!"]):
        return False
    return not until or c.record.created < until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _glob_match(pattern: str, tag: str) -> bool:
    """`reference` filter: a glob against `repo:tag`, or against the repo alone."""
    from fnmatch import fnmatchcase

    repo = tag.rpartition(":")[0]
    return fnmatchcase(tag, pattern) or fnmatchcase(repo, pattern)
