"""`/volumes/...` handlers: translate HTTP to the Engine's volume calls, nothing more."""

from __future__ import annotations

from ..core import Engine
from ..models import VolumeCreateRequest, VolumeRecord
from . import query
from .http import Request, Response, json_response


def render(engine: Engine, vol: VolumeRecord) -> dict:
    """Docker's Volume object (Options null and Labels null when empty, as dockerd)."""
    return {"CreatedAt": vol.created_at, "Driver": vol.driver, "Labels": vol.labels or None,
            "Mountpoint": str(engine.volume_mountpoint(vol.name)), "Name": vol.name,
            "Options": vol.options or None, "Scope": "local"}


async def create(req: Request, engine: Engine) -> Response:
    vol = await engine.create_volume(await req.json(VolumeCreateRequest))
    return json_response(render(engine, vol), 201)


async def list_(req: Request, engine: Engine) -> Response:
    found = engine.list_volumes(query.filters(req.q("filters")))
    return json_response({"Volumes": [render(engine, v) for v in found], "Warnings": []})


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(render(engine, engine.volume(req.params["name"])))


async def remove(req: Request, engine: Engine) -> Response:
    await engine.remove_volume(req.params["name"], force=req.qbool("force"))
    return Response(204)


async def prune(req: Request, engine: Engine) -> Response:
    gone, reclaimed = await engine.prune_volumes(query.filters(req.q("filters")))
    return json_response({"VolumesDeleted": gone, "SpaceReclaimed": reclaimed})
