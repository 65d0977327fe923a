"""Benchmark: the event bus and the log path, berth beside Docker in the same run.

1. bus throughput: events/s published through berth's bus (journal append + fan-out),
   in-process, with 10 live subscribers;
2. delivery latency: `GET /events?filters=start` streaming while containers are started
   one at a time; latency = wall clock at receipt − the event's own timeNano (p50, p99);
3. log capture: a container writes 100 MB (`yes … | head -c`), timed `run -d` + `wait`;
   its floor (issue 17: capture at ≥ 0.9× of it): the same container writing the same
   bytes to a file of its own (`> /captured`), timed the same way on the same engine;
4. log read-back: `logs` of those 100 MB into a pipe.
3 and 4 take the median of 3 rounds after a 10 MB warm-up (ANCHORS.md's workload 5).

Usage: python -m tests.bench.events_logs [--mb 100] [--starts 100] [--rounds 3] [--skip-docker] [--json FILE]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

from engine.events.bus import Bus
from engine.events.journal import Journal
from engine.models import Actor, Event

from .engines import arguments, running
from .record import Figure, check



def bus_throughput(events: int = 100_000, subscribers: int = 10) -> float:
    """Events per second through publish → journal → 10 subscribers that read them all."""

    async def main() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            bus = Bus(Journal(Path(tmp)))
            done = trio.Event()
            remaining = [subscribers]

            async def reader():
                n = 0
                async for _ in bus.subscribe(since_ns=0):
                    n += 1
                    if n == events:
                        break
                remaining[0] -= 1
                if not remaining[0]:
                    done.set()

            async with trio.open_nursery() as nursery:
                for _ in range(subscribers):
                    nursery.start_soon(reader)
                await trio.sleep(0.01)
                started = time.perf_counter()
                for i in range(events):
                    bus.publish(Event(Type="container", Action="start", Actor=Actor(f"c{i}", {"name": "x"}), scope="local"))
                    if i % 1000 == 0:
                        await trio.sleep(0)
                await done.wait()
                return events / (time.perf_counter() - started)

    return trio.run(main)


def delivery_latency(sock: Path, env: dict, starts: int, flavour: str) -> list[float]:
    """Start `starts` created containers one by one while an /events stream watches."""
    latencies: list[float] = []
    names = [f"bench-ev-{os.getpid()}-{i}" for i in range(starts)]
    for name in names:
        subprocess.run(["docker", "create", "--name", name, *(["--network", "none"] if flavour == "docker" else []),
                        "busybox", "true"], env=env, check=True, capture_output=True)
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))
    s.sendall(b'GET /v1.41/events?filters=%7B%22event%22%3A%5B%22start%22%5D%7D HTTP/1.1\r\nHost: x\r\n\r\n')
    got = threading.Event()

    def read() -> None:
        buf = b""
        while len(latencies) < starts:
            chunk = s.recv(65536)
            if not chunk:
                return
            now = time.time_ns()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip()
                if line.startswith(b"{"):
                    latencies.append((now - json.loads(line)["timeNano"]) / 1e6)
                    got.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)
    for name in names:
        got.clear()
        subprocess.run(["docker", "start", name], env=env, check=True, capture_output=True)
        got.wait(5)
    reader.join(10)
    s.close()
    subprocess.run(["docker", "rm", "-f", *names], env=env, capture_output=True)
    return latencies


LINE = b"012345678901234567890123456789012345678\n"


def drain(cmd: list[str], env: dict) -> tuple[int, int]:
    """Run `cmd` with its stdout into a pipe read here 1 MiB at a time; (bytes, lines).
    Reading with readinto into one buffer keeps the harness's own share of the two vCPUs
    small, for both engines alike."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    buf = bytearray(1 << 20)
    size = lines = 0
    while n := proc.stdout.readinto(buf):
        size += n
        lines += buf.count(b"\n", 0, n)
    assert proc.wait() == 0, cmd
    return size, lines


def _run_to_end(env: dict, flavour: str, name: str, cmd: str) -> float:
    """Seconds of `run -d` + `wait` of a busybox `sh -c cmd`, which must exit 0."""
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, *(["--network", "none"] if flavour == "docker" else []),
                    "busybox", "sh", "-c", cmd], env=env, check=True, capture_output=True)
    code = subprocess.run(["docker", "wait", name], env=env, check=True, capture_output=True).stdout.strip()
    elapsed = time.perf_counter() - started
    assert code == b"0", code
    return elapsed


def log_round(env: dict, mb: int, flavour: str) -> tuple[float, float, float]:
    """(capture MB/s, read-back MB/s, floor MB/s) for one container writing `mb` MB of
    40-byte lines: `run -d` + `wait` timed together, then `logs` into a pipe (every byte
    and line checked); the floor writes them to a file in the container instead."""
    name = f"bench-logs-{os.getpid()}"
    size = mb * 1_000_000
    cmd = f"yes {LINE[:-1].decode()} | head -c {size}"
    capture = _run_to_end(env, flavour, name, cmd)
    started = time.perf_counter()
    got = drain(["docker", "logs", name], env)
    readback = time.perf_counter() - started
    assert got == (size, size // len(LINE)), (got, size)
    subprocess.run(["docker", "rm", "-f", name], env=env, capture_output=True)
    floor = _run_to_end(env, flavour, name, f"{cmd} > /captured")
    subprocess.run(["docker", "rm", "-f", name], env=env, capture_output=True)
    return mb / capture, mb / readback, mb / floor


def log_path(env: dict, mb: int, flavour: str, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Capture, read-back and floor rates of `rounds` counted rounds after a 10 MB warm-up,
    as shared/bench/ANCHORS.md's workload 5 does."""
    log_round(env, 10, flavour)
    measured = [log_round(env, mb, flavour) for _ in range(rounds)]
    return [c for c, _, _ in measured], [r for _, r, _ in measured], [f for _, _, f in measured]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> int:
    args = arguments(__doc__, mb=100, starts=100, rounds=3)
    results: dict = {"bus_events_per_s": bus_throughput()}
    with running(not args.skip_docker) as (work, berthd, dockerd):
        engines = {"berth": (berthd.sock, "berth")}
        if dockerd:
            engines["docker"] = (dockerd.sock, "docker")
        for name, (sock, flavour) in engines.items():
            env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(work)}
            lat = delivery_latency(sock, env, args.starts, flavour)
            capture, readback, floor = log_path(env, args.mb, flavour, args.rounds)
            results[name] = {"delivery_p50_ms": statistics.median(lat), "delivery_p99_ms": pct(lat, 0.99),
                             "delivered": len(lat), "log_capture_mb_s": statistics.median(capture),
                             "log_readback_mb_s": statistics.median(readback),
                             "log_capture_floor_mb_s": statistics.median(floor),
                             "log_capture_rounds": capture, "log_readback_rounds": readback,
                             "log_capture_floor_rounds": floor}
    print(f"bus: {results['bus_events_per_s']:,.0f} events/s (publish → journal → 10 subscribers)\n")
    print("| engine | delivery p50 ms | p99 ms | log capture MB/s | floor: to a file MB/s | log read-back MB/s |\n"
          "|---|---|---|---|---|---|")
    for name in ("berth", "docker"):
        if name in results:
            r = results[name]
            print(f"| {name} | {r['delivery_p50_ms']:.2f} | {r['delivery_p99_ms']:.2f} | "
                  f"{r['log_capture_mb_s']:.1f} | {r['log_capture_floor_mb_s']:.1f} | {r['log_readback_mb_s']:.1f} |")
    for name in ("berth", "docker"):
        if name in results:
            r = results[name]
            print(f"{name} rounds: capture {', '.join(f'{v:.1f}' for v in r['log_capture_rounds'])}; "
                  f"floor {', '.join(f'{v:.1f}' for v in r['log_capture_floor_rounds'])}; "
                  f"read-back {', '.join(f'{v:.1f}' for v in r['log_readback_rounds'])} MB/s")
    if "docker" in results:
        b, d = results["berth"], results["docker"]
        print(f"\ncapture {b['log_capture_mb_s'] / b['log_capture_floor_mb_s']:.2f} of berth's floor (issue 17: ≥ 0.9), "
              f"{b['log_capture_mb_s'] / d['log_capture_mb_s']:.1f}× Docker (target ≥ 10×), "
              f"read-back {b['log_readback_mb_s'] / d['log_readback_mb_s']:.1f}× Docker (target ≥ 20×), "
              f"p99 delivery {b['delivery_p99_ms']:.2f} vs {d['delivery_p99_ms']:.2f} ms (target: no worse)")
    figures = [Figure("bus throughput", results["bus_events_per_s"], "events/s", "higher", 0.20)]
    for name in ("berth", "docker"):
        if name in results:
            r = results[name]
            figures += [Figure(f"{name} delivery p50", r["delivery_p50_ms"], "ms", noise=0.30),
                        Figure(f"{name} delivery p99", r["delivery_p99_ms"], "ms", noise=0.60),
                        Figure(f"{name} log capture", r["log_capture_mb_s"], "MB/s", "higher", 0.15),
                        Figure(f"{name} log capture floor", r["log_capture_floor_mb_s"], "MB/s", "higher", 0.15),
                        Figure(f"{name} log read-back", r["log_readback_mb_s"], "MB/s", "higher", 0.15)]
    check("events_logs", figures, record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
