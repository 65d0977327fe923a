"""`/plugins/...`: berth's plugins in the shape of Docker's plugin API (so `docker plugin
ls` lists them), plus `reload` and a `BerthStatus` object of berth's own."""

from __future__ import annotations

import hashlib

from ..core import Engine
from ..models import PluginView
from .http import Request, Response, json_response


def _render(state: PluginView) -> dict:
    return {
        "Id": hashlib.sha256(state.name.encode()).hexdigest(), "Name": state.name, "Enabled": state.enabled,
        "PluginReference": state.source,
        "Settings": {"Mounts": [], "Env": [], "Args": [], "Devices": []},
        "Config": {"Description": state.description, "Documentation": "docs/plugins.md",
                   "Interface": {"Types": ["berth.plugin/v1"], "Socket": ""}, "Entrypoint": [], "WorkDir": "",
                   "Network": {"Type": ""}, "Linux": {"Capabilities": [], "AllowAllDevices": False, "Devices": []},
                   "PropagatedMount": "", "Mounts": [], "Env": [],
                   "Args": {"Name": "", "Description": "", "Settable": [], "Value": []}},
        "BerthStatus": {"Status": state.status, "Restarts": state.restarts, "LastError": state.last_error,
                        "Handled": state.handled, "Events": state.events, "Durable": state.durable},
    }


async def list_(req: Request, engine: Engine) -> Response:
    return json_response([_render(s) for s in engine.list_plugins()])


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(_render(engine.plugin(req.params["name"])))


async def enable(req: Request, engine: Engine) -> Response:
    await engine.enable_plugin(req.params["name"])
    return Response(200)


async def disable(req: Request, engine: Engine) -> Response:
    await engine.disable_plugin(req.params["name"])
    return Response(200)


async def reload(req: Request, engine: Engine) -> Response:
    await engine.reload_plugin(req.params["name"])
    return Response(200)
