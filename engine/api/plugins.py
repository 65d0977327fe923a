"""`/plugins/...`: berth's plugins in the shape of Docker's plugin API (so `docker plugin
ls` lists them), plus `reload` and a `BerthStatus` object of berth's own."""

from __future__ import annotations

import hashlib

from ..core import Engine
from ..plugin_host import PluginState
from .http import Request, Response, json_response


def _render(state: PluginState) -> dict:
    return {
        "Id": hashlib.sha256(state.name.encode()).hexdigest(), "Name": state.name, "Enabled": state.enabled,
        "PluginReference": state.source,
        "Settings": {"Mounts": [], "Env": [], "Args": [], "Devices": []},
        "Config": {"Description": state.plugin.description, "Documentation": "docs/plugins.md",
                   "Interface": {"Types": ["berth.plugin/v1"], "Socket": ""}, "Entrypoint": [], "WorkDir": "",
                   "Network": {"Type": ""}, "Linux": {"Capabilities": [], "AllowAllDevices": False, "Devices": []},
                   "PropagatedMount": "", "Mounts": [], "Env": [],
                   "Args": {"Name": "", "Description": "", "Settable": [], "Value": []}},
        "BerthStatus": {"Status": state.status, "Restarts": state.restarts, "LastError": state.last_error,
                        "Handled": state.handled, "Events": state.plugin.events, "Durable": state.plugin.durable},
    }


async def list_(req: Request, engine: Engine) -> Response:
    return json_response([_render(s) for s in sorted(engine.plugins.plugins.values(), key=lambda s: s.name)])


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(_render(engine.plugins.get(req.params["name"])))


async def enable(req: Request, engine: Engine) -> Response:
    await engine.plugins.enable(req.params["name"])
    return Response(200)


async def disable(req: Request, engine: Engine) -> Response:
    await engine.plugins.disable(req.params["name"])
    return Response(200)


async def reload(req: Request, engine: Engine) -> Response:
    await engine.plugins.reload(req.params["name"])
    return Response(200)
