"""What each `berth` command does: Docker Engine API calls and Docker-style output.

Every function takes the client and the parsed arguments and returns the exit status.
The same functions serve the one-shot CLI and the REPL.
"""

from __future__ import annotations

import os
import sys

from . import fastjson, options, render
from .grammar import UsageError
from .transport import Client, DaemonError, Demuxer, Response, ref


def _out(text: str = "") -> None:
    """A line on stdout."""
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    """A line on stderr."""
    sys.stderr.write(text + "\n")


# --- containers -----------------------------------------------------------------


def _limits(args) -> dict:
    """The HostConfig fields of `-m`, `--cpus`, `-c`, `--pids-limit`, `--restart` (create, run, update)."""
    found = {}
    if args.memory:
        found["Memory"] = options.ram_bytes(args.memory)
    if args.cpus:
        found["NanoCpus"] = options.nano_cpus(args.cpus)
    if args.cpu_shares:
        found["CpuShares"] = args.cpu_shares
    if args.pids_limit:
        found["PidsLimit"] = args.pids_limit
    if args.restart:
        found["RestartPolicy"] = options.restart_policy(args.restart)
    return found


def create_body(args) -> dict:
    """The `POST /containers/create` body for `run`/`create` options."""
    host = {"AutoRemove": bool(getattr(args, "rm", False)), "Init": True if args.init else None, **_limits(args)}
    if args.runtime:
        host["Runtime"] = args.runtime
    if args.log_opt:
        host["LogConfig"] = {"Type": "json-file", "Config": options.key_values(args.log_opt, "log option")}
    # as the docker CLI: `-v SRC:DST[:MODE]` is a bind, a lone `-v /path` an anonymous volume
    if any(":" in v for v in args.volume):
        host["Binds"] = [v for v in args.volume if ":" in v]
    if args.mount:
        host["Mounts"] = [mount_spec(m) for m in args.mount]
    body = {"Image": args.image, "Cmd": args.command or None, "Env": args.env or None,
            "WorkingDir": args.workdir or "", "User": args.user or "", "Hostname": args.hostname or "",
            "Labels": options.key_values(args.label, "label"), "HostConfig": host,
            "AttachStdout": not getattr(args, "detach", False), "AttachStderr": not getattr(args, "detach", False),
            "Tty": bool(args.tty), "OpenStdin": bool(args.interactive)}
    exposed, bindings = options.publish(args.publish)
    for spec in args.expose:
        exposed.update(options.publish([spec.partition(":")[2] or spec])[0])
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        host["PortBindings"] = bindings
    if args.publish_all:
        host["PublishAllPorts"] = True
    if args.network:
        host["NetworkMode"] = args.network
    if args.network_alias:
        body["NetworkingConfig"] = {"EndpointsConfig": {args.network or "bridge": {"Aliases": args.network_alias}}}
    if args.interactive and not getattr(args, "detach", False):
        body["AttachStdin"] = body["StdinOnce"] = True  # docker's `run -i`: stdin closes with ours
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint]
    if any(":" not in v for v in args.volume):
        body["Volumes"] = {v: {} for v in args.volume if ":" not in v}
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


_MOUNT_TYPES = ("volume", "bind", "tmpfs")


def mount_spec(text: str) -> dict:
    """`--mount type=volume,source=v,target=/p,readonly,…` → a HostConfig.Mounts entry,
    with the docker CLI's keys and aliases (src, dst/destination, ro, volume-opt, …)."""

    def bad(why: str) -> UsageError:
        return UsageError(f'invalid argument "{text}" for "--mount" flag: {why}')

    def flag(value: str | None) -> bool:
        if value is None or value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
        raise bad(f"invalid value for boolean: {value}")

    mount: dict = {"Type": "volume"}
    volume: dict = {}
    for field in filter(None, text.split(",")):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            mount["ReadOnly"] = flag(value if eq else None)
        elif key == "volume-nocopy":
            volume["NoCopy"] = flag(value if eq else None)
        elif not eq:
            raise bad(f"invalid field '{field}' must be a key=value pair")
        elif key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-label":
            name, _, label = value.partition("=")
            volume.setdefault("Labels", {})[name] = label
        elif key == "volume-opt":
            name, _, opt = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = opt
        elif key == "tmpfs-size":
            mount.setdefault("TmpfsOptions", {})["SizeBytes"] = options.ram_bytes(value)
        elif key == "tmpfs-mode":
            try:
                mount.setdefault("TmpfsOptions", {})["Mode"] = int(value, 8)
            except ValueError:
                raise bad(f"invalid value for {key}: {value}") from None
        else:
            raise bad(f"unexpected key '{key}' in '{field}'")
    if volume:
        mount["VolumeOptions"] = volume
    return mount


def _create(client: Client, args) -> str:
    """Create the container; its id. An unknown image is reported as docker does before
    it would pull (berth does not pull)."""
    try:
        return client.call("POST", "/containers/create", {"name": args.name}, create_body(args))["Id"]
    except DaemonError as exc:
        if exc.status == 404 and "No such image" in exc.message:
            tagged = ":" in args.image.rsplit("/", 1)[-1] or "@" in args.image  # a registry port is no tag
            _err(f"Unable to find image '{args.image if tagged else args.image + ':latest'}' locally")
        raise


def create(client: Client, args) -> int:
    """`docker create`: prints the new container's id."""
    _out(_create(client, args))
    return 0


def _start_failure_status(message: str) -> int:
    """The docker CLI's rule: 127 for a missing executable, 126 for one that cannot run."""
    if "executable file not found" in message or "no such file or directory" in message.lower():
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _copy_output(resp: Response, tty: bool) -> None:
    """A container's output to ours as it comes: raw for a TTY, else demultiplexed."""
    if tty:
        while data := resp.read1():
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return
    demux = Demuxer()
    while data := resp.read1():
        demux.feed(data)


def _exit_status(waiter: Response) -> int:
    """The container's status from a `wait` answer; 125 when the wait itself failed."""
    result = fastjson.loads(waiter.read() or b'{"Error": {"Message": "the daemon ended the wait without a status"}}')
    if result.get("Error"):
        _err(f"Error waiting for container: {result['Error'].get('Message', '')}")
        return 125
    return int(result["StatusCode"])


def _attach_start_wait(client: Client, cid: str, condition: str, tty: bool = False, stdin: bool = False,
                       detach_keys: str | None = None) -> int:
    """Attach, wait, then start, in the docker CLI's order so that no output and no exit is
    missed; copy the output (and with `stdin`, our stdin) until the daemon closes the
    stream; return the exit status (0 when the detach keys left it running). A start
    error is raised, after the wait for an auto-removed container has ended (as docker
    does, so the container is gone when the command returns)."""
    query = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": int(stdin), "detachKeys": detach_keys}
    with client.hijack(f"/containers/{cid}/attach", query) as attach, \
            client.stream("POST", f"/containers/{cid}/wait", {"condition": condition}) as waiter:
        try:
            client.call("POST", f"/containers/{cid}/start")
        except DaemonError:
            if condition == "removed":
                waiter.read()
            raise
        if stdin or tty:
            from .interactive import relay

            relay(attach, tty=tty, stdin=stdin, resize=_resizer(client, f"/containers/{cid}/resize"))
            if client.get(f"/containers/{cid}/json")["State"]["Running"]:
                return 0  # detached: the container runs on
        else:
            _copy_output(attach, tty)
        return _exit_status(waiter)


def _resizer(client: Client, endpoint: str):
    return lambda height, width: client.call("POST", endpoint, {"h": height, "w": width})


def run(client: Client, args) -> int:
    """`docker run`: exit 125 when create fails, 126/127/125 when start fails, else the
    container's own status (`-d`: print the id and return)."""
    try:
        cid = _create(client, args)
    except DaemonError as exc:
        _err(f"berth: Error response from daemon: {exc.message}")
        return 125
    try:
        if not args.detach:
            return _attach_start_wait(client, cid, "removed" if args.rm else "next-exit", bool(args.tty),
                                      bool(args.interactive), args.detach_keys)
        client.call("POST", f"/containers/{cid}/start")
    except DaemonError as exc:
        _err(f"berth: Error response from daemon: {exc.message}")
        return _start_failure_status(exc.message)
    _out(cid)
    return 0


def start(client: Client, args) -> int:
    """`docker start`; with `-a`, the output and the container's exit status."""
    if not args.attach:
        return _each(client, args.containers, "POST", "/containers/{}/start")
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    info = client.get(f"/containers/{ref(args.containers[0])}/json")
    return _attach_start_wait(client, info["Id"], "next-exit", info["Config"].get("Tty", False),
                              bool(args.interactive) and info["Config"].get("OpenStdin", False), args.detach_keys)


def attach(client: Client, args) -> int:
    """`docker attach`: the running container's output, our stdin into it (unless
    --no-stdin); its exit status, or 0 after the detach keys."""
    info = client.get(f"/containers/{ref(args.container)}/json")
    if not info["State"]["Running"]:
        raise UsageError("You cannot attach to a stopped container, start it first")
    if info["State"]["Paused"]:
        raise UsageError("You cannot attach to a paused container, unpause it first")
    cid, tty = info["Id"], info["Config"].get("Tty", False)
    stdin = info["Config"].get("OpenStdin", False) and not args.no_stdin
    from .interactive import relay

    query = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": int(stdin), "detachKeys": args.detach_keys}
    with client.stream("POST", f"/containers/{cid}/wait", {"condition": "next-exit"}) as waiter, \
            client.hijack(f"/containers/{cid}/attach", query) as stream:
        relay(stream, tty=tty, stdin=stdin, resize=_resizer(client, f"/containers/{cid}/resize"))
        if client.get(f"/containers/{cid}/json")["State"]["Running"]:
            return 0
        return _exit_status(waiter)


def exec_(client: Client, args) -> int:
    """`docker exec`: a process in a running container; its exit status (`-d`: none)."""
    body = {"Cmd": args.command, "Env": args.env or None, "WorkingDir": args.workdir or "", "User": args.user or "",
            "Tty": bool(args.tty), "AttachStdin": bool(args.interactive) and not args.detach,
            "AttachStdout": not args.detach, "AttachStderr": not args.detach, "DetachKeys": args.detach_keys or ""}
    if not args.command:
        raise UsageError("`berth exec` requires a CONTAINER and a COMMAND")
    exec_id = client.call("POST", f"/containers/{ref(args.container)}/exec", None, body)["Id"]
    if args.detach:
        client.call("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": bool(args.tty)})
        return 0
    from .interactive import relay

    with client.hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": bool(args.tty)}) as stream:
        relay(stream, tty=bool(args.tty), stdin=bool(args.interactive),
              resize=_resizer(client, f"/exec/{exec_id}/resize") if args.tty else None)
    return int(client.get(f"/exec/{exec_id}/json")["ExitCode"] or 0)


def _each(client: Client, names: list[str], method: str, endpoint: str, query=None, body=None) -> int:
    """Apply one action to several containers, printing each name, as docker does."""
    status = 0
    for name in names:
        try:
            client.call(method, endpoint.format(ref(name)), query, body)
            _out(name)
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def stop(client: Client, args) -> int:
    """`docker stop [-t N]`: SIGTERM, then SIGKILL after N seconds (the daemon's default 10)."""
    return _each(client, args.containers, "POST", "/containers/{}/stop", {"t": args.time})


def restart(client: Client, args) -> int:
    """`docker restart [-t N]`."""
    return _each(client, args.containers, "POST", "/containers/{}/restart", {"t": args.time})


def pause(client: Client, args) -> int:
    """`docker pause`: freeze every process of the containers."""
    return _each(client, args.containers, "POST", "/containers/{}/pause")


def unpause(client: Client, args) -> int:
    """`docker unpause`."""
    return _each(client, args.containers, "POST", "/containers/{}/unpause")


def kill(client: Client, args) -> int:
    """`docker kill [-s SIGNAL]` (default KILL)."""
    return _each(client, args.containers, "POST", "/containers/{}/kill", {"signal": args.signal})


def rm(client: Client, args) -> int:
    """`docker rm [-f] [-v]`."""
    return _each(client, args.containers, "DELETE", "/containers/{}", {"force": int(args.force), "v": int(args.volumes)})


def wait(client: Client, args) -> int:
    """`docker wait`: each container's exit code once it has stopped."""
    status = 0
    for name in args.containers:
        try:
            result = fastjson.loads(client.stream("POST", f"/containers/{ref(name)}/wait").read())
            _out(str(result["StatusCode"]))
        except DaemonError as exc:
            _err(f"Error response from daemon: {exc.message}")
            status = 1
    return status


def _ps_row(c: dict, no_trunc: bool) -> dict:
    """A container list entry as `docker ps` fields (the names `--format` templates use)."""
    command = c["Command"] if no_trunc else render.truncate(c["Command"], 20)
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
    return {"ID": c["Id"] if no_trunc else c["Id"][:12], "Image": c["Image"], "Command": render.go_quote(command),
            "CreatedAt": render.go_time(c["Created"]), "RunningFor": render.since(c["Created"]),
            "Status": c["Status"], "State": c["State"], "Ports": render.ports(c.get("Ports")),
            # a name holding another `/` is a legacy link, which docker hides
            "Names": ",".join(n[1:] for n in c["Names"] if "/" not in n[1:]),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.get("Labels") or {}).items())),
            "Mounts": ",".join(m if no_trunc else render.truncate(m, 15) for m in mounts),
            "LocalVolumes": str(sum(m.get("Driver") == "local" for m in c.get("Mounts") or [])),
            "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}))), "Size": ""}


def ps(client: Client, args) -> int:
    """`docker ps`: the table, `-q` ids, or one line per container by `--format`."""
    found = client.get("/containers/json", all=int(args.all), filters=options.filters(args.filter))
    rows = [_ps_row(c, args.no_trunc) for c in found]
    if args.quiet:
        for row in rows:
            _out(row["ID"])
    elif args.format == "json":
        for row in rows:
            _out(fastjson.dumps(row, ascii=False, sort_keys=True))
    elif args.format:
        for row in rows:
            _out(render.template(args.format, row))
    else:
        keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
        headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        _out(render.table(headers, [[r[k] for k in keys] for r in rows]))
    return 0


def inspect(client: Client, args) -> int:
    """`docker inspect`: each name as a container, else as an image; a JSON array, or one
    template line per object."""
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
    if args.format and args.format != "json":
        for item in results:
            _out(render.template(args.format, item))
    else:
        import json  # indented output only here; fastjson is compact

        _out(json.dumps(results, indent=4, ensure_ascii=False))
    return status


def logs(client: Client, args) -> int:
    """`docker logs`: stdout frames to stdout, stderr frames to stderr."""
    info = client.get(f"/containers/{ref(args.container)}/json")  # for its id and Tty, as docker
    query = {"stdout": 1, "stderr": 1, "follow": int(args.follow), "timestamps": int(args.timestamps),
             "tail": args.tail, "since": options.timestamp(args.since), "until": options.timestamp(args.until)}
    with client.stream("GET", f"/containers/{info['Id']}/logs", query) as resp:
        _copy_output(resp, info["Config"].get("Tty", False))
    return 0


# --- images -------------------------------------------------------------------------


def images(client: Client, args) -> int:
    """`docker images`: one row per tag (`<none>` for untagged images), newest first."""
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
    """`docker tag SOURCE TARGET` (TARGET's tag defaults to latest; a registry port is no tag)."""
    repo, _, name = args.target.rpartition(":") if ":" in args.target.rsplit("/", 1)[-1] else (args.target, "", "")
    client.call("POST", f"/images/{ref(args.source)}/tag", {"repo": repo, "tag": name or "latest"})
    return 0


def rmi(client: Client, args) -> int:
    """`docker rmi`: `Untagged: …` / `Deleted: …` per image."""
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
    """`docker import FILE|- [REPO[:TAG]]`: the tar streamed as the body; prints the new id."""
    from .transfer import upload_source

    source, progress = upload_source(args.file, "importing")
    try:
        query = {"fromSrc": "-", "repo": args.reference, "changes": args.change or None, "message": args.message}
        resp = client.stream("POST", "/images/create", query, body=source, headers={"Content-Type": "application/x-tar"})
        progress.finish()
        return _messages(resp)
    finally:
        if source.raw is not sys.stdin.buffer:
            source.raw.close()


def _messages(resp: Response) -> int:
    """Print a JSON message stream (import, load) as the docker CLI does; 1 on an error."""
    for line in resp.read().splitlines():
        if not line.strip():
            continue
        message = fastjson.loads(line)
        if "error" in message:
            _err(message["error"])
            return 1
        if "stream" in message:
            sys.stdout.write(message["stream"])
        elif message.get("status"):
            _out(message["status"])
    return 0


def history(client: Client, args) -> int:
    """`docker history`: IMAGE CREATED CREATED-BY SIZE COMMENT, newest layer first."""
    def image_id(row: dict) -> str:
        return row["Id"] if args.no_trunc or row["Id"] == "<missing>" else render.short_id(row["Id"])

    rows = client.get(f"/images/{ref(args.image)}/history")
    if args.quiet:
        for row in rows:
            _out(image_id(row))
        return 0
    table = []
    for row in rows:
        created_by = row["CreatedBy"].replace("\t", " ")
        table.append([image_id(row), render.since(row["Created"]),
                      created_by if args.no_trunc else render.truncate(created_by, 45),
                      render.size(row["Size"]), row["Comment"]])
    _out(render.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table))
    return 0


# --- system -------------------------------------------------------------------------


def events(client: Client, args) -> int:
    """`docker events`: one line per event as it happens, or the journal between
    `--since` and `--until`."""
    query = {"since": options.timestamp(args.since), "until": options.timestamp(args.until),
             "filters": options.filters(args.filter)}
    as_json = args.format == "json" or (args.format or "").strip() == "{{json .}}"
    with client.stream("GET", "/events", query) as resp:
        while line := resp.readline():
            if not line.strip():
                continue
            if as_json:
                _out(line.decode().strip())
            elif args.format:
                _out(render.template(args.format, fastjson.loads(line)))
            else:
                _out(render.event_line(fastjson.loads(line)))
            sys.stdout.flush()  # a stream: show each event when it happens
    return 0


_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}


def _platform() -> str:
    """`linux/amd64`, in Go's architecture names like the daemon's `Os/Arch`."""
    machine = os.uname().machine
    return f"{sys.platform}/{_GO_ARCH.get(machine, machine)}"


def version(client: Client, args) -> int:
    """`docker version`: the client, then the daemon and the runtimes it drives."""
    from . import __version__

    _out(f"Client:\n Version:           {__version__}\n API version:       1.41\n"
         f" Python version:    {sys.version.split()[0]}\n OS/Arch:           {_platform()}\n Host:              {client.host}\n")
    server = client.get("/version")
    _out(f"Server: berth\n Engine:\n  Version:          {server['Version']}\n"
         f"  API version:      {server['ApiVersion']} (minimum version {server['MinAPIVersion']})\n"
         f"  Python version:   {server['GoVersion']}\n  OS/Arch:          {server['Os']}/{server['Arch']}\n"
         f"  Kernel:           {server['KernelVersion']}")
    for component in server["Components"][1:]:
        _out(f" {component['Name']}:")
        if component.get("Version"):
            _out(f"  Version:          {component['Version']}")
        for key, value in (component.get("Details") or {}).items():
            _out(f"  {key + ':':<17} {value}")
    return 0


def info(client: Client, args) -> int:
    """`docker info`: counts, storage, cgroups, the runtimes and how berth runs each,
    the host; the daemon's warnings on stderr, as docker prints them."""
    from . import __version__

    _out(f"Client:\n Version:    {__version__}\n Host:       {client.host}\n")
    i = client.get("/info")
    _out(f"Server:\n Containers: {i['Containers']}\n  Running: {i['ContainersRunning']}\n"
         f"  Paused: {i['ContainersPaused']}\n  Stopped: {i['ContainersStopped']}\n Images: {i['Images']}\n"
         f" Server Version: {i['ServerVersion']}\n Storage Driver: {i['Driver']}")
    for key, value in i.get("DriverStatus") or []:
        _out(f"  {key}: {value}")
    _out(f" Logging Driver: {i['LoggingDriver']}\n Cgroup Driver: {i['CgroupDriver']}\n"
         f" Cgroup Version: {i['CgroupVersion']}\n Runtimes: {' '.join(i['Runtimes'])}")
    for name, runtime in i["Runtimes"].items():
        how = runtime.get("berthPath")
        _out(f"  {name}: {runtime['path']}" + (f" ({how})" if how else ""))
    _out(f" Default Runtime: {i['DefaultRuntime']}\n Init Binary: {i['InitBinary']}\n"
         f" Kernel Version: {i['KernelVersion']}\n Operating System: {i['OperatingSystem']}\n"
         f" OSType: {i['OSType']}\n Architecture: {i['Architecture']}\n CPUs: {i['NCPU']}\n"
         f" Total Memory: {render.binary_size(i['MemTotal'])}\n Name: {i['Name']}\n ID: {i['ID']}\n"
         f" Berth Root Dir: {i['DockerRootDir']}\n Debug Mode: {str(i['Debug']).lower()}")
    sys.stdout.flush()  # warnings come last, as docker's do
    for warning in i.get("Warnings") or []:
        _err(warning if warning.startswith("WARNING") else f"WARNING: {warning}")
    return 0


def print_listing(items: list[dict], fmt: str | None, headers: list[str], cells, quiet=None) -> None:
    """A listing as docker prints one: `quiet(item)` per line (`-q`), a JSON object per line
    (`--format json`), a template per line, or the table of `headers` and `cells(item)`."""
    for item in items if quiet or fmt else ():
        if quiet:
            _out(quiet(item))
        elif fmt == "json":
            _out(fastjson.dumps(item, ascii=False, sort_keys=True))
        else:
            _out(render.template(fmt, item))
    if not (quiet or fmt):
        _out(render.table(headers, [cells(item) for item in items]))


def print_pruned(title: str, deleted: list[str], reclaimed: int) -> None:
    """A prune's report as docker prints it: what went under `title`, then the space."""
    if deleted:
        _out(title)
        for item in deleted:
            _out(item)
        _out()
    _out(f"Total reclaimed space: {render.size(reclaimed)}")


def volume(client: Client, args) -> int:
    """`berth volume create|ls|inspect|rm|prune …`, as `docker volume`."""
    from .cli import VOLUME_ACTIONS
    from .grammar import parse

    cmd, sub = parse(VOLUME_ACTIONS, [args.action, *args.volumes])
    if cmd.name == "create":
        body = {"Name": sub.name or "", "Driver": sub.driver or "local",
                "DriverOpts": options.key_values(sub.opt, "driver option"), "Labels": options.key_values(sub.label, "label")}
        _out(client.call("POST", "/volumes/create", None, body)["Name"])
        return 0
    if cmd.name == "ls":
        found = client.get("/volumes", filters=options.filters(sub.filter)).get("Volumes") or []
        print_listing(found, sub.format, ["DRIVER", "VOLUME NAME"], lambda v: [v["Driver"], v["Name"]],
                      (lambda v: v["Name"]) if sub.quiet else None)
        return 0
    if cmd.name == "inspect":
        results, status = [], 0
        for name in sub.names:
            try:
                results.append(client.get(f"/volumes/{ref(name)}"))
            except DaemonError as exc:
                _err(f"Error response from daemon: {exc.message}")
                status = 1
        if sub.format:
            for item in results:
                _out(render.template(sub.format, item))
        else:
            import json  # indented output only here; fastjson is compact

            _out(json.dumps(results, indent=4, ensure_ascii=False))
        return status
    if cmd.name == "rm":
        return _each(client, sub.names, "DELETE", "/volumes/{}", {"force": int(sub.force)})
    found = client.call("POST", "/volumes/prune", {"filters": options.filters(sub.filter + (["all=true"] if sub.all else []))})
    print_pruned("Deleted Volumes:", found.get("VolumesDeleted") or [], found.get("SpaceReclaimed", 0))
    return 0


def plugin(client: Client, args) -> int:
    """`berth plugin ls|enable|disable|reload`: the daemon's plugins."""
    if args.action == "ls":
        rows = [[p["Name"], p["Config"]["Description"], str(p["Enabled"]).lower(), p["BerthStatus"]["Status"],
                 str(p["BerthStatus"]["Restarts"]), p["BerthStatus"]["LastError"]] for p in client.get("/plugins")]
        _out(render.table(["NAME", "DESCRIPTION", "ENABLED", "STATUS", "RESTARTS", "LAST ERROR"], rows))
        return 0
    for name in args.names:
        client.call("POST", f"/plugins/{ref(name)}/{args.action}")
        _out(name)
    return 0


# --- acting on running containers --------------------------------------------------


def top(client: Client, args) -> int:
    """`docker top CONTAINER [ps OPTIONS]`: the table `ps` prints, for its processes."""
    query = {"ps_args": " ".join(args.ps_args)} if args.ps_args else None
    found = client.call("GET", f"/containers/{ref(args.container)}/top", query)
    _out(render.table(found["Titles"], found["Processes"]))
    return 0


def _stats_row(reading: dict, previous: dict | None) -> list[str]:
    """One line of docker's stats table; CPU % from this reading and the one before."""
    cpu = reading["cpu_stats"]
    pre = previous["cpu_stats"] if previous else reading["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    percent = cpu_delta / system_delta * cpu.get("online_cpus", 1) * 100 if system_delta > 0 else 0.0
    mem = reading["memory_stats"]
    usage, limit = mem.get("usage", 0) - mem.get("stats", {}).get("inactive_file", 0), mem.get("limit", 0)
    return [reading["id"][:12], reading["name"].lstrip("/"), f"{percent:.2f}%",
            f"{render.binary_size(usage)} / {render.binary_size(limit)}", f"{usage / limit * 100 if limit else 0:.2f}%",
            "0B / 0B", "0B / 0B", str(reading["pids_stats"].get("current", 0))]


_STATS_HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def stats(client: Client, args) -> int:
    """`docker stats`: a live table, redrawn every second until Ctrl-C (every running
    container when none is named); `--no-stream`: one reading."""
    if args.no_stream:
        names = args.containers or [c["Id"] for c in client.get("/containers/json")]
        rows = [_stats_row(client.call("GET", f"/containers/{ref(n)}/stats", {"stream": 0}), None) for n in names]
        _out(render.table(_STATS_HEADERS, rows))
        return 0
    import time

    previous: dict[str, dict] = {}
    clear = "\x1b[H\x1b[J" if sys.stdout.isatty() else ""
    while True:
        names = args.containers or [c["Id"] for c in client.get("/containers/json")]
        rows = []
        for name in names:
            try:
                reading = client.call("GET", f"/containers/{ref(name)}/stats", {"stream": 0, "one-shot": 1})
            except DaemonError:
                continue  # gone meanwhile
            rows.append(_stats_row(reading, previous.get(reading["id"])))
            previous[reading["id"]] = reading
        sys.stdout.write(clear + render.table(_STATS_HEADERS, rows) + "\n")
        sys.stdout.flush()
        time.sleep(1)


def rename(client: Client, args) -> int:
    """`docker rename OLD NEW`."""
    client.call("POST", f"/containers/{ref(args.container)}/rename", {"name": args.name})
    return 0


def update(client: Client, args) -> int:
    """`docker update`: new limits for containers (applied at once to running ones)."""
    return _each(client, args.containers, "POST", "/containers/{}/update", None, _limits(args))


def port(client: Client, args) -> int:
    """`docker port CONTAINER [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080` lines."""
    ports = client.get(f"/containers/{ref(args.container)}/json")["NetworkSettings"].get("Ports") or {}
    wanted = args.port if args.port is None or "/" in args.port else f"{args.port}/tcp"
    found = False
    for private, bindings in sorted(ports.items()):
        if wanted is not None and private != wanted:
            continue
        for b in bindings or []:
            found = True
            _out(f"{b['HostIp'] or '0.0.0.0'}:{b['HostPort']}" if wanted else f"{private} -> {b['HostIp'] or '0.0.0.0'}:{b['HostPort']}")
    if wanted is not None and not found:
        raise UsageError(f"No public port '{wanted}' published for {args.container}")
    return 0


def container(client: Client, args) -> int:
    """`docker container prune`: removes every stopped container."""
    found = client.call("POST", "/containers/prune", {"filters": options.filters(args.filter)})
    print_pruned("Deleted Containers:", found.get("ContainersDeleted") or [], found.get("SpaceReclaimed", 0))
    return 0


def system(client: Client, args) -> int:
    """`docker system df`: what images, containers and volumes hold."""
    df = client.get("/system/df")
    images, containers = df.get("Images") or [], df.get("Containers") or []
    used_images = [i for i in images if i.get("Containers", 0) > 0]
    image_size = df.get("LayersSize", 0)
    reclaim_images = image_size - sum(i["Size"] - max(i.get("SharedSize", 0), 0) for i in used_images)
    container_size = sum(c.get("SizeRw", 0) for c in containers)
    reclaim_containers = sum(c.get("SizeRw", 0) for c in containers if c["State"] != "running")
    volumes = df.get("Volumes") or []
    used_volumes = [v for v in volumes if v["UsageData"]["RefCount"] > 0]
    volume_size = sum(v["UsageData"]["Size"] for v in volumes)

    def share(part: int, whole: int) -> str:
        return f"{render.size(part)} ({part * 100 // whole if whole else 0}%)"

    rows = [["Images", str(len(images)), str(len(used_images)), render.size(image_size), share(reclaim_images, image_size)],
            ["Containers", str(len(containers)), str(sum(c["State"] == "running" for c in containers)),
             render.size(container_size), share(reclaim_containers, container_size)],
            ["Local Volumes", str(len(volumes)), str(len(used_volumes)), render.size(volume_size),
             share(volume_size - sum(v["UsageData"]["Size"] for v in used_volumes), volume_size)],
            ["Build Cache", "0", "0", "0B", "0B"]]
    _out(render.table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows))
    return 0


# --- files: cp, diff, commit, export, save, load ------------------------------------


def _split_container_path(arg: str) -> tuple[str | None, str]:
    """`CONTAINER:PATH` → (container, path); a local path (no colon before any slash) → (None, path)."""
    head, colon, tail = arg.partition(":")
    if colon and head and "/" not in head and not arg.startswith((".", "/")):
        return head, tail
    return None, arg


def cp(client: Client, args) -> int:
    """`docker cp CONTAINER:SRC DEST` and `docker cp SRC CONTAINER:DEST` (`-` for a tar on
    stdin or stdout); modes, owners, links and times are kept."""
    from .transfer import download, extract, tar_of, upload_source

    src_container, src = _split_container_path(args.source)
    dst_container, dst = _split_container_path(args.dest)
    if (src_container is None) == (dst_container is None):
        raise UsageError("copying between containers is not supported, nor between two local paths: "
                         "one side must be CONTAINER:PATH")
    if src_container is not None:
        with client.stream("GET", f"/containers/{ref(src_container)}/archive", {"path": src}) as resp:
            if dst == "-":
                download(resp, None, "copying")
            elif os.path.isdir(dst):
                extract(resp, dst, None, "copying")
            else:
                parent = os.path.dirname(os.path.abspath(dst))
                if not os.path.isdir(parent):
                    raise UsageError(f"destination directory {parent} does not exist")
                extract(resp, parent, os.path.basename(dst), "copying")
        return 0
    endpoint = f"/containers/{ref(dst_container)}/archive"
    query = {"path": dst, "copyUIDGID": int(args.archive) or None}
    if src == "-":
        body, _ = upload_source("-", "copying")
    else:
        if not os.path.lexists(src):
            raise UsageError(f"could not find the file {src} on this machine")
        try:
            client.stream("HEAD", endpoint, {"path": dst}).close()
            exists = True
        except DaemonError as exc:
            if exc.status != 404:
                raise
            exists = False  # a new name: extract into its parent, renamed
        name = os.path.basename(os.path.normpath(src)) if exists else os.path.basename(dst.rstrip("/"))
        if not exists:
            query["path"] = os.path.dirname(dst.rstrip("/")) or "/"
        body, writer = tar_of(src, name)
    client.call("PUT", endpoint, query, body, {"Content-Type": "application/x-tar"})
    if src != "-":
        writer.join()
        if writer.errors:
            raise writer.errors[0]
    return 0


def diff(client: Client, args) -> int:
    """`docker diff`: `A|C|D path` for what the container changed."""
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in client.get(f"/containers/{ref(args.container)}/changes") or []:
        _out(f"{kinds[change['Kind']]} {change['Path']}")
    return 0


def commit(client: Client, args) -> int:
    """`docker commit`: a new image from the container's changes; prints its id."""
    repo, _, tag = (args.reference or "").partition(":") if args.reference and "@" not in args.reference else ("", "", "")
    if args.reference and "/" in args.reference.rsplit(":", 1)[-1]:
        repo, tag = args.reference, ""  # a registry port, not a tag
    query = {"container": args.container, "repo": repo or None, "tag": tag or None, "author": args.author,
             "comment": args.message, "changes": args.change or None, "pause": int(args.pause != "false")}
    _out(client.call("POST", "/commit", query, {})["Id"])
    return 0


def export(client: Client, args) -> int:
    """`docker export`: the container's filesystem as a tar, to `-o FILE` or stdout."""
    from .transfer import download

    if not args.output and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with client.stream("GET", f"/containers/{ref(args.container)}/export") as resp:
        download(resp, args.output, "exporting")
    return 0


def save(client: Client, args) -> int:
    """`docker save`: images as one tar (docker's and OCI's layout), to `-o FILE` or stdout."""
    from .transfer import download

    if not args.output and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with client.stream("GET", "/images/get", {"names": args.images}) as resp:
        download(resp, args.output, "saving")
    return 0


def load(client: Client, args) -> int:
    """`docker load`: images from a tar (`-i FILE` or stdin)."""
    from .transfer import upload_source

    if not args.input and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    source, progress = upload_source(args.input, "loading")
    try:
        resp = client.stream("POST", "/images/load", {"quiet": int(args.quiet)}, body=source,
                             headers={"Content-Type": "application/x-tar"})
        progress.finish()
        return _messages(resp)
    finally:
        if source.raw is not sys.stdin.buffer:
            source.raw.close()


def image(client: Client, args) -> int:
    """`docker image prune [-a]`: removes dangling (or all unused) images."""
    filters = list(args.filter) + ([] if args.all else ["dangling=true"])
    if args.all:
        filters.append("dangling=false")
    found = client.call("POST", "/images/prune", {"filters": options.filters(filters)})
    deleted = found.get("ImagesDeleted") or []
    if deleted:
        _out("Deleted Images:")
        for item in deleted:
            for kind, value in item.items():
                _out(f"{kind.lower()}: {value}")
        _out()
    _out(f"Total reclaimed space: {render.size(found.get('SpaceReclaimed', 0))}")
    return 0


def network(client: Client, args) -> int:
    """`berth network create|ls|inspect|rm|connect|disconnect|prune …`, as `docker network`."""
    from .cli import NETWORK_ACTIONS
    from .grammar import parse

    cmd, sub = parse(NETWORK_ACTIONS, [args.action, *args.words])
    if cmd.name == "create":
        pool = {k: v for k, v in (("Subnet", sub.subnet), ("Gateway", sub.gateway)) if v}
        body = {"Name": sub.name, "Driver": sub.driver or "bridge", "Internal": sub.internal,
                "IPAM": {"Driver": "default", "Config": [pool] if pool else []},
                "Options": options.key_values(sub.opt, "option"), "Labels": options.key_values(sub.label, "label")}
        _out(client.call("POST", "/networks/create", None, body)["Id"])
    elif cmd.name == "ls":
        found = client.get("/networks", filters=options.filters(sub.filter))
        short = (lambda n: n["Id"]) if sub.no_trunc else (lambda n: n["Id"][:12])
        print_listing(found, sub.format, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                      lambda n: [short(n), n["Name"], n["Driver"], n["Scope"]], short if sub.quiet else None)
    elif cmd.name == "inspect":
        results = [client.get(f"/networks/{ref(name)}") for name in sub.names]
        if sub.format:
            for item in results:
                _out(render.template(sub.format, item))
        else:
            import json

            _out(json.dumps(results, indent=4, ensure_ascii=False))
    elif cmd.name == "rm":
        return _each(client, sub.names, "DELETE", "/networks/{}")
    elif cmd.name in ("connect", "disconnect"):
        body = {"Container": sub.container}
        if cmd.name == "connect" and sub.alias:
            body["EndpointConfig"] = {"Aliases": sub.alias}
        client.call("POST", f"/networks/{ref(sub.network)}/{cmd.name}", None, body)
    else:
        deleted = client.call("POST", "/networks/prune").get("NetworksDeleted") or []
        if deleted:
            _out("Deleted Networks:")
            for name in deleted:
                _out(name)
    return 0
