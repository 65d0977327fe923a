"""`docker stats` and `docker top`: a running container's resource use and processes,
read from its cgroup and the host's `ps`, in Docker's JSON shapes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
import trio

from .. import timefmt
from ..errors import BadRequest, Conflict
from ..runtime import cgroups
from .container import Container

_ZERO = "0001-01-01T00:00:00Z"


def _system_cpu_ns() -> int:
    """The host's CPU time in all modes since boot, as dockerd reads it for the CPU %."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(v) for v in fields) * 10**9 // os.sysconf("SC_CLK_TCK")


# blkio_stats' lists beyond the two berth reads: present (empty) as in dockerd's answer
_OTHER_BLKIO = ("io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
                "io_time_recursive", "sectors_recursive")
_IDLE_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
             "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def idle(c: Container) -> dict:
    """The reading of a container that does not run, as dockerd answers it: zero values
    in the full shape (strict clients read `throttling_data.periods` and the like)."""
    return {"read": _ZERO, "name": "/" + c.name, "id": c.id, "pids_stats": {},
            "blkio_stats": dict.fromkeys(("io_service_bytes_recursive", "io_serviced_recursive", *_OTHER_BLKIO)),
            "num_procs": 0, "storage_stats": {}, "cpu_stats": _IDLE_CPU, "memory_stats": {}}


def sample(layout: cgroups.Layout, cgroup: str, c: Container) -> dict:
    """One stats reading of `c` (in `cgroup`), without `precpu_stats` (the caller pairs readings)."""
    if not c.has_process:
        return idle(c)
    st = cgroups.read_stats(layout, cgroup)
    cpus = len(st.percpu_ns) or os.cpu_count() or 1
    memory_stats = {}
    if st.memory is not None:
        memory_stats = {"usage": st.memory, "stats": st.memory_stat,
                        "limit": st.memory_limit if st.memory_limit is not None else _host_memory()}
        if st.memory_max is not None:
            memory_stats["max_usage"] = st.memory_max
    return {
        "read": timefmt.now(), "name": "/" + c.name, "id": c.id,
        "pids_stats": {k: v for k, v in (("current", st.pids), ("limit", st.pids_limit)) if v is not None},
        "blkio_stats": {"io_service_bytes_recursive": st.io_bytes, "io_serviced_recursive": st.io_ops,
                        **{key: [] for key in _OTHER_BLKIO}},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {"total_usage": st.cpu_total_ns or 0, "percpu_usage": st.percpu_ns or None,
                          "usage_in_kernelmode": st.cpu_system_ns or 0, "usage_in_usermode": st.cpu_user_ns or 0},
            "system_cpu_usage": _system_cpu_ns(), "online_cpus": cpus,
            "throttling_data": {**_IDLE_CPU["throttling_data"], **st.throttling},
        },
        "memory_stats": memory_stats,
        **({"networks": {e.inner_if: _interface_counters(e.host_if) for e in c.networks.values()}}
           if c.networks else {}),
    }


_COUNTERS = ("bytes", "packets", "errors", "dropped")


def _interface_counters(host_if: str) -> dict[str, int]:
    """A container interface's counters, read from its veth's host end, where what the
    container receives is sent (so rx and tx swap)."""
    base = f"/sys/class/net/{host_if}/statistics"

    def read(name: str) -> int:
        try:
            with open(f"{base}/{name}") as f:
                return int(f.read())
        except (OSError, ValueError):  # the veth went with a disconnect meanwhile
            return 0

    return {f"{way}_{what}": read(f"{other}_{what}") for way, other in (("rx", "tx"), ("tx", "rx"))
            for what in _COUNTERS}


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


async def stream(layout: cgroups.Layout, cgroup: str, c: Container, *, follow: bool,
                 one_shot: bool) -> AsyncIterator[dict]:
    """Readings one second apart, each with the previous as `precpu_stats` (what the CPU %
    is computed from). Not following: one reading, after a second unless `one_shot`."""
    previous = idle(c)
    if not follow and not one_shot and c.has_process:  # a stopped one is answered at once, as dockerd
        previous = sample(layout, cgroup, c)
        await trio.sleep(1)
    while True:
        current = sample(layout, cgroup, c)
        yield {**current, "preread": previous["read"], "precpu_stats": previous["cpu_stats"]}
        if not follow or c.removed:
            return
        previous = current
        await trio.sleep(1)  # a stopped one's zeros too, as dockerd streams them (`docker stats` shows 0s)


async def top(layout: cgroups.Layout, cgroup: str, c: Container, ps_args: str) -> dict:
    """`ps` on the host, keeping the container's processes, as dockerd does: Titles and
    Processes (all strings)."""
    if not c.has_process:
        raise Conflict(f"Container {c.id} is not running")
    if "\0" in ps_args:
        raise BadRequest("ps_args: a NUL byte cannot be passed to ps")
    pids = cgroups.procs(layout, cgroup)
    args = ps_args.split() if ps_args else ["-ef"]
    result = await trio.run_process(["ps", *args], capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        raise BadRequest(f"ps: {result.stderr.decode(errors='replace').strip()}")
    lines = result.stdout.decode(errors="replace").splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    if "PID" not in titles:
        raise BadRequest("Couldn't find PID field in ps output")
    at = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}
