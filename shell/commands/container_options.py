"""What the options of `run`, `create` and `update` mean: their grammar, and the API
bodies they make (`POST /containers/create`, `…/update`), as the docker CLI makes them.

Values are read the way the docker CLI reads them (`--device SRC[:DST][:rwm]`, `--ulimit
NAME=SOFT[:HARD]`, `--tmpfs DST[:OPTS]`, `--security-opt systempaths=unconfined`…) and
checked as far as the CLI checks them; everything else is the daemon's to refuse."""

from .. import fastjson, options
from ..grammar import Opt, UsageError
from .containers import DETACH_KEYS, PROCESS

LIMITS = (
    Opt(("-m", "--memory"), "memory", "value", "memory limit (e.g. 64m)", options.checked(options.ram_bytes)),
    Opt(("--cpus",), "cpus", "value", "number of CPUs (e.g. 0.5)"),
    Opt(("-c", "--cpu-shares"), "cpu_shares", "value", "CPU shares (relative weight)", int),
    Opt(("--pids-limit",), "pids_limit", "value", "maximum number of processes", int),
    Opt(("--restart",), "restart", "value", "restart policy: no, on-failure[:N], always, unless-stopped"),
    Opt(("--memory-swap",), "memory_swap", "value", "memory plus swap limit (-1: unlimited swap)"),
    Opt(("--cpu-period",), "cpu_period", "value", "CFS period in microseconds", int),
    Opt(("--cpu-quota",), "cpu_quota", "value", "CFS quota in microseconds per period", int),
    Opt(("--memory-reservation",), "memory_reservation", "value", "memory soft limit (e.g. 32m)"),
    Opt(("--kernel-memory",), "kernel_memory", "value", "kernel memory limit"),
    Opt(("--cpuset-cpus",), "cpuset_cpus", "value", "CPUs the container may use (0-3, 0,1)"),
    Opt(("--cpuset-mems",), "cpuset_mems", "value", "memory nodes the container may use"),
    Opt(("--cpu-rt-period",), "cpu_rt_period", "value", "real-time period in microseconds", int),
    Opt(("--cpu-rt-runtime",), "cpu_rt_runtime", "value", "real-time runtime in microseconds", int),
    Opt(("--blkio-weight",), "blkio_weight", "value", "block I/O weight (10 to 1000)", int),
)
HOST = (  # how the container sits on the host: what HostConfig says beyond the limits above
    Opt(("--privileged",), "privileged", "flag", "every capability and device, no confinement"),
    Opt(("--cap-add",), "cap_add", "list", "add a Linux capability (or ALL)"),
    Opt(("--cap-drop",), "cap_drop", "list", "drop a Linux capability (or ALL)"),
    Opt(("--security-opt",), "security_opt", "list",
        "no-new-privileges, seccomp=unconfined|FILE, systempaths=unconfined, label=disable, apparmor=unconfined"),
    Opt(("--device",), "device", "list", "a host device: SRC[:DST][:rwm]"),
    Opt(("--device-cgroup-rule",), "device_cgroup_rule", "list", "a device cgroup rule: 'c|b|a MAJOR:MINOR rwm'"),
    Opt(("--gpus",), "gpus", "value", "GPU devices (none on this engine)"),
    Opt(("--sysctl",), "sysctl", "list", "a namespaced kernel parameter: KEY=VALUE"),
    Opt(("--ulimit",), "ulimit", "list", "a resource limit: NAME=SOFT[:HARD] (-1: unlimited)"),
    Opt(("--dns",), "dns", "list", "a nameserver for /etc/resolv.conf"),
    Opt(("--dns-search",), "dns_search", "list", "a search domain for /etc/resolv.conf"),
    Opt(("--dns-option", "--dns-opt"), "dns_option", "list", "an option for /etc/resolv.conf"),
    Opt(("--add-host",), "add_host", "list", "an /etc/hosts entry: HOST:IP (IP may be host-gateway)"),
    Opt(("--domainname",), "domainname", "value", "the container's NIS domain name"),
    Opt(("--mac-address",), "mac_address", "value", "the container's MAC address"),
    Opt(("--tmpfs",), "tmpfs", "list", "a tmpfs mount: /path[:size=64m,mode=1777,…]"),
    Opt(("--volumes-from",), "volumes_from", "list", "mount a container's volumes: CONTAINER[:ro|rw]"),
    Opt(("--volume-driver",), "volume_driver", "value", "the driver of -v volumes (local)"),
    Opt(("--link",), "link", "list", "a legacy link to a container: NAME[:ALIAS]"),
    Opt(("--pid",), "pid", "value", "PID namespace: host or container:NAME"),
    Opt(("--ipc",), "ipc", "value", "IPC namespace: private, shareable, none, host or container:NAME"),
    Opt(("--uts",), "uts", "value", "UTS namespace: host"),
    Opt(("--userns",), "userns", "value", "user namespace: host"),
    Opt(("--cgroupns",), "cgroupns", "value", "cgroup namespace: host or private"),
    Opt(("--cgroup-parent",), "cgroup_parent", "value", "a cgroup parent of the container's own"),
    Opt(("--group-add",), "group_add", "list", "another group for the container's process"),
    Opt(("--oom-score-adj",), "oom_score_adj", "value", "the OOM killer's preference (-1000 to 1000)", int),
    Opt(("--oom-kill-disable",), "oom_kill_disable", "flag", "keep the OOM killer off the container"),
    Opt(("--shm-size",), "shm_size", "value", "size of /dev/shm (e.g. 64m)"),
    Opt(("--read-only",), "read_only", "flag", "mount the container's root file system read-only"),
    Opt(("--memory-swappiness",), "memory_swappiness", "value", "swappiness, 0 to 100", int),
    Opt(("--blkio-weight-device",), "blkio_weight_device", "list", "a device's block I/O weight: DEVICE:WEIGHT"),
    Opt(("--device-read-bps",), "device_read_bps", "list", "read rate limit: DEVICE:RATE (e.g. 1mb)"),
    Opt(("--device-write-bps",), "device_write_bps", "list", "write rate limit: DEVICE:RATE"),
    Opt(("--device-read-iops",), "device_read_iops", "list", "read limit in operations per second: DEVICE:N"),
    Opt(("--device-write-iops",), "device_write_iops", "list", "write limit in operations per second: DEVICE:N"),
    Opt(("--log-driver",), "log_driver", "value", "json-file (default) or none"),
    Opt(("--storage-opt",), "storage_opt", "list", "a storage driver option: KEY=VALUE"),
    Opt(("--isolation",), "isolation", "value", "isolation technology (default)"),
    Opt(("--stop-signal",), "stop_signal", "value", "the signal that stops the container"),
    Opt(("--stop-timeout",), "stop_timeout", "value", "seconds to wait for it to stop before SIGKILL", int),
)
def _pull_policy(text: str) -> str:
    if text not in ("always", "missing", "never"):
        raise UsageError(f"invalid pull option: '{text}': must be one of \"always\", \"missing\" or \"never\"")
    return text


CONTAINER = (
    Opt(("--name",), "name", "value", "container name"),
    Opt(("--pull",), "pull", "value", "pull the image: missing (the default), always or never", _pull_policy),
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
    *HOST,
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
    """The HostConfig fields of the options in LIMITS (create, run, update)."""
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
    if args.memory_swap:
        found["MemorySwap"] = -1 if args.memory_swap == "-1" else options.ram_bytes(args.memory_swap)
    if args.cpu_period:
        found["CpuPeriod"] = args.cpu_period
    if args.cpu_quota:
        found["CpuQuota"] = args.cpu_quota
    for flag, field in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems"),
                        ("cpu_rt_period", "CpuRealtimePeriod"), ("cpu_rt_runtime", "CpuRealtimeRuntime"),
                        ("blkio_weight", "BlkioWeight")):
        if args[flag]:
            found[field] = args[flag]
    for flag, field in (("memory_reservation", "MemoryReservation"), ("kernel_memory", "KernelMemory")):
        if args[flag]:
            found[field] = options.ram_bytes(args[flag])
    return found


def host_settings(args) -> tuple[dict, dict]:
    """(HostConfig fields, Config fields) of the options in HOST, as the docker CLI sends them."""
    host: dict = {}
    config: dict = {}
    for flag, field in (("privileged", "Privileged"), ("read_only", "ReadonlyRootfs")):
        if args[flag]:
            host[field] = True
    if args.oom_kill_disable:
        host["OomKillDisable"] = True
    for flag, field in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop"), ("device_cgroup_rule", "DeviceCgroupRules"),
                        ("dns", "Dns"), ("dns_search", "DnsSearch"), ("dns_option", "DnsOptions"),
                        ("add_host", "ExtraHosts"), ("volumes_from", "VolumesFrom"), ("link", "Links"),
                        ("group_add", "GroupAdd")):
        if args[flag]:
            host[field] = list(args[flag])
    for flag, field in (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode"), ("userns", "UsernsMode"),
                        ("cgroupns", "CgroupnsMode"), ("cgroup_parent", "CgroupParent"), ("isolation", "Isolation"),
                        ("volume_driver", "VolumeDriver")):
        if args[flag]:
            host[field] = args[flag]
    for flag, field in (("oom_score_adj", "OomScoreAdj"), ("memory_swappiness", "MemorySwappiness")):
        if args[flag] is not None:
            host[field] = args[flag]
    if args.shm_size:
        host["ShmSize"] = options.ram_bytes(args.shm_size)
    if args.security_opt:
        security_options(args.security_opt, host)
    if args.device:
        host["Devices"] = [device(text) for text in args.device]
    if args.gpus:
        count = -1 if args.gpus == "all" else _number(args.gpus, "--gpus")
        host["DeviceRequests"] = [{"Driver": "", "Count": count, "Capabilities": [["gpu"]]}]
    if args.sysctl:
        host["Sysctls"] = options.key_values(args.sysctl, "sysctl")
    if args.ulimit:
        host["Ulimits"] = [ulimit(text) for text in args.ulimit]
    if args.tmpfs:
        host["Tmpfs"] = {dst: opts for dst, _, opts in (t.partition(":") for t in args.tmpfs)}
    if args.storage_opt:
        host["StorageOpt"] = options.key_values(args.storage_opt, "storage option")
    if args.blkio_weight_device:
        host["BlkioWeightDevice"] = [{"Path": path, "Weight": _number(weight, "--blkio-weight-device")}
                                     for path, weight in (_device_value(t) for t in args.blkio_weight_device)]
    for flag, field, rate in (("device_read_bps", "BlkioDeviceReadBps", options.ram_bytes),
                              ("device_write_bps", "BlkioDeviceWriteBps", options.ram_bytes),
                              ("device_read_iops", "BlkioDeviceReadIOps", None),
                              ("device_write_iops", "BlkioDeviceWriteIOps", None)):
        if args[flag]:
            host[field] = [{"Path": path, "Rate": rate(value) if rate else _number(value, "--" + flag.replace("_", "-"))}
                           for path, value in (_device_value(t) for t in args[flag])]
    for flag, field in (("domainname", "Domainname"), ("mac_address", "MacAddress"), ("stop_signal", "StopSignal")):
        if args[flag]:
            config[field] = args[flag]
    if args.stop_timeout is not None:
        config["StopTimeout"] = args.stop_timeout
    return host, config


def security_options(given: list[str], host: dict) -> None:
    """`--security-opt`s as the docker CLI sends them: `seccomp=FILE` as the file's
    content, `systempaths=unconfined` as empty masked and read-only path lists."""
    sent = []
    for opt in given:
        if opt == "systempaths=unconfined":
            host["MaskedPaths"], host["ReadonlyPaths"] = [], []
            continue
        key, eq, value = opt.partition("=")
        if key == "seccomp" and eq and value != "unconfined":
            try:
                with open(value, "rb") as f:
                    profile = fastjson.loads(f.read())
            except OSError as exc:
                raise UsageError(f"opening seccomp profile ({value}) failed: {exc.strerror}") from None
            except ValueError as exc:
                raise UsageError(f"parsing seccomp profile ({value}) failed: {exc}") from None
            opt = "seccomp=" + fastjson.dumps(profile)
        sent.append(opt)
    host["SecurityOpt"] = sent


def device(text: str) -> dict:
    """`--device SRC[:DST][:PERMISSIONS]` → a HostConfig.Devices entry (docker's parseDevice)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise UsageError(f"invalid device specification: {text}")
    permissions, inside = "rwm", ""
    if len(parts) == 3:
        inside, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if parts[1] and set(parts[1]) <= set("rwm") and len(set(parts[1])) == len(parts[1]):
            permissions = parts[1]
        else:
            inside = parts[1]
    if not permissions or not set(permissions) <= set("rwm") or len(set(permissions)) != len(permissions):
        raise UsageError(f"bad mode specified: {permissions}")
    if inside and not inside.startswith("/"):
        raise UsageError(f"{inside} is not an absolute path")
    return {"PathOnHost": parts[0], "PathInContainer": inside or parts[0], "CgroupPermissions": permissions}


def ulimit(text: str) -> dict:
    """`--ulimit NAME=SOFT[:HARD]` → a HostConfig.Ulimits entry (go-units' ParseUlimit)."""
    name, eq, limits = text.partition("=")
    if not eq:
        raise UsageError(f"invalid ulimit argument: {text}")
    soft_text, _, hard_text = limits.partition(":")
    soft = _number(soft_text, "--ulimit", negative=True)
    hard = _number(hard_text, "--ulimit", negative=True) if hard_text else soft
    if hard != -1 and soft > hard:
        raise UsageError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def _device_value(text: str) -> tuple[str, str]:
    """`DEVICE:VALUE` of the block I/O options."""
    path, sep, value = text.rpartition(":")
    if not sep or not path.startswith("/dev/"):
        raise UsageError(f"bad format: {text}")
    return path, value


def _number(text: str, flag: str, negative: bool = False) -> int:
    body = text[1:] if negative and text.startswith("-") else text
    if not body.isdigit():
        raise UsageError(f"invalid argument {text!r} for {flag!r}: not a number")
    return int(text)


def create_body(args) -> dict:
    """The `POST /containers/create` body for `run`/`create` options."""
    settings, config = host_settings(args)
    host = {"AutoRemove": bool(getattr(args, "rm", False)), "Init": True if args.init else None, **limits(args),
            **settings}
    if args.runtime:
        host["Runtime"] = args.runtime
    if args.log_opt or args.log_driver:
        host["LogConfig"] = {"Type": args.log_driver or "json-file",
                             "Config": options.key_values(args.log_opt, "log option")}
    # as the docker CLI: `-v SRC:DST[:MODE]` is a bind, a lone `-v /path` an anonymous volume
    if any(":" in v for v in args.volume):
        host["Binds"] = [v for v in args.volume if ":" in v]
    if args.mount:
        host["Mounts"] = [mount_spec(m) for m in args.mount]
    body = {"Image": args.image, "Cmd": args.command or None, "Env": args.env or None,
            "WorkingDir": args.workdir or "", "User": args.user or "", "Hostname": args.hostname or "",
            "Labels": options.key_values(args.label, "label"), "HostConfig": host,
            "AttachStdout": not getattr(args, "detach", False), "AttachStderr": not getattr(args, "detach", False),
            "Tty": bool(args.tty), "OpenStdin": bool(args.interactive), **config}
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
