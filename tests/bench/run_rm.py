"""Benchmark: `run --rm busybox true`, end to end, berth beside Docker in the same run.

Contenders (each a whole process: spawn to exit, pipes drained):
  berth        berth's own CLI (the venv's entry point) against a berthd started here
  docker→berth the docker CLI against that same berthd
  docker       the docker CLI against Debian's dockerd, started here when none runs
               (own data root, `--bridge=none`, containers with `--network none`, like
               berth's loopback-only containers; its busybox image is imported from the
               same rootfs berth builds, so nothing is pulled)

Rounds interleave the contenders so that machine drift hits all alike. Usage:
  python -m tests.bench.run_rm [--runs 30] [--warmup 3] [--skip-docker] [--json FILE]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from .engines import VENV_BIN, arguments, running

def time_run(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()}")
    return elapsed


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered) * 1000, "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
            "min_ms": ordered[0] * 1000, "runs": len(ordered)}


def main() -> int:
    args = arguments(__doc__, runs=30, warmup=3)
    with running(not args.skip_docker) as (work, berthd, dockerd):
        contenders = {
            "berth": ([str(VENV_BIN / "berth"), "run", "--rm", "busybox", "true"], {"BERTH_HOST": f"unix://{berthd.sock}"}),
        }
        if shutil.which("docker"):
            contenders["docker→berth"] = (["docker", "run", "--rm", "busybox", "true"], {"DOCKER_HOST": f"unix://{berthd.sock}"})
        if dockerd:
            contenders["docker"] = (["docker", "run", "--rm", "--network", "none", "busybox", "true"],
                                    {"DOCKER_HOST": f"unix://{dockerd.sock}"})
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(args.warmup + args.runs):
            for name, (argv, env) in contenders.items():
                elapsed = time_run(argv, {**os.environ, "DOCKER_CONFIG": str(work), **env})
                if round_ >= args.warmup:
                    samples[name].append(elapsed)
    results = {name: summary(s) for name, s in samples.items()}
    print(f"`run --rm busybox true`, {args.runs} runs each after {args.warmup} warm-ups, interleaved\n")
    print("| contender | median ms | p90 ms | min ms |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['min_ms']:.1f} |")
    if "docker" in results:
        ratio = results["berth"]["median_ms"] / results["docker"]["median_ms"]
        verdict = "met" if ratio <= 0.25 else "NOT met"
        print(f"\nberth / Docker median: {ratio:.3f} (target ≤ 0.25: {verdict})")
        results["ratio_berth_to_docker"] = ratio
    if args.json:
        args.json.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         "kernel": os.uname().release, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
