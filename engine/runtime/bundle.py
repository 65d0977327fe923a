"""The OCI bundle: `config.json` for one container, from its record and image.

Defaults follow Docker's: its capability set, masked and read-only /proc paths, the
device allow-list, a 64 MB /dev/shm, and /etc/hosts, /etc/hostname, /etc/resolv.conf
bind-mounted from the container's directory.
"""

from __future__ import annotations

import resource
from pathlib import Path

from ..errors import BadRequest
from ..models import ContainerRecord, MountPoint

INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
ALL_CAPS = DEFAULT_CAPS + [
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE", "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
]
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_DEVICES = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)]


def resolve_user(rootfs: Path, spec: str) -> tuple[int, int, list[int]]:
    """Resolve Docker's `user[:group]` (names or numbers) against the rootfs' /etc files."""
    user, _, group = spec.partition(":")

    def table(name: str) -> list[list[str]]:
        try:
            text = (rootfs / "etc" / name).read_text(errors="replace")
        except OSError:
            return []
        return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]

    passwd, groups = table("passwd"), table("group")
    uid, gid = 0, 0
    if user:
        entry = next((e for e in passwd if len(e) > 3 and (e[0] == user or e[2] == user)), None)
        if entry:
            uid, gid = int(entry[2]), int(entry[3])
        elif user.isdigit():
            uid = int(user)
        else:
            raise BadRequest(f"unable to find user {user}: no matching entries in passwd file")
    if group:
        entry = next((e for e in groups if len(e) > 2 and (e[0] == group or e[2] == group)), None)
        if entry:
            gid = int(entry[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise BadRequest(f"unable to find group {group}: no matching entries in group file")
    name = next((e[0] for e in passwd if len(e) > 2 and e[2] == str(uid)), None)
    extra = [int(g[2]) for g in groups if len(g) > 3 and name and name in g[3].split(",") and g[2].isdigit()]
    return uid, gid, extra


def _home(rootfs: Path, uid: int) -> str:
    try:
        for line in (rootfs / "etc" / "passwd").read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == str(uid):
                return fields[5]
    except OSError:
        pass
    return "/"


def resources(record: ContainerRecord) -> dict:
    """The OCI `linux.resources` of a container: devices and its HostConfig limits."""
    hc = record.host_config
    res: dict = {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                    {"allow": True, "type": "c", "access": "m"},
                    {"allow": True, "type": "b", "access": "m"}]
        + [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for ma, mi in _DEVICES],
    }
    if hc.memory:
        res["memory"] = {"limit": hc.memory}
        if hc.memory_swap:
            res["memory"]["swap"] = hc.memory_swap
    cpu: dict = {}
    if hc.cpu_shares:
        cpu["shares"] = hc.cpu_shares
    if hc.nano_cpus:
        cpu["period"] = 100_000
        cpu["quota"] = hc.nano_cpus * 100_000 // 1_000_000_000
    elif hc.cpu_quota:
        cpu["quota"] = hc.cpu_quota
        cpu["period"] = hc.cpu_period or 100_000
    if cpu:
        res["cpu"] = cpu
    if hc.pids_limit and hc.pids_limit > 0:
        res["pids"] = {"limit": hc.pids_limit}
    return res


def process_args(record: ContainerRecord) -> list[str]:
    args = [record.path, *record.args]
    return [INIT_PATH, "--", *args] if record.host_config.init else args


def user_mount(m: MountPoint) -> dict:
    """One of the container's own mounts (`-v`, `--mount`, image volumes) as an OCI mount:
    a volume's `_data` or a host path bind-mounted, or a fresh tmpfs."""
    if m.type == "tmpfs":
        return {"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                "options": [*m.tmpfs_options, *([] if m.rw else ["ro"])]}
    return {"destination": m.destination, "type": "bind", "source": m.source,
            "options": ["rbind", m.propagation or "rprivate", *([] if m.rw else ["ro"])]}


def with_user_mounts(defaults: list[dict], record: ContainerRecord) -> list[dict]:
    """The default mounts, less those a user mount replaces (`-v ./hosts:/etc/hosts`, as
    dockerd lets it), then the user mounts, parents before what they contain."""
    own = sorted(record.mounts, key=lambda m: m.destination.count("/"))
    taken = {m.destination for m in own}
    return [m for m in defaults if m["destination"] not in taken] + [user_mount(m) for m in own]


def oci_config(record: ContainerRecord, *, rootfs: Path, files: Path, netns: Path,
               cgroups_path: str, image_env: list[str], init_binary: str | None) -> dict:
    """Build the OCI runtime config for `record` (rootfs already mounted)."""
    cfg, hc = record.config, record.host_config
    uid, gid, extra_gids = resolve_user(rootfs, cfg.user)
    env = dict(e.partition("=")[::2] for e in image_env)
    env.update(e.partition("=")[::2] for e in cfg.env or [])
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = cfg.hostname
    env.setdefault("HOME", _home(rootfs, uid))
    if cfg.tty:
        env.setdefault("TERM", "xterm")  # as dockerd does for a container with a terminal
    caps = ALL_CAPS if hc.privileged else sorted(set(DEFAULT_CAPS + [f"CAP_{c.upper().removeprefix('CAP_')}" for c in hc.cap_add or []])
                                                 - {f"CAP_{c.upper().removeprefix('CAP_')}" for c in hc.cap_drop or []})
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={hc.shm_size or 64 * 1024 * 1024}"]},
    ]
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(files / name), "options": ["rbind", "rprivate"]})
    if hc.init:
        if not init_binary:
            raise BadRequest("--init requested but no init binary (tini) is installed on this host")
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary, "options": ["bind", "ro"]})
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": uid, "gid": gid, **({"additionalGids": extra_gids} if extra_gids else {})},
            "args": process_args(record),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": cfg.working_dir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": not hc.privileged,
        },
        "root": {"path": str(rootfs), "readonly": hc.readonly_rootfs},
        "hostname": cfg.hostname,
        "mounts": with_user_mounts(mounts, record),
        "linux": {
            # `--network host`: no network namespace of its own, the host's is shared
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                           *([] if hc.network_mode == "host" else [{"type": "network", "path": str(netns)}])],
            "cgroupsPath": cgroups_path,
            "resources": resources(record),
            **({} if hc.privileged else {"maskedPaths": MASKED_PATHS, "readonlyPaths": READONLY_PATHS}),
        },
    }
