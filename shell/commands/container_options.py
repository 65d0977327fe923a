"""What the options of `run`, `create` and `update` mean: their grammar, and the API
bodies they make (`POST /containers/create`, `…/update`), as the docker CLI makes them."""

from __future__ import annotations

from .. import options
from ..grammar import Opt, UsageError

DETACH_KEYS = Opt(("--detach-keys",), "detach_keys", "value", "keys that detach (default ctrl-p,ctrl-q)")
LIMITS = (
    Opt(("-m", "--memory"), "memory", "value", "memory limit (e.g. 64m)"),
    Opt(("--cpus",), "cpus", "value", "number of CPUs (e.g. 0.5)"),
    Opt(("-c", "--cpu-shares"), "cpu_shares", "value", "CPU shares (relative weight)", int),
    Opt(("--pids-limit",), "pids_limit", "value", "maximum number of processes", int),
    Opt(("--restart",), "restart", "value", "restart policy: no, on-failure[:N], always, unless-stopped"),
)
PROCESS = (  # the container's process or, for exec, another one
    Opt(("-e", "--env"), "env", "list", "set an environment variable (KEY=VALUE)"),
    Opt(("-w", "--workdir"), "workdir", "value", "working directory inside the container"),
    Opt(("-u", "--user"), "user", "value", "user[:group], by name or number"),
)
CONTAINER = (
    Opt(("--name",), "name", "value", "container name"),
    *PROCESS,
    Opt(("-l", "--label"), "label", "list", "set a label (KEY=VALUE)"),
    Opt(("-h", "--hostname"), "hostname", "value", "container host name"),
    Opt(("--entrypoint",), "entrypoint", "value", "override the image's entrypoint"),
    *LIMITS,
    Opt(("--init",), "init", "flag", "run tini as PID 1 (forwards signals, reaps zombies)"),
    Opt(("--runtime",), "runtime", "value", "OCI runtime: crun or runc"),
    Opt(("-v", "--volume"), "volume", "list", "NAME:/path[:ro], /host/dir:/path[:ro|rw], or /path (anonymous)"),
    Opt(("--mount",), "mount", "list", "type=volume|bind|tmpfs,source=…,target=…[,readonly][,volume-opt=…][,tmpfs-size=…]"),
    Opt(("--log-opt",), "log_opt", "list", "log driver option (max-size=10m, max-file=3)"),
    Opt(("--health-cmd",), "health_cmd", "value", "command to run to check health"),
    Opt(("--health-interval",), "health_interval", "value", "time between checks (e.g. 30s)"),
    Opt(("--health-timeout",), "health_timeout", "value", "maximum time a check may take"),
    Opt(("--health-retries",), "health_retries", "value", "failures in a row before unhealthy", int),
    Opt(("--health-start-period",), "health_start_period", "value", "grace period after start"),
    Opt(("--no-healthcheck",), "no_healthcheck", "flag", "disable the image's health check"),
    Opt(("--network", "--net"), "network", "value", "bridge (default), none, host, or a network's name"),
    Opt(("--network-alias",), "network_alias", "list", "another name for the container on its network"),
    Opt(("-p", "--publish"), "publish", "list", "publish a port: [ip:]hostPort:containerPort[/udp]"),
    Opt(("-P", "--publish-all"), "publish_all", "flag", "publish every exposed port on a random host port"),
    Opt(("--expose",), "expose", "list", "expose a port (or a range) without publishing it"),
    Opt(("-i", "--interactive"), "interactive", "flag", "keep stdin open (and attached, unless -d)"),
    Opt(("-t", "--tty"), "tty", "flag", "give the container a terminal"),
    DETACH_KEYS,
)


def limits(args) -> dict:
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
    host = {"AutoRemove": bool(getattr(args, "rm", False)), "Init": True if args.init else None, **limits(args)}
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
