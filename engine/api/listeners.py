"""Where the API listens, and who can reach it: `berthd -H`, `-G` and `--tls*`, as dockerd's.

Vocabulary:

* an *endpoint* is one `-H` value: `unix:///path` (`unix://` alone: the default socket) or
  `tcp://ADDR[:PORT]` (`tcp://:PORT` and `ADDR:PORT` too; ADDR defaults to 127.0.0.1, PORT
  to 2375, or 2376 with TLS). `-H` may be given several times: every endpoint is served.
* a *plan* is the endpoints checked and resolved, the socket group looked up and the TLS
  context loaded: everything that can be refused is refused while making it, before the
  root lock is taken and before anything is bound.

Who can reach the daemon (see docs/security.md):

1. A unix socket is created with mode 0600 (umask 0177 around `bind`), then given to
   root and the socket group, then made 0660. The group is `--group` (a name or a number;
   `--group ''` is root's), else `berth` when that group exists, else root's, as dockerd's
   `-G` with `docker`. A `--group` that names no group is refused.
2. A TCP endpoint with `--tlsverify` takes only clients whose certificate is signed by
   `--tlscacert` (and made for client authentication); `--tls` alone encrypts but lets
   anyone in. Both use `--tlscert` and `--tlskey` as the server's certificate and key.
3. A TCP endpoint without `--tlsverify` is refused unless every address it resolves to is
   a loopback address (127.0.0.0/8, ::1); on loopback it is allowed, with a warning.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import socket
import ssl
import stat
from pathlib import Path

import msgspec
import trio

from ..models import ListenEndpoint, TLSOptions, host_port

log = logging.getLogger("berth.api")

DEFAULT_GROUP = "berth"  # the socket's group when it exists (dockerd: docker)
SOCKET_MODE = 0o660
_DRAIN = 1.0  # seconds a closing TLS connection reads what the client still sends


class ListenError(Exception):
    """An endpoint berthd will not or cannot listen on; the message says why and what to do."""


class _TCP(msgspec.Struct, frozen=True):
    endpoint: ListenEndpoint
    family: int
    sockaddr: tuple


class Plan:
    """The endpoints as they will be bound: checked, resolved, with their group and TLS."""

    def __init__(self, unix: list[Path], gid: int, tcp: list[_TCP], tls: TLSOptions,
                 context: ssl.SSLContext | None):
        self.unix = unix
        self.gid = gid
        self.tcp = tcp
        self.tls = tls
        self.context = context
        self.bound: list[Path] = []  # the unix sockets made, which remove_sockets removes


def plan(endpoints: list[ListenEndpoint], group: str | None, tls: TLSOptions) -> Plan:
    """Check every endpoint against the rules above, resolve the TCP ones, look the socket
    group up and load the TLS files; ListenError for anything refused. Binds nothing."""
    unix = [Path(e.path) for e in endpoints if e.scheme == "unix"]
    gid = socket_gid(group) if unix else 0
    tcp: list[_TCP] = []
    for endpoint in (e for e in endpoints if e.scheme == "tcp"):
        resolved = _resolve(endpoint)
        outside = [_address(addr) for _, addr in resolved if not _is_loopback(addr)]
        if outside and not tls.verify:
            raise ListenError(
                f"refusing to listen on {endpoint.url} without --tlsverify: {', '.join(outside)} is not a "
                "loopback address, and whoever reaches the API controls berthd and this host as root. "
                "Give --tlsverify with --tlscacert, --tlscert and --tlskey, or listen on 127.0.0.1 or ::1")
        tcp += [_TCP(endpoint, family, addr) for family, addr in resolved]
    if tls.enabled and not tcp:
        log.warning("--tls/--tlsverify apply to tcp:// hosts only, and there is none: the API is not reachable over TCP")
    context = server_context(tls) if tcp and tls.enabled else None
    return Plan(unix, gid, tcp, tls, context)


def socket_gid(group: str | None) -> int:
    """The unix socket's group, as dockerd's `-G`: a name or a number; None (not given) is
    `berth` when that group exists, else root's; '' is root's."""
    if group is None:
        try:
            return grp.getgrnam(DEFAULT_GROUP).gr_gid
        except KeyError:
            log.info("no group %r: the API socket is root's alone (berthd --group to name another)", DEFAULT_GROUP)
            return 0
    if group == "":
        return 0
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    if group.isdigit():
        return int(group)
    raise ListenError(f"--group {group}: no such group (create it with groupadd, or name another)")


def server_context(tls: TLSOptions) -> ssl.SSLContext:
    """The server side of TLS: our certificate and key; with `verify`, client certificates
    signed by the CA are required (OpenSSL also checks they are made for client auth)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # as dockerd
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(f"--tlscert {tls.cert} and --tlskey {tls.key}: {_reason(exc)}") from None
    if tls.verify:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=tls.cacert)
        except (OSError, ssl.SSLError) as exc:
            raise ListenError(f"--tlscacert {tls.cacert}: {_reason(exc)}") from None
    return context


async def open_listeners(p: Plan) -> list[trio.abc.Listener]:
    """Bind and listen on every endpoint of the plan, logging each; ListenError (and none
    left open or on disk) when one cannot be bound."""
    listeners: list[trio.abc.Listener] = []
    try:
        for path in p.unix:
            listeners.append(_listen_unix(path, p.gid))
            p.bound.append(path)
            group = _group_name(p.gid)
            log.info("API listening on unix://%s (mode 0660, owner root, group %s)", path, group)
        for tcp in p.tcp:
            listener = await _listen_tcp(tcp)
            bound = host_port(_address(listener.socket.getsockname()), listener.socket.getsockname()[1])
            if p.context is not None:
                listener = TLSListener(listener, p.context)
            _announce(f"tcp://{bound}", p)
            listeners.append(listener)
    except BaseException:
        for listener in listeners:
            (listener.transport if isinstance(listener, TLSListener) else listener).socket.close()
        remove_sockets(p)
        raise
    return listeners


def remove_sockets(p: Plan) -> None:
    """Remove the unix sockets this plan made (if still sockets: never another file)."""
    for path in p.bound:
        try:
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()
        except FileNotFoundError:
            pass
    p.bound.clear()


def _announce(url: str, p: Plan) -> None:
    if not p.tls.enabled:
        log.warning("API listening on %s without TLS: every local user and process (containers on the host "
                    "network too) that connects to it controls berthd, as root", url)
    elif not p.tls.verify:
        log.warning("API listening on %s with TLS but without --tlsverify: any client that connects to it "
                    "controls berthd, as root", url)
    else:
        log.info("API listening on %s (TLS; clients need a certificate signed by %s)", url, p.tls.cacert)


def _listen_unix(path: Path, gid: int) -> trio.SocketListener:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ListenError(f"cannot listen on unix://{path}: it exists and is not a socket")
            path.unlink()  # the daemon holds its root lock: a socket here is stale
    except OSError as exc:
        raise ListenError(f"cannot listen on unix://{path}: {_reason(exc)}") from None
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # born 0600: nobody else can connect before the chown and chmod
        try:
            # bind synchronously through the stdlib socket: trio's bind is async only for DNS
            sock._sock.bind(str(path))
        finally:
            os.umask(old)
        os.chown(path, os.getuid(), gid)
        os.chmod(path, SOCKET_MODE)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on unix://{path}: {_reason(exc)}") from None
    return trio.SocketListener(sock)


async def _listen_tcp(tcp: _TCP) -> trio.SocketListener:
    sock = trio.socket.socket(tcp.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # accepted sockets inherit it: long attaches
        if tcp.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # ::1 is not 127.0.0.1
        await sock.bind(tcp.sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {tcp.endpoint.url} ({host_port(_address(tcp.sockaddr), tcp.sockaddr[1])}): "
                          f"{_reason(exc)}") from None
    return trio.SocketListener(sock)


class TLSStream(trio.abc.HalfCloseableStream):
    """A server-side TLS connection, as the HTTP layer uses any connection.

    * Clients that end a TLS connection without a close_notify are common (HTTPS practice),
      so that is an EOF, not an error (`https_compatible`).
    * `send_eof` ends our side with a TCP FIN and no close_notify (trio's SSLStream has no
      half-close; Go and Python clients take a FIN at a record boundary as the end).
    * `aclose` first reads what the client still sends (for at most `_DRAIN`): a client's
      close_notify left unread would make the kernel answer with a reset, which can cut
      the end of a hijacked stream. (The docker CLI sends one at once on `run` without -i.)
    * A refused handshake sends the client OpenSSL's alert (`certificate required`,
      `unknown ca`, ...), which trio leaves unsent, and is logged with the peer.
    """

    def __init__(self, transport: trio.SocketStream, context: ssl.SSLContext):
        try:
            host, port = transport.socket.getpeername()[:2]
            self.peer = host_port(host, port)
        except OSError:
            self.peer = "?"
        self.transport = transport
        self.tls = trio.SSLStream(transport, context, server_side=True, https_compatible=True)
        self._established = False
        self._eof_sent = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data = await self.tls.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            await self._handshake_failed(exc)
            raise
        if not self._established:
            self._established = True
            self._client_authenticated()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.tls.send_all(data)
        except trio.BrokenResourceError as exc:
            await self._handshake_failed(exc)
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.tls.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if self._eof_sent:
            await trio.lowlevel.checkpoint()
            return
        self._eof_sent = True
        await self.transport.send_eof()

    async def aclose(self) -> None:
        try:
            with trio.move_on_after(_DRAIN):
                if not self._eof_sent:
                    self._eof_sent = True
                    await self.transport.send_eof()
                while await self.transport.receive_some(65536):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            await self.tls.aclose()

    async def _handshake_failed(self, exc: trio.BrokenResourceError) -> None:
        if self._established:
            return
        self._established = True  # one line per connection
        cause = exc.__cause__
        if not isinstance(cause, ssl.SSLError) or isinstance(cause, (ssl.SSLEOFError, ssl.SSLSyscallError)):
            log.debug("TLS handshake with %s failed: %s", self.peer, cause or exc)
            return
        log.info("TLS handshake with %s refused: %s", self.peer, _reason(cause))
        # trio's private outgoing buffer holds the alert; without it the client sees an EOF only
        alert = getattr(getattr(self.tls, "_outgoing", None), "read", bytes)()
        if alert:
            with trio.move_on_after(_DRAIN):
                try:
                    await self.transport.send_all(alert)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    def _client_authenticated(self) -> None:
        if log.isEnabledFor(logging.DEBUG):
            subject = dict(pair for rdn in (self.tls.getpeercert() or {}).get("subject", ()) for pair in rdn)
            log.debug("TLS client %s: %s", self.peer, subject.get("commonName", "no certificate"))


class TLSListener(trio.abc.Listener[TLSStream]):
    """Accepts TCP connections as TLSStreams; the handshake is made by the first read,
    so within the request-header timeout (`berthd --api-header-timeout`)."""

    def __init__(self, transport: trio.SocketListener, context: ssl.SSLContext):
        self.transport = transport
        self.context = context

    async def accept(self) -> TLSStream:
        return TLSStream(await self.transport.accept(), self.context)

    async def aclose(self) -> None:
        await self.transport.aclose()


def _resolve(endpoint: ListenEndpoint) -> list[tuple[int, tuple]]:
    """An endpoint's (family, sockaddr) pairs: an address as is, a name through the resolver."""
    try:
        address = ipaddress.ip_address(endpoint.host)
    except ValueError:
        pass
    else:
        if address.version == 4:
            return [(socket.AF_INET, (str(address), endpoint.port))]
        return [(socket.AF_INET6, (str(address), endpoint.port, 0, 0))]
    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ListenError(f"-H {endpoint.url}: cannot resolve {endpoint.host!r}: {exc.strerror}") from None
    resolved: list[tuple[int, tuple]] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in resolved:
            resolved.append((family, sockaddr))
    return resolved


def _is_loopback(sockaddr: tuple) -> bool:
    return ipaddress.ip_address(_address(sockaddr)).is_loopback


def _address(sockaddr) -> str:
    return sockaddr[0].split("%", 1)[0]


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
