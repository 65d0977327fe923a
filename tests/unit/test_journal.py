"""The durable event journal: cursors, segments, retention, torn tails after a crash."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events.journal import Journal, _scan
from engine.models import Actor, Event


def event(i: int) -> Event:
    return Event(Type="container", Action="start", Actor=Actor(f"c{i}", {"name": f"n{i}"}), scope="local")


def test_cursors_survive_reopen_and_segments_roll(tmp_path):
    j = Journal(tmp_path, segment_bytes=1000)
    cursors = [j.append(event(i)) for i in range(100)]
    assert cursors == list(range(1, 101))
    assert len(j.segments) > 3
    j.close()
    again = Journal(tmp_path, segment_bytes=1000)
    assert [r.event.Actor.ID for r in again.records()] == [f"c{i}" for i in range(100)]
    assert again.append(event(100)) == 101
    times = [r.event.timeNano for r in again.records()]
    assert times == sorted(set(times))  # strictly increasing, even within one clock tick
    assert again.cursor_at(times[50]) == 51 and again.cursor_at(times[-1] + 1) == 102


def test_retention_by_size_keeps_the_newest(tmp_path):
    j = Journal(tmp_path, segment_bytes=500, max_bytes=2000)
    for i in range(200):
        j.append(event(i))
    kept = [r.cursor for r in j.records()]
    assert kept[-1] == 200 and kept == list(range(kept[0], 201)) and kept[0] > 1
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 2000 + 500 + 200


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=60))
def test_torn_tail_is_dropped_and_nothing_earlier_lost(tmp_path_factory, cut):
    directory = tmp_path_factory.mktemp("j")
    j = Journal(directory)
    for i in range(10):
        j.append(event(i))
    j.close()
    seg = max(directory.iterdir())
    os.truncate(seg, seg.stat().st_size - cut)  # a crash in the middle of the last write
    again = Journal(directory)
    kept = [r.event.Actor.ID for r in again.records()]
    assert kept == [f"c{i}" for i in range(9)]  # only the torn record is gone
    assert again.append(event(99)) == len(kept) + 1
    assert [r.event.Actor.ID for r in Journal(directory).records()][-1] == "c99"


def test_corrupt_record_ends_the_journal(tmp_path):
    j = Journal(tmp_path)
    for i in range(5):
        j.append(event(i))
    j.close()
    seg = next(tmp_path.iterdir())
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF  # flip a byte of the last payload: its checksum no longer holds
    seg.write_bytes(bytes(data))
    again = Journal(tmp_path)
    assert [r.cursor for r in again.records()] == [1, 2, 3, 4] and again.dropped_bytes > 0


@settings(max_examples=60)
@given(st.data())
def test_damage_to_a_closed_segment_loses_only_what_it_damaged(tmp_path_factory, data):
    """A closed segment's records are not all decoded at open (only its first and last),
    so damage anywhere in one must still give readers what a full scan gives them."""
    directory = tmp_path_factory.mktemp("j")
    j = Journal(directory, segment_bytes=300)
    for i in range(30):
        j.append(event(i))
    j.close()
    paths = sorted(directory.iterdir())
    seg = data.draw(st.sampled_from(paths[:-1]))
    raw = bytearray(seg.read_bytes())
    if data.draw(st.booleans()):
        del raw[data.draw(st.integers(1, len(raw) - 1)):]
    else:
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    seg.write_bytes(bytes(raw))
    survivors = [r.cursor for path in paths for r in _scan(path)[0]]
    again = Journal(directory, segment_bytes=300)
    assert [r.cursor for r in again.records()] == survivors
    assert again.next_cursor == 31 and again.append(event(99)) == 31
    assert all(s.first == int(s.path.stem) for s in again.segments)


def test_an_intact_record_of_the_wrong_types_does_not_end_the_journal(tmp_path):
    """A record whose checksum holds but whose attributes are not all text (a plugin's
    number, before publish wrote them out) is read with them as text; what follows stays."""
    j = Journal(tmp_path)
    j.append(event(0))
    j.append(Event(Type="plugin", Action="seen", Actor=Actor("p", {"count": 3, "ok": True}), scope="local"))
    j.append(event(2))
    j.close()
    again = Journal(tmp_path)
    records = list(again.records())
    assert [r.cursor for r in records] == [1, 2, 3] and again.dropped_bytes == 0
    assert records[1].event.Actor.Attributes == {"count": "3", "ok": "true"}
    assert again.append(event(3)) == 4


def test_an_intact_record_that_is_no_event_is_passed_over(tmp_path):
    """One that no reading makes an event (no Actor at all) is skipped, and what follows stays."""
    import struct
    import zlib

    import msgspec

    j = Journal(tmp_path)
    j.append(event(0))
    j.close()
    payload = msgspec.msgpack.encode([2, {"Type": "container", "Action": "start"}])
    with open(next(tmp_path.iterdir()), "ab") as f:
        f.write(struct.pack(">II", len(payload), zlib.crc32(payload)) + payload)
    again = Journal(tmp_path)
    assert again.dropped_bytes == 0
    assert again.append(event(3)) == 2  # after the last event read (the odd record's cursor is not trusted)
    assert [r.event.Actor.ID for r in again.records()] == ["c0", "c3"]
