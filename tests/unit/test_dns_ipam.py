"""The embedded DNS responder's packets and the address allocator, without a network."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from engine.network import dns
from engine.network.networks import free_address, next_subnet


def query(name: str, qtype: int = 1, ident: int = 7) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, 1)


def test_answers_known_names_and_refuses_the_rest():
    table = {"db": ["10.89.0.2"], "both": ["10.89.0.3", "10.89.1.3"]}
    reply = dns.answer(query("db"), lambda n: table.get(n, []))
    ident, flags, qd, an = struct.unpack(">HHHH", reply[:8])
    assert (ident, flags & 0xF, qd, an) == (7, 0, 1, 1) and reply.endswith(ipaddress.IPv4Address("10.89.0.2").packed)
    assert struct.unpack(">H", dns.answer(query("both"), lambda n: table.get(n, []))[6:8])[0] == 2
    nx = dns.answer(query("nothing.example"), lambda n: table.get(n, []))
    assert struct.unpack(">H", nx[2:4])[0] & 0xF == 3  # NXDOMAIN
    assert struct.unpack(">H", dns.answer(query("db", qtype=28), lambda n: table.get(n, []))[6:8])[0] == 0  # no AAAA
    assert dns.answer(b"short", lambda n: []) is None


@given(st.binary(max_size=80))
def test_never_crashes_on_garbage(data):
    reply = dns.answer(data, lambda n: ["10.0.0.1"])
    assert reply is None or len(reply) >= 12


@given(st.sets(st.integers(2, 254), max_size=40))
def test_free_address_is_the_lowest_free(taken_hosts):
    taken = {f"10.89.5.{h}" for h in taken_hosts}
    got = free_address("10.89.5.0/24", {"10.89.5.1", *taken})
    assert got not in taken and got != "10.89.5.1"
    assert all(f"10.89.5.{h}" in taken for h in range(2, int(got.rsplit(".", 1)[1])))


def test_next_subnet_avoids_networks_and_host_addresses():
    assert next_subnet([], []) == "10.89.0.0/24"
    assert next_subnet(["10.89.0.0/24"], ["10.89.1.0/24"]) == "10.89.2.0/24"
