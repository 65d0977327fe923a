"""Published ports (`-p [ip:]hostPort:containerPort[/proto]`, `-P`): a userland proxy in
the daemon, one trio task per listening socket, relaying to the container's address on
its bridge.

A port published with no host address listens on 0.0.0.0 and, where the host has IPv6,
on [::] too, on the same host port (dockerd's `0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`);
an IPv6 client reaches the container's IPv4 address through the proxy. All host sockets
of a container are bound before any of them serves, so a port already taken fails the
start with a clear error and leaves nothing half made.
"""

from __future__ import annotations

import errno
import functools
import socket

import msgspec
import trio

from ..errors import BadRequest, EngineError

UDP_IDLE = 60.0  # seconds a UDP flow with no traffic keeps its upstream socket


class PortMap(msgspec.Struct, kw_only=True):
    """One published port: the container's side and the host's (its real port, when the
    request left it to the kernel)."""

    container_port: int
    proto: str
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def wanted(port_bindings: dict | None, exposed: dict | None, publish_all: bool,
           default_ip: str = "") -> list[PortMap]:
    """The ports to publish: PortBindings, plus every exposed port on a random host port
    with `publish_all` (`-P`), each on `default_ip` unless it names a host address (with
    none, everywhere: 0.0.0.0 and [::]). Port ranges arrive from the CLI already expanded."""
    found: list[PortMap] = []

    def add(port: int, proto: str, host_ip: str, host_port: int) -> None:
        for ip in (host_ip,) if host_ip else ("0.0.0.0", "::") if ipv6_host() else ("0.0.0.0",):
            found.append(PortMap(container_port=port, proto=proto, host_ip=ip, host_port=host_port))

    for key, bindings in (port_bindings or {}).items():
        port, proto = _split(key)
        for b in bindings or [{}]:
            host_port = (b or {}).get("HostPort") or "0"
            if not str(host_port).isdigit() or not 0 <= int(host_port) <= 65535:
                raise BadRequest(f"invalid host port {host_port!r} for {key}")
            add(port, proto, (b or {}).get("HostIp") or default_ip, int(host_port))
    if publish_all:
        for key in exposed or {}:
            port, proto = _split(key)
            if not any(m.container_port == port and m.proto == proto for m in found):
                add(port, proto, default_ip, 0)
    return found


@functools.cache
def ipv6_host() -> bool:
    """Whether the host has IPv6 (dockerd publishes on [::] only then)."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            return f.read().strip() == "0"
    except OSError:
        return False


def _split(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if not port.isdigit() or not 0 < int(port) <= 65535 or proto not in ("tcp", "udp", "sctp"):
        raise BadRequest(f"invalid port specification: {key!r}")
    if proto == "sctp":
        raise BadRequest("sctp ports cannot be published by berth's proxy")
    return int(port), proto


async def bind(maps: list[PortMap]) -> list[tuple[PortMap, trio.socket.SocketType]]:
    """Bind every host socket; on any failure close those already bound and raise."""
    bound: list[tuple[PortMap, trio.socket.SocketType]] = []
    try:
        for m in maps:
            kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
            v6 = ":" in m.host_ip
            if v6 and m.host_port == 0 and bound:  # [::] beside 0.0.0.0: the port the kernel gave that one
                m = _same_port(m, bound[-1][0])
            sock = trio.socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
            try:
                if kind == socket.SOCK_STREAM:  # on UDP it would let a second container bind the same port
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if v6:  # [::] beside 0.0.0.0 on the same port, not instead of it
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                await sock.bind((m.host_ip, m.host_port))
                if kind == socket.SOCK_STREAM:
                    sock.listen(128)
            except OSError as exc:
                sock.close()
                where = f"[{m.host_ip}]:{m.host_port}" if v6 else f"{m.host_ip}:{m.host_port}"
                if exc.errno == errno.EADDRINUSE:
                    raise EngineError(f"driver failed programming external connectivity: Bind for "
                                      f"{where} failed: port is already allocated") from None
                raise EngineError(f"cannot publish {where}/{m.proto}: {exc.strerror}") from None
            bound.append((msgspec.structs.replace(m, host_port=sock.getsockname()[1]), sock))
    except BaseException:
        for _, sock in bound:
            sock.close()
        raise
    return bound


def _same_port(m: PortMap, before: PortMap) -> PortMap:
    """`m` on the host port its IPv4 twin (just bound on a port the kernel chose) got."""
    if (before.container_port, before.proto, before.host_ip) == (m.container_port, m.proto, "0.0.0.0"):
        return msgspec.structs.replace(m, host_port=before.host_port)
    return m


async def serve(bound: list[tuple[PortMap, trio.socket.SocketType]], target_ip: str) -> None:
    """Relay every bound socket to `target_ip` until cancelled (they already listen, so
    nothing is lost before this runs)."""
    async with trio.open_nursery() as nursery:
        for m, sock in bound:
            if m.proto == "tcp":
                nursery.start_soon(_serve_tcp, trio.SocketListener(sock), target_ip, m.container_port)
            else:
                nursery.start_soon(_serve_udp, sock, target_ip, m.container_port)


async def _serve_tcp(listener: trio.SocketListener, ip: str, port: int) -> None:
    async with listener, trio.open_nursery() as nursery:
        while True:
            client = await listener.accept()
            nursery.start_soon(_relay_tcp, client, ip, port)


async def _relay_tcp(client: trio.SocketStream, ip: str, port: int) -> None:
    async with client:
        try:
            upstream = await trio.open_tcp_stream(ip, port)
        except OSError:
            return  # nothing listens in the container: the client sees the connection close
        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, upstream)
            nursery.start_soon(_pump, upstream, client)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy until EOF, then pass the half-close on (HTTP/1.0 and friends rely on it)."""
    try:
        while data := await source.receive_some(1 << 18):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _serve_udp(sock: trio.socket.SocketType, ip: str, port: int) -> None:
    """Each client address gets its own connected socket towards the container, so
    replies find their way back; a flow idle for UDP_IDLE seconds is closed."""
    flows: dict[tuple, trio.socket.SocketType] = {}
    with sock:
        async with trio.open_nursery() as nursery:
            while True:
                data, client = await sock.recvfrom(65535)
                upstream = flows.get(client)
                if upstream is None:
                    upstream = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    await upstream.connect((ip, port))
                    flows[client] = upstream
                    nursery.start_soon(_udp_replies, sock, upstream, client, flows)
                await upstream.send(data)


async def _udp_replies(sock, upstream, client, flows) -> None:
    with upstream:
        while True:
            with trio.move_on_after(UDP_IDLE) as idle:
                try:
                    reply = await upstream.recv(65535)
                except OSError:
                    break
            if idle.cancelled_caught:
                break
            await sock.sendto(reply, client)
    flows.pop(client, None)
