"""The containers service: what a user can do to a container, checked against the
lifecycle table under the container's action lock.

Runs themselves (prepare, launch, exit, restart policy, removal) belong to the
supervisor; this service asks it to start and remove, sends signals, freezes and thaws,
and keeps the records of what it changed.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NamedTuple

import msgspec
import trio

from .. import lifecycle, timefmt
from ..images.config_merge import merged_env, merged_health
from ..errors import BadRequest, Conflict, EngineError, NotFound, no_such_container
from ..events import constructors
from ..events import filters as flt
from ..fs.store import tree_size
from ..images import reference
from ..images.commit import new_config, write_layer
from ..images.service import Images
from ..images.store import Image
from ..lifecycle import Action, State, Step
from ..models import (CommitOptions, ContainerConfig, ContainerRecord, CreateRequest, HistoryEntry, HostConfig,
                      ImageRuntimeConfig, LogConfig, MountPoint, UpdateRequest, words)
from ..network.manager import NetworkManager, network_names
from ..runtime import bundle, cgroups, oci
from ..volumes import Volumes
from . import checks, logs, mounts, names
from .container import Container
from .files import Files
from .records import Claim, Containers
from .supervisor import Supervisor
from .taps import Tap

# The `none` log driver keeps nothing `logs` can read; the run's output still passes
# through a file (attach follows it), kept this small.
NONE_LOG_BOUND = {"max-size": "1m", "max-file": "2"}
LIST_FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since", "health", "network",
                "volume", "is-task", "publish", "expose")
_STATES = {state.value for state in State}
_HEALTH = ("starting", "healthy", "unhealthy", "none")


class ContainerUsage(NamedTuple):
    """One container in `system df`."""

    container: Container
    size_rw: int  # bytes of its writable layer
    size_root_fs: int  # those and its image's


class ContainerService:
    def __init__(self, containers: Containers, supervisor: Supervisor, images: Images, volumes: Volumes,
                 network: NetworkManager, files: Files, layout: cgroups.Layout, *, default_runtime: str, init: bool):
        self.containers = containers
        self.files = files
        self.supervisor = supervisor
        self.images = images
        self.volumes = volumes
        self.network = network
        self.layout = layout
        self.default_runtime = default_runtime
        self.init = init
        self._features: cgroups.Features | None = None

    def oom_killed(self, cid: str) -> None:
        """The kernel's OOM killer took a process of container `cid`: publish `oom`."""
        c = self.containers.by_id.get(cid)
        if c is not None and c.has_process:
            c.oom_killed = True
            self.containers.publish(c, "oom")

    async def create(self, req: CreateRequest, name: str | None = None) -> Container:
        """Create a container from `req` (the body of `POST /containers/create`)."""
        # A start usually follows within milliseconds (`run`, compose): the cgroup attach
        # lock's grace period, which that start's runtime would wait out, begins now.
        self.supervisor.attach_lock.take_ahead()
        cid = secrets.token_hex(32)
        # before the first await: see Containers.reserve
        name = self.containers.reserve(names.validate(name) if name else None, cid)
        try:
            return await self._create(req, name, cid)
        finally:
            self.containers.release(name, cid)

    async def _create(self, req: CreateRequest, name: str, cid: str) -> Container:
        if not req.image:
            raise BadRequest("config error: Image is required")
        image = self.images.resolve(req.image)
        hc = req.host_config
        runtime = hc.runtime or req.runtime or self.default_runtime
        if runtime not in self.supervisor.runtimes:
            raise BadRequest(f"unknown or invalid runtime name: {runtime}")
        policy = hc.restart_policy.name or "no"
        checks.policy(policy, hc.auto_remove, "can't create 'AutoRemove' container with restart policy",
                      hc.restart_policy.maximum_retry_count)
        checks.config(req)
        hc = self.check_host_config(req, hc)
        img = image.config.config
        planned = mounts.plan(hc.binds, hc.mounts, [*(img.volumes or {}), *(req.volumes or {})],
                              lambda volume: str(self.volumes.data_path(volume)), tmpfs=list(hc.tmpfs or {}),
                              inherited=self._volumes_from(hc.volumes_from))
        # before the first await, as the name: see Claim
        self.containers.creating[cid] = Claim(image.id, frozenset(m.name for m, _ in planned if m.type == "volume"))
        # Empty Cmd/Entrypoint mean "not given"; `--entrypoint ""` ([""]) clears the image's.
        entrypoint = words(req.entrypoint) or None
        cmd = words(req.cmd) or None
        if entrypoint == [""]:
            entrypoint = []
        elif entrypoint is None:
            entrypoint = img.entrypoint or []
            if cmd is None:
                cmd = img.cmd or []
        args = [*entrypoint, *(cmd or [])]
        if not args:
            raise BadRequest("No command specified")
        # as dockerd: a container on the host's network takes the host's name, one on another
        # container's takes that one's (and shares its /etc/hosts, /etc/hostname, /etc/resolv.conf)
        if donor := bundle.joined(hc.network_mode):
            hostname = self.containers.get(donor).record.config.hostname
        else:
            hostname = req.hostname or (socket.gethostname() if hc.network_mode == "host" else cid[:12])
        config = msgspec.structs.replace(
            req, hostname=hostname, image=req.image,
            env=merged_env([e for e in req.env or [] if e], img.env or []),
            cmd=cmd if cmd else None, entrypoint=entrypoint or None,
            working_dir=req.working_dir or img.working_dir, user=req.user or img.user,
            labels={**(img.labels or {}), **(req.labels or {})},
            healthcheck=merged_health(req.healthcheck, img.healthcheck),
            volumes={**(img.volumes or {}), **(req.volumes or {})} or None,
            # as dockerd's merge: the image's exposed ports join the request's (`-P` publishes
            # them), its STOPSIGNAL stands unless the request names one
            exposed_ports={**(img.exposed_ports or {}), **(req.exposed_ports or {})} or None,
            stop_signal=req.stop_signal or img.stop_signal or None,
        )
        config = ContainerConfig(**{f: getattr(config, f) for f in ContainerConfig.__struct_fields__})
        hc = msgspec.structs.replace(hc, runtime=runtime, restart_policy=msgspec.structs.replace(hc.restart_policy, name=policy))
        if hc.init is None:
            hc = msgspec.structs.replace(hc, init=self.init)
        endpoints = self.network.plan(hc.network_mode, (req.networking_config.endpoints_config
                                                        if req.networking_config else None) or {})
        record = ContainerRecord(id=cid, name=name, created=timefmt.now(), image_ref=req.image, image_id=image.id,
                                 path=args[0], args=args[1:], config=config, host_config=hc, runtime=runtime,
                                 endpoints=endpoints, mounts=[point for point, _ in planned])
        wanted = [wanted for _, wanted in planned if wanted is not None]
        if wanted:
            checks.volume_driver(hc.volume_driver)
        await self.volumes.provide(wanted)
        c = Container(record, self.containers.root / cid, self.containers.netns_dir)
        if config.tty and hc.console_size and min(hc.console_size) > 0:
            c.console_size = (hc.console_size[0], hc.console_size[1])
        await trio.to_thread.run_sync(self._make_files, c)
        self.containers.add(c)
        self.containers.publish(c, "create")
        return c

    # --- HostConfig at create: dockerd's checks, in its order, then berth's own ----------

    def check_host_config(self, req: CreateRequest, hc: HostConfig) -> HostConfig:
        """Refuse (400, naming the field or with dockerd's words) every setting this host
        cannot honour or that is out of range, and return HostConfig as the container
        keeps it: other containers named by their IDs, and dockerd's defaults filled in
        (IpcMode, CgroupnsMode, ShmSize, OomKillDisable, masked and read-only paths)."""
        checks.conflicts(req, hc)
        checks.resources(hc, self.features)
        if hc.cpu_realtime_runtime > 0:
            parent = f"/{self.supervisor.cgroup_parent}"
            budget = cgroups.realtime_budget(parent)
            if hc.cpu_realtime_runtime > budget:
                raise BadRequest(f"CpuRealtimeRuntime {hc.cpu_realtime_runtime}: berth's cgroup parent {parent} has a "
                                 f"real-time budget of {budget} microseconds (cpu.rt_runtime_us); raise it first")
        checks.settings(req, hc)
        bundle.check(hc)
        # Legacy links act on the default bridge only. As dockerd, on a user-defined network
        # they are accepted unchecked and do nothing (compose's `run` sends them there); they
        # are not kept, since start would require their containers to run.
        networks = network_names(hc.network_mode)
        bridged = networks == ["bridge"]
        links = [self._link(spec) for spec in hc.links or []] if bridged or not networks else []
        if links and not bridged:
            raise BadRequest("Links: legacy links work on the default bridge network only; on a user-defined network "
                             "containers reach each other by name and network alias")
        ipc_mode = self._shared_mode(hc.ipc_mode)
        pid_mode = self._shared_mode(hc.pid_mode)
        network_mode = self._shared_mode(hc.network_mode)
        log_type = hc.log_config.type or "json-file"
        default_cgroupns = "host" if self.layout.version == 1 or hc.privileged else "private"
        return msgspec.structs.replace(
            hc, links=links or (hc.links if bridged else None), ipc_mode=ipc_mode or "private", pid_mode=pid_mode,
            network_mode=network_mode,
            cgroupns_mode=hc.cgroupns_mode or default_cgroupns, shm_size=hc.shm_size or bundle.DEFAULT_SHM_SIZE,
            oom_kill_disable=bool(hc.oom_kill_disable),
            # as dockerd: a memory limit without a swap limit allows as much swap again
            memory_swap=2 * hc.memory if hc.memory > 0 and not hc.memory_swap and self.features.swap else hc.memory_swap,
            memory_swappiness=None if hc.memory_swappiness == -1 else hc.memory_swappiness,
            pids_limit=hc.pids_limit if hc.pids_limit and hc.pids_limit > 0 else None,
            masked_paths=bundle.masked_paths() if hc.masked_paths is None and not hc.privileged else hc.masked_paths,
            readonly_paths=bundle.READONLY_PATHS if hc.readonly_paths is None and not hc.privileged else hc.readonly_paths,
            log_config=LogConfig(type=log_type, config=NONE_LOG_BOUND if log_type == "none" else hc.log_config.config or {}))

    @property
    def features(self) -> cgroups.Features:
        """What the host's cgroups can enforce (read once)."""
        if self._features is None:
            self._features = cgroups.features(self.layout)
        return self._features

    def _link(self, spec: str) -> str:
        """A `--link name[:alias]`, checked (its container exists and has a network of
        its own), as the record keeps it: `<ID>:<alias>`."""
        target, alias = checks.parse_link(spec)
        try:
            child = self.containers.get(target)
        except NotFound as exc:  # a 404 would send the docker CLI looking for the image
            raise BadRequest(f"could not get container for {target}: {exc.message}") from None
        if child.record.host_config.network_mode == "host":
            raise BadRequest("conflicting options: host type networking can't be used with links. "
                             "This would result in undefined behavior")
        return f"{child.id}:{alias}"

    def _shared_mode(self, mode: str) -> str:
        """`container:<name>` as `container:<ID>` (the namespace follows the container
        through a rename), once its container is known to exist."""
        target = bundle.joined(mode)
        if not target:
            return mode
        try:
            return f"container:{self.containers.get(target).id}"
        except NotFound as exc:
            raise BadRequest(exc.message) from None

    def _volumes_from(self, specs: list[str] | None) -> list[MountPoint]:
        """The mounts of each `--volumes-from container[:ro|:rw]`, read-only with `ro`
        (tmpfs mounts are the container's own, and not shared)."""
        found: list[MountPoint] = []
        for spec in specs or []:
            if not spec:
                raise BadRequest("volumes-from specification cannot be an empty string")
            target, _, mode = spec.partition(":")
            if mode and mode not in ("ro", "rw"):
                raise BadRequest(f"invalid mode: {mode}" if not mounts.valid_mode(mode)
                                 else f"invalid volume specification: '{spec}'")
            try:
                source = self.containers.get(target)
            except NotFound as exc:
                raise BadRequest(exc.message) from None
            found += [msgspec.structs.replace(m, rw=m.rw and mode != "ro", copy_data=False)
                      for m in source.record.mounts if m.type != "tmpfs"]
        return found

    def _make_files(self, c: Container) -> None:
        """The container's directory, its log, its /etc files and its first record (durable),
        in one worker thread: an ext4 mkdir can wait for a bitmap read from the disk, and in
        the event loop that held up every other request (34 waits, 13.5 ms, in a burst of 50
        `run -d`); one hop rather than two saves a turn of the GIL per create."""
        c.dir.mkdir()
        c.log_path.touch(mode=0o640)  # followers (attach before start) open it at once
        (c.dir / "hostname").write_text(c.record.config.hostname + "\n")
        self.network.write_hosts(c)
        self.network.write_resolv_conf(c)
        self.containers.write(c)

    @asynccontextmanager
    async def _acting(self, ref: str, action: Action) -> AsyncIterator[Container]:
        """Hold the container's action lock and check `action` against the lifecycle
        table under it, so concurrent start/stop/restart/rm see each other's results."""
        c = self.containers.get(ref)
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
        c.record.restart_count = 0  # as dockerd: a start by hand gives the policy its retries again
        await self.supervisor.start(c)  # which publishes `start`

    async def stop_all(self, timeout: float | None = None) -> None:
        """Stop every live container, in parallel (the daemon is shutting down), and let
        each supervisor finish: the last thing one does is to have the keeper forget
        the run, which must not find the keeper gone."""
        async with trio.open_nursery() as nursery:
            for c in self.containers:
                if c.live:
                    nursery.start_soon(self._stop, c, timeout, False)
        for c in list(self.containers):
            await c.wait_until(lambda c=c: not c.supervised)

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
        await self.containers.advance(c, Step.STOPPED)

    async def _signal(self, c: Container, sig: int) -> None:
        if c.has_process:
            await self.containers.advance(c, Step.SIGNAL, {"signal": str(sig)})
        try:
            await self.supervisor.runtime_for(c).kill(c.id, sig)
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
        c = self.containers.get(ref)
        try:
            number = oci.parse_signal(sig)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        lifecycle.check(c.state, Action.KILL, id=c.id, name=c.name)
        if c.state is State.RESTARTING:  # any signal ends the restart loop, as dockerd's
            c.stop_requested = True
            c.record.manually_stopped = True
            if c.backoff is not None:
                c.backoff.cancel()
            await c.wait_until(lambda: not c.supervised)
            return c
        # as dockerd: the restart policy is off for this run when the signal is SIGKILL,
        # the container's own stop signal, or any signal if it has none; and every kill
        # counts as a user's stop (`unless-stopped` stays down across a daemon restart)
        stop_signal = c.record.config.stop_signal
        if number == signal.SIGKILL or not stop_signal or oci.parse_signal(stop_signal) == number:
            c.stop_requested = True
        c.record.manually_stopped = True
        exits = c.exits
        await self._signal(c, number)
        if number == signal.SIGKILL:  # as dockerd: answered once the run is over, so an `rm` right after succeeds
            await c.wait_until(lambda: c.exits > exits or not c.has_process)
        return c

    async def restart(self, ref: str, timeout: float | None = None) -> Container:
        async with self._acting(ref, Action.RESTART) as c:
            c.restarting = True  # an AutoRemove container is restarted, not removed by its stop
            try:
                if c.live:
                    await self._stop(c, timeout, False)
                await self._start(c)
            finally:
                c.restarting = False
                if c.record.host_config.auto_remove and not c.live and not c.removed:
                    with trio.CancelScope(shield=True):  # the removal its stop held back
                        await self.supervisor.remove(c)
            await self.containers.advance(c, Step.RESTARTED)
        return c

    async def pause(self, ref: str) -> Container:
        """Freeze every process of a running container (the cgroup freezer)."""
        async with self._acting(ref, Action.PAUSE) as c:
            await self._freeze(c, True)
            if c.state is not State.RUNNING:  # it exited while freezing
                raise Conflict(f"Container {c.id} is not running")
            # Paused or not means nothing after the machine's restart (no process survives
            # it): the state need not reach the disk, only survive the daemon (~1 ms less)
            await self.containers.advance(c, Step.PAUSE, durable=False)
        return c

    async def unpause(self, ref: str) -> Container:
        """Thaw a paused container."""
        async with self._acting(ref, Action.UNPAUSE) as c:
            await self._freeze(c, False)
            if c.state is State.PAUSED:  # not if it died meanwhile
                await self.containers.advance(c, Step.UNPAUSE, durable=False)  # as for pause
        return c

    async def _freeze(self, c: Container, frozen: bool) -> None:
        path = self.supervisor.cgroup_path(c)
        try:
            # in the event loop's thread: the freezer answers at once (it is `is_frozen`
            # that tells when every task got there), quicker than a thread hop
            cgroups.set_frozen(self.layout, path, frozen)
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
        """Thaw a paused container a signal should reach, and record it running again."""
        await self._freeze(c, False)
        if c.state is State.PAUSED:
            await self.containers.advance(c, Step.THAW, durable=False)  # as for pause

    async def remove_link(self, name: str) -> None:
        """`DELETE /containers/parent/alias?link=1`: the link `alias` of `parent` goes from
        its HostConfig (and its /etc/hosts, if it runs), as dockerd's rmLink does."""
        parent_name, _, alias = name.strip("/").rpartition("/")
        if not parent_name:
            raise Conflict("Conflict, cannot remove the default link name of the container")
        parent = self.containers.get(parent_name)
        links = parent.record.host_config.links or []
        kept = [spec for spec in links if spec.partition(":")[2] != alias]
        if len(kept) == len(links):
            raise no_such_container(name)
        parent.record.host_config = msgspec.structs.replace(parent.record.host_config, links=kept or None)
        await self.containers.save(parent)
        if parent.prepared:
            await trio.to_thread.run_sync(self.network.write_hosts, parent)

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
            await self.supervisor.remove(c, volumes)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        """Block until `condition` (not-running, next-exit, removed); return the exit code."""
        c = self.containers.get(ref)
        if condition in ("", "not-running"):
            # as dockerd: an exit ends the wait even when the restart policy runs it again
            exits = c.exits
            await c.wait_until(lambda: not c.live or c.exits > exits or c.removed)
        elif condition == "next-exit":
            exits = c.exits
            await c.wait_until(lambda: c.exits > exits or c.removed)
        elif condition == "removed":
            await c.wait_until(lambda: c.removed)
        else:
            raise BadRequest(f"invalid condition: {condition!r}")
        return c.record.state.exit_code

    async def set_health(self, c: Container, health) -> None:
        """Record a container's health (healthcheck plugin); publish `health_status` when a
        running container becomes healthy or unhealthy, as dockerd (not for `starting`, nor
        for the `unhealthy` a stopped container is left with)."""
        if c.removed or c.state is State.REMOVING:
            return  # its directory may be gone already (a `rm -f` beside a health check's end)
        before = c.record.state.health.status if c.record.state.health else None
        c.record.state = lifecycle.annotate(c.record.state, health=health)
        try:
            await self.containers.save(c)
        except FileNotFoundError:
            if c.removed or c.state is State.REMOVING:
                return  # removed while the record was written: nothing left to record it in
            raise
        if health is not None and health.status != before and health.status != "starting" and c.has_process:
            self.containers.publish(c, f"health_status: {health.status}")

    def list(self, all_: bool = False, filters: flt.Filters | None = None) -> list[Container]:
        """Containers newest first; live ones only unless `all_`."""
        f = flt.check(filters, LIST_FILTERS)
        for value in f.get("status", []):  # dockerd's checks and words
            if value not in _STATES:
                raise BadRequest(f"Invalid filter 'status={value}'")
        exited = set()
        for value in f.get("exited", []):
            if not re.fullmatch(r"[+-]?[0-9]+", value):  # what Go's strconv.Atoi takes
                raise BadRequest(f'strconv.Atoi: parsing "{value}": invalid syntax')
            exited.add(int(value))
        for value in f.get("health", []):
            if value not in _HEALTH:
                raise BadRequest(f"Unrecognised filter value for health: {value}")
        published, exposed = (_port_set(f.get(key, []), key) for key in ("publish", "expose"))
        found = sorted(self.containers, key=lambda c: c.record.created, reverse=True)
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
            if "name" in f and not any(re.search(v, "/" + c.name) or re.search(v, c.name) for v in f["name"]):
                return False
            if "label" in f and not flt.label_match(f["label"], c.record.config.labels or {}):
                return False
            if "status" in f and c.state.value not in f["status"]:
                return False
            if "ancestor" in f and c.record.image_id not in ancestors:
                return False
            if "exited" in f and (c.state is not State.EXITED or c.record.state.exit_code not in exited):
                return False
            if "health" in f:
                health = c.record.state.health
                if (health.status if health is not None else "none") not in f["health"]:  # a stopped one's last, as dockerd
                    return False
            if "network" in f and not any(name in f["network"] for name in c.record.endpoints):
                return False
            if "volume" in f and not any(m.name in f["volume"] or m.destination in f["volume"]
                                         for m in c.record.mounts):
                return False
            if "is-task" in f and "true" in f["is-task"]:
                return False  # no swarm here: no container is a task
            # as dockerd: a container port published (PortBindings) or exposed (ExposedPorts)
            if published and not published & set(c.record.host_config.port_bindings or {}):
                return False
            return not exposed or bool(exposed & set(c.record.config.exposed_ports or {}))

        for key in ("before", "since"):
            if key in f:
                pivot = self.containers.get(f[key][0]).record.created
                found = [c for c in found if (c.record.created < pivot if key == "before" else c.record.created > pivot)]
        return [c for c in found if keep(c)]

    def logs(self, ref: str, *, follow: bool = False, tail: int | None = None, since: int | None = None,
             until: int | None = None, times: bool = True):
        """(container, async iterator of log entry batches) for `logs`: entries from `since`
        to `until` (nanoseconds since the epoch, None for no bound); `times` as in logs.read."""
        c = self.containers.get(ref)
        if c.record.host_config.log_config.type == "none":
            raise BadRequest("configured logging driver does not support reading")
        return c, logs.read(c.log_files, tail=tail, since=_rfc3339(since), until=_rfc3339(until), follow=follow,
                            times=times, grown=c.follow, done=lambda: not c.live)

    @asynccontextmanager
    async def attach(self, ref: str, *, replay: bool = False, follow: bool = True
                     ) -> AsyncIterator[tuple[Container, AsyncIterator[list[tuple[str, bytes]]]]]:
        """(container, batches of its output as (stream, bytes) chunks): with `replay`,
        its log first; then, with `follow`, the output from now to the end of the current
        run (or of the next one if it does not run yet), byte for byte, through a tap the
        pumps fill (taps.py), held for the `with` block."""
        c = self.containers.get(ref)
        target = c.exits
        tap = c.taps.add() if follow else None
        self.containers.publish(c, "attach")
        try:
            yield c, _attached(c, tap, target, replay)
        finally:
            if tap is not None:
                c.taps.remove(tap)

    async def rename(self, ref: str, new_name: str) -> None:
        """Give a container a new name; publishes `rename` with the old one."""
        c = self.containers.get(ref)
        new_name = names.validate(new_name.lstrip("/"))
        if new_name == c.name:
            raise Conflict("Renaming a container with the same name as its current name")
        self.containers.check_name_free(new_name)
        old = c.name
        self.containers.rename(c, new_name)
        try:
            await self.containers.save(c)
        except BaseException:  # not written (a full disk): memory keeps agreeing with the disk
            self.containers.rename(c, old)
            raise
        self.containers.publish(c, "rename", oldName="/" + old)

    async def update(self, ref: str, req: UpdateRequest) -> None:
        """Change a container's limits (applied at once to a running one) and restart
        policy, as dockerd's update: only the fields given non-zero change; a field an
        update cannot change (dockerd ignores them) is refused naming it. Publishes
        `update`."""
        c = self.containers.get(ref)
        hc = c.record.host_config
        unchanged = UpdateRequest()
        fixed = [name for name in UpdateRequest.__struct_fields__
                 if name not in UPDATABLE and getattr(req, name) != getattr(unchanged, name)]
        if fixed:
            names = ", ".join(_ENCODED[name] for name in fixed)
            raise BadRequest(f"{names}: an update cannot change {'this' if len(fixed) == 1 else 'these'}; "
                             "recreate the container")
        # (the docker CLI sends an empty policy when none was given: unchanged too)
        changes = {name: value for name in UPDATABLE if (value := getattr(req, name)) != getattr(unchanged, name)}
        if "restart_policy" in changes:
            checks.policy(req.restart_policy.name, hc.auto_remove,
                          "Restart policy cannot be updated because AutoRemove is enabled for the container",
                          req.restart_policy.maximum_retry_count)
        # as dockerd: NanoCpus and CpuPeriod/CpuQuota set the same limit, so one set blocks the other
        for asked, held, message in _CPU_CONFLICTS:
            if getattr(req, asked) > 0 and getattr(hc, held) > 0:
                raise Conflict(f"Conflicting options: {message}")
        checks.resources(HostConfig(**{k: v for k, v in changes.items() if k != "restart_policy"}), self.features,
                         update=True)
        if changes.get("memory") and not changes.get("memory_swap") and 0 < hc.memory_swap < changes["memory"]:
            raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                           "update the memoryswap at the same time")
        updated = msgspec.structs.replace(hc, **changes)
        checks.resources(updated, self.features, update=True)  # the limits together, as they will be
        record = msgspec.structs.replace(c.record, host_config=updated)
        if c.has_process:
            limits = {k: v for k, v in bundle.resources(record).items() if k != "devices"}
            try:
                await self.supervisor.runtime_for(c).update(c.id, limits, c.bundle / "update.json")
            except oci.RuntimeFailure as exc:
                raise EngineError(f"Cannot update container {c.id}: {exc.message}") from None
        c.record.host_config = updated
        await self.containers.save(c)
        self.containers.publish(c, "update")

    async def prune(self, filters: flt.Filters | None = None, until: int | None = None) -> tuple[list[str], int]:
        """Remove every stopped container matching `label`/`label!` filters and created
        before `until` (nanoseconds since the epoch, None for no limit); returns (removed
        IDs, bytes reclaimed from their writable layers)."""
        filters = flt.check(filters, flt.PRUNE_FILTERS)
        before = _rfc3339(until)
        gone, reclaimed = [], 0
        for c in list(self.containers):
            if c.live or c.state is State.REMOVING or not flt.prune_match(filters, c.record.config.labels or {},
                                                                          c.record.created, before):
                continue
            size = await trio.to_thread.run_sync(tree_size, c.upper)
            try:
                await self.remove(c.id)
            except EngineError:
                continue  # started or removed meanwhile
            gone.append(c.id)
            reclaimed += size
        self.containers.bus.publish(constructors.pruned("container", reclaimed))
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
        """End the container's stdin (StdinOnce, after the attached client's EOF), waiting
        for it to start if it has not yet (`docker run -i … </dev/null` sends its EOF
        first); with a terminal, EOF is the terminal's own business (Ctrl-D), so it stays open."""
        target = c.exits
        await c.wait_until(lambda: c.stdin is not None or c.exits > target or c.removed)
        if c.stdin is not None and c.terminal is None:
            async with c.stdin_lock:
                await c.stdin.aclose()
                await self.supervisor.keeper.drop(c.id, "stdin")  # its copy too, or no EOF comes

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Set the size of a container's terminal (kept for its next runs too)."""
        checks.console_size([height, width], "h and w")
        c = self.containers.get(ref)
        if not c.has_process:
            raise Conflict(f"Container {c.id} is not running")
        c.console_size = (height, width)
        if c.terminal is not None:
            c.terminal.resize(height, width)
        self.containers.publish(c, "resize", height=str(height), width=str(width))

    async def commit(self, ref: str, options: CommitOptions,
                     changes: Callable[[ImageRuntimeConfig], ImageRuntimeConfig]) -> Image:
        """`POST /commit`: a new image from the container's writable layer, read while
        the container is paused (unless `pause=0`, and only if it was running and not
        already paused); tagged if a repository is given. Publishes `pause`/`unpause`
        from those, `tag` on the image, then `commit` with `comment`, `imageID`, `imageRef`."""
        c = self.containers.get(ref)
        if c.state is State.DEAD:
            raise Conflict(f"You cannot commit container {c.id} which is Dead")
        target = reference.new_name(options.repo, options.tag) if options.repo else None  # a bad name: 400 before any work
        paused_here = False
        if options.pause and c.state is State.RUNNING:
            try:
                await self.pause(c.id)
                paused_here = True
            except EngineError:
                pass  # it stopped meanwhile: nothing is writing, commit as is (dockerd ignores this too)
        tmp = self.images.store.tmp / f"commit-{secrets.token_hex(8)}.tar"
        try:
            try:
                async with self.files.locked(ref) as c:
                    lowers = self.files.lower_dirs(c)
                    count = await trio.to_thread.run_sync(write_layer, c.upper, lowers, tmp)
            finally:
                if paused_here:
                    try:
                        await self.unpause(c.id)
                    except EngineError:
                        pass  # stopped or removed meanwhile
            history = HistoryEntry(created=timefmt.now(), created_by=" ".join(words(c.record.config.cmd) or []),
                                   comment=options.comment, author=options.author, empty_layer=not count)
            image = await self.images.add_committed(c.record.image_id, tmp if count else None,
                                                    new_config(c.record.config, options, changes), history,
                                                    options.author)
        finally:
            tmp.unlink(missing_ok=True)
        if target:
            await self.images.tag(image.id, target.repo, target.tag)
        self.containers.publish(c, "commit", comment=options.comment, imageID=image.id,
                                imageRef=str(target) if target else "")
        return image

    async def usage(self) -> list[ContainerUsage]:
        """Every container, newest first as dockerd lists them, with the size of its
        writable layer, and that plus its image's."""
        found = []
        for c in sorted(self.containers, key=lambda c: c.record.created, reverse=True):
            size_rw = await trio.to_thread.run_sync(tree_size, c.upper)
            try:
                image_size = self.images.facts(self.images.resolve(c.record.image_id)).size
            except NotFound:
                image_size = 0  # the image is gone
            found.append(ContainerUsage(c, size_rw, size_rw + image_size))
        return found

    def counts(self) -> dict[str, int]:
        states = [c.state for c in self.containers]
        return {"total": len(states), "running": states.count(State.RUNNING),
                "paused": states.count(State.PAUSED),
                "stopped": len(states) - states.count(State.RUNNING) - states.count(State.PAUSED)}


def _port_set(values: list[str], key: str) -> set[str]:
    """The `publish`/`expose` filter values as `port/proto` keys: `80`, `80/udp`,
    `8000-8010/tcp` (tcp when not given); a 400 in dockerd's words for anything else."""
    found: set[str] = set()
    for value in values:
        ports, _, proto = value.partition("/")
        numbers = checks.port_range(ports)
        if numbers is None or proto not in ("", "tcp", "udp", "sctp"):
            raise BadRequest(f"Invalid filter '{key}={value}'")
        found |= {f"{port}/{proto or 'tcp'}" for port in numbers}
    return found


# What `update` may change, as dockerd's UpdateContainer: the rest of Resources it ignores.
UPDATABLE = ("blkio_weight", "cpu_shares", "nano_cpus", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems",
             "memory", "memory_swap", "memory_reservation", "kernel_memory", "cpu_realtime_period",
             "cpu_realtime_runtime", "pids_limit", "restart_policy")
_ENCODED = {f.name: f.encode_name for f in msgspec.structs.fields(UpdateRequest)}
_CPU_CONFLICTS = (("nano_cpus", "cpu_period", "Nano CPUs cannot be updated as CPU Period has already been set"),
                  ("nano_cpus", "cpu_quota", "Nano CPUs cannot be updated as CPU Quota has already been set"),
                  ("cpu_period", "nano_cpus", "CPU Period cannot be updated as NanoCPUs has already been set"),
                  ("cpu_quota", "nano_cpus", "CPU Quota cannot be updated as NanoCPUs has already been set"))


def _rfc3339(ns: int | None) -> str:
    """A time bound as logs and records hold times (fixed-width, comparable as strings);
    "" for none."""
    return "" if ns is None else timefmt.rfc3339(ns)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _attached(c: Container, tap: Tap | None, target: int, replay: bool) -> AsyncIterator[list[tuple[str, bytes]]]:
    """The batches `attach` hands out (see ContainerService.attach)."""
    if replay:
        async for batch in logs.read(c.log_files, follow=False, times=False):
            yield [(e.stream, e.log.encode()) for e in batch]
    if tap is None:
        return
    while True:
        changed = c.follow()  # before taking: a chunk put after the take sets it
        chunks = tap.take()
        if chunks:
            yield chunks
        elif c.exits > target or c.removed:
            return  # the run's pumps ended before its exit was recorded: nothing more comes
        else:
            await changed.wait()
