"""Containers on networks: which networks a container joins, its veth and address on
each, its /etc/hosts, and its published ports; network events on the bus.

Bridges exist while the daemon runs: made when first used, removed at shutdown (a
daemon leaves no links behind). Addresses are allocated at start and released at stop,
as dockerd does; taken ones are read from the running containers' endpoints.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import TYPE_CHECKING

import trio

from ..errors import BadRequest, Conflict, EngineError, NotFound
from ..events import constructors
from ..events import filters as flt
from ..events.bus import Bus
from ..models import NetworkRecord
from . import dns, links, ports
from .networks import PREDEFINED, Endpoint, Networks, free_address

if TYPE_CHECKING:
    from ..containers.container import Container
    from ..containers.records import Containers

LIST_FILTERS = ("name", "id", "driver", "label", "type", "dangling")
HOST_GATEWAY = "host-gateway"  # an ExtraHosts address: the default bridge's gateway (the host, from a container)


def sole_network(mode: str) -> str:
    """"none" or "host" for a container in that NetworkMode (it has no endpoint and joins
    no other network), else ""."""
    return mode if mode in ("none", "host") else ""


def network_names(mode: str) -> list[str]:
    """The networks a container with NetworkMode `mode` gets an endpoint on at start."""
    if mode in ("", "default", "bridge"):
        return ["bridge"]
    if sole_network(mode) or mode.startswith("container:"):
        return []
    return [mode]


class NetworkManager:
    def __init__(self, networks: Networks, containers: Containers, bus: Bus):
        self.networks = networks
        self.containers = containers
        self.bus = bus
        self.nursery: trio.Nursery | None = None  # where DNS responders and port proxies run, from `open`
        self._made: set[str] = set()  # bridges this daemon made (or found) and will remove

    # --- networks ----------------------------------------------------------------

    def check_mode(self, mode: str) -> None:
        """At create: the network mode names something that exists."""
        if mode.startswith("container:"):
            raise BadRequest("network mode container:<name> is not supported by berth")
        for name in network_names(mode):
            try:
                self.networks.get(name)
            except NotFound as exc:  # not a 404: the docker CLI would take that for a missing image and pull
                raise BadRequest(exc.message) from None

    def users(self, record: NetworkRecord) -> list[Container]:
        """The containers with an endpoint on the network (running ones)."""
        return [c for c in self.containers if record.id in {e.network_id for e in c.networks.values()}]

    def list(self, filters: flt.Filters | None = None) -> list[NetworkRecord]:
        """Networks by name, filtered as `GET /networks` (name and ID by substring and
        prefix, driver, label, type builtin/custom, dangling: custom and unused)."""
        f = flt.check(filters, LIST_FILTERS)
        found = []
        for record in self.networks.by_id.values():
            if f.get("name") and not any(n in record.name for n in f["name"]):
                continue
            if f.get("id") and not any(record.id.startswith(i) for i in f["id"]):
                continue
            if f.get("driver") and record.driver not in f["driver"]:
                continue
            if f.get("label") and not flt.label_match(f["label"], record.labels):
                continue
            builtin = record.name in PREDEFINED
            if f.get("type") and ("builtin" if builtin else "custom") not in f["type"]:
                continue
            if f.get("dangling") and (not builtin and not self.users(record)) != \
                    (f["dangling"][0].lower() in ("1", "true")):
                continue
            found.append(record)
        return sorted(found, key=lambda r: r.name)

    def joined(self, c: Container) -> list[tuple[str, NetworkRecord]]:
        """(name, record) of each network the container is on or joins at its start, as
        its NetworkMode, its connects and none/host name them; ones gone since are left out."""
        mode = c.record.host_config.network_mode
        sole = sole_network(mode)
        found = []
        for name in [*network_names(mode), *c.record.extra_networks, *([sole] if sole else [])]:
            try:
                found.append((name, self.networks.get(name)))
            except EngineError:
                continue
        return found

    def publish(self, record: NetworkRecord, action: str, **attrs: str) -> None:
        self.bus.publish(constructors.network(record.id, action, name=record.name, driver=record.driver, **attrs))

    async def create(self, name: str, **options) -> NetworkRecord:
        busy = await trio.to_thread.run_sync(links.host_subnets)
        record = self.networks.create(name, busy_host=busy, **options)
        self.publish(record, "create")
        return record

    async def remove(self, ref: str) -> None:
        record = self.networks.get(ref)
        used = self.users(record)
        if used:
            raise Conflict(f"error while removing network: network {record.name} id {record.id} has active "
                           f"endpoints")
        self.networks.remove(record)
        if record.bridge in self._made:
            await trio.to_thread.run_sync(links.remove_link, record.bridge)
            self._made.discard(record.bridge)
        self.publish(record, "destroy")

    async def prune(self) -> list[str]:
        """Remove every user-defined network no container is on; their names."""
        gone = []
        for record in list(self.networks.by_id.values()):
            if record.name not in PREDEFINED and not self.users(record):
                await self.remove(record.id)
                gone.append(record.name)
        return gone

    async def recover(self) -> None:
        """At start: bridges a previous daemon left (it was killed) are this daemon's to
        remove at shutdown; the veths died with their namespaces, whose pins are gone."""
        present = await trio.to_thread.run_sync(links.link_names)
        self._made |= {r.bridge for r in self.networks.by_id.values() if r.bridge and r.bridge in present}

    async def shutdown(self) -> None:
        """Remove the bridges this daemon made."""
        for name in sorted(self._made):
            await trio.to_thread.run_sync(links.remove_link, name)
        self._made.clear()

    # --- containers ----------------------------------------------------------------

    async def start(self, c: Container) -> None:
        """Plug a starting container into its networks and publish its ports. In network
        mode none or host there is nothing to plug in, but dockerd still reports the
        container joining (and at its stop leaving) that network, and so does berth."""
        mode = c.record.host_config.network_mode
        self._check_links(c)
        if sole := sole_network(mode):
            c.sole_network = sole
            self.publish(self.networks.get(sole), "connect", container=c.id)
            return
        for name in [*network_names(mode), *c.record.extra_networks]:
            await self.connect(c, name, aliases=c.record.aliases.get(name, []), remember=False)
        await self._publish_ports(c)

    async def connect(self, c: Container, ref: str, aliases: list[str] = (), remember: bool = True) -> None:
        """Plug a container into one more network (at once if it runs, else at its start).

        `connect` is published when the endpoint is plugged in, at every start as for a
        live connect, so that each run's `disconnect` has its `connect` (as dockerd does;
        connecting a stopped container only records the wish)."""
        record = self.networks.get(ref)
        if record.driver != "bridge":
            raise BadRequest("container cannot be disconnected from host network or connected to host network"
                             if record.driver == "host" else f"container cannot be connected to network {record.name}")
        if record.name in c.networks:
            raise Conflict(f"endpoint with name {c.name} already exists in network {record.name}")
        if remember:  # an explicit connect is remembered: the container rejoins at every start
            if aliases:
                c.record.aliases[record.name] = list(aliases)
            if record.name not in network_names(c.record.host_config.network_mode):
                c.record.extra_networks = sorted({*c.record.extra_networks, record.name})
            await self.containers.save(c)
        if not c.prepared:  # not running: it joins at its next start
            return
        await self._ensure_bridge(record)
        taken = {e.ip for other in self.containers for e in other.networks.values()
                 if e.network_id == record.id}
        ip = free_address(record.subnet, record.gateway, taken)
        prefix = ipaddress.ip_network(record.subnet).prefixlen
        endpoint = Endpoint(network_id=record.id, endpoint_id=secrets.token_hex(32), ip=ip, prefixlen=prefix,
                            gateway="" if record.internal else record.gateway, mac=links.mac_for(ip),
                            host_if="veth" + secrets.token_hex(5)[:9], aliases=[*aliases, c.id[:12]])
        inner = f"eth{len(c.networks)}"
        await trio.to_thread.run_sync(links.attach, str(c.netns), record.bridge, endpoint.host_if, inner, ip,
                                      prefix, endpoint.gateway or None, endpoint.mac)
        c.networks[record.name] = endpoint
        await trio.to_thread.run_sync(self.write_hosts, c)
        for parent in self._linking(c):  # legacy links name this container: their /etc/hosts follow its address
            await trio.to_thread.run_sync(self.write_hosts, parent)
        if record.name not in PREDEFINED and c.dns_scope is None:
            sock = await trio.to_thread.run_sync(dns.open_socket, str(c.netns))
            c.dns_scope = await self.nursery.start(_cancellable, dns.serve, sock, lambda n: self.lookup(c, n))
            await trio.to_thread.run_sync(self.write_resolv_conf, c)
        self.publish(record, "connect", container=c.id)

    async def disconnect(self, c: Container, ref: str) -> None:
        record = self.networks.get(ref)
        endpoint = c.networks.pop(record.name, None)
        c.record.aliases.pop(record.name, None)
        if record.name in c.record.extra_networks:
            c.record.extra_networks = [n for n in c.record.extra_networks if n != record.name]
            await self.containers.save(c)
        elif endpoint is None:
            raise NotFound(f"container {c.id} is not connected to network {record.name}")
        if endpoint is not None and c.prepared:
            await trio.to_thread.run_sync(links.remove_link, endpoint.host_if)
            await trio.to_thread.run_sync(self.write_hosts, c)
        self.publish(record, "disconnect", container=c.id)

    def lookup(self, c: Container, name: str) -> list[str]:
        """What `name` is for `c`'s embedded DNS: the addresses, on the user-defined
        networks `c` is on, of the containers named, aliased or ID-prefixed so."""
        found = []
        for net_name, mine in c.networks.items():
            if net_name in PREDEFINED:
                continue
            for other in self.containers:
                theirs = other.networks.get(net_name)
                if theirs is not None and (name == other.name.lower() or name in theirs.aliases
                                           or (len(name) >= 12 and other.id.startswith(name))):
                    found.append(theirs.ip)
        return found

    async def stop(self, c: Container) -> None:
        """The container stopped: its ports close, its addresses are free again (its
        veths die with its network namespace)."""
        for scope in (c.port_scope, c.dns_scope):
            if scope is not None:
                scope.cancel()
        c.port_scope = c.dns_scope = None
        for sock in c.port_sockets:  # closed now, not when the cancelled tasks next run: the port is free on return
            sock.close()
        c.port_sockets = []
        c.ports = []
        for name in list(c.networks):
            record = self.networks.by_id.get(c.networks[name].network_id)
            if record is not None:
                self.publish(record, "disconnect", container=c.id)
        c.networks.clear()
        if c.sole_network:
            self.publish(self.networks.get(c.sole_network), "disconnect", container=c.id)
            c.sole_network = ""

    def write_hosts(self, c: Container) -> None:
        """/etc/hosts as dockerd writes it: localhost, then `--add-host` entries (the
        `host-gateway` address being the default bridge's gateway), then for each legacy
        link its container's address with the alias, host name and name, then the
        container's own addresses with its name (and domain)."""
        hc, config = c.record.host_config, c.record.config
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                 "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
        for entry in hc.extra_hosts or []:
            name, _, ip = entry.partition(":")
            lines.append(f"{self.networks.get('bridge').gateway if ip == HOST_GATEWAY else ip}\t{name}")
        for spec in hc.links or []:
            target, _, alias = spec.partition(":")
            child = self.containers.by_id.get(target)
            endpoint = child.networks.get("bridge") if child else None
            if endpoint is not None:
                names = [alias, child.record.config.hostname, *([child.name] if child.name != alias else [])]
                lines.append(f"{endpoint.ip}\t{' '.join(names)}")
        hostname = config.hostname
        names = f"{hostname}.{config.domainname} {hostname}" if config.domainname else hostname
        addresses = [e.ip for e in c.networks.values()]
        lines += [f"{ip}\t{names}" for ip in addresses] or [f"127.0.1.1\t{names}"]
        (c.dir / "hosts").write_text("\n".join(lines) + "\n")

    def write_resolv_conf(self, c: Container) -> None:
        """/etc/resolv.conf: `--dns-search`, then the nameservers (the embedded resolver
        at 127.0.0.11 on a user-defined network; else `--dns`), then `--dns-option`s, in
        dockerd's order. berth's bridges have no NAT, so the host's nameservers are out of
        reach: without `--dns` none is given."""
        hc = c.record.host_config
        lines = []
        search = " ".join(hc.dns_search or [])
        if search.strip() and search.strip() != ".":
            lines.append(f"search {search}")
        options = list(hc.dns_options or [])
        if c.dns_scope is not None:
            lines.append(f"nameserver {dns.ADDRESS}")
            if not any(o.startswith("ndots:") for o in options):
                options.append("ndots:0")
        elif hc.dns:
            lines += [f"nameserver {server}" for server in hc.dns]
        else:
            lines.insert(0, "# no nameserver: berth's networks do not lead off this host")
        if options:
            lines.append(f"options {' '.join(options)}")
        (c.dir / "resolv.conf").write_text("\n".join(lines) + "\n")

    def _check_links(self, c: Container) -> None:
        """At start: each container a legacy link names must run (dockerd's check)."""
        for spec in c.record.host_config.links or []:
            target, _, alias = spec.partition(":")
            child = self.containers.by_id.get(target)
            if child is None or not child.has_process:
                shown = f"/{child.name}" if child else target
                raise Conflict(f"Cannot link to a non running container: {shown} AS /{c.name}/{alias}")

    def _linking(self, c: Container) -> list[Container]:
        """The running containers with a legacy link to `c`."""
        return [other for other in self.containers if other.prepared and other is not c
                and any(spec.partition(":")[0] == c.id for spec in other.record.host_config.links or [])]

    async def _ensure_bridge(self, record: NetworkRecord) -> None:
        if record.bridge not in self._made:
            prefix = ipaddress.ip_network(record.subnet).prefixlen
            await trio.to_thread.run_sync(links.ensure_bridge, record.bridge, record.gateway, prefix)
            self._made.add(record.bridge)

    async def _publish_ports(self, c: Container) -> None:
        hc = c.record.host_config
        maps = ports.wanted(hc.port_bindings, c.record.config.exposed_ports, hc.publish_all_ports)
        if not maps:
            return
        target = next((e.ip for e in c.networks.values()), None)
        if target is None:
            raise BadRequest("ports can only be published for a container on a bridge network")
        bound = await ports.bind(maps)
        c.ports = [m for m, _ in bound]
        c.port_sockets = [sock for _, sock in bound]
        c.port_scope = await self.nursery.start(_cancellable, ports.serve, bound, target)


async def _cancellable(fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run `fn(*args)` in the background; the caller gets its cancel scope."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        await fn(*args)
