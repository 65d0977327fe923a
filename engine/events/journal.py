"""The durable event journal: every event is appended here before it is fanned out.

On disk, `<root>/journal/<first cursor, 20 digits>.seg` files, each a run of records:

    [length: u32 BE][crc32 of payload: u32 BE][payload: msgpack (cursor, event)]

Cursors are consecutive integers across segments. A segment is closed when it passes
`segment_bytes`; whole old segments are deleted once the journal exceeds `max_bytes` or
a segment's newest event is older than `max_age` seconds (the live segment stays).

Appends are a single `write(2)`: a daemon killed with -9 loses nothing it appended (the
page cache survives the process); `sync()` (called every second by the bus and at
shutdown) makes it survive a machine crash too. A record torn by a crash mid-write — a
short header, a short payload or a bad checksum — ends the journal: on open it is cut
off, and nothing before it is lost.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ..models import Event

_HEADER = struct.Struct(">II")


class Record(msgspec.Struct, array_like=True):
    cursor: int
    event: Event


class _Segment(msgspec.Struct):
    first: int  # cursor of its first record
    path: Path
    size: int
    last_time: int  # timeNano of its newest event (0 when empty)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def _scan(path: Path) -> tuple[list[Record], int]:
    """Every intact record of a segment, and the offset where intact data ends."""
    data = path.read_bytes()
    records, pos = [], 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        payload = data[pos + _HEADER.size:pos + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            records.append(_decoder.decode(payload))
        except msgspec.DecodeError:
            break
        pos += _HEADER.size + length
    return records, pos


class Journal:
    def __init__(self, directory: Path, *, segment_bytes: int = 4 << 20, max_bytes: int = 256 << 20,
                 max_age: float = 7 * 86400):
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segments: list[_Segment] = []
        self.next_cursor = 1
        self.last_time = 0
        self.dropped_bytes = 0  # torn data cut off at open
        self._fd = -1
        self._dirty = False
        self._open()

    def _open(self) -> None:
        paths = sorted(p for p in self.dir.iterdir() if p.suffix == ".seg")
        for path in paths:
            records, good = _scan(path)
            size = path.stat().st_size
            if good < size:  # a torn tail: only the newest segment can have one
                self.dropped_bytes += size - good
                os.truncate(path, good)
            first = records[0].cursor if records else int(path.stem)
            last_time = records[-1].event.timeNano if records else 0
            self.segments.append(_Segment(first, path, good, last_time))
            if records:
                self.next_cursor = records[-1].cursor + 1
                self.last_time = max(self.last_time, last_time)
        if not self.segments:
            self._new_segment()
        else:
            self._fd = os.open(self.segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def _new_segment(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
        path = self.dir / f"{self.next_cursor:020d}.seg"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.segments.append(_Segment(self.next_cursor, path, 0, 0))
        self._apply_retention()

    def _apply_retention(self) -> None:
        cutoff = time.time_ns() - int(self.max_age * 1e9)
        while len(self.segments) > 1:
            oldest = self.segments[0]
            total = sum(s.size for s in self.segments)
            if total <= self.max_bytes and oldest.last_time >= cutoff:
                break
            oldest.path.unlink(missing_ok=True)
            self.segments.pop(0)

    @property
    def first_cursor(self) -> int:
        return self.segments[0].first

    def append(self, event: Event) -> int:
        """Stamp `event` (strictly increasing timeNano), write it, return its cursor."""
        now = max(time.time_ns(), self.last_time + 1)
        event.timeNano, event.time = now, now // 10**9
        cursor = self.next_cursor
        payload = _encoder.encode(Record(cursor, event))
        os.write(self._fd, _HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        segment = self.segments[-1]
        segment.size += _HEADER.size + len(payload)
        segment.last_time = now
        self.next_cursor += 1
        self.last_time = now
        self._dirty = True
        if segment.size >= self.segment_bytes:
            self._new_segment()
        return cursor

    def read(self, cursor: int, limit: int = 4096) -> list[Record]:
        """Up to `limit` records from `cursor` on (from the oldest kept if it is gone)."""
        out: list[Record] = []
        for i, segment in enumerate(self.segments):
            following = self.segments[i + 1].first if i + 1 < len(self.segments) else self.next_cursor
            if following <= cursor:
                continue
            try:
                records, _ = _scan(segment.path)
            except FileNotFoundError:  # retention removed it meanwhile
                continue
            out.extend(r for r in records if r.cursor >= cursor)
            if len(out) >= limit:
                return out[:limit]
        return out

    def cursor_at(self, time_ns: int) -> int:
        """The cursor of the first event at or after `time_ns`."""
        # Taken first: this runs in a worker thread while the daemon appends, and an
        # event appended after the scan began is at or after `time_ns` too.
        end = self.next_cursor
        for segment in list(self.segments):
            if segment.last_time >= time_ns:
                for record in _scan(segment.path)[0]:
                    if record.event.timeNano >= time_ns:
                        return record.cursor
        return end

    def records(self) -> Iterator[Record]:
        """Every kept record, oldest first."""
        cursor = self.first_cursor
        while batch := self.read(cursor):
            yield from batch
            cursor = batch[-1].cursor + 1

    def sync(self) -> None:
        if self._dirty and self._fd >= 0:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
