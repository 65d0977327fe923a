"""`/volumes/...` handlers: translate HTTP to the Engine's volume store, nothing more."""

from __future__ import annotations

from ..events import filters as flt
from ..core import Engine
from ..models import VolumeCreateRequest, VolumeRecord
from ..volumes import LIST_FILTERS, PRUNE_FILTERS
from .http import Request, Response, json_response


def render(engine: Engine, vol: VolumeRecord) -> dict:
    """Docker's Volume object (Options null and Labels null when empty, as dockerd)."""
    return {"CreatedAt": vol.created_at, "Driver": vol.driver, "Labels": vol.labels or None,
            "Mountpoint": str(engine.volumes.data_path(vol.name)), "Name": vol.name,
            "Options": vol.options or None, "Scope": "local"}


async def create(req: Request, engine: Engine) -> Response:
    vol = await engine.volumes.create(await req.json(VolumeCreateRequest))
    return json_response(render(engine, vol), 201)


async def list_(req: Request, engine: Engine) -> Response:
    found = engine.volumes.list(flt.parse(req.q("filters"), LIST_FILTERS))
    return json_response({"Volumes": [render(engine, v) for v in found], "Warnings": []})


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(render(engine, engine.volumes.get(req.params["name"])))


async def remove(req: Request, engine: Engine) -> Response:
    await engine.volumes.remove(req.params["name"], force=req.qbool("force"))
    return Response(204)


async def prune(req: Request, engine: Engine) -> Response:
    gone, reclaimed = await engine.volumes.prune(flt.parse(req.q("filters"), PRUNE_FILTERS))
    return json_response({"VolumesDeleted": gone, "SpaceReclaimed": reclaimed})
