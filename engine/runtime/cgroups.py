"""cgroup v1 and v2 behind one small interface.

The OCI runtime creates and fills a container's cgroup from `linux.cgroupsPath` and
`linux.resources`; berth only needs to know which hierarchy the host has (to pick the
crun path and report it), where a container's cgroup files live (limits, stats, freezer)
and how to remove the daemon's parent cgroup once it is empty.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_MAGIC = 0x63677270
# "unified" is the v2 tree of a hybrid host: runc creates the container's cgroup there too.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified")


class Layout(NamedTuple):
    """The host's cgroup hierarchy.

    `version` is 2 on a unified host, else 1. `hybrid_v2_controllers` lists controllers
    enabled in a v2 tree mounted beside v1 (`/sys/fs/cgroup/unified`); crun refuses to
    run when that list is not empty.
    """

    version: int
    hybrid_v2_controllers: tuple[str, ...]

    @property
    def hybrid(self) -> bool:
        return self.version == 1 and bool(self.hybrid_v2_controllers)


def detect(root: Path = CGROUP_ROOT) -> Layout:
    """Read the host's cgroup layout."""
    if (root / "cgroup.controllers").exists():
        return Layout(2, ())
    unified = root / "unified" / "cgroup.controllers"
    controllers = tuple(unified.read_text().split()) if unified.exists() else ()
    return Layout(1, controllers)


UNIFIED = CGROUP_ROOT / "unified"


def hide_hybrid_v2(layout: Layout) -> bool:
    """Give this process its own mount namespace without the hybrid v2 tree, so crun
    (which refuses hybrid hosts) runs as is, and every mount the daemon makes stays in
    the daemon's namespace — gone with it, whatever way it ends. Host mounts still
    propagate in (slave). Must run while the process has one thread. True if done."""
    from . import syscalls

    if not layout.hybrid:
        return False
    syscalls.keep_host_mounts()
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount("none", "/", "", syscalls.MS_REC | syscalls.MS_SLAVE)
    syscalls.umount(str(UNIFIED), syscalls.MNT_DETACH)
    _without_unified_dir()
    return True


def _without_unified_dir() -> None:
    """Leave no `unified` directory under /sys/fs/cgroup in this namespace.

    crun joins every hierarchy /proc/self/cgroup lists whose directory exists there, the
    v2 line as `unified`: the empty directory left where the v2 tree was unmounted got a
    `<parent>/<id>/cgroup.procs` file per container, on the host's tmpfs, beneath its v2
    mount where the host cannot see it. They were never removed (no cgroup: rmdir of a
    directory with a file fails), and a daemon reconciling its cgroups at start read old
    PIDs out of them. So this namespace gets a /sys/fs/cgroup of its own: a new tmpfs
    with the v1 hierarchies moved onto it, read-only as the host's; what earlier
    daemons left in the directory goes."""
    from . import syscalls

    mounted = syscalls.mountpoints()
    if not UNIFIED.is_dir() or str(UNIFIED) in mounted:
        return
    for entry in UNIFIED.iterdir():  # plain directories and files: nothing of the kernel's
        shutil.rmtree(entry, ignore_errors=True)
    # The hierarchies (mount points) and the links to them; a directory with nothing
    # mounted on it would be filled as `unified` was, and is left out as well.
    entries = sorted(p for p in CGROUP_ROOT.iterdir() if p.is_symlink() or str(p) in mounted)
    staging = str(UNIFIED)
    syscalls.mount("tmpfs", staging, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC, "mode=755")
    for p in entries:
        if p.is_symlink():
            os.symlink(os.readlink(p), f"{staging}/{p.name}")
        else:
            os.mkdir(f"{staging}/{p.name}")
            syscalls.mount(str(p), f"{staging}/{p.name}", "", syscalls.MS_MOVE)
    syscalls.mount(staging, str(CGROUP_ROOT), "", syscalls.MS_MOVE)
    syscalls.mount("", str(CGROUP_ROOT), "", syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY
                   | syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)


def join_mount_namespace(pid: int) -> None:
    """Enter the mount namespace of process `pid` (a previous daemon's, held by its
    keeper): its mounts, and the hybrid v2 tree hidden as `hide_hybrid_v2` left it. Must
    run while the process has one thread."""
    from . import syscalls

    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, syscalls.CLONE_NEWNS)
    finally:
        os.close(fd)
    os.chdir("/")  # the old working directory belongs to the namespace left behind
    _without_unified_dir()  # a namespace an earlier berthd made still has it


def dirs(layout: Layout, cgroup_path: str) -> dict[str, Path]:
    """Controller name → directory of the cgroup `cgroup_path` ("" keys the v2 tree)."""
    rel = cgroup_path.lstrip("/")
    if layout.version == 2:
        return {"": CGROUP_ROOT / rel}
    return {c: CGROUP_ROOT / c / rel for c in V1_CONTROLLERS if (CGROUP_ROOT / c).is_dir()}


def set_frozen(layout: Layout, cgroup_path: str, frozen: bool) -> None:
    """Ask the kernel to freeze (or thaw) every process of the cgroup; `is_frozen` tells
    when it is done (freezing waits for each task to reach a safe point)."""
    rel = cgroup_path.lstrip("/")
    if layout.version == 2:
        (CGROUP_ROOT / rel / "cgroup.freeze").write_text("1" if frozen else "0")
    else:
        (CGROUP_ROOT / "freezer" / rel / "freezer.state").write_text("FROZEN" if frozen else "THAWED")


def is_frozen(layout: Layout, cgroup_path: str) -> bool | None:
    """True when frozen, False when thawed, None while changing (v1 `FREEZING`) or gone."""
    rel = cgroup_path.lstrip("/")
    if layout.version == 2:
        events = _read(CGROUP_ROOT / rel / "cgroup.events") or ""
        state = dict(line.split(" ", 1) for line in events.splitlines() if " " in line).get("frozen")
        return None if state is None else state == "1"
    state = _read(CGROUP_ROOT / "freezer" / rel / "freezer.state")
    return {"FROZEN": True, "THAWED": False}.get(state or "")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Features(NamedTuple):
    """What the host's cgroups can enforce, as dockerd's sysinfo reads it: a container
    asking for something missing here is refused at create, never run without it."""

    cpus: str  # CPUs and memory nodes a cpuset may name ("0-3"), "" without cpuset
    mems: str
    realtime: bool  # cpu.rt_runtime_us (a kernel with RT group scheduling, v1 only)
    blkio_weight: bool  # proportional I/O weight (blkio.weight or a BFQ weight)
    blkio_throttle: bool  # per-device bps/iops limits
    swap: bool  # memory+swap limits (memsw, memory.swap.max)
    swappiness: bool  # v1 only
    oom_kill_disable: bool  # memory.oom_control: v1 only
    kernel_tcp: bool  # memory.kmem.tcp: v1 only


def features(layout: Layout, root: Path | None = None) -> Features:
    """Read what the host's hierarchy offers (at its root)."""
    root = root or CGROUP_ROOT
    if layout.version == 2:
        controllers = set((_read(root / "cgroup.controllers") or "").split())
        return Features(_read(root / "cpuset.cpus.effective") or "", _read(root / "cpuset.mems.effective") or "",
                        False, "io" in controllers and any((root / f).exists() for f in ("io.weight", "io.bfq.weight")),
                        "io" in controllers, any(root.glob("*/memory.swap.max")), False, False, False)
    has = lambda relative: (root / relative).exists()  # noqa: E731
    return Features(_read(root / "cpuset" / "cpuset.effective_cpus") or _read(root / "cpuset" / "cpuset.cpus") or "",
                    _read(root / "cpuset" / "cpuset.effective_mems") or _read(root / "cpuset" / "cpuset.mems") or "",
                    has("cpu/cpu.rt_runtime_us"), has("blkio/blkio.weight") or has("blkio/blkio.bfq.weight"),
                    has("blkio/blkio.throttle.read_bps_device"), has("memory/memory.memsw.limit_in_bytes"),
                    has("memory/memory.swappiness"), has("memory/memory.oom_control"),
                    has("memory/memory.kmem.tcp.limit_in_bytes"))


def realtime_budget(cgroup_path: str) -> int:
    """The real-time runtime (µs per period) the v1 cgroup `cgroup_path` may hand its
    children: 0 for a cgroup not made yet (the kernel gives a new one none)."""
    return _int(_read(CGROUP_ROOT / "cpu" / cgroup_path.strip("/") / "cpu.rt_runtime_us")) or 0


def parse_list(text: str) -> set[int] | None:
    """The CPUs or memory nodes a cpuset list names (`0-2,5`); None if it is malformed."""
    found: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            return None
        low, high = int(first), int(last) if dash else int(first)
        if low > high:
            return None
        found.update(range(low, high + 1))
    return found


class Limits(NamedTuple):
    """Resource limits as the kernel holds them (None: unlimited or unavailable)."""

    memory: int | None
    cpu_quota: int | None
    cpu_period: int | None
    cpu_shares: int | None
    pids: int | None


def _int(value: str | None) -> int | None:
    if value is None or value in ("max", "-1") or not value.lstrip("-").isdigit():
        return None
    number = int(value)
    return None if number >= 2**62 else number  # v1 writes "unlimited" as a huge number


def read_limits(layout: Layout, cgroup_path: str) -> Limits:
    """Read the limits of the cgroup at `cgroup_path` from its cgroup files."""
    d = dirs(layout, cgroup_path)
    if layout.version == 2:
        base = d[""]
        quota, _, period = (_read(base / "cpu.max") or "max 100000").partition(" ")
        weight = _int(_read(base / "cpu.weight"))
        # runtimes map v1 shares to v2 weight: weight = 1 + ((shares - 2) * 9999) / 262142
        shares = None if weight is None else round((weight - 1) * 262142 / 9999 + 2)
        return Limits(_int(_read(base / "memory.max")), _int(quota), _int(period), shares,
                      _int(_read(base / "pids.max")))
    return Limits(
        _int(_read(d["memory"] / "memory.limit_in_bytes")),
        _int(_read(d["cpu"] / "cpu.cfs_quota_us")),
        _int(_read(d["cpu"] / "cpu.cfs_period_us")),
        _int(_read(d["cpu"] / "cpu.shares")),
        _int(_read(d["pids"] / "pids.max")),
    )


def existing(layout: Layout, cgroup_path: str) -> list[Path]:
    """Directories of `cgroup_path` that exist (leak checks, clean-up)."""
    return [p for p in dirs(layout, cgroup_path).values() if p.is_dir()]


def remove(layout: Layout, cgroup_path: str) -> None:
    """Remove the (empty) cgroup `cgroup_path` in every hierarchy; children first."""
    for path in existing(layout, cgroup_path):
        for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


class CgroupStats(NamedTuple):
    """What `docker stats` shows, as the kernel counts it (None: unreadable)."""

    cpu_total_ns: int | None
    cpu_user_ns: int | None
    cpu_system_ns: int | None
    percpu_ns: list[int]
    throttling: dict[str, int]  # periods, throttled_periods, throttled_time (ns)
    memory: int | None
    memory_max: int | None  # the peak, where the kernel keeps one
    memory_limit: int | None
    memory_stat: dict[str, int]
    pids: int | None
    pids_limit: int | None
    io_bytes: list[dict] | None = None  # Docker's BlkioStatEntry shape: major, minor, op, value
    io_ops: list[dict] | None = None


def _entry(device: str, op: str, value: str) -> dict:
    major, _, minor = device.partition(":")
    return {"major": int(major), "minor": int(minor), "op": op, "value": int(value)}


def _v1_blkio(d: dict[str, Path], name: str) -> list[dict] | None:
    """`blkio.<name>_recursive` lines (`8:0 Read 4096`) as entries, the proportional
    policy's file first and the throttle policy's where that one is absent or empty, as
    dockerd reads them; the closing `Total` line is not an entry."""
    if "blkio" not in d:
        return None
    text = _read(d["blkio"] / f"blkio.{name}_recursive")
    if not (text or "").strip().startswith(tuple("0123456789")):
        text = _read(d["blkio"] / f"blkio.throttle.{name}_recursive")
    if text is None:
        return None
    return [_entry(*fields) for fields in map(str.split, text.splitlines())
            if len(fields) == 3 and fields[2].isdigit() and ":" in fields[0]]


def _v2_io(text: str | None) -> tuple[list[dict] | None, list[dict] | None]:
    """io.stat (`8:0 rbytes=4096 wbytes=0 rios=1 wios=0 …`) as dockerd's v2 entries:
    `read` and `write` bytes, and operations."""
    if text is None:
        return None, None
    nbytes, ops = [], []
    for device, *pairs in filter(None, map(str.split, text.splitlines())):
        counters = dict(pair.partition("=")[::2] for pair in pairs)
        for op, key in (("read", "r"), ("write", "w")):
            if counters.get(key + "bytes", "").isdigit():
                nbytes.append(_entry(device, op, counters[key + "bytes"]))
            if counters.get(key + "ios", "").isdigit():
                ops.append(_entry(device, op, counters[key + "ios"]))
    return nbytes, ops


def _kv(text: str | None) -> dict[str, int]:
    return {k: int(v) for k, _, v in (line.partition(" ") for line in (text or "").splitlines()) if v.strip().isdigit()}


def read_stats(layout: Layout, cgroup_path: str) -> CgroupStats:
    """Read a container's cgroup counters, v1 or v2."""
    d = dirs(layout, cgroup_path)
    if layout.version == 2:
        g = d[""]
        cpu = _kv(_read(g / "cpu.stat"))
        usec = lambda key: cpu[key] * 1000 if key in cpu else None  # noqa: E731
        return CgroupStats(
            usec("usage_usec"), usec("user_usec"), usec("system_usec"), [],
            {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
             "throttled_time": cpu.get("throttled_usec", 0) * 1000},
            _int(_read(g / "memory.current")), _int(_read(g / "memory.peak")), _int(_read(g / "memory.max")),
            _kv(_read(g / "memory.stat")), _int(_read(g / "pids.current")), _int(_read(g / "pids.max")),
            *_v2_io(_read(g / "io.stat")))
    ticks = os.sysconf("SC_CLK_TCK")
    acct = _kv(_read(d["cpuacct"] / "cpuacct.stat"))
    throttle = _kv(_read(d["cpu"] / "cpu.stat"))
    return CgroupStats(
        _int(_read(d["cpuacct"] / "cpuacct.usage")),
        acct["user"] * 10**9 // ticks if "user" in acct else None,
        acct["system"] * 10**9 // ticks if "system" in acct else None,
        [int(v) for v in (_read(d["cpuacct"] / "cpuacct.usage_percpu") or "").split()],
        {"periods": throttle.get("nr_periods", 0), "throttled_periods": throttle.get("nr_throttled", 0),
         "throttled_time": throttle.get("throttled_time", 0)},
        _int(_read(d["memory"] / "memory.usage_in_bytes")), _int(_read(d["memory"] / "memory.max_usage_in_bytes")),
        _int(_read(d["memory"] / "memory.limit_in_bytes")), _kv(_read(d["memory"] / "memory.stat")),
        _int(_read(d["pids"] / "pids.current")) if "pids" in d else None,
        _int(_read(d["pids"] / "pids.max")) if "pids" in d else None,
        _v1_blkio(d, "io_service_bytes"), _v1_blkio(d, "io_serviced"))


def procs(layout: Layout, cgroup_path: str) -> set[int]:
    """The PIDs in a container's cgroup (host PID namespace)."""
    d = dirs(layout, cgroup_path)
    where = d[""] if layout.version == 2 else d.get("pids", d["memory"])
    return {int(p) for p in (_read(where / "cgroup.procs") or "").split()}


def children(layout: Layout, cgroup_path: str) -> set[str]:
    """Names of the child cgroups of `cgroup_path`, in any hierarchy."""
    found = set()
    for path in existing(layout, cgroup_path):
        found |= {entry.name for entry in path.iterdir() if entry.is_dir()}
    return found


def _member(pid: str, cgroup_path: str) -> bool:
    """Whether process `pid` is in `cgroup_path` (or below it) in some hierarchy."""
    text = _read(Path(f"/proc/{pid}/cgroup")) or ""
    path = "/" + cgroup_path.strip("/")
    return any((own := line.split(":", 2)[-1]) == path or own.startswith(path + "/") for line in text.splitlines())


def kill_and_remove(layout: Layout, cgroup_path: str, timeout: float = 2.0) -> None:
    """SIGKILL every process of the cgroup (whoever started it), wait until none is left,
    then remove it. A leftover of a start the previous daemon never finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A pid whose process is gone from /proc is one the kernel has not yet dropped
        # from cgroup.procs: nothing is left to kill there; and a pid that now names a
        # process outside the cgroup (reused since it was read) is none of ours.
        pids = {int(p) for path in existing(layout, cgroup_path)
                for p in (_read(path / "cgroup.procs") or "").split() if _member(p, cgroup_path)}
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    remove(layout, cgroup_path)
