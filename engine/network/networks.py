"""Networks: the predefined `bridge`, `host` and `none`, and user-defined bridge networks.

A bridge network is a Linux bridge holding the gateway address of its subnet; each
container on it gets a veth pair and an address. Records persist as one JSON file per
network under `<root>/networks/`; which addresses are taken is not stored apart, it is
read back from the containers' own records (their endpoints), so a crash can never leave
the two disagreeing.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path

import msgspec

from .. import timefmt
from ..errors import BadRequest, Conflict, NotFound
from ..fs.store import atomic_write
from ..models import NetworkRecord

PREDEFINED = ("bridge", "host", "none")
USER_SUBNETS = ipaddress.ip_network("10.89.0.0/16")  # user networks get /24s from here
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Endpoint(msgspec.Struct, kw_only=True):
    """A container's place on a network (kept in the container's record)."""

    network_id: str
    endpoint_id: str = ""
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    host_if: str = ""
    aliases: list[str] = []


def free_address(subnet: str, gateway: str, taken: set[str]) -> str:
    """The lowest host address of `subnet` that is neither the gateway nor taken."""
    net = ipaddress.ip_network(subnet)
    for host in net.hosts():
        text = str(host)
        if text != gateway and text not in taken:
            return text
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet}")


def next_subnet(used: list[str], busy_host: list[str]) -> str:
    """A /24 from USER_SUBNETS overlapping neither another network nor a host address."""
    taken = [ipaddress.ip_network(s) for s in used + busy_host]
    for candidate in USER_SUBNETS.subnets(new_prefix=24):
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults")


_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_LINK_NAME = re.compile(r"[^/:\s\x00]+")


def check_name(name: str) -> None:
    """Docker's rule for container names, for networks too (dockerd takes any name that is
    not blank, `/`, `..` and NUL included)."""
    if not _NAME.fullmatch(name):
        raise BadRequest(f"Invalid network name ({name!r}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def check_link_name(name: str) -> None:
    """A name the kernel takes for a network interface (dev_valid_name)."""
    if not _LINK_NAME.fullmatch(name) or len(name.encode()) > 15 or name in (".", ".."):
        raise BadRequest(f"invalid bridge name {name!r} (com.docker.network.bridge.name): an interface name "
                         "is 1 to 15 bytes, none of them /, : or white space, and not . or ..")


def check_pool(net: IPNetwork, *, gateway: str = "", ip_range: str = "", aux_addresses: dict[str, str]) -> None:
    """The gateway, IP range and auxiliary addresses of an IPAM pool lie inside its subnet
    `net`, of its IP version (dockerd 25's checks, in its words)."""
    if ip_range:
        block = _block(ip_range, "ip-range")
        if block.version != net.version:
            raise BadRequest(f"invalid ip-range {ip_range}: parent subnet is an IPv{net.version} block")
        if not block.subnet_of(net):
            raise BadRequest(f"invalid ip-range {ip_range}: parent subnet {net} doesn't contain ip-range")
    addresses = {f"gateway {gateway}": gateway} if gateway else {}
    addresses.update({f"auxiliary address {key}={address}": address for key, address in aux_addresses.items()})
    for what, address in addresses.items():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise BadRequest(f"invalid {what}: invalid address") from None
        if ip.version != net.version:
            raise BadRequest(f"invalid {what}: parent subnet is an IPv{net.version} block")
        if ip not in net:
            raise BadRequest(f"invalid {what}: parent subnet {net} doesn't contain this address")


def _block(text: str, what: str) -> IPNetwork:
    """A CIDR block (`10.1.0.0/16`) without host bits; a 400 naming `what` if it is not one."""
    try:
        block = ipaddress.ip_network(text, strict=False) if "/" in text else None
    except ValueError:
        block = None
    if block is None:
        raise BadRequest(f"invalid {what} {text}: invalid CIDR block notation")
    if ipaddress.ip_interface(text).ip != block.network_address:
        raise BadRequest(f"invalid {what} {text}: it should be {block}")
    return block


class Networks:
    """The network records, by ID, with lookups by name or ID prefix."""

    def __init__(self, root: Path, default_bridge: str, default_subnet: str):
        self.dir = root / "networks"
        self.by_id: dict[str, NetworkRecord] = {}
        self.default_bridge = default_bridge
        self.default_subnet = default_subnet

    def load(self) -> None:
        """Read the records; make the predefined networks (first start)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in self.dir.glob("*.json"):
            record = msgspec.json.decode(path.read_bytes(), type=NetworkRecord)
            self.by_id[record.id] = record
        names = {r.name for r in self.by_id.values()}
        net = ipaddress.ip_network(self.default_subnet)
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            if name not in names:
                record = NetworkRecord(id=secrets.token_hex(32), name=name, driver=driver, created=timefmt.now())
                if driver == "bridge":
                    record.bridge, record.subnet, record.gateway = self.default_bridge, str(net), str(next(net.hosts()))
                    record.options = {"com.docker.network.bridge.default_bridge": "true",
                                      "com.docker.network.bridge.name": self.default_bridge}
                self._save(record)

    def _save(self, record: NetworkRecord) -> None:
        atomic_write(self.dir / f"{record.id}.json", msgspec.json.encode(record))
        self.by_id[record.id] = record

    def get(self, ref: str) -> NetworkRecord:
        """By name, full ID or unique ID prefix; 404 as Docker words it."""
        for record in self.by_id.values():
            if record.name == ref or record.id == ref:
                return record
        found = [r for r in self.by_id.values() if ref and r.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"network {ref} not found")

    def create(self, name: str, *, driver: str = "bridge", subnet: str = "", gateway: str = "", ip_range: str = "",
               aux_addresses: dict[str, str] | None = None, internal: bool = False,
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None,
               busy_host: list[str] = ()) -> NetworkRecord:
        """A new user-defined bridge network (its Linux bridge is made on first use).
        `ip_range` and `aux_addresses` are checked (inside the subnet), not kept: every
        address of the subnet but the gateway is given out."""
        check_name(name)
        if any(r.name == name for r in self.by_id.values()):
            raise Conflict(f"network with name {name} already exists")
        if driver != "bridge":
            raise BadRequest(f"plugin \"{driver}\" not found" if driver not in ("host", "null")
                             else f"only one instance of \"{driver}\" network is allowed")
        if subnet:
            net = _block(subnet, "subnet")
            clash = next((r for r in self.by_id.values() if r.subnet and net.overlaps(ipaddress.ip_network(r.subnet))), None)
            if clash:
                raise Conflict(f"Pool overlaps with other one on this address space ({clash.name})")
        else:
            net = ipaddress.ip_network(next_subnet([r.subnet for r in self.by_id.values() if r.subnet], list(busy_host)))
        check_pool(net, gateway=gateway, ip_range=ip_range, aux_addresses=aux_addresses or {})
        bridge = (options or {}).get("com.docker.network.bridge.name", "")
        if bridge:
            check_link_name(bridge)
        record = NetworkRecord(id=secrets.token_hex(32), name=name, driver="bridge", created=timefmt.now(),
                               subnet=str(net), gateway=str(ipaddress.ip_address(gateway) if gateway else next(net.hosts())),
                               internal=internal, labels=labels or {}, options=options or {})
        record.bridge = bridge or f"br-{record.id[:12]}"
        self._save(record)
        return record

    def remove(self, record: NetworkRecord) -> None:
        if record.name in PREDEFINED:
            raise Conflict(f"{record.name} is a pre-defined network and cannot be removed")
        (self.dir / f"{record.id}.json").unlink(missing_ok=True)
        del self.by_id[record.id]
