"""The trio client of the keeper (see engine/keeper/__init__.py), as berthd uses it.

One connection per `Keeper`; a reader task dispatches replies by request id and the
keeper's `exited` notifications, so `wait_exit` needs no polling. The reader runs as a
trio system task (trio.lowlevel.spawn_system_task), so `connect` needs no nursery: it
lives until `aclose()` (or the end of trio.run). Any number of tasks may share one
`Keeper` at once.

    keeper = await Keeper.connect(state_dir)        # starts the keeper when absent
    await keeper.spawn(["crun", "create", ...], stdin=..., stdout=..., stderr=...)
    await keeper.hold(cid, pid, {"stdout": r_out, "stderr": r_err})
    code, when = await keeper.wait_exit(cid)
    await keeper.release(cid)
    await keeper.aclose()                            # or: async with Keeper.open(state_dir) as keeper

Errors: KeeperUnavailable when there is no keeper to talk to (it could not be started,
or the connection was lost: every pending call raises it then); KeeperError when the
keeper refuses a request.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import msgspec
import trio

from engine.keeper import protocol

START_TIMEOUT = 10.0  # seconds for a new keeper to listen


class KeeperUnavailable(Exception):
    """No keeper to talk to: absent and not started, failed to start, or gone."""


class KeeperError(Exception):
    """The keeper refused a request (the message says why)."""


class Held(msgspec.Struct, frozen=True):
    """A container the keeper holds; exit_code and exited_ns are None while it runs."""

    id: str
    pid: int
    exit_code: int | None
    exited_ns: int | None


class _Pending:
    """A request waiting for its reply (or replies, for `held`)."""

    __slots__ = ("done", "reply", "fds", "error", "items")

    def __init__(self):
        self.done = trio.Event()
        self.reply: dict = {}
        self.fds: list[int] = []
        self.error: BaseException | None = None
        self.items: list[dict] = []


class _ExitWaiter:
    """One `wait_exit` call: set with the next exit notified for its container (pid,
    exit code, ns), or with None when the connection is lost."""

    __slots__ = ("event", "exit")

    def __init__(self):
        self.event = trio.Event()
        self.exit: tuple[int, int, int] | None = None


class Keeper:
    """A connection to the keeper of one state directory."""

    pid: int  # the keeper's pid

    def __init__(self, sock: trio.socket.SocketType, pid: int):
        self.pid = pid
        self._sock = sock
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._send_lock = trio.Lock()
        self._exit_waiters: dict[str, list[_ExitWaiter]] = {}
        self._lost: BaseException | None = None
        self._reader_scope = trio.CancelScope()

    # -- connecting

    @classmethod
    async def connect(cls, state_dir: Path, *, start: bool = True, python: str = sys.executable) -> "Keeper":
        """Connect to the keeper of state_dir; start it first (in its own session, stdio
        /dev/null, cwd /, its own process group; NOT a child berthd waits for) when absent
        and `start`. Raises KeeperUnavailable when it cannot."""
        path = Path(state_dir) / protocol.SOCKET
        try:
            sock = await _dial(path)
        except OSError as e:
            if not start:
                raise KeeperUnavailable(f"no keeper at {path}: {e.strerror or e}") from e
            await _launch(Path(state_dir), python)
            sock = await _dial_started(path)
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        keeper = cls(sock, pid)
        trio.lowlevel.spawn_system_task(keeper._read_loop, name=f"keeper reader {path}")
        return keeper

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, state_dir: Path, **options):
        """`async with Keeper.open(state_dir) as keeper`: connect, and close at the end."""
        keeper = await cls.connect(state_dir, **options)
        try:
            yield keeper
        finally:
            await keeper.aclose()

    async def __aenter__(self) -> "Keeper":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; the keeper and what it holds are not affected. Calls
        still waiting raise KeeperUnavailable."""
        self._reader_scope.cancel()
        self._fail(KeeperUnavailable("the connection to the keeper is closed"))
        self._sock.close()
        await trio.lowlevel.checkpoint()

    # -- requests

    async def spawn(self, argv: list[str], *, stdin: int, stdout: int, stderr: int,
                    env: dict[str, str] | None = None) -> int:
        """Run argv as the keeper's child with these fds as its 0,1,2 (the caller keeps
        and closes its own copies); return its exit code once it exited (128+N for
        signal N). The child runs in a session of its own. OSError if it cannot be
        executed."""
        reply, _ = await self._request("spawn", [stdin, stdout, stderr], argv=list(argv),
                                       env=None if env is None else dict(env))
        return reply["exit_code"]

    async def hold(self, container_id: str, pid: int, fds: dict[str, int]) -> None:
        """Keep dups of `fds` (names: stdout, stderr, stdin, terminal) for the container
        whose init is `pid`, and watch for its exit. The caller keeps its own copies.
        `pid` must be the keeper's child (an init `crun create` left behind), running or
        already exited. Holding a container again (a restart) replaces what was held; a
        live one only under the same pid."""
        names = list(fds)
        await self._request("hold", [fds[n] for n in names], container=container_id, pid=pid, names=names)

    async def take(self, container_id: str) -> dict[str, int]:
        """New fds (in this process) duplicating what the keeper holds for the container
        (empty dict if none). They are close-on-exec; the caller closes them."""
        reply, fds = await self._request("take", [], container=container_id)
        return dict(zip(reply["names"], fds))

    async def held(self) -> list[Held]:
        """Every container the keeper holds, live or exited-not-yet-released."""
        reply, _ = await self._request("held", [])
        return [Held(h["container"], h["pid"], h["exit_code"], h["exited_ns"]) for h in reply["held"]]

    async def wait_exit(self, container_id: str) -> tuple[int, int]:
        """(exit code, exit time ns) once the keeper reaped the container's init (at
        once if it already did). Cancellable; any number may wait at once. KeeperError
        if the container is not held."""
        # waiting before asking: a notification that comes after the answer is not missed
        waiter = self._wait_for(container_id)
        try:
            reply, _ = await self._request("status", [], container=container_id)
            if reply["exit_code"] is not None:
                return reply["exit_code"], reply["exited_ns"]
            while True:
                await waiter.event.wait()
                if waiter.exit is None:
                    raise self._unavailable()
                pid, code, when = waiter.exit
                if pid == reply["pid"]:
                    return code, when
                waiter = self._wait_for(container_id)  # an exit of an earlier init under that id
        finally:
            waiters = self._exit_waiters.get(container_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._exit_waiters[container_id]

    def _wait_for(self, container_id: str) -> _ExitWaiter:
        waiter = _ExitWaiter()
        self._exit_waiters.setdefault(container_id, []).append(waiter)
        return waiter

    async def release(self, container_id: str) -> None:
        """The keeper closes its copies and forgets the container (after its exit was
        recorded; also allowed for a live one: then the keeper just stops holding)."""
        await self._request("release", [], container=container_id)

    async def drop(self, container_id: str, name: str) -> None:
        """The keeper closes its copy of the container's fd `name` (e.g. "stdin", so that
        the container sees the end of its input once the caller closed its own too)."""
        await self._request("drop", [], container=container_id, name=name)

    async def shutdown(self) -> bool:
        """Ask the keeper to exit; False (it keeps running) if it holds live containers
        (or has a spawn under way, or any other child)."""
        reply, _ = await self._request("shutdown", [])
        return reply["done"]

    async def _request(self, op: str, fds: list[int], **fields) -> tuple[dict, list[int]]:
        """Send one request and wait for its reply: (the reply, the fds it carried)."""
        if self._lost is not None:
            raise self._unavailable()
        rid = next(self._ids)
        data = protocol.encode({"op": op, "id": rid, **fields})
        if len(data) > protocol.MAX_MESSAGE:
            raise KeeperError(f"{op} request over {protocol.MAX_MESSAGE} bytes")
        pending = self._pending[rid] = _Pending()
        delivered = False
        try:
            async with self._send_lock:
                try:
                    await self._sock.sendmsg([data], protocol.ancillary(fds))
                except (OSError, trio.ClosedResourceError) as e:
                    raise KeeperUnavailable(f"the keeper is gone: {e!r}") from e
            await pending.done.wait()
            delivered = True
        finally:
            self._pending.pop(rid, None)
            if not delivered:  # cancelled: fds that came anyway are nobody's
                _close(pending.fds)
        if pending.error is not None:
            raise pending.error
        return pending.reply, pending.fds

    # -- the reader

    async def _read_loop(self) -> None:
        """Dispatch every message from the keeper until the connection ends."""
        reason: BaseException = KeeperUnavailable("the keeper closed the connection")
        with self._reader_scope:
            try:
                while True:
                    data, anc, flags, _ = await self._sock.recvmsg(protocol.MAX_MESSAGE, protocol.ANCILLARY_SPACE,
                                                                   socket.MSG_CMSG_CLOEXEC)
                    fds = protocol.received_fds(anc)
                    if not data and not fds:
                        break
                    try:
                        self._dispatch(protocol.decode(data), fds)
                    except (ValueError, KeyError, TypeError) as e:
                        _close(fds)
                        reason = KeeperUnavailable(f"the keeper sent a bad message: {e!r}")
                        break
            except (OSError, trio.ClosedResourceError) as e:  # closed under it: aclose
                reason = KeeperUnavailable(f"the connection to the keeper failed: {e!r}")
            except Exception as e:  # a system task must not raise: that would end trio.run
                reason = KeeperUnavailable(f"the keeper client failed: {e!r}")
        self._fail(reason)

    def _dispatch(self, message: dict, fds: list[int]) -> None:
        if message["op"] == "exited":
            _close(fds)
            exit = (message["pid"], message["exit_code"], message["exited_ns"])
            for waiter in self._exit_waiters.pop(message["container"], []):
                waiter.exit = exit
                waiter.event.set()
            return
        pending = self._pending.get(message["id"])
        if pending is None or pending.done.is_set():  # its caller was cancelled
            _close(fds)
            return
        if not message["ok"]:
            _close(fds)
            if "errno" in message:
                pending.error = OSError(message["errno"], message["error"])
            else:
                pending.error = KeeperError(message["error"])
        elif "held" in message:
            pending.items += message["held"]
            if message.get("more"):
                return
            pending.reply = {**message, "held": pending.items}
        else:
            pending.reply, pending.fds = message, fds
        pending.done.set()

    def _fail(self, reason: BaseException) -> None:
        """The connection is over: every waiting call raises `reason`."""
        if self._lost is None:
            self._lost = reason
        for pending in list(self._pending.values()):
            if not pending.done.is_set():
                pending.error = self._unavailable()
                pending.done.set()
        for waiters in self._exit_waiters.values():
            for waiter in waiters:
                waiter.event.set()

    def _unavailable(self) -> KeeperUnavailable:
        """A fresh exception saying why the connection is over (one per raise: tracebacks
        of several tasks would pile up on a shared one)."""
        return KeeperUnavailable(str(self._lost))


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


async def _dial(path: Path) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        await sock.connect(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


async def _dial_started(path: Path) -> trio.socket.SocketType:
    """Connect to a keeper just started: one started at the same time by another client
    may hold the lock a moment before it listens."""
    with trio.move_on_after(START_TIMEOUT):
        while True:
            try:
                return await _dial(path)
            except (FileNotFoundError, ConnectionRefusedError):
                await trio.sleep(0.02)
            except OSError as e:
                raise KeeperUnavailable(f"the keeper started but {path} refuses: {e.strerror or e}") from e
    raise KeeperUnavailable(f"the keeper started but does not listen on {path}")


async def _launch(state_dir: Path, python: str) -> None:
    """Start the keeper of `state_dir` (`--daemon`: the command returns once the keeper
    listens, which leaves it in a session of its own and nobody's child)."""
    package_root = str(Path(__file__).resolve().parents[2])  # so `-m engine.keeper` imports from cwd /
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    argv = [python, "-m", "engine.keeper", "--state", str(state_dir), "--daemon"]
    try:
        with trio.fail_after(START_TIMEOUT):
            result = await trio.run_process(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            capture_stderr=True, cwd="/", env=env, start_new_session=True,
                                            check=False)
    except (OSError, trio.TooSlowError) as e:
        raise KeeperUnavailable(f"cannot start the keeper: {e}") from e
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
        raise KeeperUnavailable(f"cannot start the keeper of {state_dir}: {reason}")
