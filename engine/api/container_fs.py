"""Handlers for a container's files: archive (cp), changes (diff), export, and commit."""

from __future__ import annotations

import base64

import msgspec

from ..core import Engine, PathStat
from ..errors import NotFound
from ..models import CommitOptions, ContainerConfig
from .http import Request, Response, json_response

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _stat_header(found: PathStat) -> list[tuple[str, str]]:
    """Docker's stat of the path, as JSON in base64, in the header the CLI reads."""
    return [(STAT_HEADER, base64.b64encode(msgspec.json.encode(found)).decode())]


async def head_archive(req: Request, engine: Engine) -> Response:
    found = await engine.stat_path(req.params["id"], req.q("path"))
    return Response(200, headers=_stat_header(found))


async def get_archive(req: Request, engine: Engine) -> None:
    async def open_stream(found: PathStat):
        return await req.stream("application/x-tar", headers=_stat_header(found))

    await engine.get_archive(req.params["id"], req.q("path"), open_stream)


async def put_archive(req: Request, engine: Engine) -> Response:
    await engine.put_archive(req.params["id"], req.q("path"), req.body_chunks(),
                             no_overwrite_dir_non_dir=req.qbool("noOverwriteDirNonDir"),
                             copy_uid_gid=req.qbool("copyUIDGID"))
    return Response(200)


async def export(req: Request, engine: Engine) -> None:
    await engine.export(req.params["id"], lambda: req.stream("application/octet-stream"))


async def changes(req: Request, engine: Engine) -> Response:
    return json_response(await engine.changes(req.params["id"]))


async def commit(req: Request, engine: Engine) -> Response:
    ref = req.q("container")
    if not ref:
        raise NotFound("No such container: ")
    # No body (the docker CLI sends Content-Length: 0) means "the container's Config".
    has_body = req.headers.get("content-length", "0") != "0" or "transfer-encoding" in req.headers
    config = await req.json(ContainerConfig) if has_body else None
    options = CommitOptions(repo=req.q("repo"), tag=req.q("tag"), comment=req.q("comment"),
                            author=req.q("author"), changes=req.qlist("changes"),
                            pause=req.qbool("pause", True), config=config)
    image = await engine.commit(ref, options)
    return json_response({"Id": image.id}, 201)
