"""Benchmark: `docker build` (classic builder, DOCKER_BUILDKIT=0) of a 10-instruction
Dockerfile with a 50 MB context, against berthd and Docker 20.10's dockerd in the same
run, through the same docker CLI: cold (`--no-cache`), rebuilt unchanged (every step
cached), and with one file changed near the end (the cache holds up to its COPY).
The context upload alone is timed too (a Dockerfile of one FROM line: the build is the
upload and its unpacking). RUN steps use `--network none` on both engines.
Usage: python -m tests.bench.build [--runs 5] [--json FILE] [--skip-docker]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

from .engines import arguments, running
from .run_rm import summary

DOCKERFILE = """\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY data/ /app/data/
RUN du -s /app/data > /app/size.txt
LABEL bench=build
COPY late.txt /app/late.txt
RUN cat /app/late.txt > /app/late.copy
EXPOSE 8080
CMD ["cat", "/app/size.txt"]
"""


def make_context(root: Path) -> None:
    rng = random.Random(14)
    (root / "data").mkdir(parents=True)
    for i in range(50):  # 50 files of 1 MiB: 50 MB
        (root / "data" / f"blob-{i:02}.bin").write_bytes(rng.randbytes(1 << 20))
    (root / "late.txt").write_text("v0\n")
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "upload").mkdir()
    (root / "upload" / "Dockerfile").write_text("FROM busybox\n")
    os.symlink(root / "data", root / "upload" / "data", target_is_directory=True)


def timed(env: dict, *args: str, cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(["docker", "build", "--network", "none", *args], env=env, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"docker build failed: {result.stderr.decode()}")
    return elapsed


def measure(env: dict, ctx: Path, runs: int) -> dict:
    samples = {"cold": [], "cached": [], "one file changed": [], "upload (50 MB)": []}
    timed(env, "-t", "bench-build", ".", cwd=ctx)  # warm the page cache and the base image
    for i in range(runs):
        samples["cold"].append(timed(env, "--no-cache", "-t", "bench-build", ".", cwd=ctx))
        samples["cached"].append(timed(env, "-t", "bench-build", ".", cwd=ctx))
        (ctx / "late.txt").write_text(f"v{i + 1}\n")
        samples["one file changed"].append(timed(env, "-t", "bench-build", ".", cwd=ctx))
        (ctx / "upload" / "data").unlink()
        (ctx / "upload" / "data").mkdir()
        for blob in (ctx / "data").iterdir():
            os.link(blob, ctx / "upload" / "data" / blob.name)
        samples["upload (50 MB)"].append(timed(env, "--no-cache", ".", cwd=ctx / "upload"))
        for blob in (ctx / "upload" / "data").iterdir():
            blob.unlink()
        (ctx / "upload" / "data").rmdir()
        os.symlink(ctx / "data", ctx / "upload" / "data", target_is_directory=True)
    return {name: summary(values) for name, values in samples.items()}


def main() -> int:
    args = arguments(__doc__, runs=5)
    with running(not args.skip_docker) as (work, berthd, dockerd):
        ctx = work / "context"
        make_context(ctx)
        cli = {"DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(work / "cli")}
        results = {"berth": measure({**os.environ, **cli, "DOCKER_HOST": f"unix://{berthd.sock}"}, ctx, args.runs)}
        if dockerd is not None:
            results["docker"] = measure({**dockerd.env, **cli}, ctx, args.runs)
    for engine, found in results.items():
        for name, s in found.items():
            print(f"{engine:7} {name:18} median {s['median_ms']:8.0f} ms  p90 {s['p90_ms']:8.0f} ms")
    if "docker" in results:
        for name in results["berth"]:
            ratio = results["berth"][name]["median_ms"] / results["docker"][name]["median_ms"]
            print(f"berth/docker {name:18} {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
