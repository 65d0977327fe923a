"""Benchmark: container networking, berth beside Docker in the same run.

  setup+teardown   `run --rm busybox true` on the default bridge minus the same with
                   `--network none`, medians over interleaved runs (berth only: the
                   private dockerd here has no default bridge, to keep its networks
                   from reaching out)
  throughput       a loopback client downloading 100 MB from busybox httpd in a
                   container through a published port (berth's trio proxy; Docker's
                   docker-proxy, the container on a user-defined network)
  connection rate  sequential HTTP requests for a small file through that port, per second

Usage: python -m tests.bench.network [--runs 30] [--mb 100] [--requests 300] [--skip-docker] [--json FILE]
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from .engines import VENV_BIN, arguments, running
from .record import Figure, check
from .run_rm import time_run

SERVER = "mkdir /www; head -c {size} /dev/zero > /www/big; echo ok > /www/small; exec httpd -f -p 8080 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


def port_figures(cli: list[str], env: dict, network: list[str], mb: int, requests: int) -> dict:
    port = free_port()
    name = f"bench-net-{os.getpid()}-{port}"
    subprocess.run([*cli, "run", "-d", "--name", name, *network, "-p", f"127.0.0.1:{port}:8080", "busybox", "sh", "-c",
                    SERVER.format(size=mb * 1_000_000)], env=env, check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"http://127.0.0.1:{port}/small")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        fetch(f"http://127.0.0.1:{port}/big")  # warm-up
        started = time.perf_counter()
        size = len(fetch(f"http://127.0.0.1:{port}/big"))
        throughput = size / 1e6 / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(requests):
            assert fetch(f"http://127.0.0.1:{port}/small") == b"ok\n"
        rate = requests / (time.perf_counter() - started)
    finally:
        subprocess.run([*cli, "rm", "-f", name], env=env, capture_output=True)
    return {"throughput_mb_s": throughput, "connections_per_s": rate}


def main() -> int:
    args = arguments(__doc__, runs=30, mb=100, requests=300)
    results: dict = {}
    with running(not args.skip_docker) as (work, berthd, dockerd):
        env = {**os.environ, "DOCKER_HOST": f"unix://{berthd.sock}", "DOCKER_CONFIG": str(work)}
        berth = [str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}"]
        samples = {"bridge": [], "none": []}
        rng = random.Random(11)
        for round_no in range(3 + args.runs):
            order = ["bridge", "none"]
            rng.shuffle(order)
            for mode in order:
                elapsed = time_run([*berth, "run", "--rm", "--network", mode, "busybox", "true"], env)
                if round_no >= 3:
                    samples[mode].append(elapsed)
        medians = {m: statistics.median(v) * 1000 for m, v in samples.items()}
        results["berth"] = {"run_bridge_ms": medians["bridge"], "run_none_ms": medians["none"],
                            "network_setup_teardown_ms": medians["bridge"] - medians["none"],
                            **port_figures(berth, env, [], args.mb, args.requests)}
        if dockerd:
            denv = {**os.environ, "DOCKER_HOST": f"unix://{dockerd.sock}", "DOCKER_CONFIG": str(work)}
            subprocess.run(["docker", "network", "create", "benchnet"], env=denv, check=True, capture_output=True)
            try:
                results["docker"] = port_figures(["docker"], denv, ["--network", "benchnet"], args.mb, args.requests)
            finally:
                subprocess.run(["docker", "network", "rm", "benchnet"], env=denv, capture_output=True)
    b = results["berth"]
    print(f"berth: network setup+teardown {b['network_setup_teardown_ms']:.1f} ms "
          f"(run --rm: {b['run_bridge_ms']:.1f} ms on the bridge, {b['run_none_ms']:.1f} ms with --network none)\n")
    print("| engine | published-port throughput MB/s | connections/s |\n|---|---|---|")
    for name in ("berth", "docker"):
        if name in results:
            r = results[name]
            print(f"| {name} | {r['throughput_mb_s']:.1f} | {r['connections_per_s']:.0f} |")
    figures = [Figure("berth network setup+teardown", b["network_setup_teardown_ms"], "ms", noise=1.0)]
    for name in ("berth", "docker"):
        if name in results:
            figures += [Figure(f"{name} port throughput", results[name]["throughput_mb_s"], "MB/s", "higher", 0.15),
                        Figure(f"{name} connections", results[name]["connections_per_s"], "/s", "higher", 0.15)]
    check("network", figures, record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
