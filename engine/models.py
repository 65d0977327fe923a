"""The typed vocabulary of berth: API bodies, state on disk, image configs, events, and
the views the Engine hands its callers (the API, plugins).

Field names follow the Docker Engine API (PascalCase through `rename="pascal"`), so a
Struct is at once the wire form, the on-disk form and the Python form. Fields a client
may send as `null` are Optional; the docker CLI sends ~60 keys with zero values while
docker-py sends three, and both must decode to the same defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec
from msgspec import Struct, field

ZERO_TIME = "0001-01-01T00:00:00Z"


class RestartPolicy(Struct, rename="pascal"):
    name: str = "no"
    maximum_retry_count: int = 0


class HealthConfig(Struct, rename="pascal", omit_defaults=True):
    """`Healthcheck` of a container or image config (durations in nanoseconds).

    Test: `["NONE"]` disables, `["CMD", argv…]` execs, `["CMD-SHELL", command]` runs
    `/bin/sh -c command`; zero durations and retries mean Docker's defaults (and are left
    out of the JSON, as Docker's `omitempty` leaves them: an image's ID depends on it)."""

    test: list[str] | None = None
    interval: int = 0
    timeout: int = 0
    retries: int = 0
    start_period: int = 0

    @property
    def checks(self) -> bool:
        """Whether it names a check to run (not NONE, not empty)."""
        return bool(self.test) and self.test[0] != "NONE" and self.test != ["CMD"]


class HealthLogEntry(Struct, rename="pascal"):
    start: str
    end: str
    exit_code: int
    output: str


class Health(Struct, rename="pascal"):
    """`State.Health` in inspect: starting, healthy or unhealthy, and the last results."""

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthLogEntry] = []


class LogConfig(Struct, rename="pascal"):
    type: str = "json-file"
    config: dict[str, str] | None = None


class ContainerConfig(Struct, rename="pascal"):
    """`Config` of create and inspect: what runs, independent of the host."""

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: list[str] | str | None = None
    image: str = ""
    volumes: dict[str, dict] | None = None
    working_dir: str = ""
    entrypoint: list[str] | str | None = None
    on_build: list[str] | None = field(default=None, name="OnBuild")
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    exposed_ports: dict[str, dict] | None = None
    healthcheck: HealthConfig | None = None
    args_escaped: bool = False  # Windows only; kept as given, as dockerd on Linux does
    network_disabled: bool = False
    mac_address: str = ""
    shell: list[str] | None = None  # the image builder's SHELL; a run does not use it


class DriverConfig(Struct, rename="pascal"):
    name: str = ""
    options: dict[str, str] | None = None


class VolumeOptions(Struct, rename="pascal"):
    """`Mount.VolumeOptions`: NoCopy skips seeding; Labels and DriverConfig apply when
    the mount creates the volume."""

    no_copy: bool = False
    labels: dict[str, str] | None = None
    driver_config: DriverConfig | None = None


class BindOptions(Struct, rename="pascal"):
    propagation: str = ""


class TmpfsOptions(Struct, rename="pascal"):
    size_bytes: int = 0
    mode: int = 0  # permission bits (the CLI sends `tmpfs-mode=1770` as 1016)


class Mount(Struct, rename="pascal"):
    """One `HostConfig.Mounts` entry (`--mount type=volume|bind|tmpfs,...`)."""

    type: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None


class MountPoint(Struct, kw_only=True):
    """A container's mount, resolved at create and persisted with it: what inspect shows
    as `Mounts` and what the OCI bundle mounts.

    type: volume (the volume's `_data` bind-mounted), bind (a host path) or tmpfs.
    copy_data: seed an empty volume with the image's content at `destination` on mount.
    anonymous: created for this container (no name given): `rm -v` and AutoRemove remove it.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    copy_data: bool = False
    anonymous: bool = False
    tmpfs_options: list[str] = []


class DeviceMapping(Struct, rename="pascal"):
    """One `HostConfig.Devices` entry (`--device /dev/x[:/dev/y][:rwm]`)."""

    path_on_host: str = ""
    path_in_container: str = ""
    cgroup_permissions: str = "rwm"


class ThrottleDevice(Struct, rename="pascal"):
    """A block device's I/O limit (`--device-read-bps /dev/sda:1mb`): bytes or operations per second."""

    path: str = ""
    rate: int = 0


class WeightDevice(Struct, rename="pascal"):
    """A block device's relative I/O weight (`--blkio-weight-device /dev/sda:200`)."""

    path: str = ""
    weight: int = 0


class Ulimit(Struct, rename="pascal"):
    """A resource limit of the container's processes (`--ulimit nofile=1024:2048`); -1 is unlimited."""

    name: str = ""
    hard: int = 0
    soft: int = 0


class DeviceRequest(Struct, rename="pascal"):
    """A request for devices from a driver (`--gpus`)."""

    driver: str = ""
    count: int = 0
    device_ids: list[str] | None = field(default=None, name="DeviceIDs")
    capabilities: list[list[str]] | None = None
    options: dict[str, str] | None = None


class HostConfig(Struct, rename="pascal"):
    """`HostConfig`: how the container sits on this host (limits, runtime, policies).

    Every field of API 1.41 is here, in the order dockerd shows them; what each does, and
    why some are refused on this host, is in containers/service.py (`check_host_config`)
    and runtime/bundle.py. None means "not given" where Docker tells that apart from a
    zero (MemorySwappiness, OomKillDisable, PidsLimit, MaskedPaths, ReadonlyPaths)."""

    binds: list[str] | None = None
    container_id_file: str = field(default="", name="ContainerIDFile")
    log_config: LogConfig = field(default_factory=LogConfig)
    network_mode: str = "default"
    port_bindings: dict[str, list[dict] | None] | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    mounts: list[Mount] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = ""
    dns: list[str] | None = None
    dns_options: list[str] | None = None
    dns_search: list[str] | None = None
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = ""
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: dict[str, str] | None = None
    tmpfs: dict[str, str] | None = None
    uts_mode: str = field(default="", name="UTSMode")
    userns_mode: str = ""
    shm_size: int = 0
    sysctls: dict[str, str] | None = None
    runtime: str = ""
    console_size: list[int] | None = None
    isolation: str = ""
    cpu_shares: int = 0
    memory: int = 0
    nano_cpus: int = 0
    cgroup_parent: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[WeightDevice] | None = None
    blkio_device_read_bps: list[ThrottleDevice] | None = None
    blkio_device_write_bps: list[ThrottleDevice] | None = None
    blkio_device_read_i_ops: list[ThrottleDevice] | None = field(default=None, name="BlkioDeviceReadIOps")
    blkio_device_write_i_ops: list[ThrottleDevice] | None = field(default=None, name="BlkioDeviceWriteIOps")
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list[DeviceMapping] | None = None
    device_cgroup_rules: list[str] | None = None
    device_requests: list[DeviceRequest] | None = None
    kernel_memory: int = 0
    kernel_memory_tcp: int = field(default=0, name="KernelMemoryTCP")
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    pids_limit: int | None = None
    ulimits: list[Ulimit] | None = None
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_i_ops: int = field(default=0, name="IOMaximumIOps")
    io_maximum_bandwidth: int = field(default=0, name="IOMaximumBandwidth")
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    init: bool | None = None


class UpdateRequest(HostConfig, kw_only=True):
    """Body of `POST /containers/{id}/update`: Docker's `Resources` and `RestartPolicy`,
    which are HostConfig's own fields. As dockerd, a zero or empty value leaves a setting
    as it is (the docker CLI sends every field); which fields an update may change is
    `ContainerService.update`'s business. A policy left out is an empty one, so that
    `{"Name": "no"}` (`update --restart no`) is a change."""

    restart_policy: RestartPolicy = field(default_factory=lambda: RestartPolicy(name=""), name="RestartPolicy")


class EndpointIPAMConfig(Struct, rename="pascal"):
    """The addresses a container asks for on a network (`--ip`, `--ip6`)."""

    ipv4_address: str = field(default="", name="IPv4Address")
    ipv6_address: str = field(default="", name="IPv6Address")
    link_local_ips: list[str] | None = field(default=None, name="LinkLocalIPs")


class EndpointSettings(Struct, rename="pascal"):
    """A network's settings for one container in a create or connect request, kept in
    its record: on a user-defined network, `Links` (`name:alias`) are DNS names only this
    container resolves, and `Aliases` names every container on the network resolves."""

    ipam_config: EndpointIPAMConfig | None = field(default=None, name="IPAMConfig")
    links: list[str] | None = None
    aliases: list[str] | None = None
    driver_opts: dict[str, str] | None = None
    mac_address: str = ""


class NetworkingConfig(Struct, rename="pascal"):
    endpoints_config: dict[str, EndpointSettings | None] | None = None


class CreateRequest(ContainerConfig, rename="pascal"):
    """Body of `POST /containers/create`: the container Config plus HostConfig."""

    host_config: HostConfig = field(default_factory=HostConfig)
    networking_config: NetworkingConfig | None = None
    runtime: str = ""  # where docker-py's `create_container(runtime=)` puts it: HostConfig.Runtime's stand-in


class ExecConfig(Struct, rename="pascal", kw_only=True):
    """The body of `POST /containers/{id}/exec`."""

    cmd: list[str] | None = None
    env: list[str] | None = None
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    privileged: bool = False
    console_size: list[int] | None = None


class ExecStart(Struct, rename="pascal", kw_only=True):
    """The body of `POST /exec/{id}/start`."""

    detach: bool = False
    tty: bool = False
    console_size: list[int] | None = None


class CommitOptions(Struct, kw_only=True):
    """The query of `POST /commit` (the container aside) and its optional Config body."""

    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    changes: list[str] = []
    pause: bool = True
    config: ContainerConfig | None = None


class ContainerState(Struct, rename="pascal"):
    """`State` in inspect; persisted as is."""

    status: str = "created"
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = field(default=False, name="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: Health | None = None


class ContainerRecord(Struct, kw_only=True):
    """What the daemon persists about one container (one JSON file per container)."""

    id: str
    name: str
    created: str
    image_ref: str
    image_id: str
    path: str
    args: list[str]
    config: ContainerConfig
    host_config: HostConfig
    runtime: str
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    manually_stopped: bool = False
    mounts: list[MountPoint] = []
    # network name → what the container asked for there: every network it joins at start
    # (NetworkMode's and those connected since, less those disconnected); none in mode none/host
    endpoints: dict[str, EndpointSettings] = {}


# --- container logs and usage ----------------------------------------------

# A Literal makes the decoder hand out the two constant strings instead of a new one per
# line: reading 100 MB of short lines went from ~300 to ~375 MB/s in-process.
Stream = Literal["stdout", "stderr"]


class LogText(Struct, gc=False):
    """A json-file line without its time: what `logs` prints when it shows no times and
    filters by none (decoding no time string per line reads ~12% faster). Untracked by
    the garbage collector (it holds only strings): a read decodes 25,000 lines per MiB,
    and tracking them cost another ~15%."""

    log: str
    stream: Stream


class LogEntry(LogText, gc=False):
    """A whole json-file line."""

    time: str


class ResourceUsage(Struct):
    """A live container's counters from its cgroup (None: the kernel keeps none)."""

    cpu_ns: int | None  # CPU time used, all CPUs
    memory_bytes: int | None


# --- volumes --------------------------------------------------------------


class VolumeCreateRequest(Struct, rename="pascal"):
    """Body of `POST /volumes/create` (an empty Name asks for a generated one)."""

    name: str = ""
    driver: str = ""
    driver_opts: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class VolumeRecord(Struct, kw_only=True):
    """What the daemon persists about one volume (`<root>/volumes/<name>/volume.json`).

    options: the local driver's `type`/`device`/`o` (a tmpfs or a bind mounted at the
    volume's `_data` while containers use it); empty for a plain directory."""

    name: str
    driver: str = "local"
    created_at: str
    labels: dict[str, str] = {}
    options: dict[str, str] = {}


# --- networks -------------------------------------------------------------


class IPAMPool(Struct, rename="pascal"):
    """One `IPAM.Config` entry of `POST /networks/create`: a subnet, its gateway, the range
    addresses are given out from, and addresses never given out."""

    subnet: str = ""
    gateway: str = ""
    ip_range: str = field(default="", name="IPRange")
    aux_addresses: dict[str, str] | None = field(default=None, name="AuxiliaryAddresses")


class NetworkRecord(Struct, kw_only=True):
    """What the daemon keeps about a network (`<root>/networks/<id>.json`)."""

    id: str
    name: str
    driver: str  # bridge, host or null
    created: str
    bridge: str = ""  # the Linux bridge's name
    subnet: str = ""
    subnet_chosen: bool = True  # the IPv4 subnet was asked for (else picked by the daemon: no --ip on it)
    gateway: str = ""
    ip_range: str = ""  # IPv4 addresses are given out from here (the whole subnet when empty)
    aux_addresses: dict[str, str] = {}  # IPAM's AuxiliaryAddresses: never given out
    enable_ipv6: bool = False
    subnet6: str = ""  # with enable_ipv6: the IPv6 pool, beside the IPv4 one every bridge has
    gateway6: str = ""
    internal: bool = False  # no default route for its containers
    attachable: bool = False  # a swarm notion: kept and shown, as dockerd does for a bridge
    labels: dict[str, str] = {}
    options: dict[str, str] = {}


# --- images ---------------------------------------------------------------


class ImageRuntimeConfig(Struct, rename="pascal", omit_defaults=True):
    """The `config` object inside an image config (OCI/Docker v2 spelling)."""

    user: str = ""
    exposed_ports: dict[str, dict] | None = None
    env: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    volumes: dict[str, dict] | None = None
    working_dir: str = ""
    labels: dict[str, str] | None = None
    stop_signal: str = ""
    healthcheck: HealthConfig | None = None
    on_build: list[str] | None = field(default=None, name="OnBuild")  # ONBUILD triggers, run when built upon
    shell: list[str] | None = None  # the builder's SHELL for shell-form RUN, CMD and ENTRYPOINT


class RootFS(Struct):
    type: str = "layers"
    diff_ids: list[str] = []


class HistoryEntry(Struct, omit_defaults=True):
    created: str = ""
    created_by: str = ""
    comment: str = ""
    empty_layer: bool = False
    author: str = ""


class ImageConfig(Struct, omit_defaults=True, kw_only=True):
    """An image config blob as the OCI image spec / Docker image v2 define it.

    `created` is optional in the OCI image spec (Docker loads images without it): ""
    when absent, and then left out again when berth encodes a config. Keyword-only, so
    that the optional field keeps its place in the encoded field order."""

    architecture: str
    os: str
    created: str = ""
    config: ImageRuntimeConfig
    rootfs: RootFS
    history: list[HistoryEntry] = []
    author: str = ""
    comment: str = ""
    parent: str = ""  # the image a build step was made on (Docker's `parent`): what builds share stays


# --- events ---------------------------------------------------------------


class Actor(Struct):
    ID: str
    Attributes: dict[str, str] = {}


class Event(Struct, omit_defaults=True, kw_only=True):
    """One lifecycle event, in Docker's wire form (which is not PascalCase throughout).

    `status`, `id` and `from` are Docker's legacy fields, present on container and image
    events only. `time`/`timeNano` are stamped by the bus on publish.
    """

    Type: str
    Action: str
    Actor: Actor
    scope: str  # no default: omit_defaults must never drop it
    time: int = 0
    timeNano: int = 0
    status: str | None = None
    id: str | None = None
    from_: str | None = field(default=None, name="from")


class BusStatistics(Struct):
    """The event bus now: events published so far (the last cursor), records in its
    memory window, subscribers reading it, and the oldest cursor the journal keeps."""

    published: int
    window: int
    subscribers: int
    journal_first: int


# --- the daemon and its plugins ------------------------------------------------


class RuntimeInfo(Struct):
    """An OCI runtime the daemon can run containers with."""

    name: str
    binary: str
    path: str  # how berth runs it: "direct", or the workaround this host needs


class SystemInfo(Struct, kw_only=True):
    """What `GET /info` and `GET /version` report of the daemon itself."""

    root: Path
    engine_id: str  # made once per state directory: two daemons never report the same
    debug: bool
    default_runtime: str
    init_binary: str
    cgroup_version: int
    runtimes: list[RuntimeInfo]
    containers: int
    running: int
    paused: int
    stopped: int
    images: int
    event_listeners: int  # API clients streaming /events
    system_time: str
    insecure_registries: list[str] = []  # hosts and CIDRs, as configured (loopback always counts)
    registry_mirrors: list[str] = []  # URLs, as configured
    live_restore: bool = False  # SIGTERM leaves the containers running (--live-restore)


class PluginView(Struct, kw_only=True):
    """A discovered plugin and how it is doing (`GET /plugins`, `berth plugin ls`)."""

    name: str
    source: str  # the entry point or file it was loaded from
    description: str
    enabled: bool
    status: str  # disabled, starting, running, restarting or stopped
    restarts: int
    last_error: str
    handled: int  # events its handler has taken
    events: dict[str, list[str]] | None  # its event filter
    durable: bool


def words(value: list[str] | str | None) -> list[str] | None:
    """Cmd/Entrypoint arrive as a list or as one string (Docker's StrSlice, the shell
    form); an empty string is no words."""
    if isinstance(value, str):
        return [value] if value else []
    return value


def decode(data: bytes, type_):
    """Decode JSON into `type_`; raises msgspec errors that name the offending field."""
    return msgspec.json.decode(data, type=type_)


encode = msgspec.json.encode


# --- the daemon's listeners (berthd -H, --tls*, --api-*) ---------------------------------


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """One `-H` value, parsed: a unix socket path, or a TCP address and port."""

    scheme: str  # "unix" or "tcp"
    path: str = ""  # unix: absolute
    host: str = ""  # tcp: an address or a name, without brackets
    port: int = 0  # tcp: 0 picks a free port (the log names it)

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{host_port(self.host, self.port)}"


class TLSOptions(msgspec.Struct, frozen=True, kw_only=True):
    """`--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`: TCP endpoints only."""

    enabled: bool = False  # --tls, or implied by --tlsverify
    verify: bool = False  # --tlsverify: client certificates signed by cacert are required
    cacert: Path = Path("/etc/berth/tls/ca.pem")  # berthd: tls/ next to its config file
    cert: Path = Path("/etc/berth/tls/cert.pem")
    key: Path = Path("/etc/berth/tls/key.pem")


class ApiLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What the API server tolerates from a client (`berthd --api-*` options)."""

    header_timeout: float = 30.0  # request line + headers, from accept or the request's first byte
    body_timeout: float = 60.0  # longest pause between two reads of a request body
    idle_timeout: float = 300.0  # a kept-alive connection with no request in progress
    max_json_body: int = 4 << 20  # a body read whole; > ARG_MAX (2 MiB), the most a Cmd + Env can be
    max_connections: int = 512  # open at once (streams and attach included); more get a 503
    max_header_bytes: int = 1 << 20  # request line + headers (Go's DefaultMaxHeaderBytes); fixed


# --- registries -------------------------------------------------------------


class AuthConfig(msgspec.Struct, omit_defaults=True):
    """Credentials for a registry: the body of `POST /auth`, and the base64url JSON of the
    `X-Registry-Auth` header the docker CLI sends with pull and push (lower-case keys)."""

    username: str = ""
    password: str = ""
    auth: str = ""  # base64 "user:pass", as config.json keeps it
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


class DistributionPlatform(msgspec.Struct, omit_defaults=True):
    architecture: str = ""
    os: str = ""
    variant: str = ""


class DistributionDescriptor(msgspec.Struct, rename={"media_type": "mediaType"}):
    media_type: str
    digest: str
    size: int


class DistributionInspect(msgspec.Struct, rename="pascal"):
    """`GET /distribution/{name}/json` (docker-py's `get_registry_data`): what a registry
    has under a name, read from its manifest (a list's entries, or the image's config)."""

    descriptor: DistributionDescriptor
    platforms: list[DistributionPlatform]


class ProgressDetail(msgspec.Struct, omit_defaults=True):
    current: int = 0
    total: int = 0


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    message: str
    code: int = 0


class ProgressMessage(msgspec.Struct, omit_defaults=True):
    """One message of Docker's JSON progress stream (pull, push): `id: status progress`."""

    status: str = ""
    id: str = ""
    progressDetail: ProgressDetail | None = None
    progress: str = ""
    aux: dict | None = None
    errorDetail: ErrorDetail | None = None
    error: str = ""


class PushedManifest(msgspec.Struct):
    """What `push` reports of each tag it pushed (the stream's `aux`)."""

    Tag: str
    Digest: str
    Size: int


class SearchResult(msgspec.Struct):
    """One answer of `GET /images/search` (`docker search`), in Docker's field order."""

    star_count: int = 0
    is_official: bool = False
    name: str = ""
    is_automated: bool = False
    description: str = ""
