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

A write that fails (a full disk) loses nothing and stops nothing: what it wrote in part is
cut off again, so the segment still ends with a whole record, and the event is held in
memory, in order, with those after it; every append tries them again first, and reads see
them meanwhile. The failure is logged once, and once more when the held events are written.
Only beyond `max_unwritten` held events are the oldest dropped (counted in `lost`).
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ..fs.store import append_whole
from ..models import Event

_HEADER = struct.Struct(">II")

log = logging.getLogger("berth.events")


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
    return _scan_from(path.read_bytes(), 0)


def _scan_from(data: bytes, pos: int, limit: int = -1) -> tuple[list[Record], int]:
    """The intact records of `data` from offset `pos` on (up to `limit` of them), and the
    offset where they end."""
    records: list[Record] = []
    while pos + _HEADER.size <= len(data) and len(records) != limit:
        length, crc = _HEADER.unpack_from(data, pos)
        payload = data[pos + _HEADER.size:pos + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            records.append(_decoder.decode(payload))
        except msgspec.ValidationError:
            # Intact (its checksum holds) but not an event as this daemon types them: never
            # taken for the journal's end, which would cut off every event after it.
            if (record := _repaired(payload)) is not None:
                records.append(record)
        except msgspec.DecodeError:
            break
        pos += _HEADER.size + length
    return records, pos


def _repaired(payload: bytes) -> Record | None:
    """A record whose attributes are not all text (a plugin published a number before
    `PluginContext.publish` wrote them out), with them written as text; None (the record
    passed over) if that does not make it an event either."""
    try:
        cursor, event = msgspec.msgpack.decode(payload)
        attributes = event["Actor"]["Attributes"]
        event["Actor"]["Attributes"] = {str(k): v if isinstance(v, str) else msgspec.json.encode(v).decode()
                                        for k, v in attributes.items()}
        return msgspec.convert([cursor, event], Record)
    except (msgspec.MsgspecError, TypeError, ValueError, KeyError, AttributeError):
        checksum = zlib.crc32(payload)
        if checksum not in _passed_over:  # said once, not at every read that meets it
            _passed_over.add(checksum)
            log.warning("event journal: passed over a record that is no event (crc32 %08x)", checksum)
        return None


_passed_over: set[int] = set()


def _ends(path: Path) -> tuple[list[Record], int] | None:
    """A closed segment's first and last records and its size, found by stepping over the
    records' headers without decoding the others; None unless the steps end exactly at
    the end of the file and both records are intact."""
    data = path.read_bytes()
    pos = last = 0
    while pos + _HEADER.size <= len(data):
        last = pos
        pos += _HEADER.size + _HEADER.unpack_from(data, pos)[0]
    if pos != len(data) or pos == 0:
        return None
    first, _ = _scan_from(data, 0, limit=1)
    tail, good = _scan_from(data, last)
    if not first or good != pos:
        return None
    return (first + tail if last else tail), pos


class Journal:
    def __init__(self, directory: Path, *, segment_bytes: int = 4 << 20, max_bytes: int = 256 << 20,
                 max_age: float = 7 * 86400, max_unwritten: int = 65536):
        self.dir = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.max_unwritten = max_unwritten
        self._unwritten: deque[tuple[Record, bytes]] = deque()  # appended, not yet on disk, oldest first
        self.lost = 0  # events dropped from memory while writes failed
        self._failing = False
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
        for n, path in enumerate(paths, 1):
            # Only the newest segment can end torn, and decoding every record of a full
            # journal (256 MB) took seconds of the daemon's start: the closed ones are
            # read in whole only when their framing does not add up.
            records, good = (n < len(paths) and _ends(path)) or _scan(path)
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

    def _new_segment(self, first: int | None = None) -> bool:
        """Start the segment whose first record will be `first` (the next cursor by
        default); False (logged) if it cannot be made."""
        first = self.next_cursor if first is None else first
        path = self.dir / f"{first:020d}.seg"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if self._fd < 0:
                raise  # opening the journal: the daemon cannot start without one
            self._write_failed(f"could not make the segment {path}: {exc}")
            return False
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
        self._fd = fd
        self.segments.append(_Segment(first, path, 0, 0))
        self._apply_retention()
        return True

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
        """Stamp `event` (strictly increasing timeNano), write it, return its cursor. A
        write that fails keeps it in memory (see the module's doc), it never raises."""
        now = max(time.time_ns(), self.last_time + 1)
        event.timeNano, event.time = now, now // 10**9
        record = Record(self.next_cursor, event)
        payload = _encoder.encode(record)
        self._unwritten.append((record, _HEADER.pack(len(payload), zlib.crc32(payload)) + payload))
        self.next_cursor += 1
        self.last_time = now
        self._write_unwritten()
        return record.cursor

    def _write_unwritten(self) -> None:
        """Write the held records, oldest first, until one fails."""
        while self._unwritten:
            record, data = self._unwritten[0]
            if self.segments[-1].size >= self.segment_bytes and not self._new_segment(record.cursor):
                break
            segment = self.segments[-1]
            try:
                append_whole(self._fd, data, segment.size)
            except OSError as exc:
                self._write_failed(f"could not write {segment.path}: {exc}")
                break
            self._unwritten.popleft()
            segment.size += len(data)
            segment.last_time = record.event.timeNano
            self._dirty = True
        while len(self._unwritten) > self.max_unwritten:
            self._unwritten.popleft()
            self.lost += 1
        if self._failing and not self._unwritten:
            self._failing = False
            log.warning("event journal: writing again; every event held meanwhile is written%s",
                        f", but {self.lost} were lost" if self.lost else "")

    def _write_failed(self, reason: str) -> None:
        if not self._failing:
            self._failing = True
            log.error("event journal: %s; events are held in memory (up to %d) and written once it can",
                      reason, self.max_unwritten)

    def read(self, cursor: int, limit: int = 4096) -> list[Record]:
        """Up to `limit` records from `cursor` on (from the oldest kept if it is gone)."""
        held = self._held()  # taken first: a record written meanwhile is then found on disk, never missed
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
        after = max(cursor, out[-1].cursor + 1 if out else 0)
        return (out + [r for r in held if r.cursor >= after])[:limit]

    def _held(self) -> list[Record]:
        """The records not on disk yet (a copy: readers run in worker threads)."""
        return [record for record, _ in tuple(self._unwritten)]

    def cursor_at(self, time_ns: int) -> int:
        """The cursor of the first event at or after `time_ns`."""
        # Taken first: this runs in a worker thread while the daemon appends, and an
        # event appended after the scan began is at or after `time_ns` too.
        end = self.next_cursor
        held = self._held()
        for segment in list(self.segments):
            if segment.last_time >= time_ns:
                for record in _scan(segment.path)[0]:
                    if record.event.timeNano >= time_ns:
                        return record.cursor
        return next((r.cursor for r in held if r.event.timeNano >= time_ns), end)

    def records(self) -> Iterator[Record]:
        """Every kept record, oldest first."""
        cursor = self.first_cursor
        while batch := self.read(cursor):
            yield from batch
            cursor = batch[-1].cursor + 1

    def sync(self) -> None:
        if self._dirty and self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError as exc:  # tried again at the next sync
                log.error("event journal: could not sync %s: %s", self.segments[-1].path, exc)
                return
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self._write_unwritten()
            if self._unwritten or self.lost:
                log.error("event journal: %d events could not be written and are lost",
                          len(self._unwritten) + self.lost)
            self.sync()
            os.close(self._fd)
            self._fd = -1
