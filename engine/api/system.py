"""`/_ping`, `/version`, `/info`, `/events`."""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime

import msgspec
import trio

from ..events import filters as flt
from ..core import Engine
from ..errors import BadRequest
from ..timefmt import rfc3339
from ..fs.store import tree_size
from . import render
from .volumes import render as volume_render
from .http import API_VERSION, MIN_API_VERSION, Request, Response, json_response

VERSION = "0.1.0"


async def ping(req: Request, engine: Engine) -> Response:
    headers = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache")]
    return Response(200, b"OK", "text/plain; charset=utf-8", headers)


async def version(req: Request, engine: Engine) -> Response:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
               "KernelVersion": platform.release(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    components = [{"Name": "Engine", "Version": VERSION, "Details": details}]
    components += [{"Name": rt.name, "Version": "", "Details": {"Path": rt.binary}} for rt in engine.runtimes.values()]
    return json_response({
        "Platform": {"Name": "berth"}, "Components": components, "Version": VERSION,
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": details["GoVersion"], "Os": "linux", "Arch": arch, "KernelVersion": platform.release(),
        "BuildTime": "",
    })


def _os_release() -> tuple[str, str]:
    try:
        fields = dict(line.split("=", 1) for line in open("/etc/os-release").read().splitlines() if "=" in line)
    except OSError:
        return "Linux", ""
    return fields.get("PRETTY_NAME", "Linux").strip('"'), fields.get("VERSION_ID", "").strip('"')


async def info(req: Request, engine: Engine) -> Response:
    counts = engine.counts()
    os_name, os_version = _os_release()
    layout = engine.layout
    warnings = [f"runtime {rt.name}: {rt.path}" for rt in engine.runtimes.values() if rt.path != "direct"]
    return json_response({
        "ID": engine.config.root.name, "Containers": counts["total"], "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"], "ContainersStopped": counts["stopped"],
        "Images": len(engine.images.images), "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": [], "Network": ["null"], "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": False, "BridgeNfIptables": False,
        "Debug": engine.config.debug, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": rfc3339(time.time_ns()), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": str(layout.version),
        "NEventsListener": engine.event_listeners, "KernelVersion": platform.release(),
        "OperatingSystem": os_name, "OSVersion": os_version, "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "", "RegistryConfig": None, "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(engine.config.root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": {rt.name: {"path": rt.binary, "berthPath": rt.path} for rt in engine.runtimes.values()},
        "DefaultRuntime": engine.config.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": engine.config.init_binary or "",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": [],
        "Warnings": warnings or None,
    })


async def disk_usage(req: Request, engine: Engine) -> Response:
    """`docker system df`: images with how many containers use them and the size they
    share with other images, containers with their writable layer's size."""
    images = list(engine.images.images.values())
    chains = {i.id: engine.images.layer_chain(i) for i in images}
    users: dict[str, int] = {}
    for c in engine.containers.values():
        users[c.record.image_id] = users.get(c.record.image_id, 0) + 1
    holders: dict[str, int] = {}
    for chain in chains.values():
        for layer in chain:
            holders[layer] = holders.get(layer, 0) + 1
    sizes = {layer: engine.images.layer_meta(layer).size for layer in holders}

    def image_row(image) -> dict:
        row = render.image_summary(engine, image)
        row["Containers"] = users.get(image.id, 0)
        row["SharedSize"] = sum(sizes[layer] for layer in chains[image.id] if holders[layer] > 1)
        return row

    containers = []
    for c in engine.containers.values():
        row = render.container_summary(engine, c)
        row["SizeRw"] = await trio.to_thread.run_sync(tree_size, c.upper)
        image = engine.images.images.get(c.record.image_id)
        row["SizeRootFs"] = row["SizeRw"] + (engine.images.size(image) if image else 0)
        containers.append(row)
    volumes = []
    for vol in engine.volumes.list():
        row = volume_render(engine, vol)
        size = await trio.to_thread.run_sync(tree_size, engine.volumes.data_path(vol.name))
        row["UsageData"] = {"Size": size, "RefCount": len(engine.volumes.users(vol.name))}
        volumes.append(row)
    return json_response({"LayersSize": sum(sizes.values()), "Images": [image_row(i) for i in images],
                          "Containers": containers, "Volumes": volumes, "BuildCache": []})


def parse_time(value: str, name: str) -> int | None:
    """`since`/`until` as Docker clients send them: unix seconds (with optional
    `.nanoseconds`) or RFC 3339; returns nanoseconds since the epoch."""
    if not value:
        return None
    secs, dot, frac = value.partition(".")
    if secs.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        return int(secs) * 10**9 + int((frac + "000000000")[:9] if dot else 0)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 10**9)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r}") from None


async def events(req: Request, engine: Engine) -> None:
    filters = flt.parse(req.q("filters"), flt.EVENT_FILTERS)
    since = parse_time(req.q("since"), "since")
    until = parse_time(req.q("until"), "until")
    if since is not None and until is not None and until < since:
        raise BadRequest("`since` time must be before `until` time")
    stream = await req.stream()
    encoder = msgspec.json.Encoder()
    async for event in engine.events(filters, since, until):
        await stream.send(encoder.encode(event) + b"\n")
