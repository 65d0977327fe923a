"""The OCI bundle: `config.json` for one container, from its record and image.

Confinement follows Docker's, line by line (docs/security.md):
- capabilities: Docker's default set, `--cap-add`/`--cap-drop` by its rules, all the
  daemon's bounding set holds under `--privileged` (`capabilities`);
- seccomp: Docker's default profile evaluated for the container's capabilities and the
  host (`seccomp`), none with `--privileged` or `--security-opt seccomp=unconfined`;
- NoNewPrivs off unless `--security-opt no-new-privileges` (`security`);
- masked and read-only /proc and /sys paths (`MaskedPaths`/`ReadonlyPaths`), /sys read-only;
- the device allow-list (`devices`) plus `--device` nodes and `--device-cgroup-rule`s, a
  64 MB /dev/shm (`--shm-size`), NOFILE at the daemon's hard limit unless `--ulimit` says;
- /etc/hosts, /etc/hostname, /etc/resolv.conf bind-mounted from the container's directory
  (with `--network container:<id>`, from that container's).
`--privileged` lifts all of it but the namespaces: every host device, /sys and its
cgroups read-write, nothing masked.

The rest of HostConfig lands here too: the namespaces (`--pid`, `--ipc`, `--uts`,
`--cgroupns`, `--network`; `container:<id>` joins the running container's through
/proc/PID/ns, its PID read from that container's record beside this one's directory, or
for the network through the file its run pinned the namespace on), `--tmpfs` mounts,
rlimits, namespaced sysctls, `--oom-score-adj`, `--group-add` and every cgroup limit
(`resources`). `check` refuses at create, with dockerd's or the runtime's words, what
could not be made into a bundle.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import resource
import stat
from pathlib import Path
from typing import NamedTuple

import msgspec

from ..errors import BadRequest, Conflict, EngineError
from ..fs import inroot
from ..models import ContainerRecord, DeviceMapping, HostConfig, MountPoint
from . import capabilities, devices, seccomp, security, syscalls

INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker 20.10's, and what later advisories added: /proc/interrupts and each CPU's
# thermal_throttle (GHSA-6fw5-f8r9-fgfm), powercap (GHSA-jq35-85cj-fj4p)
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
                "/sys/devices/virtual/powercap", "/sys/firmware"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
RLIM_INFINITY = 2**64 - 1
# What `--ulimit` may name (go-units), each the RLIMIT_<NAME> of setrlimit(2)
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
           "rttime", "sigpending", "stack")
# sysctls the IPC namespace holds (runc's list); fs.mqueue.* too, and net.* the network namespace
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")
DEVICE_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
# Mount flags a `--tmpfs` may carry, each with the flag it sets or clears: a later one
# wins over an earlier one of the same flag (moby's MergeTmpfsOptions)
_TMPFS_FLAGS = {"ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
                "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
                "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
                "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind",
                "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime",
                "nostrictatime": "strictatime",
                **{p: "propagation" for p in ("private", "rprivate", "shared", "rshared", "slave", "rslave",
                                              "unbindable", "runbindable")}}
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")
_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev", "rprivate"]
_MAX_ID = 2**31 - 1
_ID = re.compile(r"[0-9]+")  # an ID as passwd and group files and `--user` write it (ASCII digits)
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8


@functools.cache
def masked_paths() -> list[str]:
    """MASKED_PATHS and the thermal_throttle directory of each CPU that has one (fixed
    for the daemon's life, as in dockerd)."""
    return MASKED_PATHS + sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle"),
                                 key=lambda p: int(p.split("/")[5].removeprefix("cpu")))


def check(hc: HostConfig) -> None:
    """Refuse at create what the bundle could not be made from (BadRequest naming it): an
    unknown capability, one the daemon's bounding set lacks, a bad or meaningless
    `--security-opt`, a device that is none, a bad cgroup rule, a sysctl outside the
    container's namespaces, a bad ulimit or tmpfs option."""
    opts = security.parse(hc.security_opt)
    if opts.apparmor not in ("", "unconfined"):
        raise BadRequest(f"SecurityOpt apparmor={opts.apparmor}: berth applies no AppArmor profile (this host has no "
                         f"AppArmor); only apparmor=unconfined is accepted")
    for label in opts.labels:
        if label != "disable":
            raise BadRequest(f"SecurityOpt label={label}: berth applies no SELinux labels (this host has no SELinux); "
                             f"only label=disable is accepted")
    capabilities.container_set(hc.cap_add, hc.cap_drop, privileged=hc.privileged)
    for mapping in hc.devices or []:
        device_nodes(mapping)
    device_rules(hc)
    for key in hc.sysctls or {}:
        problem = sysctl_problem(key, hc)
        if problem:
            raise BadRequest(problem)
    rlimits(hc)
    for options in (hc.tmpfs or {}).values():
        tmpfs_options(options)


def sysctl_problem(key: str, hc: HostConfig) -> str:
    """Why the container may not set sysctl `key` ("" if it may): only what its own
    namespaces hold can be set, as runc checks."""
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return f'sysctl "{key}" is not allowed in the hosts ipc namespace' if hc.ipc_mode == "host" else ""
    if key.startswith("net."):
        return f'sysctl "{key}" not allowed in host network namespace' if hc.network_mode == "host" else ""
    if key in ("kernel.hostname", "kernel.domainname"):
        return f'sysctl "{key}" is not allowed as it conflicts with the {key[7:].capitalize()} setting'
    return f'sysctl "{key}" is not in a separate kernel namespace'


def rlimits(hc: HostConfig) -> list[dict]:
    """The process's rlimits: NOFILE at the daemon's hard limit (what dockerd's containers
    inherit), then each `--ulimit` (-1: unlimited)."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits = {"RLIMIT_NOFILE": (nofile, nofile)}
    for u in hc.ulimits or []:
        if u.name not in ULIMITS:
            raise BadRequest(f"invalid ulimit type: {u.name}")
        if u.soft < -1 or u.hard < -1:
            raise BadRequest(f"invalid ulimit {u.name}: {min(u.soft, u.hard)} (-1 is unlimited)")
        soft, hard = (RLIM_INFINITY if v == -1 else v for v in (u.soft, u.hard))
        if soft > hard:
            raise BadRequest(f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}")
        if u.name == "nofile" and hard > (nr_open := int(Path("/proc/sys/fs/nr_open").read_text())):
            raise BadRequest(f"ulimit nofile: the hard limit {u.hard} is above the kernel's fs.nr_open ({nr_open})")
        limits[f"RLIMIT_{u.name.upper()}"] = (soft, hard)
    return [{"type": kind, "hard": hard, "soft": soft} for kind, (soft, hard) in limits.items()]


def tmpfs_options(data: str) -> list[str]:
    """A `--tmpfs` mount's options: Docker's defaults (noexec, nosuid, nodev) and then
    the user's, a later one winning over an earlier one that sets the same thing."""
    options = [*_TMPFS_DEFAULTS, *(data.split(",") if data else [])]
    taken, merged = set(), []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = _TMPFS_FLAGS.get(option)
        if key is None:
            name, eq, _ = option.partition("=")
            if not eq or name not in _TMPFS_DATA:
                raise BadRequest(f"Invalid tmpfs option {json.dumps(option.split('=', 1)).replace(', ', ' ')}")
            key = name
        if key not in taken:
            taken.add(key)
            merged.insert(0, option)
    return merged


def device_nodes(m: DeviceMapping) -> list[dict]:
    """The OCI `linux.devices` entries of a `--device`: the node (a symlink resolved), or
    every node below a directory, at PathInContainer; dockerd's error when there is none."""
    host, inside = m.path_on_host, m.path_in_container or m.path_on_host
    if not inside.startswith("/"):
        raise BadRequest(f"{inside} is not an absolute path")
    perms = m.cgroup_permissions or "rwm"
    if len(set(perms)) != len(perms) or not set(perms) <= set("rwm"):
        raise BadRequest(f"bad mode specified: {perms}")
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        st = os.stat(resolved)
    except OSError as exc:
        raise BadRequest(f'error gathering device information while adding custom device "{host}": '
                         f"{(exc.strerror or str(exc)).lower()}") from None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return [{"path": inside, "type": "c" if stat.S_ISCHR(st.st_mode) else "b", "major": os.major(st.st_rdev),
                 "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                 "gid": st.st_gid}]
    found = devices.host_devices(resolved) if stat.S_ISDIR(st.st_mode) else []
    if not found:
        raise BadRequest(f'error gathering device information while adding custom device "{host}": not a device node')
    return [{**d, "path": inside.rstrip("/") + d["path"][len("/dev"):]} for d in found]


def device_rules(hc: HostConfig) -> list[dict]:
    """The device cgroup's rules: Docker's defaults (everything for `--privileged`), each
    `--device` with its permissions, each `--device-cgroup-rule`."""
    if hc.privileged:
        return devices.privileged_rules()
    rules = devices.default_rules()
    for mapping in hc.devices or []:
        perms = mapping.cgroup_permissions or "rwm"
        rules += [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": perms}
                  for d in device_nodes(mapping)]
    for text in hc.device_cgroup_rules or []:
        found = DEVICE_RULE.match(text)
        if not found:
            raise BadRequest(f"invalid device cgroup rule format: '{text}'")
        kind, major, minor, access = found.groups()
        rules.append({"allow": True, "type": kind, "major": -1 if major == "*" else int(major),
                      "minor": -1 if minor == "*" else int(minor), "access": access})
    return rules


def _table(root: inroot.InRootPath, name: str) -> list[list[str]]:
    """The entries of the container's /etc/passwd or /etc/group, split in fields; none
    where that is not a regular file (a FIFO, a device, a link out of the root)."""
    try:
        text = (root / "etc" / name).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


class _Users(NamedTuple):
    """The container's passwd and group entries whose IDs are numbers (the files are the
    container's to write: any other entry is skipped)."""

    passwd: list[list[str]]
    groups: list[list[str]]

    @classmethod
    def read(cls, root: inroot.InRootPath) -> _Users:
        return cls([e for e in _table(root, "passwd") if len(e) > 3 and _ID.fullmatch(e[2]) and _ID.fullmatch(e[3])],
                   [e for e in _table(root, "group") if len(e) > 2 and _ID.fullmatch(e[2])])

    def resolve(self, spec: str) -> tuple[int, int, list[int]]:
        """Docker's `user[:group]` (names or numbers) → (uid, gid, the user's other groups)."""
        user, _, group = spec.partition(":")
        uid, gid = 0, 0
        if user:
            entry = next((e for e in self.passwd if user in (e[0], e[2])), None)
            if entry:
                uid, gid = int(entry[2]), int(entry[3])
            elif _ID.fullmatch(user):
                uid = int(user)
            else:
                raise BadRequest(f"unable to find user {user}: no matching entries in passwd file")
        if group:
            entry = next((e for e in self.groups if group in (e[0], e[2])), None)
            if entry:
                gid = int(entry[2])
            elif _ID.fullmatch(group):
                gid = int(group)
            else:
                raise BadRequest(f"unable to find group {group}: no matching entries in group file")
            return uid, gid, []  # as dockerd: a group named with the user replaces the user's memberships
        name = next((e[0] for e in self.passwd if int(e[2]) == uid), None)
        return uid, gid, [int(g[2]) for g in self.groups if len(g) > 3 and name and name in g[3].split(",")]

    def owner(self, spec: str) -> tuple[int, int]:
        """The classic builder's `--chown=user[:group]` (dockerd's parseChownFlag): a
        number is taken as it is, a name looked up; without a group, the user's own
        word names the group too (`--chown=1001` is 1001:1001, `--chown=app` app:app)."""
        parts = spec.split(":")
        if len(parts) > 2:
            raise BadRequest(f"invalid chown string format: {spec}")
        return self._id(parts[0], self.passwd, "uid", "user"), self._id(parts[-1], self.groups, "gid", "group")

    @staticmethod
    def _id(word: str, table: list[list[str]], id_name: str, kind: str) -> int:
        if _ID.fullmatch(word):
            return int(word)
        entry = next((e for e in table if e[0] == word), None)
        if entry is None:
            raise BadRequest(f"can't find {id_name} for {kind} {word}: no such {kind}: {word}")
        return int(entry[2])

    def home(self, uid: int) -> str:
        """The home directory passwd gives `uid`, "/" when it names none (as runc)."""
        return next((e[5] for e in self.passwd if len(e) > 5 and int(e[2]) == uid), "/")

    def group_ids(self, names: list[str] | None) -> list[int]:
        """Each `--group-add`: a name or number from the container's /etc/group, or any number."""
        found = []
        for wanted in names or []:
            entry = next((e for e in self.groups if wanted in (e[0], e[2])), None)
            if entry:
                found.append(int(entry[2]))
            elif _ID.fullmatch(wanted) and int(wanted) <= _MAX_ID:
                found.append(int(wanted))
            else:
                raise BadRequest(f"Unable to find group {wanted}: no matching entries in group file")
        return found


class Identity(NamedTuple):
    """Who a container's process (or an exec's) runs as."""

    uid: int
    gid: int
    gids: list[int]  # its own group, the user's other groups, then each --group-add, as dockerd
    home: str


def identity(root: inroot.InRootPath, spec: str, group_add: list[str] | None) -> Identity:
    """The process's user, groups and home from the container's passwd and group files,
    each read once, inside its root (`inroot.rooted`)."""
    users = _Users.read(root)
    uid, gid, extra = users.resolve(spec)
    return Identity(uid, gid, list(dict.fromkeys([gid, *extra, *users.group_ids(group_add)])), users.home(uid))


def resolve_user(root: inroot.InRootPath, spec: str) -> tuple[int, int, list[int]]:
    """Resolve Docker's `user[:group]` (names or numbers) against the container's /etc
    files, read inside its root: (uid, gid, the user's other groups)."""
    return _Users.read(root).resolve(spec)


def chown_owner(root: inroot.InRootPath, spec: str) -> tuple[int, int]:
    """(uid, gid) of a build's `COPY --chown=SPEC`, names read inside the image's root."""
    return _Users.read(root).owner(spec)


def block_device(path: str) -> dict:
    """A block device's numbers, read now (`--blkio-weight-device`, `--device-read-bps`…)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadRequest(f"stat {path}: {(exc.strerror or str(exc)).lower()}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise BadRequest(f"{path} is not a block device")
    return {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}


def resources(record: ContainerRecord) -> dict:
    """The OCI `linux.resources` of a container: devices and its HostConfig limits."""
    hc = record.host_config
    res: dict = {"devices": device_rules(hc)}
    memory = {key: value for key, value in (
        ("limit", hc.memory), ("swap", hc.memory_swap if hc.memory > 0 else 0), ("reservation", hc.memory_reservation),
        ("kernelTCP", hc.kernel_memory_tcp), ("disableOOMKiller", bool(hc.oom_kill_disable))) if value and value > 0}
    if hc.memory_swap == -1 and hc.memory > 0:
        memory["swap"] = -1  # unlimited swap
    if hc.memory_swappiness is not None:
        memory["swappiness"] = hc.memory_swappiness
    if memory:
        res["memory"] = memory
    # NanoCpus is a quota per 100 ms period (dockerd's); CpuPeriod and CpuQuota say it themselves
    cpu: dict = {"period": 100_000, "quota": hc.nano_cpus * 100_000 // 1_000_000_000} if hc.nano_cpus else {}
    cpu.update({key: value for key, value in (
        ("shares", hc.cpu_shares), ("period", hc.cpu_period), ("quota", hc.cpu_quota),
        ("realtimePeriod", hc.cpu_realtime_period), ("realtimeRuntime", hc.cpu_realtime_runtime),
        ("cpus", hc.cpuset_cpus), ("mems", hc.cpuset_mems)) if value})
    if cpu:
        res["cpu"] = cpu
    if hc.pids_limit and hc.pids_limit > 0:
        res["pids"] = {"limit": hc.pids_limit}
    block: dict = {}
    if hc.blkio_weight:
        block["weight"] = hc.blkio_weight
    if hc.blkio_weight_device:
        block["weightDevice"] = [{**block_device(w.path), "weight": w.weight} for w in hc.blkio_weight_device]
    for key, wanted in (("throttleReadBpsDevice", hc.blkio_device_read_bps),
                        ("throttleWriteBpsDevice", hc.blkio_device_write_bps),
                        ("throttleReadIOPSDevice", hc.blkio_device_read_i_ops),
                        ("throttleWriteIOPSDevice", hc.blkio_device_write_i_ops)):
        if wanted:
            block[key] = [{**block_device(t.path), "rate": t.rate} for t in wanted]
    if block:
        res["blockIO"] = block
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


def own_file_mounts(files: Path, donor: str) -> list[dict]:
    """The container's /etc/resolv.conf, hostname and hosts, bound from its directory
    (`files`); on the network of another container (`donor`, its ID), that container's,
    as dockerd shares them."""
    where = files.parent / donor if donor else files
    return [{"destination": f"/etc/{name}", "type": "bind", "source": str(where / name), "options": ["rbind", "rprivate"]}
            for name in ("resolv.conf", "hostname", "hosts")]


def rootfs_propagation(record: ContainerRecord) -> str:
    """The propagation of the container's root that its bind mounts' need (`rshared`
    when one is shared, `rslave` when one is a slave, "" for private ones), as dockerd
    sets it: a mount can only share with, or receive from, a source whose own mount on
    this host is shared (or, for a slave, shared or itself a slave); dockerd refuses the
    others rather than leave them silently private."""
    wanted = ""
    for m in record.mounts:
        kind = m.propagation.lstrip("r") if m.type == "bind" else "private"
        if kind == "private":
            continue
        point, optional = syscalls.mount_of(m.source)
        shared = any(field.startswith("shared:") for field in optional)
        if kind == "shared" and not shared:
            raise EngineError(f"path {m.source} is mounted on {point} but it is not a shared mount")
        if kind == "slave" and not shared and not any(field.startswith("master:") for field in optional):
            raise EngineError(f"path {m.source} is mounted on {point} but it is not a shared or slave mount")
        wanted = "rshared" if kind == "shared" else wanted or "rslave"
    return wanted


def with_user_mounts(kernel: list[dict], files: list[dict], record: ContainerRecord) -> list[dict]:
    """The container's mounts in the order crun makes them: the kernel file systems
    (/proc, /dev, /sys…), then its own files (/etc/hosts…), the user mounts and `--tmpfs`
    mounts together, parents before what they contain (as dockerd sorts them, so that `-v
    DIR:/etc` does not hide /etc/hosts). A user mount at a default's place replaces it
    (`-v ./hosts:/etc/hosts`, as dockerd lets it)."""
    own = [user_mount(m) for m in record.mounts]
    own += [{"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": tmpfs_options(data)}
            for dst, data in (record.host_config.tmpfs or {}).items()]
    taken = {m["destination"] for m in own}
    placed = [m for m in files if m["destination"] not in taken] + own
    placed.sort(key=lambda m: m["destination"].rstrip("/").count("/"))
    return [m for m in kernel if m["destination"] not in taken] + placed


def joined(mode: str) -> str:
    """The container whose namespace a `container:<id>` mode joins ("" for another mode)."""
    kind, sep, target = mode.partition(":")
    return target if kind == "container" and sep else ""


def network_donor(record: ContainerRecord, files: Path) -> str:
    """The ID of the running container whose network namespace (and /etc/hosts,
    /etc/hostname, /etc/resolv.conf) a `--network container:<id>` container uses,
    followed through a donor that is itself on a third one's network; "" for another
    mode. Conflict if it does not run."""
    target = joined(record.host_config.network_mode)
    seen = set()
    while target and target not in seen:
        seen.add(target)
        further = joined(_peer(files, target, "network").host_config.network_mode)
        if not further:
            return target
        target = further
    return ""


def _peer(files: Path, target: str, what: str) -> ContainerRecord:
    """The record of the running container `target` whose namespace this one joins, read
    from its directory beside this container's `files`, so that every start (a restart
    policy's too) finds its current process; Conflict if it does not run."""
    try:
        peer = msgspec.json.decode((files.parent / target / "record.json").read_bytes(),  # Container.record_path
                                   type=ContainerRecord)
    except (OSError, msgspec.DecodeError):
        raise Conflict(f"cannot join {what} of container {target}: No such container: {target}") from None
    pid = peer.state.pid
    if peer.state.status not in ("running", "paused") or not pid or not os.path.exists(f"/proc/{pid}"):
        raise Conflict(f"cannot join {what} of a non running container: {target}")
    if what == "IPC" and peer.host_config.ipc_mode not in ("shareable", "host"):
        raise BadRequest(f"can't join IPC of container {target}: non-shareable IPC "
                         f"(hint: use IpcMode:shareable for the donor container)")
    return peer


def _shared_dev(rootfs: Path, size: int) -> Path:
    """The /dev of a container whose IPC namespace is shareable: a tmpfs the daemon mounts
    (once per run) on the rootfs's /dev, its `shm` directory being the container's
    /dev/shm, which containers joining the namespace bind-mount too (a mount inside
    another container's mount namespace cannot be bound; this one is in the daemon's). It
    is detached with the rootfs at the run's end. Its size is ShmSize: /dev itself holds
    device nodes only."""
    where = rootfs / "dev"
    if str(where) not in syscalls.mountpoints():
        try:
            where.mkdir(exist_ok=True)
            fd = os.open(where, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise BadRequest(f"IpcMode shareable: the image's /dev is not a directory: {exc.strerror}") from None
        try:  # through the descriptor: a symlink put in /dev's place is never followed
            syscalls.mount("shm", f"/proc/self/fd/{fd}", "tmpfs", _MS_NOSUID | _MS_NOEXEC, f"mode=755,size={size}")
        finally:
            os.close(fd)
        (where / "shm").mkdir(mode=0o1777)
        os.chmod(where / "shm", 0o1777)
    return where / "shm"


def _namespaces(record: ContainerRecord, files: Path, rootfs: Path, netns: Path,
                net_donor: str) -> tuple[list[dict], dict | None]:
    """The namespaces a container gets (its own, the host's by leaving one out, or another
    container's by its path: `net_donor`'s network, see `network_donor`), and its /dev/shm
    mount (None with `--ipc none`)."""
    hc = record.host_config
    found: list[dict] = []
    for kind, mode, what in (("pid", hc.pid_mode, "PID"), ("ipc", hc.ipc_mode, "IPC"), ("uts", hc.uts_mode, "UTS")):
        if target := joined(mode):
            found.append({"type": kind, "path": f"/proc/{_peer(files, target, what).state.pid}/ns/{kind}"})
        elif mode != "host":
            found.append({"type": kind})
    found.append({"type": "mount"})
    if net_donor:  # the namespace another container's run pinned
        found.append({"type": "network", "path": str(netns.parent / net_donor)})
    elif hc.network_mode != "host":  # the host's network namespace is shared by leaving it out
        found.append({"type": "network", "path": str(netns)})
    if hc.cgroupns_mode == "private":
        found.append({"type": "cgroup"})
    source = ""
    if hc.ipc_mode == "host":
        source = "/dev/shm"
    elif hc.ipc_mode == "shareable":
        source = str(_shared_dev(rootfs, hc.shm_size or DEFAULT_SHM_SIZE))
    elif target := joined(hc.ipc_mode):
        donor = _peer(files, target, "IPC")
        source = "/dev/shm" if donor.host_config.ipc_mode == "host" else str(files.parent / target / "rootfs/dev/shm")
    if hc.ipc_mode == "none":
        shm = None
    elif source:
        shm = {"destination": "/dev/shm", "type": "bind", "source": source,
               "options": ["rbind", "rprivate", "nosuid", "nodev", "noexec"]}
    else:
        shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={hc.shm_size or DEFAULT_SHM_SIZE}"]}
    return found, shm


def apply_env(env: dict[str, str], entries: list[str]) -> None:
    """`NAME=value` sets NAME; a bare `NAME` unsets it, as dockerd reads Env (the docker CLI
    sends `-e NAME` as a bare name when NAME is not set in its own environment)."""
    for entry in entries:
        name, eq, value = entry.partition("=")
        if eq:
            env[name] = value
        else:
            env.pop(name, None)


def process_env(hostname: str, tty: bool, *layers: list[str]) -> dict[str, str]:
    """A process's environment as dockerd builds it, for a container and for an exec:
    PATH, HOSTNAME and (with a terminal) TERM, then each layer of `NAME=value` entries in
    turn, a later entry overriding an earlier one in its place (`apply_env`)."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, **({"TERM": "xterm"} if tty else {})}
    for entries in layers:
        apply_env(env, entries)
    return env


class _Spec(msgspec.Struct):
    process: dict


def container_process(config_json: bytes) -> dict:
    """The `process` of a bundle's `config.json`."""
    return msgspec.json.decode(config_json, type=_Spec).process


def exec_process(base: dict, *, args: list[str], env: list[str], cwd: str, who: Identity, terminal: bool,
                 privileged: bool) -> bytes:
    """The process.json of an exec, as dockerd builds it: the container's own process
    (`container_process`: capabilities, rlimits, no-new-privileges, OOM score), with the
    exec's command, environment, directory (the container's when empty), user and groups,
    and terminal; `privileged` gives it every capability the daemon holds."""
    process = {**base, "args": args, "env": env, "terminal": terminal,
               "user": {"uid": who.uid, "gid": who.gid, "additionalGids": who.gids}}
    if cwd:
        process["cwd"] = cwd
    if privileged:
        caps = capabilities.container_set(None, None, privileged=True)
        process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    return msgspec.json.encode(process)


def oci_config(record: ContainerRecord, *, rootfs: Path, files: Path, netns: Path,
               cgroups_path: str, image_env: list[str], init_binary: str | None, link_env: list[str] = ()) -> dict:
    """Build the OCI runtime config for `record` (rootfs already mounted); `link_env` is
    what legacy links give, which the container's own variables override."""
    cfg, hc = record.config, record.host_config
    with inroot.rooted(rootfs) as root:
        who = identity(root, cfg.user, hc.group_add)
    env = process_env(cfg.hostname, cfg.tty, link_env, image_env, cfg.env or [])
    env.setdefault("HOME", who.home)  # as the runtime would set it, from the user's passwd entry
    opts = security.parse(hc.security_opt)
    caps = capabilities.container_set(hc.cap_add, hc.cap_drop, privileged=hc.privileged)
    confined = not hc.privileged
    filter_ = seccomp.filter_for(frozenset(caps), opts.seccomp) if confined and opts.seccomp != "unconfined" else None
    net_donor = network_donor(record, files)
    namespaces, shm = _namespaces(record, files, rootfs, netns, net_donor)
    ro = ["ro"] if confined else []  # a privileged container's /sys and cgroups are writable
    own_dev = hc.ipc_mode != "shareable"  # a shareable IPC's /dev is the daemon's tmpfs (see _shared_dev)
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        *([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}] if own_dev else []),
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": [*ro, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        *([shm] if shm else []),
    ]
    own_files = own_file_mounts(files, net_donor)
    if hc.init:
        if not init_binary:
            raise BadRequest("--init requested but no init binary (tini) is installed on this host")
        own_files.append({"destination": INIT_PATH, "type": "bind", "source": init_binary, "options": ["bind", "ro"]})
    own_uts = not hc.uts_mode  # "host" shares the host's name; no other mode reaches here
    # a privileged container has every host device already: a --device adds one only at another path
    nodes = devices.host_devices() if not confined else []
    for mapping in hc.devices or []:
        if confined or mapping.path_in_container not in ("", mapping.path_on_host):
            nodes += device_nodes(mapping)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": who.uid, "gid": who.gid, "additionalGids": who.gids},
            "args": process_args(record),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": cfg.working_dir or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": rlimits(hc),
            "noNewPrivileges": opts.no_new_privileges,
            "oomScoreAdj": hc.oom_score_adj,
        },
        "root": {"path": str(rootfs), "readonly": hc.readonly_rootfs},
        **({"hostname": cfg.hostname} if own_uts else {}),
        "mounts": with_user_mounts(mounts, own_files, record),
        "linux": {
            **({"rootfsPropagation": propagation} if (propagation := rootfs_propagation(record)) else {}),
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources(record),
            # the NIS domain name through its sysctl, as dockerd sets it (runc has no field for it)
            **({"sysctl": sysctls} if (sysctls := {**({"kernel.domainname": cfg.domainname} if own_uts and cfg.domainname
                                                      else {}), **(hc.sysctls or {})}) else {}),
            **({"devices": nodes} if nodes else {}),
            **({"maskedPaths": masked_paths() if hc.masked_paths is None else hc.masked_paths,
                "readonlyPaths": READONLY_PATHS if hc.readonly_paths is None else hc.readonly_paths} if confined else {}),
            **({"seccomp": filter_.oci} if filter_ is not None else {}),
        },
        **({"annotations": {seccomp.BPF_ANNOTATION: filter_.bpf}} if filter_ is not None and filter_.bpf else {}),
    }
