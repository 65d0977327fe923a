"""berthd: the daemon's root nursery, start-up, signals and shutdown.

One daemon per root: an exclusive lock on `<root>/berthd.lock` is taken before anything
else, so a second daemon on the same root refuses at once and touches nothing. SIGTERM
(or SIGINT) stops every container gracefully, unmounts what was mounted, removes the
sockets and pid file, and exits 0.

Start-up order: the listen plan is checked (`engine/api/listeners.py`: a plain TCP
endpoint off loopback, an unknown `--group`, unreadable TLS files are refused here, before
the lock and before anything is bound), the root is locked, the API endpoints are bound
(clients that connect now wait in the backlog), the engine opens, and then the API serves.
"""

from __future__ import annotations

import fcntl
import logging
import os
import resource
import signal
import sys

import trio

from .api import listeners
from .api.http import serve_api
from .api.router import make_dispatch
from .config import DaemonConfig, parse_args
from .core import Engine
from .keeper import protocol
from .runtime import cgroups

log = logging.getLogger("berth.daemon")


def _lock_root(config: DaemonConfig) -> int:
    config.root.mkdir(parents=True, exist_ok=True, mode=0o711)
    fd = os.open(config.root / "berthd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode().strip() or "?"
        raise SystemExit(f"berthd: another daemon (pid {owner}) is already running on root {config.root}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def serve(config: DaemonConfig, plan: listeners.Plan, layout: cgroups.Layout) -> None:
    endpoints = await listeners.open_listeners(plan)
    try:
        engine = Engine(config, layout)
        config.exec_root.mkdir(parents=True, exist_ok=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as daemon:
                await engine.open(daemon)
                config.pidfile.write_text(f"{os.getpid()}\n")
                accepting = trio.CancelScope()

                async def api() -> None:
                    with accepting:
                        await serve_api(endpoints, make_dispatch(engine), daemon, config.api_limits)

                daemon.start_soon(api)
                log.info("berthd listening on %s (root %s, runtime %s)", " ".join(e.url for e in config.hosts),
                         config.root, config.default_runtime)
                async for signum in signals:
                    log.info("received %s: stopping containers", signal.Signals(signum).name)
                    break
                accepting.cancel()  # no new connections; open ones see their containers stop
                await engine.shutdown()
                daemon.cancel_scope.cancel()
            engine.close()  # the journal last: what the supervisors published until now is in it
    finally:
        for endpoint in endpoints:
            with trio.CancelScope(shield=True):
                await endpoint.aclose()
        listeners.remove_sockets(plan)
    config.pidfile.unlink(missing_ok=True)
    log.info("berthd stopped")


def _presize_fd_table(size: int = 4096) -> None:
    """Grow this process's fd table while it has a single thread. Grown later, each
    doubling waits for an RCU grace period (10-30 ms here) in the thread whose open
    needed it, the event loop's included; a running container holds ~5 of berthd's fds."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if (high := min(size, soft) - 1) > 2:
        os.close(os.dup2(2, high))


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if config.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        raise SystemExit("berthd: must run as root (containers need namespaces, mounts and cgroups)")
    try:
        plan = listeners.plan(config.hosts, config.socket_group, config.tls)
    except listeners.ListenError as exc:
        raise SystemExit(f"berthd: {exc}") from None
    lock = _lock_root(config)
    _presize_fd_table()
    layout = cgroups.detect()  # the host's, before this process hides part of it
    keeper = protocol.running_pid(config.keeper_dir)
    # Before trio starts any thread (a mount namespace is joined or made single-threaded).
    # The containers' mounts live in the daemon's mount namespace; the keeper, started in
    # it, keeps it alive, so a new daemon joins it and finds them.
    if layout.hybrid and keeper:
        cgroups.join_mount_namespace(keeper)
        log.info("hybrid cgroup host: berthd joined the mount namespace of its keeper (pid %d)", keeper)
    elif cgroups.hide_hybrid_v2(layout):
        log.info("hybrid cgroup host: berthd runs in its own mount namespace without %s", cgroups.UNIFIED)
    try:
        trio.run(serve, config, plan, layout)
    except listeners.ListenError as exc:
        raise SystemExit(f"berthd: {exc}") from None
    finally:
        os.close(lock)


if __name__ == "__main__":
    main()
