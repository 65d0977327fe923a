"""The json-file log driver: one JSON object per line, as Docker writes it.

`{"log":"hi\\n","stream":"stdout","time":"2026-11-22T12:28:23.139675649Z"}`. Output is
split at newlines; a chunk that ends without one is written as a partial entry, so the
concatenated `log` fields give back the exact byte stream (which is what `attach`
replays). Times are fixed-width RFC 3339 with nanoseconds, so they compare as strings.

Followers (`logs -f`, `attach`) read the file by offset and sleep on the container's
change event, which the writer's `on_write` callback sets and replaces after every write
(and the container after every state change): a follower that takes the current event
before reading and waits on it after can never miss a write, and never sees one twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import msgspec
import trio

_CHUNK = 1 << 20


class LogEntry(msgspec.Struct):
    log: str
    stream: str
    time: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LogEntry)


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch → `2026-11-22T12:28:23.139675649Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class LogWriter:
    """Appends a container's output to its json-file log."""

    def __init__(self, path: Path, on_write: Callable[[], None]):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._on_write = on_write

    def write(self, stream: str, data: bytes) -> None:
        """Record `data` from `stream` ("stdout" or "stderr") and wake followers."""
        stamp = rfc3339(time.time_ns())
        text = data.decode("utf-8", errors="replace")
        out = bytearray()
        start = 0
        while start < len(text):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end + 1
            out += _encoder.encode(LogEntry(text[start:end], stream, stamp))
            out += b"\n"
            start = end
        # An append to the page cache does not block in practice; a thread hop per chunk
        # would cost more than the write itself.
        os.write(self._fd, out)
        self._on_write()

    def close(self) -> None:
        os.close(self._fd)


def _tail_offset(f: BinaryIO, lines: int) -> int:
    """Offset where the last `lines` lines of `f` start (reads from the end)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos, found = end, 0
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        # the final newline of the file ends the last line; it does not start one
        idx = len(block) - 1 if pos + step == end else len(block)
        while True:
            idx = block.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            found += 1
            if found == lines:
                return pos + idx + 1
    return 0


def _read_from(f: BinaryIO, offset: int) -> tuple[bytes, int]:
    """Complete lines from `offset` on (at most a chunk's worth); returns (lines, new offset)."""
    f.seek(offset)
    data = f.read(_CHUNK)
    cut = data.rfind(b"\n") + 1
    return data[:cut], offset + cut


def end_offset(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def read(path: Path, *, offset: int = 0, tail: int | None = None, since: str = "",
               until: str = "", follow: bool = False, grown: Callable[[], trio.Event] | None = None,
               done: Callable[[], bool] | None = None) -> AsyncIterator[list[LogEntry]]:
    """Yield batches of log entries in order (one batch per chunk read, so a consumer
    sends one write per batch, not per line), filtered by time (RFC 3339 strings,
    inclusive since).

    With `follow`, keep reading as the log grows until `done()` is true and everything
    written before that has been read; `grown()` returns the writer's current event.
    The file is opened once: a follower keeps reading even after the container (and its
    log file) is removed, which is how `run --rm` gets every last line.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        if tail is not None:
            offset = max(offset, await trio.to_thread.run_sync(_tail_offset, f, tail))
        while True:
            finished = follow and done is not None and done()
            wake = grown() if follow and grown else None
            data, offset = await trio.to_thread.run_sync(_read_from, f, offset)
            if data:
                entries = _decoder.decode_lines(data)
                if since or until:
                    last = len(entries)
                    if until and entries and entries[-1].time > until:
                        last = next(i for i, e in enumerate(entries) if e.time > until)
                    batch = [e for e in entries[:last] if e.time >= since]
                    if batch:
                        yield batch
                    if last < len(entries):
                        return
                else:
                    yield entries
                continue  # there may be more beyond one chunk
            if not follow or finished or wake is None:
                return
            await wake.wait()
