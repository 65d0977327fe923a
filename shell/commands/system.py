"""The daemon as a whole: plain `inspect` (any kind of object), events, version, info,
the `system` noun (df, events, info, prune), and docker's `container` and `image` nouns
(management.py)."""

from __future__ import annotations

import os
import sys

from .. import fastjson, options, render
from ..grammar import Arg, Command, Group, Opt, UsageError
from ..transport import Client
from . import build, containers, images, management, networks, volumes
from .printers import (FILTER, FORCE_NEVER_ASKS, INSPECTED, checked_template, err, format_option,
                       inspect_format_option, out, print_inspect, rendered,
                       print_listing, print_pruned)


def inspect(client: Client, args) -> int:
    """`docker inspect`: each name as a container, else an image, a network, a volume, a
    plugin (`--type` names the one kind to ask for)."""
    if args.type and args.type not in INSPECTED:
        raise UsageError(f'"{args.type}" is not a valid value for --type')
    return print_inspect(client, args.names, args.format, (args.type,) if args.type else tuple(INSPECTED))


def events(client: Client, args) -> int:
    """`docker events`: one line per event as it happens, or the journal between
    `--since` and `--until`."""
    query = {"since": options.timestamp(args.since), "until": options.timestamp(args.until),
             "filters": options.filters(args.filter)}
    as_json = args.format == "json" or (args.format or "").strip() == "{{json .}}"
    if args.format and not as_json:
        checked_template(args.format, "Error parsing format")
    with client.stream("GET", "/events", query) as resp:
        while line := resp.readline():
            if not line.strip():
                continue
            if as_json:
                out(line.decode().strip())
            elif args.format:
                out(rendered(args.format, fastjson.loads(line)))
            else:
                out(render.event_line(fastjson.loads(line)))
            sys.stdout.flush()  # a stream: show each event when it happens
    return 0


_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}


def _platform() -> str:
    """`linux/amd64`, in Go's architecture names like the daemon's `Os/Arch`."""
    machine = os.uname().machine
    return f"{sys.platform}/{_GO_ARCH.get(machine, machine)}"


def version(client: Client, args) -> int:
    """`docker version`: the client, then the daemon and the runtimes it drives; with
    `--format`, a template over {Client, Server} as docker's (`{{.Server.Os}}`)."""
    from .. import __version__

    if args.format:
        client_part = {"Version": __version__, "ApiVersion": "1.41", "Os": sys.platform,
                       "Arch": _platform().split("/")[1], "Platform": {"Name": ""}}
        return _formatted(args.format, {"Client": client_part, "Server": client.get("/version")})
    out(f"Client:\n Version:           {__version__}\n API version:       1.41\n"
         f" Python version:    {sys.version.split()[0]}\n OS/Arch:           {_platform()}\n Host:              {client.host}\n")
    server = client.get("/version")
    out(f"Server: berth\n Engine:\n  Version:          {server['Version']}\n"
         f"  API version:      {server['ApiVersion']} (minimum version {server['MinAPIVersion']})\n"
         f"  Python version:   {server['GoVersion']}\n  OS/Arch:          {server['Os']}/{server['Arch']}\n"
         f"  Kernel:           {server['KernelVersion']}")
    for component in server["Components"][1:]:
        out(f" {component['Name']}:")
        if component.get("Version"):
            out(f"  Version:          {component['Version']}")
        for key, value in (component.get("Details") or {}).items():
            out(f"  {key + ':':<17} {value}")
    return 0


def short_version(client: Client, args) -> int:
    """`docker --version` (`-v`): the client's version on one line, without asking the daemon."""
    from .. import __version__

    out(f"berth version {__version__}")
    return 0


def info(client: Client, args) -> int:
    """`docker info`: counts, storage, cgroups, the runtimes and how berth runs each,
    the host; the daemon's warnings on stderr, as docker prints them."""
    from .. import __version__

    if args.format:
        return _formatted(args.format, client.get("/info"))
    out(f"Client:\n Version:    {__version__}\n Host:       {client.host}\n")
    i = client.get("/info")
    out(f"Server:\n Containers: {i['Containers']}\n  Running: {i['ContainersRunning']}\n"
         f"  Paused: {i['ContainersPaused']}\n  Stopped: {i['ContainersStopped']}\n Images: {i['Images']}\n"
         f" Server Version: {i['ServerVersion']}\n Storage Driver: {i['Driver']}")
    for key, value in i.get("DriverStatus") or []:
        out(f"  {key}: {value}")
    out(f" Logging Driver: {i['LoggingDriver']}\n Cgroup Driver: {i['CgroupDriver']}\n"
         f" Cgroup Version: {i['CgroupVersion']}\n Runtimes: {' '.join(i['Runtimes'])}")
    for name, runtime in i["Runtimes"].items():
        how = runtime.get("berthPath")
        out(f"  {name}: {runtime['path']}" + (f" ({how})" if how else ""))
    out(f" Default Runtime: {i['DefaultRuntime']}\n Init Binary: {i['InitBinary']}\n"
         f" Kernel Version: {i['KernelVersion']}\n Operating System: {i['OperatingSystem']}\n"
         f" OSType: {i['OSType']}\n Architecture: {i['Architecture']}\n CPUs: {i['NCPU']}\n"
         f" Total Memory: {render.binary_size(i['MemTotal'])}\n Name: {i['Name']}\n ID: {i['ID']}\n"
         f" Berth Root Dir: {i['DockerRootDir']}\n Debug Mode: {str(i['Debug']).lower()}")
    registries = i.get("RegistryConfig") or {}
    insecure = [c["Name"] for c in (registries.get("IndexConfigs") or {}).values() if not c.get("Secure", True)]
    insecure += registries.get("InsecureRegistryCIDRs") or []
    if insecure:
        out(" Insecure Registries:\n" + "".join(f"  {name}\n" for name in insecure).rstrip("\n"))
    if registries.get("Mirrors"):
        out(" Registry Mirrors:\n" + "".join(f"  {mirror}\n" for mirror in registries["Mirrors"]).rstrip("\n"))
    out(f" Live Restore Enabled: {str(i.get('LiveRestoreEnabled', False)).lower()}")
    sys.stdout.flush()  # warnings come last, as docker's do
    for warning in i.get("Warnings") or []:
        err(warning if warning.startswith("WARNING") else f"WARNING: {warning}")
    return 0


def df(client: Client, args) -> int:
    """`docker system df`: what images, containers and volumes hold (`-v`: each of them)."""
    df = client.get("/system/df")
    if args.verbose:
        if args.format:
            raise UsageError("berth system df: --format with -v is not supported (the docker CLI's is)")
        _df_verbose(df)
        return 0
    images, containers = df.get("Images") or [], df.get("Containers") or []
    used_images = [i for i in images if i.get("Containers", 0) > 0]
    image_size = df.get("LayersSize", 0)
    reclaim_images = image_size - sum(i["Size"] - max(i.get("SharedSize", 0), 0) for i in used_images)
    container_size = sum(c.get("SizeRw", 0) for c in containers)
    reclaim_containers = sum(c.get("SizeRw", 0) for c in containers if c["State"] != "running")
    volumes = df.get("Volumes") or []
    used_volumes = [v for v in volumes if v["UsageData"]["RefCount"] > 0]
    volume_size = sum(v["UsageData"]["Size"] for v in volumes)

    caches = [c for c in df.get("BuildCache") or [] if not c.get("Shared")]
    cache_size = sum(c.get("Size", 0) for c in caches)

    def size(n: int) -> str:
        return render.size(n, 4)  # docker's df: go-units HumanSize, four digits

    def share(part: int, whole: int) -> str:
        return f"{size(part)} ({part * 100 // whole}%)" if whole else size(part)

    rows = [["Images", str(len(images)), str(len(used_images)), size(image_size), share(reclaim_images, image_size)],
            ["Containers", str(len(containers)), str(sum(c["State"] == "running" for c in containers)),
             size(container_size), share(reclaim_containers, container_size)],
            ["Local Volumes", str(len(volumes)), str(len(used_volumes)), size(volume_size),
             share(volume_size - sum(v["UsageData"]["Size"] for v in used_volumes), volume_size)],
            ["Build Cache", str(len(df.get("BuildCache") or [])), str(sum(bool(c.get("InUse")) for c in caches)),
             size(cache_size), size(cache_size - sum(c.get("Size", 0) for c in caches if c.get("InUse")))]]
    if args.format:
        keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
        print_listing([dict(zip(keys, row)) for row in rows], args.format,
                      ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], lambda row: [row[k] for k in keys])
        return 0
    out(render.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))
    return 0


def _df_verbose(df: dict) -> None:
    """`docker system df -v`: a table for each of images, containers, volumes and the
    build cache, in the docker CLI's columns and words."""
    from .containers import _ps_row
    from .images import _image_rows

    # as the docker CLI lists them: least recently used first (a record never used first of all)
    caches = sorted(df.get("BuildCache") or [], key=lambda c: _unix(c.get("LastUsedAt")))
    images = [{**row, "Containers": str(image.get("Containers", 0))}
              for image in df.get("Images") or [] for row in _image_rows(image, False)]
    out("Images space usage:\n\n" + render.table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
        [[r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"], r["SharedSize"], r["UniqueSize"],
          r["Containers"]] for r in images]))
    containers = [(_ps_row(c, False), c) for c in df.get("Containers") or []]
    out("\nContainers space usage:\n\n" + render.table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"],
        [[r["ID"], r["Image"], r["Command"], r["LocalVolumes"], render.size(c.get("SizeRw", 0)), r["RunningFor"],
          r["Status"], r["Names"]] for r, c in containers]))
    out("\nLocal Volumes space usage:\n\n" + render.table(
        ["VOLUME NAME", "LINKS", "SIZE"],
        [[v["Name"], str(v["UsageData"]["RefCount"]), render.size(v["UsageData"]["Size"], 4)]
         for v in df.get("Volumes") or []]))
    unshared = sum(c.get("Size", 0) for c in caches if not c.get("Shared"))  # as the summary's total
    out(f"\nBuild cache usage: {render.size(unshared, 4)}\n\n" + render.table(
        ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
        [[c["ID"][:12], c.get("Type", ""), render.size(c.get("Size", 0)), render.since(_unix(c.get("CreatedAt"))),
          render.since(_unix(c.get("LastUsedAt"))), str(c.get("UsageCount", 0)), str(bool(c.get("Shared"))).lower()]
         for c in caches]))


def _unix(stamp: str | None) -> float:
    """An RFC 3339 time of the daemon's as unix seconds (0 for none: before any other)."""
    return float(options.timestamp(stamp) or 0)


def _formatted(fmt: str, value: dict) -> int:
    """`--format` over one object: json, or a template line."""
    from .. import fastjson

    if fmt == "json":
        out(fastjson.dumps(value, ascii=False))
    else:
        checked_template(fmt, "template parsing error")
        out(rendered(fmt, value))
    return 0


def prune(client: Client, args) -> int:
    """`docker system prune [-a] [--volumes]`: stopped containers, unused networks, with
    `--volumes` unused volumes, dangling images (`-a`: every unused one), in that order
    so that what the containers held is unused by then, and the build cache."""
    reports = [containers.pruned(client, []), networks.pruned(client)]
    if args.volumes:
        reports.append(volumes.pruned(client, []))
    reports.append(images.pruned(client, [], args.all))
    reports.append(build.pruned(client))
    print_pruned(*reports)
    return 0


_EVENTS = Command("events", events, "stream events from the bus", (
    Opt(("--since",), "since", "value", "replay from (10m, RFC 3339, unix time)"),
    Opt(("--until",), "until", "value", "stop at"), FILTER, format_option("{{.Action}}")))
_INFO = Command("info", info, "daemon information", (format_option("{{.Driver}}"),))

COMMANDS = (
    Command("inspect", inspect, "low-level information on containers, images, networks, volumes or plugins", (
        inspect_format_option("{{.State.Status}}"),
        Opt(("--type",), "type", "value", ", ".join(INSPECTED) + ": only this kind")), (Arg("names", "many"),)),
    _EVENTS,
    Command("version", version, "client and daemon versions", (format_option("{{.Server.Version}}"),)),
    # docker's root flags `--version`/`-v`, as commands of their own (the grammar lists no
    # word that starts with a dash)
    Command("--version", short_version, "the client's version"),
    Command("-v", short_version, "the client's version"),
    _INFO,
    *management.COMMANDS,
    Group("system", "the daemon: disk use, events, information and clean-up", (
        Command("df", df, "what images, containers and volumes hold", (
            format_option("{{.Type}}"), Opt(("-v", "--verbose"), "verbose", "flag", "each image, container, volume "
                                            "and build cache record"))), _EVENTS, _INFO,
        Command("prune", prune, "remove stopped containers, unused networks and dangling images", (
            Opt(("-a", "--all"), "all", "flag", "every unused image, not only dangling ones"),
            Opt(("--volumes",), "volumes", "flag", "unused volumes too"), FORCE_NEVER_ASKS)))),
)
