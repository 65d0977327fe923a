"""`/networks/...` handlers."""

from __future__ import annotations

import msgspec

from ..core import Engine
from ..errors import BadRequest
from ..models import EndpointSettings, IPAMPool, NetworkRecord
from . import query
from .http import Request, Response, json_response


class IPAM(msgspec.Struct, rename="pascal"):
    driver: str = "default"
    config: list[IPAMPool] | None = None


class CreateNetwork(msgspec.Struct, rename="pascal"):
    """The body of `POST /networks/create`."""

    name: str = ""
    driver: str = "bridge"
    internal: bool = False
    enable_ipv6: bool = msgspec.field(default=False, name="EnableIPv6")
    check_duplicate: bool = True
    attachable: bool = False
    ipam: IPAM | None = msgspec.field(default=None, name="IPAM")
    options: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class Connect(msgspec.Struct, rename="pascal"):
    container: str = ""
    endpoint_config: EndpointSettings | None = None  # typed: a bad Aliases is a 400 naming it
    force: bool = False


def _pool(subnet: str, gateway: str, ip_range: str = "", aux_addresses: dict[str, str] | None = None) -> dict:
    """One `IPAM.Config` entry as dockerd shows it (IPRange and AuxiliaryAddresses when set)."""
    return {"Subnet": subnet, "Gateway": gateway, **({"IPRange": ip_range} if ip_range else {}),
            **({"AuxiliaryAddresses": aux_addresses} if aux_addresses else {})}


def _render(engine: Engine, record: NetworkRecord) -> dict:
    containers = {}
    for c in engine.network_users(record):
        endpoint = next((e for e in c.networks.values() if e.network_id == record.id), None)
        if endpoint:
            containers[c.id] = {"Name": c.name, "EndpointID": endpoint.endpoint_id, "MacAddress": endpoint.mac,
                                "IPv4Address": f"{endpoint.ip}/{endpoint.prefixlen}",
                                "IPv6Address": f"{endpoint.ip6}/{endpoint.prefixlen6}" if endpoint.ip6 else ""}
    ipam = [_pool(record.subnet, record.gateway, record.ip_range, record.aux_addresses)] if record.subnet else []
    if record.enable_ipv6:
        ipam.append(_pool(record.subnet6, record.gateway6))
    return {"Name": record.name, "Id": record.id, "Created": record.created, "Scope": "local",
            "Driver": record.driver, "EnableIPv6": record.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": record.internal, "Attachable": record.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": record.options, "Labels": record.labels}


async def list_(req: Request, engine: Engine) -> Response:
    return json_response([_render(engine, r) for r in engine.list_networks(query.filters(req.q("filters")))])


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(_render(engine, engine.network(req.params["id"])))


async def create(req: Request, engine: Engine) -> Response:
    body = await req.json(CreateNetwork)
    if not body.name:
        raise BadRequest("network name is required")
    record = await engine.create_network(body.name, driver=body.driver or "bridge",
                                         pools=(body.ipam.config or []) if body.ipam else [],
                                         enable_ipv6=body.enable_ipv6, internal=body.internal, labels=body.labels,
                                         options=body.options, attachable=body.attachable)
    return json_response({"Id": record.id, "Warning": ""}, 201)


async def remove(req: Request, engine: Engine) -> Response:
    await engine.remove_network(req.params["id"])
    return Response(204)


async def connect(req: Request, engine: Engine) -> Response:
    body = await req.json(Connect)
    await engine.connect_network(req.params["id"], body.container, body.endpoint_config or EndpointSettings())
    return Response(200)


async def disconnect(req: Request, engine: Engine) -> Response:
    body = await req.json(Connect)
    await engine.disconnect_network(req.params["id"], body.container)
    return Response(200)


async def prune(req: Request, engine: Engine) -> Response:
    filters = query.filters(req.q("filters"))
    return json_response({"NetworksDeleted": await engine.prune_networks(filters, query.until(filters)) or None})
