"""Daemon configuration: command-line options with defaults for a real host.

Tests give each daemon its own root, exec root, socket and cgroup parent, so several
daemons run side by side and each can be removed completely.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from .models import ApiLimits, ListenEndpoint, TLSOptions

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_EXEC_ROOT = "/run/berth"
DEFAULT_CONFIG = "/etc/berth/berthd.toml"


class DaemonConfig(msgspec.Struct, kw_only=True):
    root: Path
    exec_root: Path
    hosts: list[ListenEndpoint]  # -H, each served; see engine/api/listeners.py
    pidfile: Path
    default_runtime: str = "crun"
    cgroup_parent: str = "berth"
    init: bool = False
    init_binary: str | None = None
    debug: bool = False
    config_file: Path | None = None
    plugins_dir: Path | None = None
    journal_max_bytes: int = 256 << 20
    journal_segment_bytes: int = 4 << 20
    journal_max_age: float = 7 * 86400
    bridge: str = "berth0"  # the default `bridge` network's Linux bridge
    bridge_subnet: str = "10.88.0.0/16"
    api_limits: ApiLimits = msgspec.field(default_factory=ApiLimits)  # what the API server tolerates
    socket_group: str | None = None  # --group; None: `berth` when that group exists, else root's
    tls: TLSOptions = msgspec.field(default_factory=TLSOptions)  # --tls*, for tcp:// hosts
    insecure_registries: list[str] = []  # --insecure-registry: plain HTTP / unverified TLS allowed
    registry_mirrors: list[str] = []  # --registry-mirror: tried first for docker.io pulls
    live_restore: bool = False  # --live-restore: SIGTERM leaves the containers running for the next daemon

    @property
    def keeper_dir(self) -> Path:
        """The keeper's socket, pid file and log (run-time state: gone at a reboot, as the
        containers it keeps)."""
        return self.exec_root / "keeper"


class DaemonFile(msgspec.Struct, forbid_unknown_fields=True, rename="kebab"):
    """The daemon's TOML file (`--config-file`): settings of dockerd's daemon.json under
    the same names, and the `[plugins]` tables (read by the plugin host). A key it does
    not know is an error, as in dockerd, so a typo is never silently ignored."""

    registry_mirrors: list[str] = []
    insecure_registries: list[str] = []
    live_restore: bool = False
    plugins: dict[str, dict] = {}


def read_daemon_file(path: Path) -> DaemonFile:
    """The TOML file at `path` (an absent one is empty); ValueError says what is wrong."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return DaemonFile()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        return msgspec.convert(raw, DaemonFile)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _check_registries(insecure: list[str], mirrors: list[str]) -> str:
    """What is wrong with these registry settings ('' when nothing)."""
    for value in insecure:
        if "/" in value:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                return f"insecure registry {value}: not a CIDR (HOST[:PORT] or ADDRESS/BITS)"
    for value in mirrors:
        scheme, sep, rest = value.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.split("/")[0]:
            return f"registry mirror {value}: not a URL (http://HOST[:PORT] or https://HOST[:PORT])"
    return ""


DEFAULT_TCP_PORT = 2375  # dockerd's, plain
DEFAULT_TLS_PORT = 2376  # dockerd's, with TLS
DEFAULT_TCP_ADDR = "127.0.0.1"  # `tcp://:PORT` (dockerd: localhost)


def parse_host(value: str, default_socket: Path, tls: bool) -> ListenEndpoint:
    """A `-H` value as a ListenEndpoint; ValueError says what is wrong with it."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value  # dockerd: an address without a scheme is TCP
    if scheme == "unix":
        return ListenEndpoint(scheme="unix", path=str(Path(rest).absolute() if rest else default_socket))
    if scheme == "fd":
        raise ValueError("fd:// (systemd socket activation) is not supported: use unix:// or tcp://")
    if scheme != "tcp":
        raise ValueError(f"unsupported scheme {scheme!r}: use unix:///path or tcp://ADDR:PORT")
    parts = urlsplit(f"tcp://{rest}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        raise ValueError("a TCP host is tcp://ADDR:PORT, with no path, query or user")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
    if port is None:
        port = DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT
    return ListenEndpoint(scheme="tcp", host=parts.hostname or DEFAULT_TCP_ADDR, port=port)


def parse_args(argv: list[str] | None = None) -> DaemonConfig:
    parser = argparse.ArgumentParser(prog="berthd", description="berth container engine daemon")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="state directory (images, containers)")
    parser.add_argument("--exec-root", default=None, help="run-time state (default: /run/berth, or <root>/run when --root is given)")
    parser.add_argument("-H", "--host", dest="hosts", action="append", metavar="HOST",
                        help="where the API listens, repeatable: unix:///path or tcp://ADDR[:PORT] (port "
                             f"{DEFAULT_TCP_PORT}, {DEFAULT_TLS_PORT} with TLS; plain TCP only on a loopback "
                             "address; default: unix://<exec-root>/berth.sock)")
    parser.add_argument("-G", "--group", default=None,
                        help="group of the unix sockets, which are mode 0660 (default: berth when that "
                             "group exists, else root; '' for root)")
    parser.add_argument("--tls", action="store_true", help="TLS on tcp:// hosts (anyone may connect; implied by --tlsverify)")
    parser.add_argument("--tlsverify", action="store_true",
                        help="TLS on tcp:// hosts, and only clients with a certificate signed by --tlscacert")
    parser.add_argument("--tlscacert", default=None, metavar="FILE",
                        help="CA that signs client certificates (default: tls/ca.pem next to the config file)")
    parser.add_argument("--tlscert", default=None, metavar="FILE",
                        help="the server's certificate (default: tls/cert.pem next to the config file)")
    parser.add_argument("--tlskey", default=None, metavar="FILE",
                        help="the server's private key (default: tls/key.pem next to the config file)")
    parser.add_argument("-p", "--pidfile", default=None, help="pid file (default: <exec-root>/berthd.pid)")
    parser.add_argument("--runtime", "--default-runtime", dest="runtime", default="crun", help="default OCI runtime: crun or runc")
    parser.add_argument("--cgroup-parent", default="berth", help="parent cgroup of containers")
    parser.add_argument("--init", action="store_true", help="run an init (tini) as PID 1 in every container")
    parser.add_argument("--events-max-size", type=int, default=256 << 20, metavar="BYTES",
                        help="event journal retention: total size (default 256 MiB)")
    parser.add_argument("--events-max-age", type=float, default=7 * 86400, metavar="SECONDS",
                        help="event journal retention: age of the oldest segment kept (default 7 days)")
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help=f"daemon TOML configuration (default {DEFAULT_CONFIG}; may be absent)")
    parser.add_argument("--plugins-dir", default=None, help="directory of plugin modules (default: next to the config file)")
    parser.add_argument("--bridge", default="berth0", help="Linux bridge of the default `bridge` network (first start)")
    parser.add_argument("--bridge-subnet", default="10.88.0.0/16", help="subnet of the default `bridge` network (first start)")
    limits = ApiLimits()
    parser.add_argument("--api-header-timeout", type=float, default=limits.header_timeout, metavar="SECONDS",
                        help="a request's line and headers must arrive within this, counted from connect or "
                             f"from its first byte: else 408 and close (default {limits.header_timeout:g})")
    parser.add_argument("--api-body-timeout", type=float, default=limits.body_timeout, metavar="SECONDS",
                        help=f"longest pause in a request body: else 408 and close (default {limits.body_timeout:g})")
    parser.add_argument("--api-idle-timeout", type=float, default=limits.idle_timeout, metavar="SECONDS",
                        help="a kept-alive connection idle this long between requests is closed "
                             f"(default {limits.idle_timeout:g})")
    parser.add_argument("--api-max-json-body", type=int, default=limits.max_json_body, metavar="BYTES",
                        help="largest JSON request body: else 413 (tar uploads have no limit; "
                             f"default {limits.max_json_body >> 20} MiB)")
    parser.add_argument("--api-max-connections", type=int, default=limits.max_connections, metavar="N",
                        help="open API connections (streams and attach included); more are answered 503 "
                             f"(default {limits.max_connections})")
    parser.add_argument("--insecure-registry", dest="insecure_registries", action="append", default=[],
                        metavar="HOST[:PORT]|CIDR",
                        help="a registry that may be reached over plain HTTP or TLS without verification, "
                             "repeatable (loopback addresses always may)")
    parser.add_argument("--registry-mirror", dest="registry_mirrors", action="append", default=[], metavar="URL",
                        help="a mirror of docker.io tried first for pulls of its images, repeatable "
                             "(http://HOST[:PORT] or https://HOST[:PORT])")
    parser.add_argument("--live-restore", action="store_true",
                        help="on SIGTERM, leave the containers running for the next daemon (the keeper holds "
                             "them); without it they are stopped. A crash never stops them")
    parser.add_argument("-D", "--debug", action="store_true")
    args = parser.parse_args(argv)
    for name in ("api_header_timeout", "api_body_timeout", "api_idle_timeout", "api_max_json_body", "api_max_connections"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    try:
        file = read_daemon_file(Path(args.config_file))
    except ValueError as exc:
        parser.error(f"configuration file {exc}")
    # a list given both ways: the flags' entries first, then the file's
    insecure = list(dict.fromkeys(args.insecure_registries + file.insecure_registries))
    mirrors = list(dict.fromkeys(args.registry_mirrors + file.registry_mirrors))
    if problem := _check_registries(insecure, mirrors):
        parser.error(problem)
    root = Path(args.root).absolute()
    if args.exec_root:
        exec_root = Path(args.exec_root).absolute()
    else:
        exec_root = Path(DEFAULT_EXEC_ROOT) if args.root == DEFAULT_ROOT else root / "run"
    tls_dir = Path(args.config_file).absolute().parent / "tls"
    tls = TLSOptions(enabled=args.tls or args.tlsverify, verify=args.tlsverify,
                     cacert=Path(args.tlscacert or tls_dir / "ca.pem").absolute(),
                     cert=Path(args.tlscert or tls_dir / "cert.pem").absolute(),
                     key=Path(args.tlskey or tls_dir / "key.pem").absolute())
    hosts = []
    for value in args.hosts or ["unix://"]:
        try:
            hosts.append(parse_host(value, exec_root / "berth.sock", tls.enabled))
        except ValueError as exc:
            parser.error(f"-H {value}: {exc}")
    pidfile = Path(args.pidfile).absolute() if args.pidfile else exec_root / "berthd.pid"
    return DaemonConfig(root=root, exec_root=exec_root, hosts=hosts, pidfile=pidfile, default_runtime=args.runtime,
                        cgroup_parent=args.cgroup_parent, init=args.init,
                        config_file=Path(args.config_file).absolute(),
                        plugins_dir=Path(args.plugins_dir or Path(args.config_file).parent / "plugins").absolute(),
                        journal_max_bytes=args.events_max_size, journal_max_age=args.events_max_age,
                        init_binary=shutil.which("tini-static") or shutil.which("tini"), debug=args.debug,
                        bridge=args.bridge, bridge_subnet=args.bridge_subnet,
                        insecure_registries=insecure, registry_mirrors=mirrors,
                        live_restore=args.live_restore or file.live_restore,
                        api_limits=ApiLimits(header_timeout=args.api_header_timeout, body_timeout=args.api_body_timeout,
                                          idle_timeout=args.api_idle_timeout, max_json_body=args.api_max_json_body,
                                          max_connections=args.api_max_connections),
                        socket_group=args.group, tls=tls)
