"""The bus under load: 10,000 events, one slow and fifty fast subscribers, all get every
event in order; publishers never wait for subscribers."""

from __future__ import annotations

import time

import pytest
import trio

from engine.events.bus import Bus
from engine.events.filters import EventFilter
from engine.events.journal import Journal
from engine.models import Actor, Event

N = 10_000


def event(i: int) -> Event:
    return Event(Type="container", Action="start" if i % 2 else "die", Actor=Actor(f"c{i}", {"n": str(i)}), scope="local")


@pytest.mark.trio
async def test_slow_and_fast_subscribers_get_everything_in_order(tmp_path):
    bus = Bus(Journal(tmp_path), window=1000)  # a small window: the slow one must read the journal
    results: dict[str, list[str]] = {}
    ready = trio.Semaphore(0)

    async def subscriber(name: str, delay: float):
        got = results.setdefault(name, [])
        agen = bus.subscribe(since_ns=0)
        ready.release()
        async for record in agen:
            got.append(record.event.Actor.ID)
            if delay:
                await trio.sleep(delay)
            if len(got) == N:
                return

    publish_times = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber, "slow", 0.0002)
        for i in range(50):
            nursery.start_soon(subscriber, f"fast{i}", 0)
        for _ in range(51):
            await ready.acquire()
        for i in range(N):
            started = time.perf_counter()
            bus.publish(event(i))
            publish_times.append(time.perf_counter() - started)
            if i % 100 == 0:
                await trio.sleep(0)
    expected = [f"c{i}" for i in range(N)]
    assert all(got == expected for got in results.values()), {k: len(v) for k, v in results.items()}
    assert bus.statistics()["published"] == N
    assert sorted(publish_times)[N // 2] < 0.001  # a publish is a journal append, never a wait


@pytest.mark.trio
async def test_filters_and_until(tmp_path):
    bus = Bus(Journal(tmp_path))
    for i in range(10):
        bus.publish(event(i))
    until = time.time_ns()
    got = [r.event.Actor.ID async for r in bus.subscribe(EventFilter({"event": ["die"]}), since_ns=0, until_ns=until)]
    assert got == [f"c{i}" for i in range(0, 10, 2)]
