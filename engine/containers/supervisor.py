"""One trio task per live container, in the supervisor nursery: the one owner of a run.

The task owns a container from `start` until it stops for good: it prepares the run
(overlay rootfs, volumes, network namespace, OCI bundle), starts the runtime, records the
start, pumps stdout and stderr into the json-file log, waits for the exit, tears the run
down, records the exit, and applies the restart policy with a growing back-off; with
AutoRemove it removes the container at the end. `Supervisor.start` returns once the
process is running, or raises the runtime's reason if it could not start.

It is handed the services a run needs (containers, image store, volumes, networks, the
runtimes, the OOM watcher) and calls nothing above them.

Restart back-off follows dockerd: 100 ms doubling to at most a minute, reset after a
run that lasted at least ten seconds.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import time
from pathlib import Path

import msgspec
import trio

from .. import lifecycle, timefmt
from ..errors import BadRequest, EngineError, StartFailed
from ..images.store import ImageStore
from ..lifecycle import State, Step
from ..models import ZERO_TIME
from ..network import netns
from ..network.manager import NetworkManager
from ..runtime import bundle, cgroups, oci, rootfs
from ..runtime.oci import RuntimeFailure, failure_reason
from ..volumes import Volumes
from .container import Container
from .logs import LogWriter
from .oom import OomWatcher
from .pump import pump_pipe, pump_terminal
from .records import Containers

log = logging.getLogger("berth.supervisor")

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


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
                 runtimes: dict[str, oci.Runtime], oom: OomWatcher, *, cgroup_parent: str, console_dir: Path,
                 init_binary: str):
        self.containers = containers
        self.images = images
        self.volumes = volumes
        self.network = network
        self.runtimes = runtimes
        self.oom = oom
        self.cgroup_parent = cgroup_parent
        self.console_dir = console_dir  # runtimes hand terminals over here
        self.init_binary = init_binary
        self.nursery: trio.Nursery | None = None  # the supervisor nursery, from `open`

    def open(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery

    def runtime_for(self, c: Container) -> oci.Runtime:
        return self.runtimes[c.record.runtime]

    def cgroup_path(self, c: Container) -> str:
        return f"/{self.cgroup_parent}/{c.id}"

    async def start(self, c: Container) -> None:
        """Start `c` under supervision; returns once it runs, raises StartFailed if not."""
        await self.nursery.start(self._supervise, c, name=f"container {c.id[:12]}")

    async def _supervise(self, c: Container, task_status=trio.TASK_STATUS_IGNORED) -> None:
        c.supervised = True
        backoff = BACKOFF_START
        first = True
        try:
            while True:
                try:
                    process, writer = await self._launch(c)
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
                    exit_code = await self._run(c, process, writer)
                    await self.teardown(c)
                    # Decided before the exit is recorded, so that the container goes from
                    # running straight to restarting, as in dockerd: were it "exited" for a
                    # moment, a `stop` then would answer 304 and leave it restarting.
                    restart = should_restart(c, exit_code)
                    await self._record_exit(c, exit_code, restarting=restart)
                    if time.monotonic() - started >= BACKOFF_RESET_AFTER:
                        backoff = BACKOFF_START
                if not restart:
                    break
                if not await self._back_off(c, backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX)
                c.record.restart_count += 1
        except Exception as exc:
            if first:
                raise  # the start request reports it
            # A bug while supervising one container must not take the daemon (and every
            # other container) down: this one is stopped and says why.
            log.exception("%s: supervision failed; stopping the container", c.name)
            with trio.CancelScope(shield=True):
                await self.runtime_for(c).delete(c.id)
                if c.prepared:
                    await self.teardown(c)
                if c.has_process:
                    await self._record_exit(c, 255, error=f"berthd: {type(exc).__name__}: {exc}")
        finally:
            c.supervised = False
            c.notify()
        if c.record.host_config.auto_remove and not c.removed and c.state is not State.REMOVING:
            await self.remove(c)

    async def _launch(self, c: Container) -> tuple[trio.Process, LogWriter]:
        runtime = self.runtime_for(c)
        began = time.perf_counter()
        await self.prepare(c)
        prepared = time.perf_counter()
        c.pid_file.unlink(missing_ok=True)
        c.runtime_log.unlink(missing_ok=True)
        cfg = c.record.config
        try:
            process, c.terminal = await runtime.open_run(
                c.bundle, c.id, pid_file=c.pid_file, log_file=c.runtime_log, tty=cfg.tty, console_dir=self.console_dir,
                stdin=subprocess.PIPE if cfg.open_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except RuntimeFailure as exc:
            raise StartFailed(f"OCI runtime create failed: {exc.message}: unknown") from None
        pid = await self._wait_pid(c, process)
        log.debug("%s: prepared in %.1f ms, runtime started it in %.1f ms", c.id[:12],
                  (prepared - began) * 1000, (time.perf_counter() - prepared) * 1000)
        if pid is None:
            await self._close_stdio(c, process)
            await process.wait()
            raise StartFailed(f"OCI runtime create failed: {failure_reason(c.runtime_log, c.record.path)}: unknown")
        if cfg.open_stdin:
            c.stdin = c.terminal.stream if c.terminal else process.stdin
        if c.terminal and c.console_size:
            c.terminal.resize(*c.console_size)
        # `start` is published here, before this task starts its output pumps, so that
        # subscribers woken by it run first (events are delivered sooner).
        await self.containers.advance(c, Step.RUN, pid=pid, exit_code=0, error="", oom_killed=False,
                                      started_at=timefmt.now(), finished_at=ZERO_TIME)
        wake = functools.partial(c.output_logged, trio.lowlevel.current_trio_token())
        return process, LogWriter(c.log_files, wake)

    @staticmethod
    async def _close_stdio(c: Container, process: trio.Process) -> None:
        """Close the run's pipes or terminal (after it ended, or failed to start)."""
        c.stdin = None
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                await stream.aclose()
        if c.terminal is not None:
            await c.terminal.aclose()
            c.terminal = None

    async def _wait_pid(self, c: Container, process: trio.Process) -> int | None:
        """The container's pid once the runtime wrote it; None if the runtime gave up."""
        while True:
            try:
                text = c.pid_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text.isdigit():
                return int(text)
            if process.poll() is not None:
                return None
            # The runtime writes the pid file 10-30 ms after it starts; a short fixed poll
            # keeps `start` (and so every `run`) from waiting longer than it must.
            await trio.sleep(0.001)

    async def _run(self, c: Container, process: trio.Process, writer: LogWriter) -> int:
        """Pump output until the process exits and both pipes are drained."""

        try:
            async with trio.open_nursery() as pumps:
                # With a terminal, stdout and stderr are one stream (Docker logs it as stdout);
                # the runtime's own pipes then carry only its errors.
                if c.terminal is not None:
                    pumps.start_soon(pump_terminal, c.terminal.stream, functools.partial(writer.write, "stdout"))
                for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
                    if stream is not None:
                        pumps.start_soon(pump_pipe, stream, functools.partial(writer.write, name))
                await process.wait()
        finally:
            writer.close()
            await self._close_stdio(c, process)
        code = process.returncode
        return 128 - code if code < 0 else code

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
            rootfs.mount_overlay(lowers, c.upper, c.work, c.rootfs)
            if not c.netns.exists():
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
            rootfs.unmount(c.rootfs)

        await trio.to_thread.run_sync(work)
        c.prepared = False

    async def _forget_failed_run(self, c: Container) -> None:
        """After a start that failed: a runtime that gave up part-way may leave its state
        and the container's cgroup behind (crun does when writing a limit fails); both go."""
        await self.runtime_for(c).delete(c.id)
        await trio.to_thread.run_sync(cgroups.remove, cgroups.detect(), self.cgroup_path(c))

    async def _record_exit(self, c: Container, exit_code: int, error: str = "", started: bool = True,
                           restarting: bool = False) -> None:
        """Record the end of a run (or, with `started=False`, a start that failed: the
        container keeps its state, as in Docker, but waiters and attachers are released);
        with `restarting`, the restart policy's back-off begins."""
        step = Step.EXIT_TO_RESTART if restarting else Step.EXIT if started else Step.START_FAILED
        self.oom.drain()  # an OOM kill logged just before this exit belongs to it
        oom_killed, c.oom_killed = c.oom_killed, False
        c.exits += 1
        await self.containers.advance(c, step, {"exitCode": str(exit_code)}, pid=0, exit_code=exit_code, error=error,
                                      finished_at=timefmt.now(), oom_killed=oom_killed)

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

    async def remove(self, c: Container, volumes: bool = False) -> None:
        """Remove a container that has no process: its files, name, and record; its
        anonymous volumes too with `volumes` or AutoRemove (as dockerd's `--rm`)."""
        if c.removed:
            return
        # Not saved: a crash now leaves a record without its directory's other files,
        # which the next start removes anyway.
        await self.containers.advance(c, Step.REMOVE, persist=False)
        if c.prepared:
            await self.teardown(c)
        await trio.to_thread.run_sync(shutil.rmtree, c.dir, True)
        self.containers.forget(c)
        await self.volumes.release(c, volumes or c.record.host_config.auto_remove)
        c.removed = True
        await self.containers.advance(c, Step.DESTROY)
        c.notify()
