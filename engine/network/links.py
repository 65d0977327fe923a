"""Bridges and veth pairs through netlink (pyroute2). Every function blocks: the Engine
calls them in worker threads.

pyroute2 is imported on the first use of a bridge, not at start: its package imports every
netlink family, ndb and asyncio (~12 MB of the daemon's idle memory, docs/performance.md),
and a daemon whose containers use no bridge network never needs it.

A container's side is configured from a thread that entered the container's network
namespace with setns (as netns.py does): pyroute2's own netns support forks, which a
threaded daemon must not do.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from contextlib import contextmanager

from ..runtime import syscalls

_EEXIST, _ENODEV = 17, 19
_IFA_F_NODAD = 0x02


def IPRoute():  # noqa: N802 (stands for pyroute2's class)
    from pyroute2 import IPRoute

    return IPRoute()


def ensure_bridge(name: str, gateways: list[tuple[str, int]], mtu: int = 0) -> None:
    """The bridge `name` exists, is up, holds the gateway addresses (address, prefix
    length) and has the MTU `mtu` when given (idempotent)."""
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as exc:
                if exc.code != _EEXIST:
                    raise
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}
        for gateway, prefixlen in gateways:
            if gateway not in have:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen,
                         **({"flags": _IFA_F_NODAD} if ":" in gateway else {}))
        ipr.link("set", index=index, state="up", **({"mtu": mtu} if mtu else {}))


def remove_link(name: str) -> None:
    """Delete a link (a bridge, or a veth pair by either end); fine if it is gone."""
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != _ENODEV:
                    raise


def host_subnets() -> list[str]:
    """Subnets of the host's own IPv4 addresses, loopback aside (user networks must not
    overlap them)."""
    with IPRoute() as ipr:
        return [str(ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False))
                for a in ipr.get_addr(family=socket.AF_INET)
                if not a.get_attr("IFA_ADDRESS", "").startswith("127.")]


def link_names() -> set[str]:
    """Names of every link in this (the host's) namespace (libc's if_nameindex, netlink
    underneath: called at start, where pyroute2 is not wanted)."""
    return {name for _, name in socket.if_nameindex()}


@contextmanager
def inside(netns_path: str):
    """Run the block in the network namespace pinned at `netns_path` (this thread only)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(target, syscalls.CLONE_NEWNET)
        try:
            yield
        finally:
            syscalls.setns(home, syscalls.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def attach(netns_path: str, bridge: str, host_if: str, inner_if: str, mac: str,
           addresses: list[tuple[str, int]], gateways: list[str], mtu: int = 0) -> None:
    """Plug a container into `bridge`: a veth pair whose host end joins the bridge and
    whose other end is made as `inner_if` right in the container's namespace (moving an
    interface between namespaces costs ~20 ms of RCU waiting; creating it there, ~1 ms),
    with the MAC `mac`, its `addresses` (address, prefix length; IPv6 ones without
    duplicate address detection, usable at once), a default route by each of `gateways`,
    and on both ends the MTU `mtu` when given."""
    sized = {"mtu": mtu} if mtu else {}
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": inner_if, "net_ns_fd": fd})
        finally:
            os.close(fd)
        try:
            host_index = ipr.link_lookup(ifname=host_if)[0]
            ipr.link("set", index=host_index, master=ipr.link_lookup(ifname=bridge)[0], state="up", **sized)
        except BaseException:
            ipr.link("del", index=ipr.link_lookup(ifname=host_if)[0])
            raise
    with inside(netns_path), IPRoute() as ipr:
        index = ipr.link_lookup(ifname=inner_if)[0]
        ipr.link("set", index=index, address=mac, **sized)
        for address, prefixlen in addresses:
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen,
                     **({"flags": _IFA_F_NODAD} if ":" in address else {}))
        ipr.link("set", index=index, state="up")
        for gateway in gateways:
            try:
                ipr.route("add", dst="::/0" if ":" in gateway else "0.0.0.0/0", gateway=gateway)
            except NetlinkError as exc:
                if exc.code != _EEXIST:  # a second network: the first one's default route stays
                    raise


def mac_for(address: str) -> str:
    """Docker's MAC scheme: 02:42 then the IPv4 address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)
