"""What an attached client reads: a run's output as the container wrote it, byte for byte.

The json-file log is text (invalid UTF-8 becomes U+FFFD there, as in dockerd's) and
rotates (a slow reader could find a file gone); neither may touch `attach`, whose output
is often a binary stream (`docker run img cat x.tar.gz > x.tar.gz`) and must be whole.
So each attached client gets a `Tap`: the pumps hand it every chunk they read, raw, in
the order read, before they log it. A tap holds at most LIMIT bytes; a pump that finds
it full waits for the client to take some, so a slow client slows the container's
output down (it blocks in its writes, as it does behind a slow `docker attach` in
dockerd) instead of losing any. A client that leaves closes its tap, and no pump waits
for it any more. One that stays but stops reading is dropped only once the container's
process has ended on a user's stop, kill or `rm -f` (or the daemon's shutdown): then
nobody may wait for it (`docker stop` and a daemon's exit would hang behind it, as
dockerd's `stop` does).
"""

from __future__ import annotations

import threading
from collections import deque

LIMIT = 1 << 20  # bytes a tap holds before the pumps wait for its client


class Tap:
    """One attached client's copy of a container's output: (stream, bytes) chunks."""

    def __init__(self, limit: int = LIMIT):
        self._chunks: deque[tuple[str, bytes]] = deque()
        self._size = 0
        self._limit = limit
        self._room = threading.Condition()
        self.closed = False
        self.takes = 0  # how many times its client took what waited (a stalled one: none for a while)

    def put(self, stream: str, data: bytes, *, wait: bool = True) -> None:
        """Add a chunk (from a pump); while the tap is full, wait for room (`wait`: a pump
        thread; the terminal's pump runs in the event loop and never waits here, see
        `full`). Returns at once once the tap is closed."""
        with self._room:
            while wait and self._size >= self._limit and not self.closed:
                self._room.wait()
            if not self.closed:
                self._chunks.append((stream, data))
                self._size += len(data)

    @property
    def full(self) -> bool:
        return self._size >= self._limit and not self.closed

    def take(self) -> list[tuple[str, bytes]]:
        """Every chunk waiting, oldest first (never blocks); the pumps get their room back."""
        with self._room:
            chunks = list(self._chunks)
            self._chunks.clear()
            self._size = 0
            self.takes += 1
            self._room.notify_all()
        return chunks

    def close(self) -> None:
        """The client is gone: drop what waits, and never make a pump wait again."""
        with self._room:
            self.closed = True
            self._chunks.clear()
            self._size = 0
            self._room.notify_all()


class Taps:
    """A container's taps: those of the clients attached now (added and removed in the
    event loop, read by the pumps in their threads, hence a tuple replaced whole)."""

    def __init__(self) -> None:
        self.open: tuple[Tap, ...] = ()

    def add(self) -> Tap:
        tap = Tap()
        self.open = (*self.open, tap)
        return tap

    def remove(self, tap: Tap) -> None:
        tap.close()
        self.open = tuple(t for t in self.open if t is not tap)

    def put(self, stream: str, data: bytes, *, wait: bool = True) -> bool:
        """Hand a chunk to every tap; whether there was one."""
        taps = self.open
        for tap in taps:
            tap.put(stream, data, wait=wait)
        return bool(taps)

    @property
    def full(self) -> bool:
        """Whether a client is behind by a whole tap (the terminal's pump waits for it)."""
        return any(tap.full for tap in self.open)

    def close_all(self) -> None:
        """Let go of every client (the daemon is leaving its containers running)."""
        for tap in self.open:
            self.remove(tap)

    def drop_stalled(self, seen: dict[Tap, int]) -> None:
        """Close the taps that are full and were not taken from since `seen` (a tap's
        `takes` at the last call, updated here): their clients have stopped reading."""
        for tap in self.open:
            if tap.full and seen.get(tap) == tap.takes:
                self.remove(tap)
            seen[tap] = tap.takes
