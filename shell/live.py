"""What the shell's bottom toolbar shows, kept current from the event bus: containers
running / paused / exited, and the latest events.

A thread follows `GET /events` (live, no replay) and marks the counts stale on every
container event; a second thread refreshes them from `GET /containers/json` at most a
few times a second, so a burst of events costs a handful of calls. Both reconnect when
the daemon restarts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from . import fastjson
from .transport import Client, ConnectError, DaemonError

_REFRESH_EVERY = 0.25  # seconds: the counts lag a burst of events by at most this


class LiveState:
    def __init__(self, client: Client, on_change: Callable[[], None] = lambda: None, recent: int = 3):
        self.client = client
        self.on_change = on_change
        self.counts = {"running": 0, "paused": 0, "exited": 0}
        self.recent: deque[str] = deque(maxlen=recent)
        self.connected = False
        self._stale = threading.Event()
        self._stop = threading.Event()

    def start(self) -> None:
        """Follow the daemon in the background (daemon threads: they end with the shell)."""
        self._stale.set()
        threading.Thread(target=self._follow, name="berth-events", daemon=True).start()
        threading.Thread(target=self._refresh, name="berth-counts", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._stale.set()

    def toolbar(self, extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        """The toolbar as prompt-toolkit formatted text; `extra` goes before the events."""
        if not self.connected:
            return [("class:toolbar.warn", " no daemon "), *extra]
        c = self.counts
        parts = [("class:toolbar.running", f" ▶ {c['running']} running "), ("", " "),
                 ("class:toolbar.paused", f" ⏸ {c['paused']} paused "), ("", " "),
                 ("class:toolbar.exited", f" ■ {c['exited']} exited "), *extra]
        if self.recent:  # newest first: what a narrow terminal cuts off is the oldest
            parts.append(("class:toolbar.events", "   " + "  ·  ".join(reversed(self.recent))))
        return parts

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                with self.client.stream("GET", "/events") as stream:
                    self.connected = True
                    self._stale.set()
                    while line := stream.readline():
                        if line.strip():
                            self._seen(fastjson.loads(line))
            except (ConnectError, DaemonError, OSError, ValueError):
                pass
            self.connected = False
            self.on_change()
            self._stop.wait(1)

    def _seen(self, event: dict) -> None:
        actor = event.get("Actor", {})
        name = actor.get("Attributes", {}).get("name") or actor.get("ID", "")
        if name.startswith("sha256:") or len(name) == 64:  # an image's or container's ID: its short form
            name = name.removeprefix("sha256:")[:12]
        self.recent.append(f"{time.strftime('%H:%M:%S', time.localtime(event.get('time', 0)))} "
                           f"{event.get('Type', '')} {event.get('Action', '').split(':')[0]} {name}")
        if event.get("Type") == "container":
            self._stale.set()
        self.on_change()

    def _refresh(self) -> None:
        while not self._stop.is_set():
            self._stale.wait()
            self._stale.clear()
            try:
                states = [c["State"] for c in self.client.get("/containers/json", all=1) or []]
            except (ConnectError, DaemonError, OSError, ValueError):
                continue
            self.counts = {"running": states.count("running"), "paused": states.count("paused"),
                           "exited": sum(s in ("exited", "created", "dead") for s in states)}
            self.on_change()
            self._stop.wait(_REFRESH_EVERY)
