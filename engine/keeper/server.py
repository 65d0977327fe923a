"""The keeper's state and poll loop (see engine/keeper/__init__.py); standard library only.

One poll loop, single-threaded, over the listening socket, the clients' sockets and a
SIGCHLD wakeup fd; the wire format is in protocol.py. `__main__` sets it up and runs it.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import select
import signal
import socket
import time
from collections.abc import Mapping

from engine.keeper import protocol

UNCLAIMED_MAX = 4096  # exits of pids not held (yet): a late `hold` finds them here
QUEUE_MAX = 4096  # messages waiting for a client that does not read: beyond, it is dropped
READS_PER_WAKEUP = 64  # messages read from one client before serving the others


class Log:
    """Lifecycle and errors only, appended to DIR/keeper.log."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
        try:
            os.write(self.fd, f"{stamp} keeper[{os.getpid()}]: {message}\n".encode(errors="replace"))
        except OSError:
            pass  # a full disk must not stop the keeper


class Held:
    """A container the keeper holds: its init's pid, its fds (name → fd), its exit."""

    __slots__ = ("container", "pid", "fds", "exit_code", "exited_ns")

    def __init__(self, container: str, pid: int, fds: dict[str, int]):
        self.container, self.pid, self.fds = container, pid, fds
        self.exit_code: int | None = None
        self.exited_ns: int | None = None

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def describe(self) -> dict:
        return {"container": self.container, "pid": self.pid, "exit_code": self.exit_code,
                "exited_ns": self.exited_ns}


class Client:
    """A connected client and the messages (bytes, fds to close once sent) it has yet to get."""

    __slots__ = ("sock", "queue")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.queue: collections.deque[tuple[bytes, list[int]]] = collections.deque()


class RequestError(Exception):
    """A request the keeper refuses; `errno` is passed on when an OSError caused it."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.errno = code


def exit_code(status: int) -> int:
    """A wait status as the shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def parent_of(pid: int) -> int | None:
    """The parent pid of a live (or zombie) process, None when there is none."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` is the parent of `pid`, or of its parent, and so on. A runtime
    may still have a process of its own between it and the container's init when it
    answers: the init becomes the keeper's child (its subreaper's) once that one ends."""
    seen = 0
    while pid and pid != 1 and seen < 64:
        parent = parent_of(pid)
        if parent == ancestor:
            return True
        pid, seen = parent or 0, seen + 1
    return False


def live_children() -> list[int]:
    """This process's children (those not reaped yet included)."""
    me = os.getpid()
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and parent_of(int(name)) == me]


def _str_field(message: dict, name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise RequestError(f"{name} must be a non-empty string")
    return value


class Keeper:
    """The state and the poll loop."""

    def __init__(self, state: str, log: Log, lock_fd: int):
        self.state, self.log, self.lock_fd = state, log, lock_fd
        self.path = os.path.join(state, protocol.SOCKET)
        self.pid_path = os.path.join(state, protocol.PID_FILE)
        self.held: dict[str, Held] = {}
        self.by_pid: dict[int, Held] = {}  # live held containers by their init's pid
        self.unclaimed: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self.spawns: dict[int, tuple[Client | None, object]] = {}  # pid → (client, request id)
        self.clients: dict[int, Client] = {}
        self.terminate = False
        self.stop = False
        self.poller = select.poll()
        self.listener = self._listen()
        self.wake_r, self.wake_w = socket.socketpair()
        for s in (self.wake_r, self.wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.poller.register(self.wake_r, select.POLLIN)
        self.poller.register(self.listener, select.POLLIN)
        self._write_pid()

    # -- setup and teardown

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            os.unlink(self.path)  # a dead keeper's: the lock says no keeper serves it
        except FileNotFoundError:
            pass
        umask = os.umask(0o177)  # born 0600: no moment where another user may connect
        try:
            listener.bind(self.path)
        finally:
            os.umask(umask)
        listener.listen(64)
        listener.setblocking(False)
        self.socket_inode = os.stat(self.path).st_ino
        return listener

    def _write_pid(self) -> None:
        tmp = f"{self.pid_path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(tmp, self.pid_path)

    def _on_term(self, signum, frame) -> None:
        self.terminate = True

    def close(self) -> None:
        """Leave: the socket and pid file go (when still ours), every fd is closed."""
        try:
            if os.stat(self.path).st_ino == self.socket_inode:
                os.unlink(self.path)
        except OSError:
            pass
        try:
            with open(self.pid_path) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(self.pid_path)
        except OSError:
            pass
        for client in list(self.clients.values()):
            self._drop(client)
        for held in self.held.values():
            held.close()
        self.listener.close()
        signal.set_wakeup_fd(-1)

    # -- the loop

    def run(self) -> int:
        """Serve until shut down; the exit status."""
        self.log(f"serving {self.path}")
        self.reap()
        while not self.stop:
            for fd, events in self.poller.poll():
                try:
                    self._ready(fd, events)
                except Exception as e:  # never let one event take the keeper down
                    self.log(f"error on fd {fd}: {e!r}")
            if self.terminate:
                self.terminate = False
                live = self.live()
                if live:
                    self.log(f"SIGTERM ignored: {live} live containers")
                else:
                    self.stop = True
        self.log("exiting")
        self.close()
        return 0

    def _ready(self, fd: int, events: int) -> None:
        if fd == self.wake_r.fileno():
            try:
                while self.wake_r.recv(512):
                    pass
            except BlockingIOError:
                pass
            self.reap()
        elif fd == self.listener.fileno():
            self._accept()
        elif (client := self.clients.get(fd)) is not None:
            if events & select.POLLOUT:
                self._flush(client)
            if events & ~select.POLLOUT and fd in self.clients:
                self._read(client)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as e:  # out of fds: the client waits in the backlog
                self.log(f"accept: {e}")
                return
            sock.setblocking(False)
            client = Client(sock)
            self.clients[sock.fileno()] = client
            self.poller.register(sock, select.POLLIN)

    def _read(self, client: Client) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, anc, flags, _ = client.sock.recvmsg(protocol.MAX_MESSAGE, protocol.ANCILLARY_SPACE,
                                                          socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError:
                self._drop(client)
                return
            fds = protocol.received_fds(anc)
            if not data and not fds:  # the client left (an empty message counts as leaving)
                self._drop(client)
                return
            self._request(client, data, fds, flags)
            if client.sock.fileno() not in self.clients:
                return

    def _drop(self, client: Client) -> None:
        """Forget a client that left or does not read; what it asked for stays done."""
        fd = client.sock.fileno()
        if self.clients.pop(fd, None) is None:
            return
        self.poller.unregister(fd)
        client.sock.close()
        while client.queue:
            for sent_fd in client.queue.popleft()[1]:
                os.close(sent_fd)
        for pid, (owner, rid) in self.spawns.items():
            if owner is client:
                self.spawns[pid] = (None, rid)

    # -- sending

    def send(self, client: Client | None, message: dict, fds: list[int] = ()) -> None:
        """Queue a message (the fds are closed once sent) and send what the socket takes."""
        if client is None or self.clients.get(client.sock.fileno()) is not client:
            for fd in fds:
                os.close(fd)
            return
        client.queue.append((protocol.encode(message), list(fds)))
        if len(client.queue) > QUEUE_MAX:
            self.log("dropping a client that does not read")
            self._drop(client)
            return
        self._flush(client)

    def _flush(self, client: Client) -> None:
        while client.queue:
            data, fds = client.queue[0]
            try:
                client.sock.sendmsg([data], protocol.ancillary(fds))
            except BlockingIOError:
                self.poller.modify(client.sock, select.POLLIN | select.POLLOUT)
                return
            except OSError:
                self._drop(client)
                return
            client.queue.popleft()
            for fd in fds:
                os.close(fd)
        self.poller.modify(client.sock, select.POLLIN)

    def reply(self, client: Client | None, rid, fields: dict, fds: list[int] = ()) -> None:
        """Answer request `rid` of `client` (gone or None: nobody to answer)."""
        self.send(client, {"op": "reply", "id": rid, "ok": True, **fields}, fds)

    # -- requests

    def _request(self, client: Client, data: bytes, fds: list[int], flags: int) -> None:
        """Serve one request; whatever fds a handler does not keep are closed."""
        rid = None
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise RequestError(f"message over {protocol.MAX_MESSAGE} bytes or {protocol.MAX_FDS} fds")
            try:
                message = protocol.decode(data)
            except ValueError as e:
                raise RequestError(f"not a JSON object: {e}") from None
            rid = message.get("id")
            handler = self.HANDLERS.get(message.get("op"))
            if handler is None:
                raise RequestError(f"unknown op {message.get('op')!r}")
            fields = handler(self, client, rid, message, fds)
            if fields is not None:
                self.reply(client, rid, fields)
        except Exception as e:
            if not isinstance(e, RequestError):
                self.log(f"request failed: {e!r}")
            error = {"op": "reply", "id": rid if isinstance(rid, (int, str)) else None, "ok": False, "error": str(e)}
            if getattr(e, "errno", None) is not None:
                error["errno"] = e.errno
            self.send(client, error)
        finally:
            for fd in fds:
                os.close(fd)

    def do_spawn(self, client: Client, rid, message: dict, fds: list[int]) -> None:
        """Start the child; the reply waits for its exit."""
        argv, env = message.get("argv"), message.get("env")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise RequestError("argv must be a non-empty list of strings")
        if env is not None and not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                                  for k, v in env.items())):
            raise RequestError("env must map strings to strings")
        if message.get("cwd") not in (None, "/"):  # a field of older daemons, which always said /
            raise RequestError("cwd must be /: the keeper starts every process there")
        if len(fds) != 3:
            raise RequestError("spawn takes 3 fds: stdin, stdout, stderr")
        pid = spawn(argv, env, fds)
        self.spawns[pid] = (client, rid)
        return None

    def do_hold(self, client: Client, rid, message: dict, fds: list[int]) -> dict:
        container, pid, names = _str_field(message, "container"), message.get("pid"), message.get("names", [])
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise RequestError("pid must be a positive integer")
        if (not isinstance(names, list) or len(names) != len(fds) or len(set(names)) != len(names)
                or not all(n in protocol.FD_NAMES for n in names)):
            raise RequestError(f"names must name each fd once, among {', '.join(protocol.FD_NAMES)}")
        other = self.by_pid.get(pid)
        if other is not None and other.container != container:
            raise RequestError(f"pid {pid} is held for {other.container}")
        old = self.held.get(container)
        if old is not None and old.exit_code is None and old.pid != pid:
            raise RequestError(f"{container} is held running as pid {old.pid}")
        self.reap()  # so an exit already due is in `unclaimed`
        if descends_from(pid, os.getpid()):
            self.unclaimed.pop(pid, None)  # an older process's exit under a reused pid
            exit = None
        elif pid in self.unclaimed:
            exit = self.unclaimed.pop(pid)
        else:
            raise RequestError(f"pid {pid} is not the keeper's child")
        if old is not None:
            self._forget(old)
        held = Held(container, pid, dict(zip(names, fds)))
        fds.clear()  # they are the keeper's now
        self.held[container] = held
        if exit is None:
            self.by_pid[pid] = held
        else:
            held.exit_code, held.exited_ns = exit
        return {}

    def do_take(self, client: Client, rid, message: dict, fds: list[int]) -> None:
        held = self.held.get(_str_field(message, "container"))
        names = list(held.fds) if held else []
        self.reply(client, rid, {"names": names}, [os.dup(held.fds[n]) for n in names])
        return None

    def do_held(self, client: Client, rid, message: dict, fds: list[int]) -> None:
        every = [h.describe() for h in self.held.values()]
        for start in range(0, max(len(every), 1), protocol.HELD_BATCH):
            more = start + protocol.HELD_BATCH < len(every)
            self.reply(client, rid, {"held": every[start:start + protocol.HELD_BATCH], "more": more})
        return None

    def do_status(self, client: Client, rid, message: dict, fds: list[int]) -> dict:
        container = _str_field(message, "container")
        held = self.held.get(container)
        if held is None:
            raise RequestError(f"{container} is not held")
        return held.describe()

    def do_release(self, client: Client, rid, message: dict, fds: list[int]) -> dict:
        held = self.held.get(_str_field(message, "container"))
        if held is not None:
            self._forget(held)
        return {}

    def do_drop(self, client: Client, rid, message: dict, fds: list[int]) -> dict:
        held = self.held.get(_str_field(message, "container"))
        fd = held.fds.pop(_str_field(message, "name"), None) if held is not None else None
        if fd is not None:
            os.close(fd)
        return {}

    def do_shutdown(self, client: Client, rid, message: dict, fds: list[int]) -> dict:
        live = self.live()
        if not live:
            self.stop = True
            self.log("shutdown requested")
        return {"done": not live, "live": live}

    HANDLERS = {"spawn": do_spawn, "hold": do_hold, "take": do_take, "held": do_held, "status": do_status,
                "release": do_release, "drop": do_drop, "shutdown": do_shutdown}

    def _forget(self, held: Held) -> None:
        held.close()
        self.held.pop(held.container, None)
        if self.by_pid.get(held.pid) is held:
            del self.by_pid[held.pid]

    def live(self) -> int:
        """What shutting down would abandon: live held containers, spawns under way and
        any other child (a container whose `hold` never came)."""
        self.reap()
        return len(set(self.by_pid) | set(self.spawns) | set(live_children()))

    # -- reaping

    def reap(self) -> None:
        """Collect every child that exited: answer its spawn, record a held one's exit
        and tell every client, keep the others' in `unclaimed`."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code, now = exit_code(status), time.time_ns()
            spawned = self.spawns.pop(pid, None)
            if spawned is not None:
                self.reply(*spawned, {"exit_code": code})
            held = self.by_pid.pop(pid, None)
            if held is None:
                if spawned is None:
                    self.unclaimed[pid] = (code, now)
                    while len(self.unclaimed) > UNCLAIMED_MAX:
                        self.unclaimed.popitem(last=False)
                continue
            held.exit_code, held.exited_ns = code, now
            note = {"op": "exited", "container": held.container, "pid": pid, "exit_code": code, "exited_ns": now}
            for client in list(self.clients.values()):
                self.send(client, note)


# The signals the keeper handles or ignores, which its children get back as they should
# find them: a handled one is reset by exec anyway, an ignored one (SIGHUP here; SIGPIPE
# and SIGXFSZ, as Python ignores them) would stay ignored across exec.
CHILD_DEFAULT_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ)


def spawn(argv: list[str], env: dict[str, str] | None, stdio: list[int]) -> int:
    """Start argv in `/` (the keeper's own directory), in a session of its own, with
    `stdio` as its 0, 1, 2 and no other fd (every fd of the keeper is close-on-exec: see
    `__main__.setup`); its pid. An exec failure is raised here.

    posix_spawn, not fork: its child shares the keeper's memory until it execs (vfork),
    where a forked Python copied its page tables and faulted pages in again for the
    little Python it ran before exec: ~60% of the keeper's CPU per container started
    (docs/performance.md)."""
    environ = os.environ if env is None else env
    high: list[int] = []
    try:
        for fd in stdio:  # one by one, so that a copy made before a failure is closed too
            high.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))  # none may be 0, 1 or 2 while placed
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(high)]
        failed: OSError | None = None
        for program in _candidates(argv[0], environ):
            try:
                return os.posix_spawn(program, argv, environ, file_actions=actions, setsid=True,
                                      setsigdef=CHILD_DEFAULT_SIGNALS)
            except OSError as e:
                # as execvp: on to the next directory, reporting the first failure other
                # than a missing file (or the last missing one)
                if failed is None or failed.errno in (errno.ENOENT, errno.ENOTDIR):
                    failed = e
        raise failed or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    except OSError as e:
        raise RequestError(f"cannot run {argv[0]}: {e.strerror or e}", e.errno) from None
    except ValueError as e:  # a NUL in argv or env, an `=` in a variable's name
        raise RequestError(f"cannot run {argv[0]}: {e}", errno.EINVAL) from None
    finally:
        for fd in high:
            os.close(fd)


def _candidates(name: str, env: Mapping[str, str]) -> list[str]:
    """The files execvp would try for `name`, in order: on the PATH of the environment
    the program gets (posix_spawnp would search the keeper's own)."""
    if "/" in name:
        return [name]
    return [os.path.join(directory, name) for directory in os.get_exec_path(env)]
