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
from ..models import IPAMPool, NetworkRecord

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
    inner_if: str = ""  # its name inside the container (eth0, eth1, …)
    aliases: list[str] = []
    ip6: str = ""  # on a network with IPv6
    prefixlen6: int = 0
    gateway6: str = ""


def free_address(subnet: str, reserved: set[str], ip_range: str = "") -> str:
    """The lowest host address of `ip_range` (else of `subnet`) that is not reserved (the
    gateway, auxiliary addresses, those taken)."""
    net = ipaddress.ip_network(ip_range or subnet)
    for host in net.hosts():
        text = str(host)
        if text not in reserved:
            return text
    raise Conflict(f"no available IPv{net.version} addresses on this network's address pools: {subnet}")


def requested_address(record: NetworkRecord, address: str, reserved: set[str]) -> str:
    """An address a container asks for (`--ip`, `--ip6`), if the network can give it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BadRequest(f"invalid IP address: {address}") from None
    subnet = record.subnet if ip.version == 4 else record.subnet6
    if not subnet or ip not in ipaddress.ip_network(subnet):
        raise BadRequest(f"Invalid address {address}: It does not belong to any of this network's subnets")
    if str(ip) in reserved:
        raise Conflict(f"Address already in use: {address}")
    return str(ip)


def next_subnet(used: list[str], busy_host: list[str]) -> str:
    """A /24 from USER_SUBNETS overlapping neither another network nor a host address."""
    taken = [ipaddress.ip_network(s) for s in used + busy_host]
    for candidate in USER_SUBNETS.subnets(new_prefix=24):
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults")


_NAME = re.compile(r"[^/\x00]+")
_LINK_NAME = re.compile(r"[^/:\s\x00]+")


def check_name(name: str) -> None:
    """A network name: dockerd takes any (`test 01`, `né` too); berth refuses only what
    cannot be a path segment of its API (`/`, NUL, `.` and `..`)."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise BadRequest(f"Invalid network name ({name!r}): a name has no / or NUL and is not . or ..")


_MAC = re.compile(r"[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}")


def check_mac(text: str) -> str:
    """A MAC address as given (`02:42:ac:11:00:02`), in the kernel's spelling; dockerd's 400 if it is none."""
    if not _MAC.fullmatch(text):
        raise BadRequest(f"invalid MAC address: {text}")
    return text.replace("-", ":").lower()


def check_link_name(name: str) -> None:
    """A name the kernel takes for a network interface (dev_valid_name)."""
    if not _LINK_NAME.fullmatch(name) or len(name.encode()) > 15 or name in (".", ".."):
        raise BadRequest(f"invalid bridge name {name!r} (com.docker.network.bridge.name): an interface name "
                         "is 1 to 15 bytes, none of them /, : or white space, and not . or ..")


HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"
MTU = "com.docker.network.driver.mtu"


def check_options(options: dict[str, str]) -> None:
    """The bridge driver's options berth acts on are valid, and one it cannot honour is
    refused: `host_binding_ipv4` (where ports published without an address bind),
    `driver.mtu` (the bridge's and its veths' MTU), `enable_icc` only as true (berth sets
    no filtering rules that could keep containers apart). `enable_ip_masquerade` changes
    nothing: berth's bridges never route out."""
    if HOST_BINDING in options:
        try:
            ipaddress.IPv4Address(options[HOST_BINDING])
        except ValueError:
            raise BadRequest(f"invalid {HOST_BINDING} {options[HOST_BINDING]!r}: an IPv4 address") from None
    if MTU in options and not (options[MTU].isascii() and options[MTU].isdigit() and 68 <= int(options[MTU]) <= 65535):
        raise BadRequest(f"invalid {MTU} {options[MTU]!r}: a number from 68 to 65535")
    if options.get("com.docker.network.bridge.enable_icc", "true").lower() not in ("true", "1"):
        raise BadRequest("com.docker.network.bridge.enable_icc=false: berth sets no filtering rules that could keep "
                         "a bridge's containers apart (use an internal network per container instead)")


def mtu(record: NetworkRecord) -> int:
    """The network's MTU, 0 for the kernel's default."""
    return int(record.options.get(MTU, 0))


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


def _gateway(net: IPNetwork, given: str) -> str:
    """The gateway given, else the subnet's first host address."""
    return str(ipaddress.ip_address(given) if given else next(net.hosts()))


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

    def create(self, name: str, *, driver: str = "bridge", pools: list[IPAMPool] = (), enable_ipv6: bool = False,
               internal: bool = False, labels: dict[str, str] | None = None, options: dict[str, str] | None = None,
               attachable: bool = False, busy_host: list[str] = ()) -> NetworkRecord:
        """A new user-defined bridge network (its Linux bridge is made on first use): an
        IPv4 pool (`pools`' IPv4 one, else a free /24) and, with `enable_ipv6`, `pools`'
        IPv6 one."""
        check_name(name)
        if any(r.name == name for r in self.by_id.values()):
            raise Conflict(f"network with name {name} already exists")
        if driver != "bridge":
            raise BadRequest(f"plugin \"{driver}\" not found" if driver not in ("host", "null")
                             else f"only one instance of \"{driver}\" network is allowed")
        v4 = v6 = None
        for pool in pools:
            net = _block(pool.subnet, "subnet") if pool.subnet else None
            if net is not None and net.version == 6:
                check_pool(net, gateway=pool.gateway, ip_range=pool.ip_range, aux_addresses=pool.aux_addresses or {})
                v6 = v6 or (net, pool)
            else:
                v4 = v4 or (net, pool)
        net, pool = v4 or (None, IPAMPool())
        chosen = net is not None
        if net is None:
            net = ipaddress.ip_network(next_subnet([r.subnet for r in self.by_id.values() if r.subnet], list(busy_host)))
        check_pool(net, gateway=pool.gateway, ip_range=pool.ip_range, aux_addresses=pool.aux_addresses or {})
        for block in (net, v6[0] if v6 and enable_ipv6 else None):
            if block is None:
                continue
            clash = next((r for r in self.by_id.values()
                          for s in (r.subnet, r.subnet6) if s and block.overlaps(ipaddress.ip_network(s))), None)
            if clash:
                raise Conflict(f"Pool overlaps with other one on this address space ({clash.name})")
        if enable_ipv6 and v6 is None:
            raise BadRequest("could not find an available, non-overlapping IPv6 address pool among the defaults "
                             "to assign to the network")
        bridge = (options or {}).get("com.docker.network.bridge.name", "")
        if bridge:
            check_link_name(bridge)
        check_options(options or {})
        record = NetworkRecord(id=secrets.token_hex(32), name=name, driver="bridge", created=timefmt.now(),
                               subnet=str(net), subnet_chosen=chosen, gateway=_gateway(net, pool.gateway), ip_range=pool.ip_range,
                               aux_addresses=pool.aux_addresses or {}, internal=internal, attachable=attachable,
                               labels=labels or {}, options=options or {})
        if enable_ipv6:
            record.enable_ipv6, record.subnet6, record.gateway6 = True, str(v6[0]), _gateway(v6[0], v6[1].gateway)
        record.bridge = bridge or f"br-{record.id[:12]}"
        self._save(record)
        return record

    def remove(self, record: NetworkRecord) -> None:
        if record.name in PREDEFINED:
            raise Conflict(f"{record.name} is a pre-defined network and cannot be removed")
        (self.dir / f"{record.id}.json").unlink(missing_ok=True)
        del self.by_id[record.id]
