"""`/images/...` handlers."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import msgspec
import trio

from ..events import filters as flt
from ..core import IMAGE_FILTERS, Engine
from ..errors import EngineError
from ..images.service import PRUNE_FILTERS
from . import render
from .http import Request, Response, json_response

log = logging.getLogger("berth.api")


async def _spool(req: Request, engine: Engine, kind: str) -> Path:
    """Write the request body (a tar, maybe compressed) to a scratch file in the image
    store; the caller deletes it."""
    path = engine.images.tmp / f"{kind}-{secrets.token_hex(8)}.tar"
    async with await trio.open_file(path, "wb") as out:
        async for chunk in req.body_chunks():
            await out.write(chunk)
    return path


async def create(req: Request, engine: Engine) -> Response:
    """`fromSrc=-`: import the request body as a rootfs tar. Pulling needs a registry
    client, which berth does not have yet: that is said, not faked."""
    if req.q("fromImage"):
        ref = req.q("fromImage") + (":" + req.q("tag") if req.q("tag") else "")
        raise EngineError(f"pull access denied for {ref}: berth cannot pull from registries yet; "
                          "import a rootfs with `import`, or use the built-in busybox image")
    if req.q("fromSrc") != "-":
        raise EngineError("only fromSrc=- (the request body) is supported for import")
    tmp = await _spool(req, engine, "import")
    try:
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


async def save(req: Request, engine: Engine) -> Response | None:
    """`docker save`: `/images/{name}/get`, or `/images/get?names=a&names=b`; a tar stream."""
    names = [req.params["name"]] if "name" in req.params else req.qlist("names")
    opened = False

    async def open_stream():
        nonlocal opened
        opened = True
        return await req.stream("application/x-tar")

    try:
        await engine.save_images(names, open_stream)
    except EngineError as exc:
        if not opened:
            raise
        # Half a tar is already out: an error message appended to it would read as a
        # complete (corrupt) archive. Ending the connection without the last chunk makes
        # the client see a failed transfer instead.
        log.error("save of %s aborted: %s", names, exc.message)
        raise trio.BrokenResourceError(exc.message) from None
    return None


async def load(req: Request, engine: Engine) -> Response:
    """`docker load`: a docker-save or OCI archive (plain or compressed) in the body;
    answers Docker's JSON message stream (`Loaded image: …`)."""
    upload = await _spool(req, engine, "load")
    try:
        result = await engine.load_images(upload, quiet=req.qbool("quiet"))
    finally:
        upload.unlink(missing_ok=True)
    return Response(200, b"".join(msgspec.json.encode(m) + b"\r\n" for m in result.messages))


async def prune(req: Request, engine: Engine) -> Response:
    """`docker image prune [-a]`: unused dangling images, or all unused ones."""
    return json_response(await engine.prune_images(flt.parse(req.q("filters"), PRUNE_FILTERS)))
