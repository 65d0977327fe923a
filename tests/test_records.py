"""Records on disk: writes of one file that overlap each land whole, and saves of one
container's record (an exit recorded while a handler saves the same container, as
docker-py's `rm --link` test made them) land in the order they were made."""

from __future__ import annotations

import threading

import msgspec
import pytest
import trio

from engine.containers.container import Container
from engine.containers.records import Containers
from engine.fs.store import atomic_write
from engine.models import ContainerConfig, ContainerRecord, HostConfig


def container(tmp_path) -> tuple[Containers, Container]:
    table = Containers(tmp_path / "containers", tmp_path / "netns", bus=None)
    record = ContainerRecord(id="c" * 64, name="saved", created="2026-12-07T00:00:00Z", image_ref="busybox",
                             image_id="sha256:" + "0" * 64, path="true", args=[], config=ContainerConfig(),
                             host_config=HostConfig(), runtime="crun")
    c = Container(record, table.root / record.id, table.netns_dir)
    c.dir.mkdir(parents=True)
    return table, c


@pytest.mark.trio
async def test_overlapping_saves_land_whole_and_in_order(tmp_path):
    table, c = container(tmp_path)
    overlapped = 0
    for round_ in range(30):
        written = trio.Event()

        async def durable_save(written: trio.Event) -> None:
            await table.save(c)  # written and fsync'd in a worker thread
            written.set()

        async with trio.open_nursery() as nursery:
            c.record.restart_count = 2 * round_
            nursery.start_soon(durable_save, written)
            with trio.fail_after(10):  # until its temp file is there: the thread is writing
                while not written.is_set() and not any(c.dir.glob(".record.json*.tmp")):
                    await trio.lowlevel.checkpoint()
            overlapped += not written.is_set()
            c.record.restart_count = 2 * round_ + 1
            await table.save(c, durable=False)  # written in the event loop
        on_disk = msgspec.json.decode(c.record_path.read_bytes(), type=ContainerRecord)
        assert on_disk.restart_count == 2 * round_ + 1  # the later save landed last
    assert overlapped  # the saves did overlap (else this test showed nothing)
    assert sorted(p.name for p in c.dir.iterdir()) == ["record.json"]  # no temp file left


def test_writes_of_one_file_at_once_each_land_whole(tmp_path):
    target = tmp_path / "state.json"
    payloads = [bytes([65 + n]) * (4096 * (n + 1)) for n in range(4)]
    failures: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(50):
                atomic_write(target, data, durable=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(data,)) for data in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
