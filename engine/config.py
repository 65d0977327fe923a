"""Daemon configuration: command-line options with defaults for a real host.

Tests give each daemon its own root, exec root, socket and cgroup parent, so several
daemons run side by side and each can be removed completely.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import msgspec

from .api.http import Limits

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_EXEC_ROOT = "/run/berth"
DEFAULT_HOST = "unix:///run/berth/berth.sock"
DEFAULT_CONFIG = "/etc/berth/berthd.toml"


class DaemonConfig(msgspec.Struct, kw_only=True):
    root: Path
    exec_root: Path
    host: str
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
    api_limits: Limits = msgspec.field(default_factory=Limits)  # what the API server tolerates

    @property
    def socket_path(self) -> Path:
        if not self.host.startswith("unix://"):
            raise SystemExit(f"berthd: only unix:// hosts are supported, not {self.host!r}")
        return Path(self.host.removeprefix("unix://"))


def parse_args(argv: list[str] | None = None) -> DaemonConfig:
    parser = argparse.ArgumentParser(prog="berthd", description="berth container engine daemon")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="state directory (images, containers)")
    parser.add_argument("--exec-root", default=None, help="run-time state (default: /run/berth, or <root>/run when --root is given)")
    parser.add_argument("-H", "--host", default=None, help="API socket, unix:///path (default: <exec-root>/berth.sock)")
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
    limits = Limits()
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
    parser.add_argument("-D", "--debug", action="store_true")
    args = parser.parse_args(argv)
    for name in ("api_header_timeout", "api_body_timeout", "api_idle_timeout", "api_max_json_body", "api_max_connections"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    root = Path(args.root).absolute()
    if args.exec_root:
        exec_root = Path(args.exec_root).absolute()
    else:
        exec_root = Path(DEFAULT_EXEC_ROOT) if args.root == DEFAULT_ROOT else root / "run"
    host = args.host or f"unix://{exec_root / 'berth.sock'}"
    pidfile = Path(args.pidfile).absolute() if args.pidfile else exec_root / "berthd.pid"
    return DaemonConfig(root=root, exec_root=exec_root, host=host, pidfile=pidfile, default_runtime=args.runtime,
                        cgroup_parent=args.cgroup_parent, init=args.init,
                        config_file=Path(args.config_file).absolute(),
                        plugins_dir=Path(args.plugins_dir or Path(args.config_file).parent / "plugins").absolute(),
                        journal_max_bytes=args.events_max_size, journal_max_age=args.events_max_age,
                        init_binary=shutil.which("tini-static") or shutil.which("tini"), debug=args.debug,
                        bridge=args.bridge, bridge_subnet=args.bridge_subnet,
                        api_limits=Limits(header_timeout=args.api_header_timeout, body_timeout=args.api_body_timeout,
                                          idle_timeout=args.api_idle_timeout, max_json_body=args.api_max_json_body,
                                          max_connections=args.api_max_connections))
