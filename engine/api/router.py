"""The route table: (method, path pattern) → handler. docs/api.md mirrors it.

Paths may carry a `/vX.Y` prefix (the docker CLI always sends one, docker-py's first
call does not); versions above ours get Docker's 400.
"""

from __future__ import annotations

import re

from ..core import Engine
from ..errors import BadRequest, NotFound
from . import container_fs, containers, execs, images, networks, plugins, system, volumes
from .http import API_VERSION, Request, Response

_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_ID = r"(?P<id>[^/]+)"
_NAME = r"(?P<name>.+?)"

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
    ("POST", r"/images/create", images.create),
    ("GET", r"/images/json", images.list_),
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
    ("GET", r"/plugins", plugins.list_),
    ("GET", r"/plugins/(?P<name>[^/]+)/json", plugins.inspect),
    ("POST", r"/plugins/(?P<name>[^/]+)/enable", plugins.enable),
    ("POST", r"/plugins/(?P<name>[^/]+)/disable", plugins.disable),
    ("POST", r"/plugins/(?P<name>[^/]+)/reload", plugins.reload),
]

_COMPILED = [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in ROUTES]
_MAX = tuple(int(p) for p in API_VERSION.split("."))


def make_dispatch(engine: Engine):
    """A dispatch function for `http.Connection` bound to `engine`."""

    async def dispatch(req: Request) -> Response | None:
        path = req.path
        versioned = _VERSIONED.match(path)
        if versioned:
            wanted = (int(versioned.group(1)), int(versioned.group(2)))
            if wanted > _MAX:
                raise BadRequest(f"client version {wanted[0]}.{wanted[1]} is too new. "
                                 f"Maximum supported API version is {API_VERSION}")
            path = versioned.group(3)
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
