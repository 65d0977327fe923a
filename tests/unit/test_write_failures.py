"""Writes on a full disk (a real one: a small tmpfs filled to the last byte): a record keeps
its old content, the event journal holds events in memory and writes them once it can, a
container's log drops and counts output; none of them raises into the daemon or leaves a
torn record behind."""

from __future__ import annotations

import logging
import os

import pytest
import trio

from engine.containers import logs
from engine.errors import InsufficientStorage
from engine.events.journal import Journal
from engine.fs.store import atomic_write
from engine.models import Actor, Event
from tests.full_disk import fill, small_filesystem


@pytest.fixture
def disk():
    with small_filesystem("1m") as point:
        yield point


def leave_free(filler, size: int = 8192) -> None:
    """Give back `size` bytes: the next larger write is a short one, then ENOSPC."""
    os.truncate(filler, filler.stat().st_size - size)


def event(i: int) -> Event:
    return Event(Type="container", Action="start", Actor=Actor(f"c{i}", {"name": f"n{i}"}), scope="local")


def test_atomic_write_on_a_full_disk_keeps_the_old_file(disk):
    record = disk / "record.json"
    atomic_write(record, b"old")
    filler = fill(disk)
    leave_free(filler)  # the new content fits in part: a short write, then ENOSPC
    with pytest.raises(InsufficientStorage) as raised:
        atomic_write(record, b"x" * 100_000)
    assert raised.value.status == 507
    assert raised.value.message == f"no space left on device: could not write {record}"
    assert record.read_bytes() == b"old"
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "record.json"]  # no temp file left
    filler.unlink()
    atomic_write(record, b"new")
    assert record.read_bytes() == b"new"


def test_journal_holds_events_while_the_disk_is_full(disk, caplog):
    directory = disk / "journal"
    journal = Journal(directory, segment_bytes=2000)
    assert [journal.append(event(i)) for i in range(5)] == [1, 2, 3, 4, 5]
    filler = fill(disk)
    leave_free(filler, 4096)
    with caplog.at_level(logging.WARNING, "berth.events"):
        cursors = [journal.append(event(i)) for i in range(5, 200)]  # some fit, one is torn, the rest wait
        assert cursors == list(range(6, 201))
        assert Journal(directory).dropped_bytes == 0  # what is on disk ends with a whole record
        assert [r.cursor for r in journal.records()] == list(range(1, 201))  # held ones are read too
        assert journal.cursor_at(journal.last_time) == 200
        filler.unlink()
        journal.append(event(200))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
    assert "writing again" in caplog.records[-1].getMessage()
    journal.close()
    again = Journal(directory)
    assert again.dropped_bytes == 0
    assert [r.event.Actor.ID for r in again.records()] == [f"c{i}" for i in range(201)]


def test_journal_drops_the_oldest_held_events_beyond_its_limit(disk):
    filler = fill(disk)
    journal = Journal(disk / "journal", max_unwritten=10)
    for i in range(30):
        journal.append(event(i))
    assert journal.lost == 20
    assert [r.cursor for r in journal.records()] == list(range(21, 31))
    filler.unlink()
    journal.close()
    assert [r.cursor for r in Journal(disk / "journal").records()] == list(range(21, 31))


@pytest.mark.trio
async def test_log_writer_waits_for_room_and_loses_nothing(disk, caplog):
    """A write that fails for want of space is tried again until it succeeds: the writing
    thread (a pump) blocks meanwhile, and every line ends up in the log once, whole."""
    import threading

    path = disk / "c-json.log"
    said: list[str] = []
    writer = logs.LogWriter(logs.LogFiles(path), lambda: None, on_blocked=lambda reason: said.append(reason),
                            on_resumed=lambda: said.append("resumed"))
    writer.write("stdout", b"before\n")
    filler = fill(disk)
    leave_free(filler)
    done = threading.Event()

    def pump() -> None:
        for i in range(100):
            writer.write("stdout", b"%04d " % i + b"x" * 1000 + b"\n")
        done.set()

    with caplog.at_level(logging.WARNING, "berth.logs"):
        threading.Thread(target=pump, daemon=True).start()
        await trio.sleep(0.5)
        assert not done.is_set()  # blocked on the full disk
        filler.unlink()
        assert await trio.to_thread.run_sync(done.wait, 10)
        writer.write("stderr", b"after\n")
        writer.close()
    entries = [e async for batch in logs.read(logs.LogFiles(path)) for e in batch]
    assert [e.log for e in entries] == ["before\n", *(("%04d " % i) + "x" * 1000 + "\n" for i in range(100)), "after\n"]
    assert writer.lost_bytes == 0 and said == ["No space left on device", "resumed"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # the failure once, the recovery once
    assert "No space left on device" in messages[0] and "written again" in messages[1]