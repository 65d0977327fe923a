"""`/images/...` handlers."""

from __future__ import annotations

import logging
from fnmatch import fnmatchcase
from collections.abc import Awaitable, Callable

import msgspec
import trio

from ..core import Engine
from ..errors import BadRequest, EngineError
from ..models import AuthConfig, ErrorDetail, ProgressMessage
from . import query, render
from .http import Request, Response, json_response, unexpected

log = logging.getLogger("berth.api")


def registry_auth(req: Request, engine: Engine) -> AuthConfig | None:
    """The `X-Registry-Auth` header's credentials (None when absent or `e30=`, `{}`)."""
    return engine.registry_credentials(req.headers.get("x-registry-auth", ""))


async def progress_stream(req: Request, run: Callable[[Callable], Awaitable[object]]) -> Response | None:
    """Docker's JSON progress stream of `run(emit)` (pull, push, build): the 200 goes out
    with the first message, so an error before it is a plain HTTP error (404 for a missing manifest);
    an error after it is the stream's last message (`errorDetail`)."""
    stream = None

    async def emit(message: msgspec.Struct) -> None:  # a pull's or a build's message
        nonlocal stream
        if stream is None:
            stream = await req.stream()
        await stream.send(msgspec.json.encode(message) + b"\r\n")

    try:
        await run(emit)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise  # the client went away: nothing to tell it
    except Exception as exc:
        if stream is None:
            raise
        # once the 200 is out, the error must be the stream's last message in the form
        # clients read as a failure (the docker CLI exits 0 on a bare `message`)
        if isinstance(exc, EngineError):
            log.warning("%s %s failed: %s", req.method, req.path, exc.message)
        else:
            exc = unexpected(req, exc)
        await stream.send(msgspec.json.encode(ProgressMessage(errorDetail=ErrorDetail(exc.message),
                                                              error=exc.message)) + b"\r\n")
    return None if stream is not None else Response(200, b"")


async def create(req: Request, engine: Engine) -> Response | None:
    """`fromImage=…&tag=…`: pull from a registry; `fromSrc=-`: import the request body as
    a rootfs tar."""
    if req.q("fromImage"):
        auth = registry_auth(req, engine)
        return await progress_stream(req, lambda emit: engine.pull(
            req.q("fromImage"), req.q("tag"), auth=auth, platform=req.q("platform"), progress=emit))
    if req.q("fromSrc") != "-":
        raise BadRequest("only fromSrc=- (the request body) is supported for import")
    repo = req.q("repo") + (":" + req.q("tag") if req.q("tag") else "")
    # as dockerd: without a message, the comment says where the tar came from (the body: "-")
    image = await engine.import_image(req.body_chunks(), repo=repo, changes=req.qlist("changes"),
                                      message=req.q("message") or "Imported from -")
    return Response(200, msgspec.json.encode({"status": image.id}) + b"\r\n")


async def push(req: Request, engine: Engine) -> Response | None:
    """`docker push`: `/images/{name}/push?tag=…` (the name unescaped, slashes and all)."""
    auth = registry_auth(req, engine)
    return await progress_stream(req, lambda emit: engine.push(req.params["name"], req.q("tag"), auth=auth,
                                                               progress=emit))


async def auth(req: Request, engine: Engine) -> Response:
    """`docker login`: check the credentials with the registry."""
    status = await engine.login(await req.json(AuthConfig))
    return json_response({"IdentityToken": "", "Status": status})


async def distribution(req: Request, engine: Engine) -> Response:
    """`GET /distribution/{name}/json` (docker-py's `get_registry_data`)."""
    return json_response(await engine.distribution(req.params["name"], auth=registry_auth(req, engine)))


async def search(req: Request, engine: Engine) -> Response:
    """`docker search TERM`: the registry's v1 search, as Docker's JSON list."""
    found = await engine.search_images(req.q("term"), req.qint("limit", 25), query.filters(req.q("filters")),
                                       auth=registry_auth(req, engine))
    return json_response(found)


async def list_(req: Request, engine: Engine) -> Response:
    filters = query.filters(req.q("filters"))
    if req.q("filter"):  # the pre-1.25 spelling of a reference filter
        filters.setdefault("reference", []).append(req.q("filter"))
    images = engine.list_images(filters)
    if req.qbool("all") and set(filters) <= {"dangling"} and filters.get("dangling", ["true"])[0] in ("1", "true"):
        images = _with_build_steps(engine, images)  # `images -a`: the untagged steps a build left under them
    summaries = [render.image_summary(engine, i) for i in images]
    if filters.get("reference"):
        for summary in summaries:
            _only_matching(summary, filters["reference"])
    return json_response(summaries)


def _with_build_steps(engine: Engine, images: list) -> list:
    """The listed images and every untagged parent under them (intermediate images), newest
    first, as dockerd's `images -a` lists them."""
    seen = {i.id for i in images}
    found = list(images)
    for image in images:
        parent = image.config.parent
        while parent and parent not in seen:
            try:
                step = engine.image(parent)
            except EngineError:
                break
            seen.add(parent)
            found.append(step)
            parent = step.config.parent
    return sorted(found, key=lambda i: i.config.created or "", reverse=True)


def _only_matching(summary: dict, patterns: list[str]) -> None:
    """Keep the image's tags and digests that a `reference` filter matched, as dockerd
    lists them: `docker images -q busybox:two` shows the image once, not once per tag."""
    def matches(name: str, repo: str) -> bool:
        return any(fnmatchcase(name, p) or fnmatchcase(repo, p) for p in patterns)

    summary["RepoTags"] = [t for t in summary["RepoTags"] if matches(t, t.rpartition(":")[0])]
    summary["RepoDigests"] = [d for d in summary["RepoDigests"] if matches(d, d.partition("@")[0])]


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(render.image_inspect(engine, engine.image(req.params["name"])))


async def history(req: Request, engine: Engine) -> Response:
    return json_response(render.image_history(engine, engine.image(req.params["name"])))


async def tag(req: Request, engine: Engine) -> Response:
    await engine.tag(req.params["name"], req.q("repo"), req.q("tag"))
    return Response(201)


async def remove(req: Request, engine: Engine) -> Response:
    return json_response(await engine.remove_image(req.params["name"], force=req.qbool("force"),
                                                   prune=not req.qbool("noprune")))


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


async def load(req: Request, engine: Engine) -> None:
    """`docker load`: a docker-save or OCI archive (plain or compressed) in the body;
    answers Docker's JSON message stream (`Loaded image: …`), chunked as dockerd sends it
    (docker-py decodes it message by message); a bad archive is the stream's `errorDetail`
    in a 200, as dockerd answers it."""
    try:
        result = await engine.load_images(req.body_chunks(), quiet=req.qbool("quiet"))
        messages = [msgspec.json.encode(m) + b"\r\n" for m in result.messages]
    except EngineError as exc:
        log.warning("%s %s failed: %s", req.method, req.path, exc.message)
        messages = [msgspec.json.encode(ProgressMessage(errorDetail=ErrorDetail(exc.message), error=exc.message))
                    + b"\r\n"]
    stream = await req.stream()
    for message in messages:
        await stream.send(message)


async def prune(req: Request, engine: Engine) -> Response:
    """`docker image prune [-a]`: unused dangling images, or all unused ones (`until`:
    those created before it)."""
    filters = query.filters(req.q("filters"))
    return json_response(await engine.prune_images(filters, query.until(filters)))
