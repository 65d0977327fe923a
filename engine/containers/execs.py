"""Exec sessions: processes started inside a running container (`docker exec`).

A session is created (`POST /containers/{id}/exec`), started once, attached or detached
(`POST /exec/{id}/start`), resized when it has a terminal, and inspected for its exit code
afterwards, which is how the docker CLI learns its status. Sessions live in memory with
the daemon, as in dockerd, and go with their container.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..errors import BadRequest, Conflict, NotFound
from ..fs import inroot
from ..lifecycle import State
from ..images.store import ImageStore
from ..models import ExecConfig
from ..runtime import bundle, oci
from ..runtime.attach_lock import AttachLock
from ..runtime.oci import RuntimeFailure
from ..runtime.terminal import Terminal
from . import checks
from .container import Container
from .records import Containers

Output = Callable[[int, bytes], Awaitable[None]]  # (stream id 1 or 2, bytes)


def check_running(c: Container) -> None:
    """Docker's refusals of an exec into a container that is not running."""
    if c.state is State.PAUSED:
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
    if c.state is not State.RUNNING:
        raise Conflict(f"Container {c.id} is not running")


class Exec:
    """One exec session."""

    def __init__(self, exec_id: str, container: Container, config: ExecConfig):
        self.id = exec_id
        self.container = container
        self.config = config
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid_file = container.bundle / f"exec-{exec_id[:16]}.pid"
        self.terminal: Terminal | None = None
        self.finished = trio.Event()
        self.last_pid = 0  # once it has ended: the PID it had (inspect keeps showing it, as dockerd)

    @property
    def pid(self) -> int:
        """The process's host PID (the runtime writes it once started; 0 before)."""
        if not self.running:
            return self.last_pid
        try:
            return int(self.pid_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    @property
    def words(self) -> str:
        """The command in its events' actions, as dockerd writes it: the entrypoint, a
        space, the arguments (`exec_start: true ` for a command alone)."""
        cmd = self.config.cmd or [""]
        return f"{cmd[0]} {' '.join(cmd[1:])}"

    def inspect(self) -> dict:
        """`GET /exec/{id}/json`, in Docker's shape."""
        cfg = self.config
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": cfg.tty, "entrypoint": (cfg.cmd or [""])[0], "arguments": (cfg.cmd or [])[1:],
                                  "privileged": cfg.privileged, "user": cfg.user},
                "OpenStdin": cfg.attach_stdin, "OpenStderr": cfg.attach_stderr, "OpenStdout": cfg.attach_stdout,
                "CanRemove": False, "ContainerID": self.container.id, "DetachKeys": cfg.detach_keys, "Pid": self.pid}


class Execs:
    """The daemon's exec sessions, by ID."""

    def __init__(self, containers: Containers, images: ImageStore, runtimes: dict[str, oci.Runtime],
                 console_dir: Path, attach_lock: AttachLock):
        self.containers = containers
        self.images = images
        self.runtimes = runtimes
        self.console_dir = console_dir
        self.attach_lock = attach_lock
        self.sessions: dict[str, Exec] = {}

    def create(self, ref: str, config: ExecConfig) -> Exec:
        """Register a session for a running container; publishes `exec_create`."""
        c = self.containers.get(ref)
        check_running(c)
        if not config.cmd:
            raise BadRequest("No exec command specified")
        checks.console_size(config.console_size)
        checks.no_nul(("Cmd", config.cmd), ("Env", config.env), ("WorkingDir", [config.working_dir]),
                      ("User", [config.user]))
        self._forget_removed()
        session = Exec(secrets.token_hex(32), c, config)
        self.attach_lock.take_ahead()  # its start follows: the grace period begins now
        self.sessions[session.id] = session
        self.containers.publish(c, f"exec_create: {session.words}", execID=session.id)
        return session

    def get(self, exec_id: str) -> Exec:
        session = self.sessions.get(exec_id)
        if session is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return session

    async def run_to_end(self, ref: str, cmd: list[str], *, user: str = "", workdir: str = "",
                         env: list[str] = (), timeout: float | None = None) -> tuple[int, bytes]:
        """Run `cmd` inside a running container; return (exit code, stdout+stderr).

        A process still running after `timeout` seconds is killed (exit code 137).
        Publishes exec_create, exec_start and exec_die as Docker does."""
        session = self.create(ref, ExecConfig(cmd=cmd, user=user, working_dir=workdir, env=list(env),
                                              attach_stdout=True, attach_stderr=True))
        output = bytearray()

        async def collect(_stream: int, data: bytes) -> None:
            output.extend(data)

        try:
            code = await self.run(self.claim(session.id), output=collect, timeout=timeout)
        finally:
            self.sessions.pop(session.id, None)  # nobody will inspect it
        return code, bytes(output)

    def _forget_removed(self) -> None:
        """Drop the sessions of removed containers (however they were removed)."""
        for exec_id in [i for i, s in self.sessions.items() if s.container.removed]:
            del self.sessions[exec_id]

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """Resize the session's terminal; one that is still being made gets the size
        once it exists (the docker CLI resizes right after the start)."""
        checks.console_size([height, width], "h and w")
        session = self.get(exec_id)
        if not session.config.tty or not session.started or session.exit_code is not None:
            raise Conflict(f"Exec {exec_id} is not running with a terminal")
        session.config.console_size = [height, width]
        if session.terminal is not None:
            session.terminal.resize(height, width)

    def claim(self, exec_id: str) -> Exec:
        """Mark a session started (once only), after the container checks."""
        session = self.get(exec_id)
        if session.started:
            raise Conflict(f"Error: Exec command {exec_id} is already running" if session.running
                           else f"Error: Exec command {exec_id} has already run")
        check_running(session.container)
        session.started = True
        return session

    async def run(self, session: Exec, *, output: Output | None = None,
                  stdin: trio.abc.ReceiveStream | None = None, timeout: float | None = None) -> int:
        """Run a claimed session to its end: its output to `output`, `stdin` (when the
        session attaches stdin) to the process until `stdin` ends. A process still running
        after `timeout` seconds is killed (exit code 137). Returns the exit code; publishes
        exec_start and exec_die."""
        c, cfg = session.container, session.config
        self.attach_lock.take_ahead()  # the runtime joins the container's cgroups
        image = self.images.images.get(c.record.image_id)
        env = bundle.process_env(c.record.config.hostname, cfg.tty, image.config.config.env or [] if image else [],
                                 c.record.config.env or [], cfg.env or [])

        def process_json() -> bytes:
            with inroot.rooted(c.rootfs) as root:  # as dockerd: the container's own user by default
                who = bundle.identity(root, cfg.user or c.record.config.user, c.record.host_config.group_add)
            env.setdefault("HOME", who.home)  # as runc sets it: "/" for a user passwd lacks
            config = str(c.bundle / "config.json")
            return bundle.exec_process(_container_process(config, os.stat(config).st_mtime_ns), args=cfg.cmd,
                                       env=[f"{k}={v}" for k, v in env.items()], cwd=cfg.working_dir, who=who,
                                       terminal=cfg.tty, privileged=cfg.privileged)

        opts = {"pid_file": session.pid_file}
        ends: list[int] = []  # our copies of the child's pipe ends, closed once it has them
        self.containers.publish(c, f"exec_start: {session.words}", execID=session.id)
        session.running = True
        try:
            try:
                # in the event loop: two small files the runtime read at the start, opened
                # without blocking (a thread hop cost more than the reads, ~0.3 ms an exec)
                spec = process_json()
                if cfg.tty:
                    process, session.terminal = await self.runtimes[c.record.runtime].open_exec(
                        c.id, spec, **opts, tty=True, console_dir=self.console_dir)
                    # A size asked for before the process started: applied once it runs
                    # (runc's relay needs the process's own terminal, found by its PID).
                    with trio.move_on_after(2):
                        while not session.pid and process.returncode is None:
                            await trio.sleep(0.001)
                    if cfg.console_size:
                        session.terminal.resize(*cfg.console_size)
                    sources = [(1, session.terminal.stream)]
                    sink = session.terminal.stream if cfg.attach_stdin else None
                else:
                    # stdin is a pipe of its own even when nothing is attached (then empty): the
                    # runtime gives the exec's stdio to its user, and the host's /dev/null was
                    # chowned to whoever an exec ran as
                    stdin_read, stdin_write = os.pipe()
                    ends.append(stdin_read)
                    if cfg.attach_stdin:
                        sink = trio.lowlevel.FdStream(stdin_write)
                    else:
                        os.close(stdin_write)
                        sink = None
                    out_read, out_write = os.pipe()
                    err_read, err_write = os.pipe()
                    ends += [out_write, err_write]
                    sources = [(1, trio.lowlevel.FdStream(out_read)), (2, trio.lowlevel.FdStream(err_read))]
                    process, _ = await self.runtimes[c.record.runtime].open_exec(
                        c.id, spec, **opts, stdin=stdin_read, stdout=out_write, stderr=err_write)
            finally:
                for fd in ends:  # the child has its copies: ours would hold its pipes open
                    os.close(fd)
        except BadRequest as exc:
            # As dockerd: the start itself succeeds, the reason (a user the container's
            # passwd file does not name) is the output and the exit code 126.
            if output is not None:
                await output(1, exc.message.encode() + b"\r\n")
            code, ran = 126, False
        except RuntimeFailure as exc:  # with a terminal: the runtime ended before handing one over
            await _not_started(output, exc.message, cfg.cmd)
            code, ran = 126, False
        else:
            held: list[tuple[int, bytes]] = []  # what came out before the process started: the runtime's
            code = await _supervise(process, session, sources, sink, output, stdin, timeout, held,
                                    hold=1 if cfg.tty else 2)
            ran = session.pid_file.exists()
            if code and not ran:
                code = 126  # the runtime wrote no pid: it could not start the process
                await _not_started(output, b"".join(data for _, data in held).decode(errors="replace"), cfg.cmd)
            elif output is not None:
                for stream_id, data in held:
                    await output(stream_id, data)
        session.last_pid = session.pid
        session.pid_file.unlink(missing_ok=True)
        if session.terminal is not None:
            await session.terminal.aclose()
            session.terminal = None
        session.exit_code, session.running = code, False
        session.finished.set()
        if ran:  # as dockerd: an exec that never started has no exec_die
            self.containers.publish(c, "exec_die", execID=session.id, exitCode=str(code))
        return code


async def _not_started(output: Output | None, reason: str, cmd: list[str]) -> None:
    """dockerd's answer to an exec its runtime could not start, written to the stream."""
    if output is not None:
        words = oci.docker_words(reason, cmd[0] if cmd else "") or "the runtime could not start the process"
        await output(1, f"OCI runtime exec failed: exec failed: unable to start container process: {words}: unknown"
                        "\r\n".encode())


@functools.lru_cache(maxsize=64)
def _container_process(config_json: str, mtime_ns: int) -> dict:
    """A running container's own process, read once per run (its bundle's config.json is
    written at each start); not to be changed: `bundle.exec_process` copies it."""
    with open(config_json, "rb") as f:
        return bundle.container_process(f.read())


async def _supervise(process: trio.Process, session: Exec, sources: list[tuple[int, trio.abc.ReceiveStream]],
                     sink: trio.abc.SendStream | None, output: Output | None, stdin: trio.abc.ReceiveStream | None,
                     timeout: float | None, held: list[tuple[int, bytes]], hold: int) -> int:
    """Copy output until every source is drained and the process ended, stdin meanwhile;
    returns the exit code. What comes on stream `hold` (stderr, or the terminal) before
    the runtime wrote the process's pid may be the runtime's own reason for not starting
    it: it waits in `held` until the pid is there (then goes on, a few ms late at most),
    or for the caller to word it as dockerd when the process never started. Closes the
    pipes (a terminal is closed by the caller)."""
    started = False

    async def release() -> None:
        nonlocal started
        while not (started := session.pid_file.exists()) and process.returncode is None:
            await trio.sleep(0.001)
        while started and held:
            await output(*held.pop(0))

    async def pump(stream_id: int, source: trio.abc.ReceiveStream) -> None:
        while True:
            try:
                data = await source.receive_some(65536)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""  # a pty master reads EIO once the other side is gone
            if not data:
                return
            if output is None:
                continue  # detached: drained, shown to no one
            if stream_id == hold and (held or not started):  # in order behind what waits
                held.append((stream_id, data))
            else:
                await output(stream_id, data)

    async def feed() -> None:
        try:
            while stdin is not None and (data := await stdin.receive_some(65536)):
                await sink.send_all(data)
            if session.terminal is None:
                await sink.aclose()  # EOF for the process: the client half-closed its side
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    try:
        async with trio.open_nursery() as nursery:
            if sink is not None:
                nursery.start_soon(feed)
            with trio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(release)
                    for stream_id, source in sources:
                        pumps.start_soon(pump, stream_id, source)
                    await process.wait()
            if scope.cancelled_caught and process.returncode is None:
                if pid := session.pid:
                    try:
                        os.kill(pid, signal.SIGKILL)  # the process in the container, not the runtime
                    except ProcessLookupError:
                        pass
                await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        if session.terminal is None:
            for stream in [s for _, s in sources] + ([sink] if sink is not None else []):
                await stream.aclose()
    if scope.cancelled_caught:
        return 137
    return process.returncode if process.returncode >= 0 else 128 - process.returncode
