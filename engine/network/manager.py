"""Containers on networks: which networks a container joins, its veth and address on
each, its /etc/hosts, and its published ports; network events on the bus.

Bridges exist while the daemon runs: made when first used, removed at shutdown (a
daemon leaves no links behind). Addresses are allocated at start and released at stop,
as dockerd does; taken ones are read from the running containers' endpoints.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import trio

from ..errors import BadRequest, Conflict, EngineError, NotFound
from ..events import constructors
from ..events import filters as flt
from ..events.bus import Bus
from ..models import EndpointIPAMConfig, EndpointSettings, NetworkRecord
from ..fs.store import atomic_write
from . import dns, links, ports
from .networks import (HOST_BINDING, PREDEFINED, Endpoint, Networks, check_mac, free_address, mtu,
                       requested_address)
from .ports import PortMap

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


class RunState(msgspec.Struct, kw_only=True):
    """What a running container has of the networks (saved beside its record while it
    runs): the next daemon serves it again from this if this one goes first."""

    networks: dict[str, Endpoint] = {}
    ports: list[PortMap] = []
    sole_network: str = ""

    def save(self, path: Path) -> None:
        # not durable: the containers do not outlive the machine, so a start pays no flush
        atomic_write(path, msgspec.json.encode(self), durable=False)

    @staticmethod
    def load(path: Path) -> RunState:
        try:
            return msgspec.json.decode(path.read_bytes(), type=RunState)
        except (OSError, msgspec.DecodeError):
            return RunState()


class NetworkManager:
    def __init__(self, networks: Networks, containers: Containers, bus: Bus):
        self.networks = networks
        self.containers = containers
        self.bus = bus
        self.nursery: trio.Nursery | None = None  # where DNS responders and port proxies run, from `open`
        self._made: set[str] = set()  # bridges this daemon made (or found) and will remove
        self._bridge_lock = trio.Lock()

    # --- networks ----------------------------------------------------------------

    def plan(self, mode: str, config: dict[str, EndpointSettings | None]) -> dict[str, EndpointSettings]:
        """At create: the networks a container in NetworkMode `mode` joins at its start,
        each with its settings from the request's `EndpointsConfig` (keyed by the
        network's name or ID, or by the mode as given, `default`); each must exist."""
        if len(config) > 1:  # API 1.41: one network at create, more by connect
            raise BadRequest(f"Container cannot be connected to network endpoints: {', '.join(config)}")
        planned = {}
        for name in network_names(mode):
            try:
                record = self.networks.get(name)
            except NotFound as exc:  # not a 404: the docker CLI would take that for a missing image and pull
                raise BadRequest(exc.message) from None
            given = [v for k, v in config.items() if k in (mode, record.name, record.id) and v is not None]
            planned[record.name] = self._checked(record, given[0] if given else EndpointSettings())
        return planned

    def _mode_mac(self, c: Container, record: NetworkRecord) -> str:
        """`Config.MacAddress`: the MAC of the endpoint on the network of the container's NetworkMode."""
        return c.record.config.mac_address if record.name in network_names(c.record.host_config.network_mode) else ""

    def _checked(self, record: NetworkRecord, settings: EndpointSettings) -> EndpointSettings:
        """Endpoint settings the network can honour: asked-for addresses on a user-defined
        network with a subnet of that IP version, as dockerd requires."""
        if settings.mac_address:
            settings.mac_address = check_mac(settings.mac_address)
        ipam = settings.ipam_config
        if ipam and (ipam.ipv4_address or ipam.ipv6_address):
            if record.name in PREDEFINED:
                raise BadRequest("user specified IP address is supported on user defined networks only")
            if (ipam.ipv6_address and not record.enable_ipv6) or (ipam.ipv4_address and not record.subnet_chosen):
                raise BadRequest("user specified IP address is supported only when connecting to networks with "
                                 "user configured subnets")
            for address in (ipam.ipv4_address, ipam.ipv6_address):
                if address:
                    requested_address(record, address, set())
        return settings

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
        sole = sole_network(c.record.host_config.network_mode)
        found = []
        for name in [*c.record.endpoints, *([sole] if sole else [])]:
            try:
                found.append((name, self.networks.get(name)))
            except EngineError:
                continue
        return found

    def publish(self, record: NetworkRecord, action: str, **attrs: str) -> None:
        self.bus.publish(constructors.network(record.id, action, name=record.name, driver=record.driver, **attrs))

    async def create(self, name: str, **options) -> NetworkRecord:
        """A new user-defined network (`Networks.create`'s options), its subnet clear of the host's."""
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

    async def prune(self, filters: flt.Filters | None = None, before: str = "") -> list[str]:
        """Remove every user-defined network no container is on that the `label`/`label!`
        filters select and that was created before `before` (RFC 3339, "" for no bound);
        their names."""
        filters = flt.check(filters, flt.PRUNE_FILTERS)
        gone = []
        for record in list(self.networks.by_id.values()):
            if (record.name not in PREDEFINED and not self.users(record)
                    and flt.prune_match(filters, record.labels, record.created, before)):
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
        if mode.startswith("container:"):
            return  # it runs in that container's namespace, which has its networks already
        self._check_links(c)
        if sole := sole_network(mode):
            c.sole_network = sole
            self.publish(self.networks.get(sole), "connect", container=c.id)
            return
        for name, settings in list(c.record.endpoints.items()):
            try:
                record = self.networks.get(name)
            except NotFound:  # removed while the container was stopped: dockerd fails the start so
                raise NotFound(f"network {name} not found") from None
            await self._plug(c, record, settings)
        await self._publish_ports(c)

    async def connect(self, c: Container, ref: str, settings: EndpointSettings) -> None:
        """Put a container on one more network: remembered (it rejoins at every start),
        and plugged in at once if it runs."""
        record = self.networks.get(ref)
        if record.driver != "bridge":
            raise BadRequest("container cannot be disconnected from host network or connected to host network"
                             if record.driver == "host" else f"container cannot be connected to network {record.name}")
        mode = c.record.host_config.network_mode
        if (sole := sole_network(mode)) or mode.startswith("container:"):
            raise BadRequest("container cannot be connected to multiple networks with one of the networks in private "
                             "(none) mode" if sole == "none" else "container sharing network namespace with another "
                             "container or host cannot be connected to any other network")
        if record.name in c.networks or (not c.prepared and record.name in c.record.endpoints):
            raise Conflict(f"endpoint with name {c.name} already exists in network {record.name}")
        c.record.endpoints[record.name] = self._checked(record, settings)
        await self.containers.save(c)
        if c.prepared:  # else it joins at its next start
            await self._plug(c, record, settings)

    async def _plug(self, c: Container, record: NetworkRecord, settings: EndpointSettings) -> None:
        """Give the running container `c` an endpoint on `record`: an address (the one it
        asked for, else the lowest free one) and its veth.

        `connect` is published when the endpoint is plugged in, at every start as for a
        live connect, so that each run's `disconnect` has its `connect` (as dockerd does;
        connecting a stopped container only records the wish)."""
        await self._ensure_bridge(record)
        taken = {ip for other in self.containers for e in other.networks.values() if e.network_id == record.id
                 for ip in (e.ip, e.ip6)}
        wanted = settings.ipam_config or EndpointIPAMConfig()
        ip = (requested_address(record, wanted.ipv4_address, taken | {record.gateway}) if wanted.ipv4_address else
              free_address(record.subnet, {*taken, record.gateway, *record.aux_addresses.values()}, record.ip_range))
        endpoint = Endpoint(network_id=record.id, endpoint_id=secrets.token_hex(32), ip=ip,
                            prefixlen=ipaddress.ip_network(record.subnet).prefixlen,
                            gateway="" if record.internal else record.gateway,
                            mac=settings.mac_address or self._mode_mac(c, record) or links.mac_for(ip),
                            host_if="veth" + secrets.token_hex(5)[:9], inner_if=_free_interface(c),
                            # as dockerd: the short ID and the host name answer too, each once
                            aliases=list(dict.fromkeys([*(settings.aliases or []), c.id[:12],
                                                        c.record.config.hostname])))
        if record.enable_ipv6:
            endpoint.ip6 = (requested_address(record, wanted.ipv6_address, taken | {record.gateway6})
                            if wanted.ipv6_address else free_address(record.subnet6, {*taken, record.gateway6}))
            endpoint.prefixlen6 = ipaddress.ip_network(record.subnet6).prefixlen
            endpoint.gateway6 = "" if record.internal else record.gateway6
        # held before the first await: a start beside this one must see these addresses taken
        c.networks[record.name] = endpoint
        try:
            await trio.to_thread.run_sync(
                links.attach, str(c.netns), record.bridge, endpoint.host_if, endpoint.inner_if, endpoint.mac,
                [(ip, prefix) for ip, prefix in ((endpoint.ip, endpoint.prefixlen), (endpoint.ip6, endpoint.prefixlen6))
                 if ip],
                [gateway for gateway in (endpoint.gateway, endpoint.gateway6) if gateway], mtu(record))
        except BaseException:
            c.networks.pop(record.name, None)
            raise
        await trio.to_thread.run_sync(self.write_hosts, c)
        for parent in self._linking(c):  # legacy links name this container: their /etc/hosts follow its address
            await trio.to_thread.run_sync(self.write_hosts, parent)
        if record.name not in PREDEFINED and c.dns_scope is None:
            sock = await trio.to_thread.run_sync(dns.open_socket, str(c.netns))
            c.dns_scope = await self.nursery.start(_cancellable, dns.serve, sock, lambda n: self.lookup(c, n))
            await trio.to_thread.run_sync(self.write_resolv_conf, c)
        self.publish(record, "connect", container=c.id)

    async def disconnect(self, c: Container, ref: str) -> None:
        """Take a container off a network, for good: a created or stopped one too (it
        then does not join it at its start), as dockerd does."""
        record = self.networks.get(ref)
        if record.driver == "host":
            raise BadRequest("container cannot be disconnected from host network or connected to host network")
        endpoint = c.networks.pop(record.name, None)
        if c.record.endpoints.pop(record.name, None) is not None:
            await self.containers.save(c)
        elif endpoint is None:
            raise NotFound(f"container {c.id} is not connected to network {record.name}")
        if endpoint is not None and c.prepared:
            await trio.to_thread.run_sync(links.remove_link, endpoint.host_if)
            await trio.to_thread.run_sync(self.write_hosts, c)
        self.publish(record, "disconnect", container=c.id)

    def lookup(self, c: Container, name: str) -> list[str]:
        """What `name` is for `c`'s embedded DNS: the addresses, on the user-defined
        networks `c` is on, of the containers named, aliased or ID-prefixed so, and of
        those `c`'s links on that network name so (`--link other:alias` there); each also
        as `NAME.NETWORK`, on that network only, as dockerd answers."""
        found = []
        for net_name, mine in c.networks.items():
            if net_name in PREDEFINED:
                continue
            settings = c.record.endpoints.get(net_name)
            linked = {alias.lower(): target for target, alias in map(_link_parts, (settings and settings.links) or [])}
            short = name.removesuffix("." + net_name.lower())
            for other in self.containers:
                theirs = other.networks.get(net_name)
                if theirs is not None and any(
                        n == other.name.lower() or n in theirs.aliases or (len(n) >= 12 and other.id.startswith(n))
                        or linked.get(n) in (other.name, other.id) for n in {name, short}):
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

    def run_state(self, c: Container) -> RunState:
        """The running container's endpoints and published ports, to be saved."""
        return RunState(networks=dict(c.networks), ports=list(c.ports), sole_network=c.sole_network)

    async def adopt(self, c: Container, state: RunState) -> None:
        """Serve again a container a previous daemon started: its endpoints as they are
        (its veths and addresses outlived that daemon in its namespace), its embedded
        DNS and its published ports on the same host ports. No event: nothing changed
        for the container."""
        c.networks = dict(state.networks)
        c.sole_network = state.sole_network
        for endpoint in c.networks.values():
            record = self.networks.by_id.get(endpoint.network_id)
            if record is not None:
                await self._ensure_bridge(record)
        if any(name not in PREDEFINED for name in c.networks):
            sock = await trio.to_thread.run_sync(dns.open_socket, str(c.netns))
            c.dns_scope = await self.nursery.start(_cancellable, dns.serve, sock, lambda n: self.lookup(c, n))
        target = next((e.ip for e in c.networks.values()), None)
        if state.ports and target is not None:
            bound = await ports.bind(state.ports)
            c.ports = [m for m, _ in bound]
            c.port_sockets = [sock for _, sock in bound]
            c.port_scope = await self.nursery.start(_cancellable, ports.serve, bound, target)

    def link_env(self, c: Container) -> list[str]:
        """The variables legacy links give a container, as dockerd makes them: per link,
        `<ALIAS>_NAME`, each exposed port of the linked container (`<ALIAS>_PORT_80_TCP`
        and its parts, the lowest as `<ALIAS>_PORT`) and its environment (`<ALIAS>_ENV_*`)."""
        env = []
        for spec in c.record.host_config.links or []:
            target, _, alias = spec.partition(":")
            child = self.containers.by_id.get(target)
            endpoint = child.networks.get("bridge") if child else None
            if endpoint is None:
                continue
            prefix = alias.replace("-", "_").upper()
            exposed = sorted((int(port), proto or "tcp") for port, _, proto in
                             (key.partition("/") for key in child.record.config.exposed_ports or {}) if port.isdigit())
            if exposed:
                port, proto = exposed[0]
                env.append(f"{prefix}_PORT={proto}://{endpoint.ip}:{port}")
            for port, proto in exposed:
                key = f"{prefix}_PORT_{port}_{proto.upper()}"
                env += [f"{key}={proto}://{endpoint.ip}:{port}", f"{key}_ADDR={endpoint.ip}", f"{key}_PORT={port}",
                        f"{key}_PROTO={proto}"]
            env.append(f"{prefix}_NAME=/{c.name}/{alias}")
            for variable in child.record.config.env or []:
                name, sep, value = variable.partition("=")
                if sep and name not in ("HOME", "PATH"):  # dockerd's exceptions: set by builds, not the child's own
                    env.append(f"{prefix}_ENV_{name}={value}")
        return env

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
        addresses = [ip for e in c.networks.values() for ip in (e.ip, e.ip6) if ip]
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
        # One at a time: two containers starting at once on a new network would both find
        # its bridge missing, and the second one's address would exist already (EEXIST).
        async with self._bridge_lock:
            if record.bridge not in self._made:
                gateways = [(gateway, ipaddress.ip_network(subnet).prefixlen) for gateway, subnet
                            in ((record.gateway, record.subnet), (record.gateway6, record.subnet6)) if subnet]
                await trio.to_thread.run_sync(links.ensure_bridge, record.bridge, gateways, mtu(record))
                self._made.add(record.bridge)

    async def _publish_ports(self, c: Container) -> None:
        hc = c.record.host_config
        # as dockerd: a port given no host address binds where its network says, else everywhere
        default_ip = next((self.networks.by_id[e.network_id].options.get(HOST_BINDING, "")
                           for e in c.networks.values() if e.network_id in self.networks.by_id), "")
        maps = ports.wanted(hc.port_bindings, c.record.config.exposed_ports, hc.publish_all_ports, default_ip)
        if not maps:
            return
        target = next((e.ip for e in c.networks.values()), None)
        if target is None:
            raise BadRequest("ports can only be published for a container on a bridge network")
        bound = await ports.bind(maps)
        c.ports = [m for m, _ in bound]
        c.port_sockets = [sock for _, sock in bound]
        c.port_scope = await self.nursery.start(_cancellable, ports.serve, bound, target)


def _free_interface(c: Container) -> str:
    """The lowest `ethN` the container has not got (one may have gone with a disconnect)."""
    taken = {e.inner_if for e in c.networks.values()}
    return next(name for n in range(len(taken) + 1) if (name := f"eth{n}") not in taken)


def _link_parts(spec: str) -> tuple[str, str]:
    """A network-scoped link `name[:alias]` (as given, or `/name:/this/alias` as shown) → (name, alias)."""
    target, _, alias = spec.partition(":")
    target = target.lstrip("/")
    return target, alias.rpartition("/")[2] or target


async def _cancellable(fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run `fn(*args)` in the background; the caller gets its cancel scope."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        await fn(*args)
