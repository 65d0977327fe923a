"""The published-port proxy: what to publish, binding all or nothing, and relaying TCP
and UDP (here to a server on loopback: the proxy's job is the same for a container)."""

from __future__ import annotations

import socket

import pytest
import trio

from engine.errors import EngineError
from engine.network import ports


def test_wanted_ports():
    found = ports.wanted({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": None},
                         {"80/tcp": {}, "9000/tcp": {}}, True)
    everywhere = ("0.0.0.0", "::") if ports.ipv6_host() else ("0.0.0.0",)  # as dockerd: [::] too, where there is IPv6
    assert [(m.key, m.host_ip, m.host_port) for m in found] == [
        ("80/tcp", "127.0.0.1", 8080), *(("53/udp", ip, 0) for ip in everywhere), *(("9000/tcp", ip, 0) for ip in everywhere)]
    for bad in ({"x/tcp": None}, {"80/icmp": None}, {"80/tcp": [{"HostPort": "99999"}]}):
        with pytest.raises(EngineError):
            ports.wanted(bad, None, False)


@pytest.mark.trio
async def test_bind_is_all_or_nothing():
    taken = trio.socket.socket()
    await taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    maps = ports.wanted({"1/tcp": [{"HostIp": "127.0.0.1", "HostPort": "0"}],
                         "2/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, None, False)
    with pytest.raises(EngineError, match=f"127.0.0.1:{port} failed: port is already allocated"):
        await ports.bind(maps)
    taken.close()


@pytest.mark.trio
async def test_relays_tcp_and_udp_to_the_target():
    async def tcp_echo(stream):
        async with stream:
            while data := await stream.receive_some(100):
                await stream.send_all(data.upper())

    udp_server = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await udp_server.bind(("127.0.0.1", 0))

    async def udp_echo():
        while True:
            data, peer = await udp_server.recvfrom(100)
            await udp_server.sendto(data[::-1], peer)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, tcp_echo, 0)
        tcp_port = listeners[0].socket.getsockname()[1]
        udp_port = udp_server.getsockname()[1]
        nursery.start_soon(udp_echo)
        bound = await ports.bind([ports.PortMap(container_port=tcp_port, proto="tcp", host_ip="127.0.0.1", host_port=0),
                                  ports.PortMap(container_port=udp_port, proto="udp", host_ip="127.0.0.1", host_port=0)])
        nursery.start_soon(ports.serve, bound, "127.0.0.1")
        client = await trio.open_tcp_stream("127.0.0.1", bound[0][0].host_port)
        await client.send_all(b"hello")
        assert await client.receive_some(100) == b"HELLO"
        await client.aclose()
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await udp.sendto(b"abc", ("127.0.0.1", bound[1][0].host_port))
        with trio.fail_after(5):
            assert (await udp.recvfrom(100))[0] == b"cba"
        udp.close()
        nursery.cancel_scope.cancel()
    udp_server.close()
