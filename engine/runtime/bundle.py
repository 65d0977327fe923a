"""The OCI bundle: `config.json` for one container, from its record and image.

Confinement follows Docker's, line by line (docs/security.md):
- capabilities: Docker's default set, `--cap-add`/`--cap-drop` by its rules, all the
  daemon's bounding set holds under `--privileged` (`capabilities`);
- seccomp: Docker's default profile evaluated for the container's capabilities and the
  host (`seccomp`), none with `--privileged` or `--security-opt seccomp=unconfined`;
- NoNewPrivs off unless `--security-opt no-new-privileges` (`security`);
- masked and read-only /proc and /sys paths, /sys read-only;
- the device allow-list (`devices`), a 64 MB /dev/shm, NOFILE at the daemon's hard limit;
- /etc/hosts, /etc/hostname, /etc/resolv.conf bind-mounted from the container's directory.
`--privileged` lifts all of it but the namespaces: every host device, /sys and its
cgroups read-write, nothing masked.
"""

from __future__ import annotations

import functools
import glob
import resource
from pathlib import Path

from ..errors import BadRequest
from ..models import ContainerRecord, HostConfig, MountPoint
from . import capabilities, devices, seccomp, security

INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker 20.10's, and what later advisories added: /proc/interrupts and each CPU's
# thermal_throttle (GHSA-6fw5-f8r9-fgfm), powercap (GHSA-jq35-85cj-fj4p)
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
                "/sys/devices/virtual/powercap", "/sys/firmware"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


@functools.cache
def masked_paths() -> list[str]:
    """MASKED_PATHS and the thermal_throttle directory of each CPU that has one (fixed
    for the daemon's life, as in dockerd)."""
    return MASKED_PATHS + sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"),
                                 key=lambda p: int(p.split("/")[5].removeprefix("cpu")))


def check(hc: HostConfig) -> None:
    """Refuse at create what the bundle could not be made from (BadRequest naming it): an
    unknown capability, one the daemon's bounding set lacks, a bad `--security-opt`."""
    security.parse(hc.security_opt)
    capabilities.container_set(hc.cap_add, hc.cap_drop, privileged=hc.privileged)


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
    res: dict = {"devices": devices.privileged_rules() if hc.privileged else devices.default_rules()}
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
    opts = security.parse(hc.security_opt)
    caps = capabilities.container_set(hc.cap_add, hc.cap_drop, privileged=hc.privileged)
    confined = not hc.privileged
    filter_ = seccomp.filter_for(frozenset(caps), opts.seccomp) if confined and opts.seccomp != "unconfined" else None
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    ro = ["ro"] if confined else []  # a privileged container's /sys and cgroups are writable
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": [*ro, "nosuid", "noexec", "nodev"]},
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
            "noNewPrivileges": opts.no_new_privileges,
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
            **({"maskedPaths": masked_paths(), "readonlyPaths": READONLY_PATHS} if confined
               else {"devices": devices.host_devices()}),
            **({"seccomp": filter_.oci} if filter_ is not None else {}),
        },
        **({"annotations": {seccomp.BPF_ANNOTATION: filter_.bpf}} if filter_ is not None and filter_.bpf else {}),
    }
