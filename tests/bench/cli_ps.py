"""Benchmark: `ps` from start-up to exit, berth's CLI beside the docker CLI on the same
berthd (the shell issue: a one-shot command must start fast and not load the shell).

Each run is a whole process (spawn to exit, output drained, exit status 0 required),
with 5 containers present so `ps` has a table to print; rounds run both CLIs in a
freshly shuffled order. `berth --help` is timed too: the start-up alone.
Usage: python -m tests.bench.cli_ps [--runs 50] [--warmup 5] [--json FILE]
"""

from __future__ import annotations

import json
import os
import random
import sys

from .engines import VENV_BIN, arguments, running
from .record import Figure, check
from .run_rm import summary, time_run


def main() -> int:
    args = arguments(__doc__, runs=50, warmup=5)
    with running(False) as (work, berthd, _):
        env = {**os.environ, "DOCKER_HOST": f"unix://{berthd.sock}", "DOCKER_CONFIG": str(work)}
        berth = [str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}"]
        for i in range(5):
            time_run([*berth, "run", "-d", "--name", f"ps-bench-{i}", "busybox", "sleep", "600"], env)
        commands = {"berth ps": [*berth, "ps"], "docker ps → berth": ["docker", "ps"], "berth --help": [*berth, "--help"]}
        samples: dict[str, list[float]] = {name: [] for name in commands}
        rng = random.Random(7)
        for round_no in range(args.warmup + args.runs):
            order = list(commands)
            rng.shuffle(order)
            for name in order:
                elapsed = time_run(commands[name], env)
                if round_no >= args.warmup:
                    samples[name].append(elapsed)
        time_run([*berth, "rm", "-f", *[f"ps-bench-{i}" for i in range(5)]], env)
    results = {name: summary(values) for name, values in samples.items()}
    print(f"`ps` with 5 containers, {args.runs} runs each after {args.warmup} warm-ups, interleaved\n")
    print("| command | median ms | p90 ms | min ms |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['min_ms']:.1f} |")
    ratio = results["berth ps"]["median_ms"] / results["docker ps → berth"]["median_ms"]
    print(f"\nberth ps / docker ps median: {ratio:.2f}")
    check("cli_ps", [Figure(name, r["median_ms"], "ms", noise=0.15) for name, r in results.items()],
          record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
