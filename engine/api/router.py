"""The route table: (method, path pattern) → handler. docs/api.md mirrors it.

Paths may carry a `/vX.Y` prefix (the docker CLI always sends one, docker-py's first
call does not); versions above ours or below MIN_API_VERSION get Docker's 400.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ..core import Engine
from ..errors import BadRequest, NotFound
from . import build, container_fs, containers, execs, images, networks, plugins, swarm, system, volumes
from .http import API_VERSION, MIN_API_VERSION, Request, Response

_VERSIONED = re.compile(r"^/v([0-9.]+)(/.*)$")  # as dockerd's router: /v{version:[0-9.]+}
_ID = r"(?P<id>[^/]+)"
_NAME = r"(?P<name>.+?)"
_SWARM_KIND = r"(?P<kind>nodes|services|tasks|secrets|configs)"

ROUTES: list[tuple[str, str, object]] = [
    ("GET", r"/_ping", system.ping),
    ("HEAD", r"/_ping", system.ping),
    ("GET", r"/version", system.version),
    ("GET", r"/info", system.info),
    ("GET", r"/system/df", system.disk_usage),
    ("GET", r"/events", system.events),
    ("POST", r"/containers/create", containers.create),
    ("GET", r"/containers/json", containers.list_),
    ("POST", r"/containers/prune", containers.prune),
    ("GET", rf"/containers/{_ID}/json", containers.inspect),
    ("POST", rf"/containers/{_ID}/start", containers.start),
    ("POST", rf"/containers/{_ID}/stop", containers.stop),
    ("POST", rf"/containers/{_ID}/restart", containers.restart),
    ("POST", rf"/containers/{_ID}/kill", containers.kill),
    ("POST", rf"/containers/{_ID}/wait", containers.wait),
    ("POST", rf"/containers/{_ID}/pause", containers.pause),
    ("POST", rf"/containers/{_ID}/unpause", containers.unpause),
    ("HEAD", rf"/containers/{_ID}/archive", container_fs.head_archive),
    ("GET", rf"/containers/{_ID}/archive", container_fs.get_archive),
    ("PUT", rf"/containers/{_ID}/archive", container_fs.put_archive),
    ("GET", rf"/containers/{_ID}/changes", container_fs.changes),
    ("GET", rf"/containers/{_ID}/export", container_fs.export),
    ("POST", r"/commit", container_fs.commit),
    ("POST", rf"/containers/{_ID}/exec", execs.create),
    ("POST", rf"/exec/{_ID}/start", execs.start),
    ("POST", rf"/exec/{_ID}/resize", execs.resize),
    ("GET", rf"/exec/{_ID}/json", execs.inspect),
    ("GET", rf"/containers/{_ID}/logs", containers.logs),
    ("POST", rf"/containers/{_ID}/attach", containers.attach),
    ("POST", rf"/containers/{_ID}/resize", containers.resize),
    ("GET", rf"/containers/{_ID}/top", containers.top),
    ("GET", rf"/containers/{_ID}/stats", containers.stats_),
    ("POST", rf"/containers/{_ID}/rename", containers.rename),
    ("POST", rf"/containers/{_ID}/update", containers.update),
    ("DELETE", rf"/containers/{_ID}", containers.remove),
    ("DELETE", rf"/containers/{_ID}/(?P<alias>[^/]+)", containers.remove),
    ("POST", r"/build", build.build),
    ("POST", r"/build/context", build.offer_context),
    ("POST", r"/build/prune", build.prune),
    ("POST", r"/images/create", images.create),
    ("POST", rf"/images/{_NAME}/push", images.push),
    ("POST", r"/auth", images.auth),
    ("GET", rf"/distribution/{_NAME}/json", images.distribution),
    ("GET", r"/images/json", images.list_),
    ("GET", r"/images/search", images.search),
    ("GET", rf"/images/{_NAME}/json", images.inspect),
    ("GET", rf"/images/{_NAME}/history", images.history),
    ("POST", rf"/images/{_NAME}/tag", images.tag),
    ("GET", r"/images/get", images.save),
    ("GET", rf"/images/{_NAME}/get", images.save),
    ("POST", r"/images/load", images.load),
    ("POST", r"/images/prune", images.prune),
    ("DELETE", rf"/images/{_NAME}", images.remove),
    ("GET", r"/networks", networks.list_),
    ("POST", r"/networks/create", networks.create),
    ("POST", r"/networks/prune", networks.prune),
    ("GET", rf"/networks/{_ID}", networks.inspect),
    ("DELETE", rf"/networks/{_ID}", networks.remove),
    ("POST", rf"/networks/{_ID}/connect", networks.connect),
    ("POST", rf"/networks/{_ID}/disconnect", networks.disconnect),
    ("POST", r"/volumes/create", volumes.create),
    ("GET", r"/volumes", volumes.list_),
    ("POST", r"/volumes/prune", volumes.prune),
    ("GET", rf"/volumes/{_NAME}", volumes.inspect),
    ("DELETE", rf"/volumes/{_NAME}", volumes.remove),
    ("POST", r"/swarm/(?P<action>init|join)", swarm.unsupported),
    ("POST", r"/swarm/(?P<action>leave|unlock)", swarm.not_in_swarm),
    ("GET", r"/swarm/unlockkey", swarm.not_in_swarm),
    ("GET", r"/swarm", swarm.not_a_manager),
    ("POST", r"/swarm/update", swarm.not_a_manager),
    ("GET", rf"/{_SWARM_KIND}", swarm.not_a_manager),
    ("GET", rf"/{_SWARM_KIND}/(?P<id>.+)", swarm.not_a_manager),
    ("POST", rf"/{_SWARM_KIND}/(?P<id>.+)", swarm.not_a_manager),
    ("DELETE", rf"/{_SWARM_KIND}/(?P<id>.+)", swarm.not_a_manager),
    ("GET", r"/plugins", plugins.list_),
    ("GET", r"/plugins/(?P<name>[^/]+)/json", plugins.inspect),
    ("POST", r"/plugins/(?P<name>[^/]+)/enable", plugins.enable),
    ("POST", r"/plugins/(?P<name>[^/]+)/disable", plugins.disable),
    ("POST", r"/plugins/(?P<name>[^/]+)/reload", plugins.reload),
]

_COMPILED = [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in ROUTES]


_INT_MAX = (1 << 63) - 1


def _compare_versions(a: str, b: str) -> int:
    """dockerd's versions.compare: dot-separated numbers, a missing or empty part is 0, a
    part too large for an int saturates (Go's Atoi); -1, 0 or 1."""

    def parts(text: str) -> list[int]:
        return [min(int(p), _INT_MAX) if 0 < len(p) <= 19 else (_INT_MAX if p else 0) for p in text.split(".")]

    pa, pb = parts(a), parts(b)
    width = max(len(pa), len(pb))
    pa, pb = pa + [0] * (width - len(pa)), pb + [0] * (width - len(pb))
    return (pa > pb) - (pa < pb)


def make_dispatch(engine: Engine):
    """A dispatch function for `http.Connection` bound to `engine`."""

    async def dispatch(req: Request) -> Response | None:
        path = unquote(req.path) if "%" in req.path else req.path  # matched decoded, as dockerd's router
        versioned = _VERSIONED.match(path)
        if versioned:
            wanted = versioned.group(1)
            if wanted != API_VERSION:  # the docker CLI's case costs one comparison
                if _compare_versions(wanted, API_VERSION) > 0:
                    raise BadRequest(f"client version {wanted} is too new. "
                                     f"Maximum supported API version is {API_VERSION}")
                if _compare_versions(wanted, MIN_API_VERSION) < 0:
                    raise BadRequest(f"client version {wanted} is too old. Minimum supported API version is "
                                     f"{MIN_API_VERSION}, please upgrade your client to a newer version")
            path = versioned.group(2)
        path_matched = False
        for method, pattern, handler in _COMPILED:
            found = pattern.match(path)
            if not found:
                continue
            path_matched = True
            if method == req.method:
                req.params = found.groupdict()
                return await handler(req, engine)
        if path_matched:
            raise NotFound(f"method {req.method} is not allowed on {path}")
        raise NotFound("page not found")

    return dispatch
