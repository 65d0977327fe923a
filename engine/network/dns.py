"""The embedded DNS responder of user-defined networks: containers find each other by
name and alias, as with Docker's 127.0.0.11.

For each container on a user-defined network the daemon binds a UDP socket to
127.0.0.11:53 inside the container's own network namespace (from a thread that entered
it: the socket stays in that namespace) and serves it from a trio task. No iptables
rule is needed, unlike dockerd's. Names it does not know get NXDOMAIN: berth does not
forward queries off the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable

import trio

from . import links

ADDRESS = "127.0.0.11"
TTL = 600
_A, _IN = 1, 1
_NXDOMAIN, _FORMERR, _NOTIMP = 3, 1, 4


def answer(query: bytes, lookup: Callable[[str], list[str]]) -> bytes | None:
    """The response to one DNS query (A records from `lookup(name)`), or None for bytes
    that are not a query worth answering."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack(">HHH", query[:6])
    if flags & 0x8000:  # a response, not a query
        return None
    opcode = (flags >> 11) & 0xF
    try:
        name, end = _read_name(query, 12)
        qtype, qclass = struct.unpack(">HH", query[end:end + 4])
    except (ValueError, struct.error):
        return struct.pack(">HHHHHH", ident, 0x8000 | _FORMERR, 0, 0, 0, 0)
    question = query[12:end + 4]
    rd = flags & 0x0100
    if opcode != 0 or qdcount != 1:
        return struct.pack(">HHHHHH", ident, 0x8000 | rd | _NOTIMP, 0, 0, 0, 0)
    addresses = lookup(name.lower().rstrip(".")) if qclass == _IN else []
    if not addresses:
        return struct.pack(">HHHHHH", ident, 0x8000 | 0x0400 | rd | _NXDOMAIN, 1, 0, 0, 0) + question
    records = [ip for ip in addresses if qtype in (_A, 255)]
    body = b"".join(struct.pack(">HHHIH", 0xC00C, _A, _IN, TTL, 4) + ipaddress.IPv4Address(ip).packed
                    for ip in records)
    return struct.pack(">HHHHHH", ident, 0x8000 | 0x0400 | rd | 0x0080, 1, len(records), 0, 0) + question + body


def _read_name(data: bytes, pos: int) -> tuple[str, int]:
    """A question's name (no compression in questions); (name, offset after it)."""
    labels = []
    while True:
        if pos >= len(data):
            raise ValueError("truncated name")
        length = data[pos]
        if length == 0:
            return ".".join(labels), pos + 1
        if length & 0xC0 or len(labels) > 127:
            raise ValueError("compressed or overlong name in a question")
        labels.append(data[pos + 1:pos + 1 + length].decode("ascii", errors="replace"))
        pos += 1 + length


def open_socket(netns_path: str) -> socket.socket:
    """A UDP socket bound to 127.0.0.11:53 inside the namespace at `netns_path`. Blocking."""
    with links.inside(netns_path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((ADDRESS, 53))
        except BaseException:
            sock.close()
            raise
    return sock


async def serve(sock: socket.socket, lookup: Callable[[str], list[str]]) -> None:
    """Answer queries on `sock` until cancelled."""
    with trio.socket.from_stdlib_socket(sock) as tsock:
        while True:
            query, peer = await tsock.recvfrom(4096)
            response = answer(query, lookup)
            if response is not None:
                await tsock.sendto(response, peer)
