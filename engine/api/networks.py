"""`/networks/...` handlers."""

from __future__ import annotations

import msgspec

from ..events import filters as flt
from ..core import Engine
from ..errors import BadRequest
from ..network.networks import PREDEFINED, NetworkRecord
from .http import Request, Response, json_response

NETWORK_FILTERS = ("name", "id", "driver", "label", "type", "dangling")


class IPAMPool(msgspec.Struct, rename="pascal"):
    subnet: str = ""
    gateway: str = ""


class IPAM(msgspec.Struct, rename="pascal"):
    driver: str = "default"
    config: list[IPAMPool] | None = None


class CreateNetwork(msgspec.Struct, rename="pascal"):
    """The body of `POST /networks/create`."""

    name: str = ""
    driver: str = "bridge"
    internal: bool = False
    check_duplicate: bool = True
    attachable: bool = False
    ipam: IPAM | None = msgspec.field(default=None, name="IPAM")
    options: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class Connect(msgspec.Struct, rename="pascal"):
    container: str = ""
    endpoint_config: dict | None = None
    force: bool = False


def _render(engine: Engine, record: NetworkRecord) -> dict:
    containers = {}
    for c in engine.network.users(record):
        endpoint = next((e for e in c.networks.values() if e.network_id == record.id), None)
        if endpoint:
            containers[c.id] = {"Name": c.name, "EndpointID": endpoint.endpoint_id, "MacAddress": endpoint.mac,
                                "IPv4Address": f"{endpoint.ip}/{endpoint.prefixlen}", "IPv6Address": ""}
    ipam = [{"Subnet": record.subnet, "Gateway": record.gateway}] if record.subnet else []
    return {"Name": record.name, "Id": record.id, "Created": record.created, "Scope": "local",
            "Driver": record.driver, "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": record.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": record.options, "Labels": record.labels}


async def list_(req: Request, engine: Engine) -> Response:
    filters = flt.parse(req.q("filters"), NETWORK_FILTERS)
    found = []
    for record in engine.network.networks.by_id.values():
        if filters.get("name") and not any(n in record.name for n in filters["name"]):
            continue
        if filters.get("id") and not any(record.id.startswith(i) for i in filters["id"]):
            continue
        if filters.get("driver") and record.driver not in filters["driver"]:
            continue
        if filters.get("label") and not flt.label_match(filters["label"], record.labels):
            continue
        builtin = record.name in PREDEFINED
        if filters.get("type") and ("builtin" if builtin else "custom") not in filters["type"]:
            continue
        if filters.get("dangling") and (not builtin and not engine.network.users(record)) != \
                (filters["dangling"][0].lower() in ("1", "true")):
            continue
        found.append(_render(engine, record))
    return json_response(sorted(found, key=lambda n: n["Name"]))


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(_render(engine, engine.network.networks.get(req.params["id"])))


async def create(req: Request, engine: Engine) -> Response:
    body = await req.json(CreateNetwork)
    if not body.name:
        raise BadRequest("network name is required")
    pool = (body.ipam.config or [IPAMPool()])[0] if body.ipam else IPAMPool()
    record = await engine.network.create(body.name, driver=body.driver or "bridge", subnet=pool.subnet,
                                         gateway=pool.gateway, internal=body.internal, labels=body.labels,
                                         options=body.options)
    return json_response({"Id": record.id, "Warning": ""}, 201)


async def remove(req: Request, engine: Engine) -> Response:
    await engine.network.remove(req.params["id"])
    return Response(204)


async def connect(req: Request, engine: Engine) -> Response:
    body = await req.json(Connect)
    aliases = (body.endpoint_config or {}).get("Aliases") or []
    await engine.network.connect(engine.get(body.container), req.params["id"], aliases=aliases)
    return Response(200)


async def disconnect(req: Request, engine: Engine) -> Response:
    body = await req.json(Connect)
    await engine.network.disconnect(engine.get(body.container), req.params["id"])
    return Response(200)


async def prune(req: Request, engine: Engine) -> Response:
    gone = []
    for record in list(engine.network.networks.by_id.values()):
        if record.name not in PREDEFINED and not engine.network.users(record):
            await engine.network.remove(record.id)
            gone.append(record.name)
    return json_response({"NetworksDeleted": gone or None})
