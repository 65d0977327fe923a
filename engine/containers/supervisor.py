"""One trio task per live container, in the supervisor nursery: the one owner of a run.

The task owns a container from `start` until it stops for good: it prepares the run
(overlay rootfs, volumes, network namespace, OCI bundle), has the keeper start the
runtime (`run --detach`: the container's init is the keeper's child, and the keeper
holds the daemon's ends of its pipes, so the container outlives this daemon), records
the start, pumps stdout and stderr into the json-file log, waits for the exit the keeper
reports, tears the run down, records the exit, and applies the restart policy with a
growing back-off; with AutoRemove it removes the container at the end.
`Supervisor.start` returns once the process is running, or raises the runtime's reason
if it could not start. `Supervisor.adopt` takes such a task up again for a container a
previous daemon left running (or that exited while no daemon was here).

It is handed the services a run needs (containers, image store, volumes, networks, the
runtimes, the OOM watcher) and calls nothing above them.

Restart back-off follows dockerd: 100 ms doubling to at most a minute, reset after a
run that lasted at least ten seconds.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import msgspec
import trio

from .. import lifecycle, timefmt
from ..errors import BadRequest, EngineError, StartFailed
from ..fs import tree
from ..images.store import ImageStore
from ..lifecycle import State, Step
from ..models import Health
from ..network import netns
from ..network.manager import NetworkManager, RunState
from ..runtime import bundle, cgroups, oci, rootfs
from ..runtime.attach_lock import AttachLock
from ..runtime import terminal
from ..runtime.oci import failure_reason
from ..keeper.client import Keeper, KeeperError, KeeperUnavailable
from ..volumes import Volumes
from .container import Container
from .logs import Lines, LogWriter
from .oom import OomWatcher
from .pump import pump_pipe, pump_terminal
from .records import REMOVING, Containers
from .run_io import Pipes, RunIO

log = logging.getLogger("berth.supervisor")

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
TERMINAL_TIMEOUT = 5.0  # seconds to read the terminal a runtime that succeeded has sent
STALLED_CLIENT = 2.0  # seconds without a read after which a stopped run's attached client is dropped
# The runtime's environment, whatever the keeper's is (it is a copy of the daemon that
# started it, perhaps long ago).
RUNTIME_ENV = {"PATH": os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def should_restart(c: Container, exit_code: int) -> bool:
    """The restart policy's verdict after an exit (before any back-off)."""
    if c.stop_requested:
        return False
    policy = c.record.host_config.restart_policy
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or c.record.restart_count < limit)
    return False


class Supervisor:
    def __init__(self, containers: Containers, images: ImageStore, volumes: Volumes, network: NetworkManager,
                 runtimes: dict[str, oci.Runtime], oom: OomWatcher, *, layout: cgroups.Layout, cgroup_parent: str,
                 console_dir: Path, init_binary: str, attach_lock: AttachLock):
        self.containers = containers
        self.layout = layout  # the host's cgroups, read once at start
        self.images = images
        self.volumes = volumes
        self.network = network
        self.runtimes = runtimes
        self.oom = oom
        self.cgroup_parent = cgroup_parent
        self.console_dir = console_dir  # runtimes hand terminals over here
        self.init_binary = init_binary
        self.attach_lock = attach_lock
        self.nursery: trio.Nursery | None = None  # the supervisor nursery, from `open`
        self.keeper: Keeper | None = None  # from `connect_keeper`

    def open(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    def runtime_for(self, c: Container) -> oci.Runtime:
        return self.runtimes[c.record.runtime]

    def cgroup_path(self, c: Container) -> str:
        return f"/{self.cgroup_parent}/{c.id}"

    async def connect_keeper(self, state_dir: Path) -> Keeper:
        """Connect to this root's keeper, starting it when absent (in the daemon's mount
        namespace, which it then keeps alive for the next daemon)."""
        try:
            self.keeper = await Keeper.connect(state_dir)
        except KeeperUnavailable as exc:
            raise EngineError(f"the keeper of {state_dir} is unavailable: {exc}") from None
        return self.keeper

    async def start(self, c: Container) -> None:
        """Start `c` under supervision; returns once it runs, raises StartFailed if not."""
        await self.nursery.start(self._supervise, c, None, name=f"container {c.id[:12]}")

    async def adopt(self, c: Container) -> None:
        """Supervise again a container the keeper kept while no daemon was here (it runs,
        or it exited meanwhile: then its exit is recorded now, with its own code and
        time, and its restart policy applies): its output is read on from where its pipes
        stand, its volumes and networks (ports, DNS) are served again."""
        io = RunIO(await self.keeper.take(c.id))
        c.stdin = io.terminal.stream if io.terminal and c.record.config.open_stdin else io.stdin
        c.terminal = io.terminal
        c.prepared = True
        await self.volumes.adopt(c)
        await self.network.adopt(c, RunState.load(c.run_state_path))
        await self.nursery.start(self._supervise, c, (io, self._log_writer(c)), name=f"container {c.id[:12]}")

    async def _supervise(self, c: Container, adopted: tuple[RunIO, LogWriter] | None,
                         task_status=trio.TASK_STATUS_IGNORED) -> None:
        c.supervised = True
        backoff = BACKOFF_START
        first = True
        run = adopted
        try:
            while True:
                try:
                    run = run or await self._launch(c)
                except EngineError as exc:  # the runtime's reason, or a bad setting found while preparing
                    await self.teardown(c)
                    await self._forget_failed_run(c)
                    exit_code = 127 if isinstance(exc, StartFailed) else 128  # as dockerd's start
                    restart = not first and should_restart(c, exit_code)
                    await self._record_exit(c, exit_code, error=exc.message, started=not first, restarting=restart)
                    if first:
                        if c.record.host_config.auto_remove:
                            await self.remove(c)
                        raise
                else:
                    if first:
                        task_status.started()
                        first = False
                    started = time.monotonic()
                    exit_code, exited_ns = await self._run(c, *run)
                    run = None
                    await self.teardown(c)
                    # Decided before the exit is recorded, so that the container goes from
                    # running straight to restarting, as in dockerd: were it "exited" for a
                    # moment, a `stop` then would answer 304 and leave it restarting.
                    restart = should_restart(c, exit_code)
                    if restart:  # as dockerd: counted as it goes restarting (a stop in the back-off too),
                        c.record.restart_count += 1  # and the run it starts is no user's stop
                        c.record.manually_stopped = False
                    await self._record_exit(c, exit_code, restarting=restart, finished_ns=exited_ns)
                    # Only now may the keeper forget the exit: a daemon that ends before the
                    # record is written leaves it to the next one, which adopts the exit
                    # with its own code and time (released first, it was a 255).
                    await self._forget_run(c)
                    if time.monotonic() - started >= BACKOFF_RESET_AFTER:
                        backoff = BACKOFF_START
                if not restart:
                    break
                if not await self._back_off(c, backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX)
        except Exception as exc:
            if first:
                raise  # the start request reports it
            # A bug while supervising one container must not take the daemon (and every
            # other container) down: this one is stopped and says why.
            log.exception("%s: supervision failed; stopping the container", c.name)
            with trio.CancelScope(shield=True):
                await self._forget_run(c, exited=False)
                if c.prepared:
                    await self.teardown(c)
                if c.has_process:
                    await self._record_exit(c, 255, error=f"berthd: {type(exc).__name__}: {exc}")
        finally:
            c.supervised = False
            c.notify()
        if c.record.host_config.auto_remove and not c.restarting and not c.removed and c.state is not State.REMOVING:
            await self.remove(c)

    async def _launch(self, c: Container) -> tuple[RunIO, LogWriter]:
        """Prepare and start a run: the keeper spawns `<runtime> run --detach` (so the
        container's init is the keeper's child, not the daemon's) and holds the daemon's
        ends of its pipes; the run's streams are returned with its log writer."""
        runtime = self.runtime_for(c)
        began = time.perf_counter()
        self.attach_lock.take_ahead()  # its grace period passes while this prepares
        await self.prepare(c)
        prepared = time.perf_counter()
        c.pid_file.unlink(missing_ok=True)
        c.runtime_log.unlink(missing_ok=True)
        cfg = c.record.config
        pipes = Pipes(cfg.open_stdin and not cfg.tty)
        spawned_ns = time.time_ns()  # the process starts after this, and may end before the spawn returns
        held = False
        master = -1
        try:
            try:
                if cfg.tty:
                    async with terminal.console_socket(self.console_dir) as (path, receive):
                        code, master = await self._spawn_with_terminal(c, runtime, pipes, path, receive)
                else:
                    code = await self._spawn(c, runtime, pipes, None)
            finally:
                pipes.close_child_ends()
            if code != 0:
                raise StartFailed(f"OCI runtime create failed: {failure_reason(c.runtime_log, c.record.path)}: unknown")
            if cfg.tty and master < 0:
                raise StartFailed("OCI runtime create failed: the runtime sent no terminal: unknown")
            pid = int(c.pid_file.read_text().strip())
            ends = pipes.daemon_ends() | ({"terminal": master} if master >= 0 else {})
            await self.keeper.hold(c.id, pid, ends)
            held = True
        except BaseException as exc:
            pipes.close()
            if master >= 0:
                os.close(master)
            with trio.CancelScope(shield=True):
                await runtime.delete(c.id)
                if held:
                    await self.keeper.release(c.id)
            if isinstance(exc, (OSError, KeeperError, KeeperUnavailable)):
                raise StartFailed(f"OCI runtime create failed: {exc}: unknown") from None
            raise
        log.debug("%s: prepared in %.1f ms, runtime started it in %.1f ms", c.id[:12],
                  (prepared - began) * 1000, (time.perf_counter() - prepared) * 1000)
        io = RunIO(pipes.daemon_ends() | ({"terminal": master} if master >= 0 else {}))
        if cfg.open_stdin:
            c.stdin = io.terminal.stream if io.terminal else io.stdin
        c.terminal = io.terminal
        if c.terminal and c.console_size:
            c.terminal.resize(*c.console_size)
        # `start` is published here, before this task starts its output pumps, so that
        # subscribers woken by it run first (events are delivered sooner).
        # as dockerd: a container with a health check is `starting` once its start returns
        check = c.record.config.healthcheck
        earlier = c.record.state.health  # its results are kept, as dockerd keeps them across runs
        health = {"health": Health(log=earlier.log if earlier else [])} if check is not None and check.checks else {}
        await self.containers.advance(c, Step.RUN, pid=pid, exit_code=0, error="", oom_killed=False,
                                      started_at=timefmt.rfc3339(spawned_ns), **health)  # FinishedAt kept, as dockerd
        return io, self._log_writer(c)

    def _log_writer(self, c: Container) -> LogWriter:
        """The run's log writer; it calls back from the pump threads, so what it has to say
        goes to the event loop."""
        token = trio.lowlevel.current_trio_token()

        def soon(fn, *args) -> None:
            try:
                token.run_sync_soon(fn, *args)
            except trio.RunFinishedError:
                pass  # the daemon is exiting

        return LogWriter(c.log_files, functools.partial(c.output_logged, token),
                         on_blocked=lambda reason: soon(functools.partial(self.containers.publish, c, "log_blocked",
                                                                          error=reason)),
                         on_resumed=lambda: soon(self.containers.publish, c, "log_resumed"))

    async def _spawn(self, c: Container, runtime: oci.Runtime, pipes: Pipes, console: Path | None) -> int:
        argv = runtime.detached_run(c.bundle, c.id, pid_file=c.pid_file, log_file=c.runtime_log,
                                    console_socket=console)
        return await self.keeper.spawn(argv, stdin=pipes.in_r, stdout=pipes.out_w, stderr=pipes.err_w,
                                       env=RUNTIME_ENV)

    async def _spawn_with_terminal(self, c: Container, runtime: oci.Runtime, pipes: Pipes, path: Path,
                                   receive) -> tuple[int, int]:
        """Spawn the runtime with a console socket; (its exit code, the pty master it sent,
        or -1 when it ended without one)."""
        master = -1
        async with trio.open_nursery() as nursery:
            async def take_terminal() -> None:
                nonlocal master
                master = await receive()

            nursery.start_soon(take_terminal)
            code = await self._spawn(c, runtime, pipes, path)
            if code != 0:
                nursery.cancel_scope.cancel()  # it failed: no terminal comes
            else:  # it sent the terminal before it exited; the message may still wait in the socket
                nursery.cancel_scope.deadline = trio.current_time() + TERMINAL_TIMEOUT
        return code, master

    async def _run(self, c: Container, io: RunIO, writer: LogWriter) -> tuple[int, int]:
        """Pump output until the container's init exited and its pipes are drained;
        (exit code, exit time in ns) as the keeper recorded them."""
        try:
            async with trio.open_nursery() as watch:
                async with trio.open_nursery() as pumps:
                    # With a terminal, stdout and stderr are one stream (Docker logs it as stdout);
                    # the runtime's own pipes then carry only its errors.
                    if io.terminal is not None:
                        pumps.start_soon(pump_terminal, io.terminal.stream,
                                         Lines(writer, "stdout", whole_lines=False, taps=c.taps))
                    for stream, name in ((io.stdout, "stdout"), (io.stderr, "stderr")):
                        if stream is not None:
                            pumps.start_soon(pump_pipe, stream, Lines(writer, name, taps=c.taps))
                    exit_code, exited_ns = await self.keeper.wait_exit(c.id)
                    watch.start_soon(_drop_stalled_clients, c)  # the pumps drain the pipes meanwhile
                watch.cancel_scope.cancel()
        finally:
            writer.close()
            c.stdin = None
            c.terminal = None
            await io.aclose()
        return exit_code, exited_ns

    async def _forget_run(self, c: Container, *, exited: bool = True) -> None:
        """After a run: the runtime's state of it, and the keeper's record, go. Once its
        init has exited, that state is a directory under the runtime's root and an empty
        cgroup, removed here: a `crun delete` process per exit cost ~10 ms of every
        `run --rm`. Otherwise (supervision failed) the runtime kills what is left."""
        if exited:
            await trio.to_thread.run_sync(self._drop_runtime_state, c)
        else:
            await self.runtime_for(c).delete(c.id)
        await self.keeper.release(c.id)

    def _drop_runtime_state(self, c: Container) -> None:
        tree.remove(self.runtime_for(c).state_root / c.id, ignore_errors=True)
        cgroups.remove(self.layout, self.cgroup_path(c))

    async def _back_off(self, c: Container, delay: float) -> bool:
        """Sleep `delay` in state restarting; False if `stop` cut it short."""
        with trio.CancelScope() as scope:
            c.backoff = scope  # set before any await, so a concurrent `stop` can always cut it
            if not c.stop_requested:
                await trio.sleep(delay)
        c.backoff = None
        if scope.cancelled_caught or c.stop_requested:
            await self.containers.advance(c, Step.CANCEL_RESTART)
            return False
        return True

    # --- what a run needs, and what it leaves ------------------------------------

    async def prepare(self, c: Container) -> None:
        """Mount the rootfs, attach volumes and networks, write the OCI bundle."""
        image = self.images.images.get(c.record.image_id)
        if image is None:
            raise BadRequest(f"image {c.record.image_id} of container {c.name} is gone")
        lowers = [self.images.layer_dir(chain) for chain in self.images.layer_chain(image)]

        def work() -> None:
            rootfs.mount_overlay(lowers, c.upper, c.work, c.rootfs, volatile=c.volatile_layer)
            if not c.netns.exists() and not bundle.joined(c.record.host_config.network_mode):
                netns.create(c.netns)
            spec = bundle.oci_config(c.record, rootfs=c.rootfs, files=c.dir, netns=c.netns,
                                     cgroups_path=self.cgroup_path(c), image_env=image.config.config.env or [],
                                     init_binary=self.init_binary, link_env=self.network.link_env(c))
            c.bundle.mkdir(exist_ok=True)
            (c.bundle / "config.json").write_bytes(msgspec.json.encode(spec))

        c.prepared = True
        try:
            await trio.to_thread.run_sync(work)
            await self.volumes.attach(c)
            await self.network.start(c)
            # what the next daemon needs to serve this run again, should this one go first
            # (not durable, a few hundred bytes into the page cache: less than a thread hop)
            self.network.run_state(c).save(c.run_state_path)
        except BaseException:  # a refusal, a failed write (a full disk), or cancellation: nothing stays mounted
            with trio.CancelScope(shield=True):
                await self.teardown(c)
            raise

    async def teardown(self, c: Container) -> None:
        """Undo `prepare`: release its volumes, unmount the rootfs, drop the network namespace."""
        await self.volumes.detach(c)
        await self.network.stop(c)

        def work() -> None:
            netns.remove(c.netns)
            rootfs.unmount(c.rootfs, own_fs=True)
            c.run_state_path.unlink(missing_ok=True)

        await trio.to_thread.run_sync(work)
        c.prepared = False

    async def _forget_failed_run(self, c: Container) -> None:
        """After a start that failed: a runtime that gave up part-way may leave its state
        and the container's cgroup behind (crun does when writing a limit fails); both go."""
        await self.runtime_for(c).delete(c.id)
        await trio.to_thread.run_sync(cgroups.remove, self.layout, self.cgroup_path(c))

    async def _record_exit(self, c: Container, exit_code: int, error: str = "", started: bool = True,
                           restarting: bool = False, finished_ns: int | None = None) -> None:
        """Record the end of a run (or, with `started=False`, a start that failed: the
        container keeps its state, as in Docker, but waiters and attachers are released);
        with `restarting`, the restart policy's back-off begins."""
        step = Step.EXIT_TO_RESTART if restarting else Step.EXIT if started else Step.START_FAILED
        self.oom.drain()  # an OOM kill logged just before this exit belongs to it
        oom_killed, c.oom_killed = c.oom_killed, False
        c.exits += 1
        finished = timefmt.rfc3339(finished_ns) if finished_ns else timefmt.now()
        await self.containers.advance(c, step, {"exitCode": str(exit_code)}, pid=0, exit_code=exit_code, error=error,
                                      finished_at=finished, oom_killed=oom_killed)

    async def recover(self, c: Container) -> None:
        """A container the previous daemon left live is dead now: record the truth, clean up."""
        runtime = self.runtimes.get(c.record.runtime)
        if runtime and c.live:
            await runtime.delete(c.id)  # kills what a crashed daemon left behind
        await self.teardown(c)
        if (c.state, Step.RECOVER) in lifecycle.MOVES:  # it was live, or being removed
            was_removing = c.state is State.REMOVING
            await self.containers.advance(c, Step.RECOVER, pid=0, exit_code=255, finished_at=timefmt.now(),
                                          error="daemon stopped without stopping the container")
            if was_removing:
                await self.remove(c)

    async def forget_held(self, container_id: str, runtime: str = "") -> None:
        """A container the keeper holds that no record wants (a start cut short by the
        previous daemon's end): its processes are killed, and the keeper forgets it."""
        for rt in ([self.runtimes[runtime]] if runtime in self.runtimes else self.runtimes.values()):
            await rt.delete(container_id)
        await self.keeper.release(container_id)

    async def reconcile(self, live: set[str]) -> None:
        """At start, after recovery: what the runtimes and the cgroups still have of a
        container that is not live (a start in flight when the previous daemon died) is
        killed and removed. Only this daemon's containers: a cgroup under the parent that
        no record of its root names is another's (a second daemon given the same
        `--cgroup-parent`), and is left alone."""
        for rt in self.runtimes.values():
            for entry in await trio.to_thread.run_sync(lambda: list(rt.state_root.iterdir())):
                if entry.name not in live:
                    log.warning("removing %s's leftover container %s", rt.name, entry.name[:12])
                    await rt.delete(entry.name)
        root = self.containers.root
        for name in cgroups.children(self.layout, f"/{self.cgroup_parent}"):
            if name in live:
                continue
            # ours: a container of this root, even one set aside or half removed
            if not (name in self.containers.by_id or (root / name).exists() or (root / f"{name}.removing").exists()):
                log.warning("cgroup /%s/%s is none of this daemon's containers (another daemon's, with the same "
                            "--cgroup-parent?): left alone", self.cgroup_parent, name[:12])
                continue
            log.warning("removing the leftover cgroup of %s", name[:12])
            await trio.to_thread.run_sync(cgroups.kill_and_remove, self.layout, f"/{self.cgroup_parent}/{name}")

    async def remove(self, c: Container, volumes: bool = False) -> None:
        """Remove a container that has no process: its files, name, and record; its
        anonymous volumes too with `volumes` or AutoRemove (as dockerd's `--rm`)."""
        if c.removed:
            return
        if c.state is State.REMOVING:  # AutoRemove's own removal is under way (`rm -f` met it): its end is ours
            await c.wait_until(lambda: c.removed)
            return
        # Not saved: a crash now leaves a record without its directory's other files,
        # which the next start removes anyway.
        await self.containers.advance(c, Step.REMOVE, persist=False)
        if c.prepared:
            await self.teardown(c)
        # One rename takes the directory out of the way; its files go in the background
        # (~2 ms of every `rm`, most of a `run --rm`'s exit). The next daemon removes
        # what a crash left of it.
        trash = c.dir.with_name(c.dir.name + REMOVING)
        try:
            os.rename(c.dir, trash)
        except FileNotFoundError:
            pass
        else:
            self.nursery.start_soon(trio.to_thread.run_sync, functools.partial(tree.remove, trash, ignore_errors=True))
        self.containers.forget(c)
        await self.volumes.release(c, volumes or c.record.host_config.auto_remove)
        c.removed = True
        await self.containers.advance(c, Step.DESTROY)
        c.notify()


async def _drop_stalled_clients(c: Container) -> None:
    """After the process of a run a user stopped (or the daemon's shutdown) has ended:
    attached clients that have stopped reading are dropped, so that what remains in the
    pipes reaches the log and the run ends (taps.py)."""
    seen: dict = {}
    while True:
        await trio.sleep(STALLED_CLIENT)
        if c.stop_requested:
            c.taps.drop_stalled(seen)
