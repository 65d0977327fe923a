"""`/images/...` handlers."""

from __future__ import annotations

import secrets

import msgspec
import trio

from .. import filters as flt
from ..core import IMAGE_FILTERS, Engine
from ..errors import EngineError
from . import render
from .http import Request, Response, json_response


async def create(req: Request, engine: Engine) -> Response:
    """`fromSrc=-`: import the request body as a rootfs tar. Pulling needs a registry
    client, which berth does not have yet: that is said, not faked."""
    if req.q("fromImage"):
        ref = req.q("fromImage") + (":" + req.q("tag") if req.q("tag") else "")
        raise EngineError(f"pull access denied for {ref}: berth cannot pull from registries yet; "
                          "import a rootfs with `import`, or use the built-in busybox image")
    if req.q("fromSrc") != "-":
        raise EngineError("only fromSrc=- (the request body) is supported for import")
    tmp = engine.images.tmp / f"import-{secrets.token_hex(8)}.tar"
    try:
        async with await trio.open_file(tmp, "wb") as out:
            async for chunk in req.body_chunks():
                await out.write(chunk)
        image = await engine.import_image(tmp, repo=req.q("repo") + (":" + req.q("tag") if req.q("tag") else ""),
                                          changes=req.qlist("changes"), message=req.q("message"))
    finally:
        tmp.unlink(missing_ok=True)
    return Response(200, msgspec.json.encode({"status": image.id}) + b"\r\n")


async def list_(req: Request, engine: Engine) -> Response:
    filters = flt.parse(req.q("filters"), IMAGE_FILTERS)
    if req.q("filter"):  # the pre-1.25 spelling of a reference filter
        filters.setdefault("reference", []).append(req.q("filter"))
    return json_response([render.image_summary(engine, i) for i in engine.list_images(filters)])


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(render.image_inspect(engine, engine.images.resolve(req.params["name"])))


async def history(req: Request, engine: Engine) -> Response:
    return json_response(render.image_history(engine, engine.images.resolve(req.params["name"])))


async def tag(req: Request, engine: Engine) -> Response:
    await engine.tag(req.params["name"], req.q("repo"), req.q("tag"))
    return Response(201)


async def remove(req: Request, engine: Engine) -> Response:
    return json_response(await engine.remove_image(req.params["name"], force=req.qbool("force")))
