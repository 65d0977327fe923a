"""What each `berth` command does: Docker Engine API calls and Docker-style output.

Every function takes the client and the parsed arguments and returns the exit status.
The same functions serve the one-shot CLI and the REPL.
"""

from __future__ import annotations

import json
import sys

from . import options, render
from .transport import Client, DaemonError, Demuxer, ref


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# --- containers -----------------------------------------------------------------


def create_body(args) -> dict:
    host = {"AutoRemove": bool(getattr(args, "rm", False)), "Init": True if args.init else None}
    if args.memory:
        host["Memory"] = options.ram_bytes(args.memory)
    if args.cpus:
        host["NanoCpus"] = options.nano_cpus(args.cpus)
    if args.cpu_shares:
        host["CpuShares"] = args.cpu_shares
    if args.pids_limit:
        host["PidsLimit"] = args.pids_limit
    if args.restart:
        host["RestartPolicy"] = options.restart_policy(args.restart)
    if args.runtime:
        host["Runtime"] = args.runtime
    if args.log_opt:
        host["LogConfig"] = {"Type": "json-file", "Config": options.key_values(args.log_opt, "log option")}
    body = {"Image": args.image, "Cmd": args.command or None, "Env": args.env or None,
            "WorkingDir": args.workdir or "", "User": args.user or "", "Hostname": args.hostname or "",
            "Labels": options.key_values(args.label, "label"), "HostConfig": host,
            "AttachStdout": not getattr(args, "detach", False), "AttachStderr": not getattr(args, "detach", False)}
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint]
    if args.no_healthcheck:
        body["Healthcheck"] = {"Test": ["NONE"]}
    elif args.health_cmd:
        body["Healthcheck"] = {
            "Test": ["CMD-SHELL", args.health_cmd],
            **{field: options.duration_ns(value) for field, value in (
                ("Interval", args.health_interval), ("Timeout", args.health_timeout),
                ("StartPeriod", args.health_start_period)) if value},
            **({"Retries": args.health_retries} if args.health_retries else {})}
    return body


def _create(client: Client, args) -> str:
    try:
        return client.call("POST", "/containers/create", {"name": args.name}, create_body(args))["Id"]
    except DaemonError as exc:
        if exc.status == 404 and "No such image" in exc.message:
            _err(f"Unable to find image '{args.image if ':' in args.image else args.image + ':latest'}' locally")
        raise


def create(client: Client, args) -> int:
    _out(_create(client, args))
    return 0


def _start_failure_status(message: str) -> int:
    """The docker CLI's rule: 127 for a missing executable, 126 for one that cannot run."""
    if "executable file not found" in message or "no such file or directory" in message.lower():
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def run(client: Client, args) -> int:
    try:
        cid = _create(client, args)
    except DaemonError as exc:
        _err(f"berth: Error response from daemon: {exc.message}")
        return 125
    if args.detach:
        try:
            client.call("POST", f"/containers/{cid}/start")
        except DaemonError as exc:
            _err(f"berth: Error response from daemon: {exc.message}")
            return _start_failure_status(exc.message)
        _out(cid)
        return 0
    # As `docker run`: attach and wait before start, so no output and no exit is missed.
    attach = client.hijack(f"/containers/{cid}/attach", {"stream": 1, "stdout": 1, "stderr": 1})
    waiter = client.stream("POST", f"/containers/{cid}/wait", {"condition": "removed" if args.rm else "next-exit"})
    try:
        client.call("POST", f"/containers/{cid}/start")
    except DaemonError as exc:
        attach.close()
        _err(f"berth: Error response from daemon: {exc.message}")
        return _start_failure_status(exc.message)
    demux = Demuxer()
    with attach:
        while data := attach.recv(1 << 16):
            demux.feed(data)
    result = json.loads(waiter.read() or b"{}")
    return int(result.get("StatusCode", 125))


def start(client: Client, args) -> int:
    status = 0
    for name in args.containers:
        if args.attach:
            return run_attached_start(client, name)
        try:
            client.call("POST", f"/containers/{ref(name)}/start")
            _out(name)
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def run_attached_start(client: Client, name: str) -> int:
    attach = client.hijack(f"/containers/{ref(name)}/attach", {"stream": 1, "stdout": 1, "stderr": 1})
    waiter = client.stream("POST", f"/containers/{ref(name)}/wait", {"condition": "next-exit"})
    client.call("POST", f"/containers/{ref(name)}/start")
    demux = Demuxer()
    with attach:
        while data := attach.recv(1 << 16):
            demux.feed(data)
    return int(json.loads(waiter.read() or b"{}").get("StatusCode", 1))


def _each(client: Client, names: list[str], method: str, endpoint: str, query=None) -> int:
    """Apply one action to several containers, printing each name, as docker does."""
    status = 0
    for name in names:
        try:
            client.call(method, endpoint.format(ref(name)), query)
            _out(name)
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def stop(client: Client, args) -> int:
    return _each(client, args.containers, "POST", "/containers/{}/stop", {"t": args.time})


def restart(client: Client, args) -> int:
    return _each(client, args.containers, "POST", "/containers/{}/restart", {"t": args.time})


def kill(client: Client, args) -> int:
    return _each(client, args.containers, "POST", "/containers/{}/kill", {"signal": args.signal})


def rm(client: Client, args) -> int:
    return _each(client, args.containers, "DELETE", "/containers/{}", {"force": int(args.force), "v": int(args.volumes)})


def wait(client: Client, args) -> int:
    status = 0
    for name in args.containers:
        try:
            result = json.loads(client.stream("POST", f"/containers/{ref(name)}/wait").read())
            _out(str(result["StatusCode"]))
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def _ps_row(c: dict, no_trunc: bool) -> dict:
    command = c["Command"] if no_trunc else render.truncate(c["Command"], 20)
    return {"ID": c["Id"] if no_trunc else c["Id"][:12], "Image": c["Image"], "Command": f'"{command}"',
            "RunningFor": render.since(c["Created"]), "Status": c["Status"], "Ports": "",
            "Names": ",".join(n.lstrip("/") for n in c["Names"]), "State": c["State"],
            "Labels": ",".join(f"{k}={v}" for k, v in (c.get("Labels") or {}).items()), "CreatedAt": c["Created"]}


def ps(client: Client, args) -> int:
    found = client.get("/containers/json", all=int(args.all), filters=options.filters(args.filter))
    rows = [_ps_row(c, args.no_trunc) for c in found]
    if args.quiet:
        for row in rows:
            _out(row["ID"])
    elif args.format == "json":
        for row in rows:
            _out(json.dumps(row))
    elif args.format:
        for row in rows:
            _out(render.template(args.format, row))
    else:
        keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
        headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        _out(render.table(headers, [[r[k] for k in keys] for r in rows]))
    return 0


def inspect(client: Client, args) -> int:
    results, status = [], 0
    for name in args.names:
        for endpoint in ([f"/containers/{ref(name)}/json"] if args.type != "image" else []) + \
                        ([f"/images/{ref(name)}/json"] if args.type != "container" else []):
            try:
                results.append(client.get(endpoint))
                break
            except DaemonError as exc:
                if exc.status != 404:
                    raise
        else:
            _err(f"Error: No such object: {name}")
            status = 1
    if args.format:
        for item in results:
            _out(render.template(args.format, item))
    else:
        _out(json.dumps(results, indent=4))
    return status


def logs(client: Client, args) -> int:
    info = client.get(f"/containers/{ref(args.container)}/json")
    query = {"stdout": 1, "stderr": 1, "follow": int(args.follow), "timestamps": int(args.timestamps),
             "tail": args.tail, "since": options.timestamp(args.since), "until": options.timestamp(args.until)}
    resp = client.stream("GET", f"/containers/{info['Id']}/logs", query)
    demux = Demuxer()
    while data := resp.read1(1 << 16):
        demux.feed(data)
    return 0


# --- images -------------------------------------------------------------------------


def images(client: Client, args) -> int:
    filters = list(args.filter) + ([f"reference={args.reference}"] if args.reference else [])
    found = client.get("/images/json", all=int(args.all), filters=options.filters(filters))
    rows = []
    for image in found:
        for tag in image["RepoTags"] or ["<none>:<none>"]:
            repo, _, name = tag.rpartition(":")
            rows.append([repo, name, image["Id"] if args.no_trunc else render.short_id(image["Id"]),
                         render.since(image["Created"]), render.size(image["Size"])])
    if args.quiet:
        for row in dict.fromkeys(r[2] for r in rows):
            _out(row)
    else:
        _out(render.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))
    return 0


def tag(client: Client, args) -> int:
    repo, _, name = args.target.rpartition(":") if ":" in args.target.rsplit("/", 1)[-1] else (args.target, "", "")
    client.call("POST", f"/images/{ref(args.source)}/tag", {"repo": repo, "tag": name or "latest"})
    return 0


def rmi(client: Client, args) -> int:
    status = 0
    for name in args.images:
        try:
            for entry in client.call("DELETE", f"/images/{ref(name)}", {"force": int(args.force)}) or []:
                for key, value in entry.items():
                    _out(f"{key}: {value}")
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def import_(client: Client, args) -> int:
    source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    with source:
        query = {"fromSrc": "-", "repo": args.reference, "changes": args.change or None, "message": args.message}
        resp = client.stream("POST", "/images/create", query, body=source, headers={"Content-Type": "application/x-tar"})
        for line in resp.read().splitlines():
            message = json.loads(line)
            if "error" in message:
                _err(message["error"])
                return 1
            _out(message.get("status", ""))
    return 0


def history(client: Client, args) -> int:
    rows = client.get(f"/images/{ref(args.image)}/history")
    if args.quiet:
        for row in rows:
            _out(row["Id"] if args.no_trunc else render.short_id(row["Id"]) if row["Id"] != "<missing>" else row["Id"])
        return 0
    table = [[row["Id"] if args.no_trunc or row["Id"] == "<missing>" else render.short_id(row["Id"]),
              render.since(row["Created"]), row["CreatedBy"] if args.no_trunc else render.truncate(row["CreatedBy"], 45),
              render.size(row["Size"]), row["Comment"]] for row in rows]
    _out(render.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table))
    return 0


# --- system -------------------------------------------------------------------------


def events(client: Client, args) -> int:
    query = {"since": options.timestamp(args.since), "until": options.timestamp(args.until),
             "filters": options.filters(args.filter)}
    resp = client.stream("GET", "/events", query)
    while line := resp.readline():
        if not line.strip():
            continue
        event = json.loads(line)
        if args.format == "json" or (args.format or "").strip() == "{{json .}}":
            _out(line.decode().strip())
        elif args.format:
            _out(render.template(args.format, event))
        else:
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(event["Actor"]["Attributes"].items()))
            _out(f"{render.local_time(event['timeNano'])} {event['Type']} {event['Action']} {event['Actor']['ID']} ({attrs})")
        sys.stdout.flush()
    return 0


def version(client: Client, args) -> int:
    from . import __version__

    server = client.get("/version")
    _out(f"Client:\n Version:     {__version__}\n API version: 1.41\n")
    _out(f"Server: berth\n Engine:\n  Version:     {server['Version']}\n  API version: {server['ApiVersion']} "
         f"(minimum version {server['MinAPIVersion']})\n  Runtime:     {server['GoVersion']}\n"
         f"  OS/Arch:     {server['Os']}/{server['Arch']}\n  Kernel:      {server['KernelVersion']}")
    for component in server["Components"][1:]:
        _out(f" {component['Name']}:\n  Path:        {component['Details'].get('Path', '')}")
    return 0


def info(client: Client, args) -> int:
    i = client.get("/info")
    _out("Server:")
    _out(f" Containers: {i['Containers']}\n  Running: {i['ContainersRunning']}\n  Paused: {i['ContainersPaused']}\n"
         f"  Stopped: {i['ContainersStopped']}\n Images: {i['Images']}\n Server Version: {i['ServerVersion']}\n"
         f" Storage Driver: {i['Driver']}\n Logging Driver: {i['LoggingDriver']}\n Cgroup Driver: {i['CgroupDriver']}\n"
         f" Cgroup Version: {i['CgroupVersion']}")
    _out(" Runtimes: " + " ".join(i["Runtimes"]))
    for name, runtime in i["Runtimes"].items():
        _out(f"  {name}: {runtime['path']} ({runtime.get('berthPath', 'direct')})")
    _out(f" Default Runtime: {i['DefaultRuntime']}\n Init Binary: {i['InitBinary']}\n Kernel Version: {i['KernelVersion']}\n"
         f" Operating System: {i['OperatingSystem']}\n CPUs: {i['NCPU']}\n Total Memory: {render.size(i['MemTotal'])}\n"
         f" Name: {i['Name']}\n Berth Root Dir: {i['DockerRootDir']}\n Debug Mode: {str(i['Debug']).lower()}")
    for warning in i.get("Warnings") or []:
        _err(f"WARNING: {warning}")
    return 0


def plugin(client: Client, args) -> int:
    if args.action == "ls":
        rows = [[p["Name"], p["Config"]["Description"], str(p["Enabled"]).lower(), p["BerthStatus"]["Status"],
                 str(p["BerthStatus"]["Restarts"]), p["BerthStatus"]["LastError"]] for p in client.get("/plugins")]
        _out(render.table(["NAME", "DESCRIPTION", "ENABLED", "STATUS", "RESTARTS", "LAST ERROR"], rows))
        return 0
    for name in args.names:
        client.call("POST", f"/plugins/{ref(name)}/{args.action}")
        _out(name)
    return 0
