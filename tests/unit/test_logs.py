"""The json-file log driver: exact bytes back, tail from the end, followers miss nothing."""

from __future__ import annotations

import pytest
import trio

from engine import logs


class Notifier:
    """Stands in for a container's change event (the writer's on_write hook)."""

    def __init__(self):
        self.event = trio.Event()
        self.done = False

    def __call__(self):
        self.event.set()
        self.event = trio.Event()


async def collect(it) -> list[logs.LogEntry]:
    return [e async for batch in it for e in batch]


@pytest.mark.trio
async def test_round_trip_keeps_bytes_and_streams(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(path, Notifier())
    w.write("stdout", b"one\ntwo\npart")
    w.write("stderr", "é\n".encode())
    w.write("stdout", b"ial\n")
    w.close()
    entries = await collect(logs.read(path))
    assert [(e.stream, e.log) for e in entries] == [
        ("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "part"), ("stderr", "é\n"), ("stdout", "ial\n")]
    assert "".join(e.log for e in entries if e.stream == "stdout") == "one\ntwo\npartial\n"


@pytest.mark.trio
async def test_tail_reads_from_the_end(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(path, Notifier())
    for i in range(5000):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert [e.log for e in await collect(logs.read(path, tail=3))] == ["line 4997\n", "line 4998\n", "line 4999\n"]
    assert await collect(logs.read(path, tail=0)) == []
    assert len(await collect(logs.read(path, tail=10**6))) == 5000


@pytest.mark.trio
async def test_since_until(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(path, Notifier())
    w.write("stdout", b"a\n")
    entries = await collect(logs.read(path))
    stamp = entries[0].time
    assert await collect(logs.read(path, since=stamp)) == entries
    assert await collect(logs.read(path, until="2000-01-01T00:00:00.000000000Z")) == []
    w.close()


@pytest.mark.trio
async def test_follower_sees_every_line_once(tmp_path):
    path = tmp_path / "c-json.log"
    note = Notifier()
    w = logs.LogWriter(path, note)
    got: list[str] = []

    async def follow():
        async for batch in logs.read(path, follow=True, grown=lambda: note.event, done=lambda: note.done):
            got.extend(e.log for e in batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        for i in range(200):
            w.write("stdout", f"{i}\n".encode())
            if i % 17 == 0:
                await trio.sleep(0)
        note.done = True
        note()
    w.close()
    assert got == [f"{i}\n" for i in range(200)]
