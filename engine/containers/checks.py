"""What create and update check before anything is made or written: a container's
settings, its limits and their conflicts, where and as dockerd checks them (its
messages where it has them), and what this host cannot enforce, refused saying so."""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re

from ..errors import BadRequest
from ..models import CreateRequest, HostConfig
from ..network.manager import HOST_GATEWAY
from ..network.networks import check_mac
from ..runtime import bundle, cgroups, oci
from . import logs

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
MIN_MEMORY = 6 * 1024 * 1024
IPC_MODES = ("", "none", "private", "shareable", "host")
PID_MAX_LIMIT = 4 * 1024 * 1024  # the most pids.max takes (include/linux/threads.h)


def policy(name: str, auto_remove: bool, auto_remove_conflict: str, retries: int = 0) -> None:
    """A restart policy's name and retry count, and AutoRemove's refusal of any policy but `no`."""
    if name not in RESTART_POLICIES:
        raise BadRequest(f"invalid restart policy '{name}'")
    if retries and name != "on-failure":
        raise BadRequest(f"maximum retry count cannot be used with restart policy '{name}'")
    if retries < 0:
        raise BadRequest("maximum retry count cannot be negative")
    if auto_remove and name != "no":
        raise BadRequest(auto_remove_conflict)


def config(req: CreateRequest) -> None:
    """The container Config as dockerd checks it (validateContainerConfig)."""
    if req.working_dir and not req.working_dir.startswith("/"):
        raise BadRequest(f"the working directory '{req.working_dir}' is invalid, it needs to be an absolute path")
    if req.stop_signal:
        try:
            oci.parse_signal(req.stop_signal)
        except ValueError:
            raise BadRequest(f"Invalid signal: {req.stop_signal}") from None
    for entry in req.env or []:
        if not entry or entry.startswith("="):
            raise BadRequest(f"invalid environment variable: {entry}")
    no_nul(("Cmd", req.cmd), ("Entrypoint", req.entrypoint), ("Env", req.env), ("WorkingDir", [req.working_dir]))
    health = req.healthcheck
    if health is not None:
        for what, value in (("Interval", health.interval), ("Timeout", health.timeout),
                            ("StartPeriod", health.start_period)):
            if value and value < 1_000_000:
                raise BadRequest(f"{what} in Healthcheck cannot be less than 1ms")
        if health.retries < 0:
            raise BadRequest("Retries in Healthcheck cannot be negative")


def warnings(hc: HostConfig) -> list[str]:
    """What dockerd accepts in a create but warns about (the create answer's Warnings)."""
    if hc.network_mode == "host" and (hc.port_bindings or hc.publish_all_ports):
        return ["Published ports are discarded when using host network mode"]  # as on `none`, silently
    return []


def conflicts(req: CreateRequest, hc: HostConfig) -> None:
    """What dockerd refuses while it decodes a create request (its runconfig package)."""
    if hc.uts_mode == "host" and req.hostname:
        raise BadRequest("conflicting options: hostname and the UTS mode")
    if hc.uts_mode == "host" and req.domainname:  # dockerd lets the runtime fail on its domainname sysctl
        raise BadRequest("conflicting options: domainname and the UTS mode")
    if hc.network_mode == "host" and hc.links:
        raise BadRequest("conflicting options: host type networking can't be used with links. "
                         "This would result in undefined behavior")
    if hc.network_mode == "host" and req.mac_address:
        raise BadRequest("conflicting options: mac-address and the network mode")
    if hc.network_mode.startswith("container:"):  # dockerd's validateNetContainerMode, in its order
        for given, words in ((req.hostname, "hostname and the network mode"),
                             (hc.links, ("container type network can't be used with links. This would result in "
                                         "undefined behavior")),
                             (hc.dns, "dns and the network mode"),
                             (hc.extra_hosts, "custom host-to-IP mapping and the network mode"),
                             (req.mac_address, "mac-address and the network mode"),
                             (hc.port_bindings or hc.publish_all_ports,
                              "port publishing and the container type network mode"),
                             (req.exposed_ports, "port exposing and the container type network mode")):
            if given:
                raise BadRequest(f"conflicting options: {words}")
    if hc.isolation.lower() not in ("", "default"):
        raise BadRequest(f'Invalid isolation: "{hc.isolation}" - linux only supports \'default\'')
    if hc.io_maximum_bandwidth:
        raise BadRequest("Invalid QoS settings: linux does not support configuration of maximum bandwidth")
    if hc.io_maximum_i_ops:
        raise BadRequest("Invalid QoS settings: linux does not support configuration of maximum IOPs")


def resources(hc: HostConfig, host: cgroups.Features, update: bool = False) -> None:
    """The limits create and update both check, where and as dockerd checks them
    (verifyPlatformContainerResources); what dockerd would drop with a warning on a host
    that cannot enforce it is refused instead, saying so."""
    if hc.memory and hc.memory < MIN_MEMORY:
        raise BadRequest("Minimum memory limit allowed is 6MB")
    if hc.memory > 0 and hc.memory_swap > 0 and hc.memory_swap < hc.memory:
        raise BadRequest("Minimum memoryswap limit should be larger than memory limit, see usage")
    if hc.memory == 0 and hc.memory_swap > 0 and not update:
        raise BadRequest("You should always set the Memory limit when using Memoryswap limit, see usage")
    if hc.memory_swap > 0 and not host.swap:
        raise BadRequest("MemorySwap: this kernel does not account swap (no memory.memsw / memory.swap.max)")
    swappiness = hc.memory_swappiness
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise BadRequest(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
        if not host.swappiness:
            raise BadRequest("MemorySwappiness: cgroup v2 has no per-container swappiness")
    if hc.memory_reservation > 0 and hc.memory_reservation < MIN_MEMORY:
        raise BadRequest("Minimum memory reservation allowed is 6MB")
    if hc.memory > 0 and hc.memory_reservation > 0 and hc.memory < hc.memory_reservation:
        raise BadRequest("Minimum memory limit can not be less than memory reservation limit, see usage")
    if hc.kernel_memory > 0 and hc.kernel_memory < MIN_MEMORY:
        raise BadRequest("Minimum kernel memory limit allowed is 6MB")
    if hc.kernel_memory:
        raise BadRequest("KernelMemory: kernel memory limits are deprecated, and this kernel does not enforce them "
                         "(memory.kmem.limit_in_bytes is ignored since Linux 5.4)")
    if hc.kernel_memory_tcp and not host.kernel_tcp:
        raise BadRequest("KernelMemoryTCP: this host's cgroups have no kernel TCP memory limit (memory.kmem.tcp)")
    if hc.oom_kill_disable and not host.oom_kill_disable:
        raise BadRequest("OomKillDisable: cgroup v2 cannot turn the OOM killer off")
    if hc.nano_cpus > 0 and hc.cpu_period > 0:
        raise BadRequest("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.nano_cpus > 0 and hc.cpu_quota > 0:
        raise BadRequest("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = os.cpu_count() or 1
    if hc.nano_cpus < 0 or hc.nano_cpus > ncpu * 10**9:
        raise BadRequest(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if hc.pids_limit is not None and hc.pids_limit > PID_MAX_LIMIT:
        raise BadRequest(f"invalid PidsLimit {hc.pids_limit}: at most {PID_MAX_LIMIT} (the kernel's PID_MAX_LIMIT), "
                         "or 0 or -1 for none")
    if hc.cpu_shares < 0:
        raise BadRequest(f"invalid CPU shares ({hc.cpu_shares}): value must be a positive integer")
    if hc.cpu_period and not 1000 <= hc.cpu_period <= 1_000_000:
        raise BadRequest("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if (hc.cpu_quota > 0 and hc.cpu_quota < 1000) or hc.cpu_quota < -1:
        raise BadRequest("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if hc.cpu_count or hc.cpu_percent:
        raise BadRequest(f"{'CpuCount' if hc.cpu_count else 'CpuPercent'}: a Windows-only setting; "
                         f"on Linux use NanoCpus or CpusetCpus")
    if hc.cpu_realtime_period or hc.cpu_realtime_runtime:
        if not host.realtime:
            raise BadRequest("Your kernel does not support CPU real-time scheduler")
        if hc.cpu_realtime_period < 0 or hc.cpu_realtime_runtime < -1:
            raise BadRequest("CpuRealtimePeriod and CpuRealtimeRuntime are microseconds: they cannot be negative")
        if hc.cpu_realtime_period and hc.cpu_realtime_runtime > hc.cpu_realtime_period:
            raise BadRequest("cpu real-time runtime cannot be higher than cpu real-time period")
    for wanted, available, what, noun in ((hc.cpuset_cpus, host.cpus, "cpus", "CPUs"),
                                          (hc.cpuset_mems, host.mems, "mems", "memory nodes")):
        if not wanted:
            continue
        ids = cgroups.parse_list(wanted)
        if ids is None:
            raise BadRequest(f"Invalid value {wanted} for cpuset {what}: invalid format: {wanted}")
        if not ids <= (cgroups.parse_list(available) or set()):
            raise BadRequest(f"Requested {noun} are not available - requested {wanted}, available: {available}")
    for weight in [hc.blkio_weight, *(w.weight for w in hc.blkio_weight_device or [])]:
        if weight and not 10 <= weight <= 1000:
            raise BadRequest("Range of blkio weight is from 10 to 1000")
    if (hc.blkio_weight or hc.blkio_weight_device) and not host.blkio_weight:
        raise BadRequest(f"{'BlkioWeight' if hc.blkio_weight else 'BlkioWeightDevice'}: this host has no proportional "
                         f"block I/O weight (no blkio.weight: its I/O schedulers are neither CFQ nor BFQ)")
    throttles = [*(hc.blkio_device_read_bps or []), *(hc.blkio_device_write_bps or []),
                 *(hc.blkio_device_read_i_ops or []), *(hc.blkio_device_write_i_ops or [])]
    if throttles and not host.blkio_throttle:
        raise BadRequest("BlkioDevice limits: this host's cgroups have no block I/O throttling")
    for device in [*throttles, *(hc.blkio_weight_device or [])]:
        if getattr(device, "rate", 0) < 0:
            raise BadRequest(f"invalid rate for device {device.path}: it cannot be negative")
        bundle.block_device(device.path)


def settings(req: CreateRequest, hc: HostConfig) -> None:
    """The rest of what a create may ask, each refused with dockerd's words where it has
    them (verifyPlatformContainerSettings, validateHostConfig), else saying why."""
    if hc.shm_size < 0:
        raise BadRequest("SHM size can not be less than 0")
    if not -1000 <= hc.oom_score_adj <= 1000:
        raise BadRequest(f"Invalid value {hc.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    for dest in hc.tmpfs or {}:
        if posixpath.normpath(dest.replace("\\", "/")) == "/":
            raise BadRequest("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise BadRequest(f"invalid mount path: '{dest}' mount path must be absolute")
    if hc.cgroupns_mode not in ("", "host", "private"):
        raise BadRequest(f"invalid cgroup namespace mode: {hc.cgroupns_mode}")
    if hc.ipc_mode not in IPC_MODES and not bundle.joined(hc.ipc_mode):
        raise BadRequest(f"invalid IPC mode: {hc.ipc_mode}")
    if hc.pid_mode not in ("", "host") and not bundle.joined(hc.pid_mode):
        raise BadRequest(f"invalid PID mode: {hc.pid_mode}")
    if hc.uts_mode not in ("", "host"):
        raise BadRequest(f"invalid UTS mode: {hc.uts_mode}")
    if hc.userns_mode not in ("", "host"):
        raise BadRequest(f"invalid UsernsMode {hc.userns_mode!r}: berth runs containers in the host's user namespace "
                         f"only (\"host\")")
    if hc.cgroup:
        raise BadRequest(f"Cgroup {hc.cgroup!r}: berth does not put a container in another container's cgroup")
    if hc.cgroup_parent:
        raise BadRequest("CgroupParent: berth's containers live under the daemon's cgroup parent "
                         "(berthd --cgroup-parent), not one of their own")
    if hc.storage_opt:
        raise BadRequest("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
    for request in hc.device_requests or []:
        wanted = " ".join(f"[{' '.join(c)}]" for c in request.capabilities or [])
        raise BadRequest(f'could not select device driver "{request.driver}" with capabilities: [{wanted}]')
    if req.network_disabled and hc.network_mode != "none":
        raise BadRequest("NetworkDisabled: set NetworkMode \"none\" for a container without a network")
    if req.mac_address:
        check_mac(req.mac_address)
    console_size(hc.console_size)
    log_type = hc.log_config.type or "json-file"
    if log_type == "json-file":
        logs.log_options(hc.log_config.config)
    elif log_type == "none":
        for key in hc.log_config.config or {}:
            raise BadRequest(f"unknown log opt '{key}' for none log driver")
    else:  # dockerd's words for a driver it has not got (berth has json-file and none)
        raise BadRequest(f"logger: no log driver named '{log_type}' is registered")
    for entry in hc.extra_hosts or []:
        host, sep, ip = entry.partition(":")
        if not sep or not host:
            raise BadRequest(f'bad format for add-host: "{entry}"')
        if ip != HOST_GATEWAY and not is_ip(ip):
            raise BadRequest(f'invalid IP address in add-host: "{ip}"')
    for server in hc.dns or []:
        if not is_ip(server):
            raise BadRequest(f"{server} is not an ip address")
    for gid in hc.group_add or []:
        if not gid or (gid.isdigit() and int(gid) > 2**31 - 1):
            raise BadRequest(f"GroupAdd {gid!r}: uids and gids must be in range 0-2147483647")


def volume_driver(name: str) -> None:
    """The driver of volumes a create makes: berth has `local` only (dockerd has plugins;
    it asks for one only when a volume is made)."""
    if name not in ("", "local"):
        raise BadRequest(f'error looking up volume plugin {name}: plugin "{name}" not found')


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_link(spec: str) -> tuple[str, str]:
    """`name:alias` (or `name`, or `/name:/parent/alias` as inspect shows links) → (name, alias)."""
    if not spec:
        raise BadRequest("empty string specified for links")
    parts = spec.split(":")
    if len(parts) > 2:
        raise BadRequest(f"bad format for links: {spec}")
    if len(parts) == 1:
        return spec, spec
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def console_size(size: list[int] | None, what: str = "ConsoleSize") -> None:
    """A terminal's [height, width]: what a terminal holds, 0 to 65535 each."""
    if size is not None and (len(size) != 2 or not all(0 <= n <= 65535 for n in size)):
        raise BadRequest(f"{what}: two sizes are needed, [height, width], each from 0 to 65535")


def no_nul(*fields: tuple[str, list[str] | str | None]) -> None:
    """A NUL would cut the string where the runtime reads it: refused, never cut."""
    for what, words in fields:
        if any("\0" in word for word in words or [] if word):
            raise BadRequest(f"{what} may not contain a NUL character")


_PORTS = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def port_range(ports: str) -> range | None:
    """The ports `80` or `8000-8010` name (empty when reversed); None when it is neither."""
    match = _PORTS.fullmatch(ports)
    return range(int(match[1]), int(match[2] or match[1]) + 1) if match else None
