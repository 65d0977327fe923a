"""One trio task per live container, in the supervisor nursery.

The task owns a container from `start` until it stops for good: it prepares the run
(overlay rootfs, network namespace, OCI bundle), starts the runtime, pumps stdout and
stderr into the json-file log, waits for the exit, records it, and applies the restart
policy with a growing back-off. `Supervisor.start` returns once the process is running,
or raises the runtime's reason if it could not start.

Restart back-off follows dockerd: 100 ms doubling to at most a minute, reset after a
run that lasted at least ten seconds.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from typing import TYPE_CHECKING

import trio

from .container import Container
from ..errors import StartFailed
from ..lifecycle import State
from .logs import LogWriter
from .pump import pump_pipe, pump_terminal
from ..runtime.oci import RuntimeFailure, failure_reason

if TYPE_CHECKING:
    from ..core import Engine

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
    def __init__(self, engine: Engine, nursery: trio.Nursery):
        self.engine = engine
        self.nursery = nursery

    async def start(self, c: Container) -> None:
        """Start `c` under supervision; returns once it runs, raises StartFailed if not."""
        await self.nursery.start(self._supervise, c, name=f"container {c.id[:12]}")

    async def _supervise(self, c: Container, task_status=trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        c.supervised = True
        backoff = BACKOFF_START
        first = True
        try:
            while True:
                try:
                    process, writer = await self._launch(c)
                except StartFailed as exc:
                    await engine.teardown(c)
                    exit_code = 127
                    restart = not first and should_restart(c, exit_code)
                    await engine.record_exit(c, exit_code, error=exc.message, started=not first, restarting=restart)
                    if first:
                        if c.record.host_config.auto_remove:
                            await engine.remove_stopped(c)
                        raise
                else:
                    # Published here, before this task starts its output pumps, so that
                    # subscribers woken by it run first (events are delivered sooner).
                    engine.publish_container(c, "start")
                    if first:
                        task_status.started()
                        first = False
                    started = time.monotonic()
                    exit_code = await self._run(c, process, writer)
                    await engine.teardown(c)
                    # Decided before the exit is recorded, so that the container goes from
                    # running straight to restarting, as in dockerd: were it "exited" for a
                    # moment, a `stop` then would answer 304 and leave it restarting.
                    restart = should_restart(c, exit_code)
                    await engine.record_exit(c, exit_code, restarting=restart)
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
                await engine.runtime_for(c).delete(c.id)
                if c.prepared:
                    await engine.teardown(c)
                if c.has_process:
                    await engine.record_exit(c, 255, error=f"berthd: {type(exc).__name__}: {exc}")
        finally:
            c.supervised = False
            c.notify()
        if c.record.host_config.auto_remove and not c.removed and c.state is not State.REMOVING:
            await engine.remove_stopped(c)

    async def _launch(self, c: Container) -> tuple[trio.Process, LogWriter]:
        engine = self.engine
        runtime = engine.runtime_for(c)
        began = time.perf_counter()
        await engine.prepare(c)
        prepared = time.perf_counter()
        c.pid_file.unlink(missing_ok=True)
        c.runtime_log.unlink(missing_ok=True)
        cfg = c.record.config
        try:
            process, c.terminal = await runtime.open_run(
                c.bundle, c.id, pid_file=c.pid_file, log_file=c.runtime_log, tty=cfg.tty, console_dir=engine.console_dir,
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
        await engine.record_start(c, pid)
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
            await self.engine.stop_restarting(c)
            return False
        return True
