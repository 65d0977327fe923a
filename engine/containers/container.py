"""A container as the daemon holds it in memory: its persisted record plus live handles.

The record (`ContainerRecord`) is what survives a restart. Everything else here lives only
while the daemon runs: the change event that waiters and log followers sleep on, the
count of exits (what `wait?condition=next-exit` and `attach` measure against), and the
cancel scope of a restart back-off that `stop` may cut short.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

from ..lifecycle import LIVE, State
from .logs import LogFiles, log_attrs, log_options
from ..models import ContainerRecord
from ..network.networks import Endpoint
from ..network.ports import PortMap
from ..runtime.terminal import Terminal
from .taps import Taps


class Container:
    def __init__(self, record: ContainerRecord, directory: Path, netns_dir: Path):
        self.record = record
        self.dir = directory
        self.netns = netns_dir / record.id
        self.changed = trio.Event()
        self.followed = False  # a log follower took `changed` since output last woke them
        self.sole_network = ""  # "none" or "host" while a run in that network mode is on it
        self.exits = 0
        self.removed = False
        self.stop_requested = False
        self.restarting = False  # a `restart` is under way: AutoRemove waits for its end, as in dockerd
        self.backoff: trio.CancelScope | None = None
        self.lock = trio.Lock()  # serialises start/stop/restart/rm of this container
        self.saving = trio.Lock()  # one write of its record at a time (Containers.save)
        self.supervised = False
        self.prepared = False  # rootfs mounted / netns made by this daemon, not yet torn down
        # while running: where attached clients write stdin (OpenStdin), and the terminal (Tty)
        self.stdin: trio.abc.SendStream | None = None
        self.stdin_lock = trio.Lock()
        self.oom_killed = False  # the kernel killed a process of this run for memory
        # while running: its place on each network, its published ports and their proxies
        self.networks: dict[str, Endpoint] = {}
        self.ports: list[PortMap] = []
        self.port_scope: trio.CancelScope | None = None
        self.port_sockets: list = []  # the listening sockets of its published ports
        self.dns_scope: trio.CancelScope | None = None  # its embedded DNS responder
        self.terminal: Terminal | None = None
        self.taps = Taps()  # what the attached clients read (taps.py)
        self.console_size: tuple[int, int] | None = None  # the last size asked for, kept across restarts

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> State:
        return State(self.record.state.status)

    @property
    def live(self) -> bool:
        """Running (or paused), or between runs of a restart policy."""
        return self.state in LIVE

    @property
    def volatile_layer(self) -> bool:
        """Its writable layer goes with it (AutoRemove): mounted never to be synced
        (`rootfs.mount_overlay`'s `volatile`)."""
        return self.record.host_config.auto_remove

    @property
    def has_process(self) -> bool:
        """Its process exists: running, or paused (frozen)."""
        return self.state in (State.RUNNING, State.PAUSED)

    # paths inside the container's directory
    log_path = property(lambda self: self.dir / f"{self.id}-json.log")

    @property
    def log_files(self) -> LogFiles:
        r = self.record
        options = r.host_config.log_config.config
        max_size, max_file = log_options(options)
        image = r.image_id.removeprefix("sha256:")
        names = {"ID": r.id[:12], "FullID": r.id, "Name": r.name, "ImageID": image[:12], "ImageFullID": r.image_id,
                 "ImageName": r.image_ref, "DaemonName": "docker"}
        attrs = log_attrs(options, labels=r.config.labels or {}, env=r.config.env or [], names=names) if options else {}
        return LogFiles(self.log_path, max_size, max_file, attrs)

    rootfs = property(lambda self: self.dir / "rootfs")
    upper = property(lambda self: self.dir / "upper")
    work = property(lambda self: self.dir / "work")
    bundle = property(lambda self: self.dir / "bundle")
    pid_file = property(lambda self: self.dir / "bundle" / "pid")
    runtime_log = property(lambda self: self.dir / "bundle" / "runtime.log")
    record_path = property(lambda self: self.dir / "record.json")
    run_state_path = property(lambda self: self.dir / "run.json")  # while it runs: its networks and ports

    def notify(self) -> None:
        """Wake everyone waiting on this container (state change or new output)."""
        self.changed.set()
        self.changed = trio.Event()

    def follow(self) -> trio.Event:
        """For a log follower about to read: the event that the next output (or state
        change) sets. Taken before reading, so output written after the read wakes it."""
        self.followed = True
        return self.changed

    def output_logged(self, token: trio.lowlevel.TrioToken) -> None:
        """From the thread that logged output: wake the followers, if one is waiting.
        Output arrives in 4-64 KiB chunks; waking the event loop for each of them when
        nobody follows would cost more than logging them. Clearing the flag after the
        write and before the wake-up, while a follower sets it before it reads, means a
        follower either reads the new output or is woken for it."""
        if self.followed:
            self.followed = False
            try:
                token.run_sync_soon(self.notify)
            except trio.RunFinishedError:
                pass  # the daemon is exiting

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Sleep until `predicate()` holds; it is re-checked after every change."""
        while not predicate():
            changed = self.changed
            await changed.wait()
