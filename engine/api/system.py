"""`/_ping`, `/version`, `/info`, `/events`."""

from __future__ import annotations

import os
import platform

import msgspec

from ..core import Engine
from ..errors import BadRequest
from ..models import SystemInfo
from . import query, render
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
    components += [{"Name": rt.name, "Version": "", "Details": {"Path": rt.binary}} for rt in engine.info().runtimes]
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


HUB_INDEX = "https://index.docker.io/v1/"


def registry_config(found: SystemInfo) -> dict:
    """dockerd's `RegistryConfig`: the insecure CIDRs (loopback always), and per registry
    whether it is verified TLS; docker.io's entry carries the mirrors, each URL ending in
    `/` as dockerd writes them."""
    mirrors = [m if m.endswith("/") else m + "/" for m in found.registry_mirrors]
    cidrs = ["127.0.0.0/8", *(i for i in found.insecure_registries if "/" in i)]
    indexes = {"docker.io": {"Name": "docker.io", "Mirrors": mirrors, "Secure": True, "Official": True}}
    for host in found.insecure_registries:
        if "/" not in host:
            indexes[host] = {"Name": host, "Mirrors": [], "Secure": False, "Official": False}
    return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": indexes, "Mirrors": mirrors}


async def info(req: Request, engine: Engine) -> Response:
    found = engine.info()
    os_name, os_version = _os_release()
    warnings = [f"runtime {rt.name}: {rt.path}" for rt in found.runtimes if rt.path != "direct"]
    return json_response({
        "ID": found.engine_id, "Containers": found.containers, "ContainersRunning": found.running,
        "ContainersPaused": found.paused, "ContainersStopped": found.stopped,
        "Images": found.images, "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file", "none"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": False, "BridgeNfIptables": False,
        "Debug": found.debug, "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": found.system_time, "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": str(found.cgroup_version),
        "NEventsListener": found.event_listeners, "KernelVersion": platform.release(),
        "OperatingSystem": os_name, "OSVersion": os_version, "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": HUB_INDEX, "RegistryConfig": registry_config(found), "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(found.root), "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": {rt.name: {"path": rt.binary, "berthPath": rt.path} for rt in found.runtimes},
        "DefaultRuntime": found.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": found.live_restore, "Isolation": "", "InitBinary": found.init_binary,
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        # every container is confined by seccomp's default profile unless it asks otherwise
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": warnings or None,
    })


async def disk_usage(req: Request, engine: Engine) -> Response:
    """`docker system df`: images with how many containers use them and the size they
    share with other images, containers with their writable layer's size."""
    usage = await engine.disk_usage()
    images = [render.image_summary(engine, u.image) | {"Containers": u.containers, "SharedSize": u.shared_size}
              for u in usage.images]
    containers = [render.container_summary(engine, u.container) | {"SizeRw": u.size_rw, "SizeRootFs": u.size_root_fs}
                  for u in usage.containers]
    volumes = [volume_render(engine, u.volume) | {"UsageData": {"Size": u.size, "RefCount": u.users}}
               for u in usage.volumes]
    return json_response({"LayersSize": usage.layers_size, "Images": images, "Containers": containers,
                          "Volumes": volumes, "BuildCache": usage.build_cache})


async def events(req: Request, engine: Engine) -> None:
    filters = query.filters(req.q("filters"))
    since = query.timestamp(req.q("since"), "since")
    until = query.timestamp(req.q("until"), "until")
    if since is not None and until is not None and until < since:
        raise BadRequest("`since` time must be before `until` time")
    found = engine.events(filters, since, until)
    stream = await req.stream()
    encoder = msgspec.json.Encoder()
    async for event in found:
        await stream.send(encoder.encode(event) + b"\n")
