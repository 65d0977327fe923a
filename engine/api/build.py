"""`POST /build`: the classic builder's API (what `DOCKER_BUILDKIT=0 docker build` and
docker-py's `build` send): the context tar as the body, the options in the query, the
JSON-lines stream back."""

from __future__ import annotations

import msgspec

from ..core import BuildOptions, ContextOffer, Engine
from ..errors import BadRequest
from ..models import Ulimit
from . import query
from .http import Request, Response, json_response
from .images import progress_stream


def _json(req: Request, name: str, type_, default):
    raw = req.q(name)
    if not raw:
        return default
    try:
        return msgspec.json.decode(raw.encode(), type=type_)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid {name}: {exc}") from None


def options(req: Request) -> BuildOptions:
    """The query as BuildOptions; a malformed value is a 400 naming the parameter."""
    if req.q("remote"):
        raise BadRequest("remote build contexts (remote=) are not supported: send the context as the body")
    # refused as dockerd refuses them on Linux, rather than taken and ignored
    if req.q("isolation") not in ("", "default"):
        raise BadRequest(f"Unsupported isolation: {req.q('isolation')!r}")
    if req.q("securityopt") not in ("", "null", "[]"):  # the docker CLI sends the words, docker-py JSON
        raise BadRequest("The daemon on this platform does not support setting security options on build")
    if req.q("cgroupparent"):
        raise BadRequest("--cgroup-parent is not supported by berth's builder: its RUN steps run in berth's own "
                         "cgroup tree")
    return BuildOptions(
        dockerfile=req.q("dockerfile"), tags=[t for t in req.qlist("t") if t],
        buildargs=_json(req, "buildargs", dict[str, str | None], {}), labels=_json(req, "labels", dict[str, str], {}),
        target=req.q("target"), nocache=req.qbool("nocache"), pull=req.qbool("pull"), rm=req.qbool("rm", True),
        forcerm=req.qbool("forcerm"), quiet=req.qbool("q"), network_mode=req.q("networkmode"),
        platform=req.q("platform"), cache_from=_json(req, "cachefrom", list[str], []),
        extra_hosts=[h for value in req.qlist("extrahosts") for h in value.split(",") if h],
        shm_size=req.qint("shmsize", 0), memory=req.qint("memory", 0), memswap=req.qint("memswap", 0),
        cpu_shares=req.qint("cpushares", 0), cpu_period=req.qint("cpuperiod", 0), cpu_quota=req.qint("cpuquota", 0),
        cpuset_cpus=req.q("cpusetcpus"), cpuset_mems=req.q("cpusetmems"),
        ulimits=_json(req, "ulimits", list[Ulimit] | None, None), context_session=req.q("berthcontext"))


async def build(req: Request, engine: Engine) -> Response | None:
    """Build; the 200 goes out with the first message, so bad input found before it
    (a parse error, a missing Dockerfile) is a plain 400."""
    opts = options(req)
    return await progress_stream(req, lambda emit: engine.build(req.body_chunks(), opts, emit))


async def offer_context(req: Request, engine: Engine) -> Response:
    """berth's `POST /build/context`: a listing of the context's files in, the session
    and the files to send out (see `build/contexts.py`)."""
    return json_response(await engine.offer_build_context(await req.json(ContextOffer)))


async def prune(req: Request, engine: Engine) -> Response:
    """`POST /build/prune` (`docker builder prune`, `docker system prune`): the kept build
    contexts are berth's build cache (the step cache is images, pruned with them);
    `keep-storage` keeps the most recent up to that many bytes; filters `until`, `label`
    and `label!` (kept contexts have no labels), others a 400."""
    filters = query.filters(req.q("filters"))
    return json_response(await engine.prune_build_cache(filters, query.until(filters),
                                                        req.qint("keep-storage", 0) or 0))
