"""Containers: their life (create, run, start, attach, exec, stop, …, rm), what they do
(ps, logs, top, stats, port), and the `container` noun's own verbs (inspect, prune)."""

import sys

from ..grammar import Arg, Command, Opt, UsageError
from ..transport import Client, DaemonError, Demuxer, Response, ref
from .printers import (FILTER, FORCE_NEVER_ASKS, NO_TRUNC, CommandFailed, each, each_name, err, format_option, inspect_verb, out,
                       print_listing, print_pruned, quiet_option)


def _create(client: Client, args) -> str:
    """Create the container; its id. The image is pulled as docker's `--pull` says: first
    (always), when the daemon has none (missing: `Unable to find image` first), or never
    (the daemon's 404 is the error); the progress on stderr. A refusal, of the create or of the pull, raises DaemonError."""
    policy = args.pull or "missing"
    from . import container_options

    body = container_options.create_body(args)
    if policy == "always":
        _pull(client, args.image)
    try:
        return client.call("POST", "/containers/create", {"name": args.name}, body)["Id"]
    except DaemonError as exc:
        if policy != "missing" or exc.status != 404 or "No such image" not in exc.message:
            raise
        tagged = ":" in args.image.rsplit("/", 1)[-1] or "@" in args.image  # a registry port is no tag
        err(f"Unable to find image '{args.image if tagged else args.image + ':latest'}' locally")
    _pull(client, args.image)
    return client.call("POST", "/containers/create", {"name": args.name}, body)["Id"]


def _pull(client: Client, image: str) -> None:
    from .registry import pull_image  # only when an image is pulled: `run` starts fast

    pull_image(client, image, sys.stderr)


def _failure(exc: DaemonError) -> str:
    """A refused create or pull as docker words it (a pull's in-stream error as it is)."""
    from .registry import error_text

    return error_text(exc)


def create(client: Client, args) -> int:
    """`docker create`: prints the new container's id; 1 when it cannot be created (as
    the docker CLI: only `run` says 125)."""
    try:
        out(_create(client, args))
    except DaemonError as exc:
        err(_failure(exc))
        return 1
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
    from .. import fastjson  # where JSON is read: pause, stop, rm… never load it (~0.5 ms)

    result = fastjson.loads(waiter.read() or b'{"Error": {"Message": "the daemon ended the wait without a status"}}')
    if result.get("Error"):
        err(f"Error waiting for container: {result['Error'].get('Message', '')}")
        return 125
    return int(result["StatusCode"])


def _attach_start_wait(client: Client, cid: str, condition: str, tty: bool = False, stdin: bool = False,
                       detach_keys: str | None = None, sig_proxy: bool = True, name: str = "") -> int:
    """Attach, wait, then start, in the docker CLI's order so that no output and no exit is
    missed; copy the output (and with `stdin`, our stdin) until the daemon closes the
    stream, our signals going to the container (`sig_proxy`, without `tty`); return the
    exit status (0 when the detach keys left it running). A start error is raised, after
    the wait for an auto-removed container has ended (as docker does, so the container
    is gone when the command returns)."""
    query = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": int(stdin), "detachKeys": detach_keys}
    with client.hijack(f"/containers/{cid}/attach", query) as attach, \
            client.stream("POST", f"/containers/{cid}/wait", {"condition": condition}) as waiter:
        try:
            client.call("POST", f"/containers/{cid}/start")
        except DaemonError:
            if condition == "removed":
                waiter.read()
            raise
        with _proxied(client, cid, name or cid[:12], sig_proxy and not tty):
            if stdin or tty:
                from ..interactive import relay

                relay(attach, tty=tty, stdin=stdin, resize=_resizer(client, f"/containers/{cid}/resize"))
                if _runs_on(client, cid):
                    return 0  # detached: the container runs on
            else:
                _copy_output(attach, tty)
        return _exit_status(waiter)


def _proxied(client: Client, cid: str, name: str, wanted: bool):
    """Our signals go to the container while in the block, if `wanted` (shell/sigproxy.py)."""
    if not wanted:
        import contextlib

        return contextlib.nullcontext()
    from ..sigproxy import Proxy

    return Proxy(client, cid, name)


def _runs_on(client: Client, cid: str) -> bool:
    """Whether the container still runs once an interactive session ended (the detach
    keys end it and leave the container running). An auto-removed one may be gone by then:
    it exited, so its wait tells the status."""
    try:
        return client.get(f"/containers/{cid}/json")["State"]["Running"]
    except DaemonError as exc:
        if exc.status == 404:
            return False
        raise


def _resizer(client: Client, endpoint: str):
    return lambda height, width: client.call("POST", endpoint, {"h": height, "w": width})


def run(client: Client, args) -> int:
    """`docker run`: exit 125 when create fails, 126/127/125 when start fails, else the
    container's own status (`-d`: print the id and return)."""
    try:
        cid = _create(client, args)
    except DaemonError as exc:
        err(f"berth: {_failure(exc)}\n\nRun 'berth run --help' for more information")
        return 125
    try:
        if not args.detach:
            return _attach_start_wait(client, cid, "removed" if args.rm else "next-exit", bool(args.tty),
                                      bool(args.interactive), args.detach_keys, args.sig_proxy, args.name or "")
        client.call("POST", f"/containers/{cid}/start")
    except DaemonError as exc:
        err(f"berth: Error response from daemon: {exc.message}\n\nRun 'berth run --help' for more information")
        return _start_failure_status(exc.message)
    out(cid)
    return 0


def start(client: Client, args) -> int:
    """`docker start`; with `-a`, the output and the container's exit status."""
    if not args.attach:
        return each(client, args.containers, "POST", "/containers/{}/start",
                    failed=lambda names: f"Error: failed to start containers: {', '.join(names)}")
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    info = client.get(f"/containers/{ref(args.containers[0])}/json")
    return _attach_start_wait(client, info["Id"], "next-exit", info["Config"].get("Tty", False),
                              bool(args.interactive) and info["Config"].get("OpenStdin", False), args.detach_keys,
                              name=args.containers[0])


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
    from ..interactive import relay

    query = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": int(stdin), "detachKeys": args.detach_keys}
    with client.stream("POST", f"/containers/{cid}/wait", {"condition": "next-exit"}) as waiter, \
            client.hijack(f"/containers/{cid}/attach", query) as stream:
        with _proxied(client, cid, args.container, args.sig_proxy and not tty):
            relay(stream, tty=tty, stdin=stdin, resize=_resizer(client, f"/containers/{cid}/resize"))
        if _runs_on(client, cid):
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
    with client.hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": bool(args.tty)}) as stream:
        if args.interactive or args.tty:
            from ..interactive import relay  # only a session with input needs it (os, select: ~1.5 ms)

            relay(stream, tty=bool(args.tty), stdin=bool(args.interactive),
                  resize=_resizer(client, f"/exec/{exec_id}/resize") if args.tty else None)
        else:
            _copy_output(stream, False)
    return int(client.get(f"/exec/{exec_id}/json")["ExitCode"] or 0)


def stop(client: Client, args) -> int:
    """`docker stop [-t N]`: SIGTERM, then SIGKILL after N seconds (the daemon's default 10)."""
    return each(client, args.containers, "POST", "/containers/{}/stop", {"t": args.time})


def restart(client: Client, args) -> int:
    """`docker restart [-t N]`."""
    return each(client, args.containers, "POST", "/containers/{}/restart", {"t": args.time})


def pause(client: Client, args) -> int:
    """`docker pause`: freeze every process of the containers."""
    return each(client, args.containers, "POST", "/containers/{}/pause")


def unpause(client: Client, args) -> int:
    """`docker unpause`."""
    return each(client, args.containers, "POST", "/containers/{}/unpause")


def kill(client: Client, args) -> int:
    """`docker kill [-s SIGNAL]` (default KILL)."""
    return each(client, args.containers, "POST", "/containers/{}/kill", {"signal": args.signal})


def rm(client: Client, args) -> int:
    """`docker rm [-f] [-v]`."""
    return each(client, args.containers, "DELETE", "/containers/{}", {"force": int(args.force), "v": int(args.volumes)})


def wait(client: Client, args) -> int:
    """`docker wait`: each container's exit code once it has stopped."""
    from .. import fastjson

    def status(name: str) -> None:
        out(str(fastjson.loads(client.stream("POST", f"/containers/{ref(name)}/wait").read())["StatusCode"]))

    return each_name(args.containers, status)


def _ps_row(c: dict, no_trunc: bool) -> dict:
    """A container list entry as `docker ps` fields (the names `--format` templates use)."""
    from .. import render

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
            "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}))),
            "Size": (f"{render.size(c['SizeRw'])} (virtual {render.size(c['SizeRootFs'])})" if "SizeRw" in c else "")}


def ps(client: Client, args) -> int:
    """`docker ps`: the table, `-q` ids, or one line per container by `--format`."""
    last = 1 if args.latest else int(args.last) if args.last not in (None, "") else -1
    if last != -1 and last < 0:
        raise UsageError(f"invalid argument \"{args.last}\" for \"-n, --last\" flag")
    from .. import options  # here, not for every container command

    # --last N and --latest take the newest N of every state, as docker's (`limit`); a
    # template naming .Size asks for sizes, as docker's does
    sized = args.size or ".Size" in (args.format or "")
    found = client.get("/containers/json", all=int(args.all or last > 0), filters=options.filters(args.filter),
                       **({"limit": last} if last > 0 else {}), **({"size": 1} if sized else {}))
    keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names", *(["Size"] if args.size else [])]
    print_listing([_ps_row(c, args.no_trunc) for c in found], args.format,
                  ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES",
                   *(["SIZE"] if args.size else [])],
                  lambda row: [row[k] for k in keys], (lambda row: row["ID"]) if args.quiet else None,
                  {"ID": "CONTAINER ID"})
    return 0


def logs(client: Client, args) -> int:
    """`docker logs`: stdout frames to stdout, stderr frames to stderr."""
    from .. import options

    info = client.get(f"/containers/{ref(args.container)}/json")  # for its id and Tty, as docker
    query = {"stdout": 1, "stderr": 1, "follow": int(args.follow), "timestamps": int(args.timestamps),
             "details": int(args.details), "tail": args.tail, "since": options.timestamp(args.since), "until": options.timestamp(args.until)}
    with client.stream("GET", f"/containers/{info['Id']}/logs", query) as resp:
        _copy_output(resp, info["Config"].get("Tty", False))
    return 0


def top(client: Client, args) -> int:
    """`docker top CONTAINER [ps OPTIONS]`: the table `ps` prints, for its processes."""
    from .. import render

    query = {"ps_args": " ".join(args.ps_args)} if args.ps_args else None
    found = client.call("GET", f"/containers/{ref(args.container)}/top", query)
    out(render.table(found["Titles"], found["Processes"], min_width=20))  # docker's top: tabwriter(20, 1, 3)
    return 0


def _stats_row(reading: dict, previous: dict | None) -> list[str]:
    """One line of docker's stats table; CPU % from this reading and the one before."""
    from .. import render

    cpu = reading["cpu_stats"]
    pre = previous["cpu_stats"] if previous else reading["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    percent = cpu_delta / system_delta * cpu.get("online_cpus", 1) * 100 if system_delta > 0 else 0.0
    mem = reading["memory_stats"]
    usage, limit = mem.get("usage", 0) - mem.get("stats", {}).get("inactive_file", 0), mem.get("limit", 0)
    networks = (reading.get("networks") or {}).values()
    received, sent = sum(n.get("rx_bytes", 0) for n in networks), sum(n.get("tx_bytes", 0) for n in networks)
    # as the docker CLI: every entry whose op starts with r/R is read, w/W written
    entries = (reading.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read, written = (sum(e.get("value", 0) for e in entries if (e.get("op") or "-")[0] in first)
                     for first in ("rR", "wW"))
    return [reading["id"][:12], reading["name"].lstrip("/"), f"{percent:.2f}%",
            f"{render.binary_size(usage)} / {render.binary_size(limit)}", f"{usage / limit * 100 if limit else 0:.2f}%",
            f"{render.size(received)} / {render.size(sent)}", f"{render.size(read)} / {render.size(written)}",
            str(reading["pids_stats"].get("current", 0))]


_STATS_HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def stats(client: Client, args) -> int:
    """`docker stats`: a live table, redrawn every second until Ctrl-C (every running
    container when none is named); `--no-stream`: one reading."""
    from .. import render

    if args.no_stream:
        names = args.containers or [c["Id"] for c in client.get("/containers/json")]
        rows = [_stats_row(client.call("GET", f"/containers/{ref(n)}/stats", {"stream": 0}), None) for n in names]
        if args.format:
            keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"]
            items = [dict(zip(keys, row)) | {"Container": name} for name, row in zip(names, rows)]
            print_listing(items, args.format, _STATS_HEADERS, lambda item: [item[k] for k in keys],
                          titles={"ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                                  "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                                  "BlockIO": "BLOCK I/O", "PIDs": "PIDS", "Container": "CONTAINER"})
            return 0
        out(render.table(_STATS_HEADERS, rows))
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
    try:
        client.call("POST", f"/containers/{ref(args.container)}/rename", {"name": args.name})
    except DaemonError as exc:
        raise CommandFailed(f"Error response from daemon: {exc.message}\n"
                            f"Error: failed to rename container named {args.container}") from None
    return 0


def update(client: Client, args) -> int:
    """`docker update`: new limits for containers (applied at once to running ones)."""
    from . import container_options

    return each(client, args.containers, "POST", "/containers/{}/update", None, container_options.limits(args))


def port(client: Client, args) -> int:
    """`docker port CONTAINER [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080` lines, by port number."""
    from .. import render

    ports = client.get(f"/containers/{ref(args.container)}/json")["NetworkSettings"].get("Ports") or {}
    wanted = args.port if args.port is None or "/" in args.port else f"{args.port}/tcp"
    found = False
    for private, bindings in sorted(ports.items(), key=lambda item: (int(item[0].partition("/")[0]), item[0])):
        if wanted is not None and private != wanted:
            continue
        for b in bindings or []:
            found = True
            host = f"{render.host_text(b['HostIp'] or '0.0.0.0')}:{b['HostPort']}"
            out(host if wanted else f"{private} -> {host}")
    if wanted is not None and not found:
        raise UsageError(f"No public port '{wanted}' published for {args.container}")
    return 0


def pruned(client: Client, filters: list[str]) -> tuple[str, list[str], int]:
    """Remove the stopped containers (matching `filters`): the report print_pruned prints."""
    from .. import options

    found = client.call("POST", "/containers/prune", {"filters": options.filters(filters)})
    return "Deleted Containers:", found.get("ContainersDeleted") or [], found.get("SpaceReclaimed", 0)


def prune(client: Client, args) -> int:
    """`docker container prune`: removes every stopped container."""
    print_pruned(pruned(client, args.filter))
    return 0


_IMAGE_AND_COMMAND = (Arg("image"), Arg("command", "rest", "[COMMAND] [ARG...]"))
_CONTAINERS = (Arg("containers", "many"),)
# Shared with run and create (container_options), here so that exec, start and attach
# parse without importing run's long option lists.
DETACH_KEYS = Opt(("--detach-keys",), "detach_keys", "value", "keys that detach (default ctrl-p,ctrl-q)")
SIG_PROXY = Opt(("--sig-proxy",), "sig_proxy", "flag", "send the signals this client gets to the container, "
                "without -t (default true; three Ctrl-C in 2 s detach)", default=True)
PROCESS = (  # the container's process or, for exec, another one
    Opt(("-e", "--env"), "env", "list", "set an environment variable (KEY=VALUE)"),
    Opt(("-w", "--workdir"), "workdir", "value", "working directory inside the container"),
    Opt(("-u", "--user"), "user", "value", "user[:group], by name or number"),
)
_STOP_TIME = Opt(("-t", "--time"), "time", "value", "seconds before SIGKILL", int)
_PS_OPTS = (Opt(("-a", "--all"), "all", "flag", "include stopped containers"), quiet_option("IDs"), NO_TRUNC, FILTER,
            format_option("{{.Names}} {{.Status}}"),
            Opt(("-n", "--last"), "last", "value", "the N last created containers (every state)"),
            Opt(("-l", "--latest"), "latest", "flag", "the last created container (every state)"),
            Opt(("-s", "--size"), "size", "flag", "the containers' sizes"))


def _with(pick):
    """A command's options that include container_options' (~0.4 ms to import), given
    as `pick(container_options)`: read only when that command is parsed or shown."""
    def resolve() -> tuple[Opt, ...]:
        from . import container_options

        return pick(container_options)
    return resolve


COMMANDS = (
    Command("run", run, "create and start a container", _with(lambda co: (
        Opt(("-d", "--detach"), "detach", "flag", "run in the background, print the ID"), SIG_PROXY,
        Opt(("--rm",), "rm", "flag", "remove the container when it exits"), *co.CONTAINER)),
        _IMAGE_AND_COMMAND),
    Command("create", create, "create a container", _with(lambda co: co.CONTAINER), _IMAGE_AND_COMMAND),
    Command("start", start, "start containers", (
        Opt(("-a", "--attach"), "attach", "flag", "attach output, exit with its status"),
        Opt(("-i", "--interactive"), "interactive", "flag", "attach stdin too"), DETACH_KEYS),
        _CONTAINERS),
    Command("attach", attach, "attach to a running container's output and stdin", (
        Opt(("--no-stdin",), "no_stdin", "flag", "do not attach stdin"), DETACH_KEYS, SIG_PROXY),
        (Arg("container"),)),
    Command("exec", exec_, "run a command in a running container", (
        Opt(("-d", "--detach"), "detach", "flag", "run in the background"),
        Opt(("-i", "--interactive"), "interactive", "flag", "keep stdin open"),
        Opt(("-t", "--tty"), "tty", "flag", "give the command a terminal"), *PROCESS, DETACH_KEYS),
        (Arg("container"), Arg("command", "rest", "COMMAND [ARG...]"))),
    Command("top", top, "the processes of a running container", (), (Arg("container"), Arg("ps_args", "rest", "[ps OPTIONS]"))),
    Command("stats", stats, "live resource use of containers (Ctrl-C ends it)", (
        Opt(("--no-stream",), "no_stream", "flag", "one reading, then exit"),
        format_option("{{.Name}} {{.CPUPerc}}")), (Arg("containers", "any"),)),
    Command("rename", rename, "rename a container", (), (Arg("container"), Arg("name"))),
    Command("update", update, "change a container's limits or restart policy", _with(lambda co: co.LIMITS), _CONTAINERS),
    Command("port", port, "a container's published ports", (), (Arg("container"), Arg("port", "optional"))),
    Command("stop", stop, "stop containers (SIGTERM, then SIGKILL)", (_STOP_TIME,), _CONTAINERS),
    Command("restart", restart, "restart containers", (_STOP_TIME,), _CONTAINERS),
    Command("pause", pause, "freeze every process of containers", (), _CONTAINERS),
    Command("unpause", unpause, "thaw paused containers", (), _CONTAINERS),
    Command("kill", kill, "send a signal to containers", (
        Opt(("-s", "--signal"), "signal", "value", "signal (default KILL)"),), _CONTAINERS),
    Command("rm", rm, "remove containers", (
        Opt(("-f", "--force"), "force", "flag", "kill a running container first"),
        Opt(("-v", "--volumes"), "volumes", "flag", "remove anonymous volumes")), _CONTAINERS),
    Command("wait", wait, "wait for containers to stop; print their exit codes", (), _CONTAINERS),
    Command("ps", ps, "list containers", _PS_OPTS),
    Command("logs", logs, "fetch a container's logs", (
        Opt(("-f", "--follow"), "follow", "flag", "follow new output"),
        Opt(("-t", "--timestamps"), "timestamps", "flag", "show timestamps"),
        Opt(("--details",), "details", "flag", "show the log's extra attributes"),
        Opt(("-n", "--tail"), "tail", "value", "lines from the end (default all)"),
        Opt(("--since",), "since", "value", "10m, RFC 3339 or unix time"),
        Opt(("--until",), "until", "value", "10m, RFC 3339 or unix time")), (Arg("container"),)),
)

# the `container` noun's own verbs; the noun is docker's management command (management.py)
PRUNE = Command("prune", prune, "remove every stopped container", (
    FORCE_NEVER_ASKS, Opt(("--filter",), "filter", "list", "filter (label=…, until=…)")))
INSPECT = inspect_verb("container", "{{.State.Status}}")
