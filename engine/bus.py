"""The event bus: every lifecycle change is published here, subscribers read by cursor.

Each event gets a monotonically increasing cursor (`seq`). Subscribers never hold a
queue: they remember the last cursor they saw and read onward from the bus's window, and
the live fan-out only wakes them (one event, replaced after each publish). A slow
subscriber therefore delays only itself and publishers never block.

The window is in memory for now (the durable journal replaces it in a later issue, with
the same `publish`/`subscribe` interface and the same Event model).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator

import trio

from .filters import EventFilter
from .models import Event


class Bus:
    def __init__(self, window: int = 100_000):
        self._events: deque[Event] = deque(maxlen=window)
        self._first_seq = 1  # cursor of self._events[0]
        self._next_seq = 1
        self._wake = trio.Event()
        self._subscribers = 0

    def publish(self, event: Event) -> int:
        """Stamp and append `event`, wake subscribers; return its cursor."""
        if not event.timeNano:
            event.timeNano = time.time_ns()
            event.time = event.timeNano // 10**9
        if len(self._events) == self._events.maxlen:
            self._first_seq += 1
        self._events.append(event)
        seq = self._next_seq
        self._next_seq += 1
        self._wake.set()
        self._wake = trio.Event()
        return seq

    def statistics(self) -> dict[str, int]:
        return {"published": self._next_seq - 1, "window": len(self._events), "subscribers": self._subscribers}

    async def subscribe(self, match: EventFilter | None = None, *, since_ns: int | None = None,
                        until_ns: int | None = None) -> AsyncIterator[Event]:
        """Yield matching events in order: the window's events at or after `since_ns`
        (none when since is absent), then live ones; stop once `until_ns` has passed."""
        if since_ns is None:
            cursor = self._next_seq
        else:
            cursor = self._first_seq
            while cursor < self._next_seq and self._events[cursor - self._first_seq].timeNano < since_ns:
                cursor += 1
        self._subscribers += 1
        try:
            while True:
                wake = self._wake
                cursor = max(cursor, self._first_seq)
                while cursor < self._next_seq:
                    event = self._events[cursor - self._first_seq]
                    cursor += 1
                    if until_ns is not None and event.timeNano > until_ns:
                        return
                    if match is None or match(event):
                        yield event
                if until_ns is None:
                    await wake.wait()
                    continue
                with trio.move_on_at(_deadline(until_ns)):
                    await wake.wait()
                    continue
                return
        finally:
            self._subscribers -= 1


def _deadline(until_ns: int) -> float:
    """A wall-clock instant as a trio clock deadline."""
    return trio.current_time() + (until_ns - time.time_ns()) / 1e9
