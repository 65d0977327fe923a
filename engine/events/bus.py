"""The event bus: every lifecycle change is journaled, then fanned out; subscribers read
by cursor.

`publish` appends the event to the durable journal (which gives it its cursor and its
timestamp) and to an in-memory window of recent events, then wakes subscribers. No
subscriber holds a queue: each remembers the last cursor it saw and reads onward — from
the window when it keeps up, from the journal on disk when it has fallen behind or
replays (`since`). A slow subscriber therefore delays only itself, loses nothing, and
publishers never wait for anyone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator

import trio

from .filters import EventFilter
from .journal import Journal, Record
from ..models import Event


class Bus:
    def __init__(self, journal: Journal, window: int = 65536):
        self.journal = journal
        self._window: deque[Record] = deque(maxlen=window)
        self._wake = trio.Event()
        self._subscribers = 0

    def publish(self, event: Event) -> int:
        """Journal `event`, keep it in the window, wake subscribers; return its cursor."""
        cursor = self.journal.append(event)
        self._window.append(Record(cursor, event))
        self._wake.set()
        self._wake = trio.Event()
        return cursor

    def statistics(self) -> dict[str, int]:
        return {"published": self.journal.next_cursor - 1, "window": len(self._window),
                "subscribers": self._subscribers, "journal_first": self.journal.first_cursor}

    async def flush_forever(self, interval: float = 1.0) -> None:
        """Make the journal durable against machine crashes, once per `interval`."""
        while True:
            await trio.sleep(interval)
            await trio.to_thread.run_sync(self.journal.sync)

    def _window_from(self, cursor: int) -> list[Record] | None:
        """Window records from `cursor` on; None if the window no longer reaches back."""
        if not self._window:
            return [] if cursor >= self.journal.next_cursor else None
        first = self._window[0].cursor
        if cursor < first:
            return None
        start = cursor - first
        return [self._window[i] for i in range(start, len(self._window))]

    async def subscribe(self, match: EventFilter | None = None, *, cursor: int | None = None,
                        since_ns: int | None = None, until_ns: int | None = None) -> AsyncIterator[Record]:
        """Yield matching records (cursor, event) in order: from `cursor`, or from
        `since_ns` (journal replay), or from now; then live; stop once `until_ns` passed."""
        if cursor is None and since_ns is None:
            cursor = self.journal.next_cursor
        elif cursor is None:
            cursor = await trio.to_thread.run_sync(self.journal.cursor_at, since_ns)
        self._subscribers += 1
        try:
            while True:
                wake = self._wake
                batch = self._window_from(cursor)
                if batch is None:
                    batch = await trio.to_thread.run_sync(self.journal.read, cursor)
                    if not batch:
                        if cursor < self.journal.first_cursor:  # retention dropped it: go on from what is kept
                            cursor = self.journal.first_cursor
                        else:  # being appended as we read: not whole on disk yet, so look again
                            await trio.sleep(0.001)
                        continue
                for record in batch:
                    if until_ns is not None and record.event.timeNano > until_ns:
                        return
                    if match is None or match(record.event):
                        yield record
                if batch:
                    cursor = batch[-1].cursor + 1
                    continue
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
