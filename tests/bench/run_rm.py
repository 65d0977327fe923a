"""Benchmark: `run --rm busybox true`, end to end, berth beside Docker in the same run.

Contenders (each a whole process: spawn to exit, pipes drained, exit status 0 required):
  berth         berth's own CLI (the venv's entry point) against a berthd started here,
                `--network none`
  berth bridge  the same on berth's default bridge (veth, address, /etc/hosts): what the
                network costs
  docker→berth  the docker CLI against that same berthd, `--network none`
  docker        the docker CLI against Debian's dockerd, started here (own data root and
                socket, `--bridge=none`: no default bridge whose NAT would lead off the
                machine), `--network none` like the rows compared with it; its busybox
                image is imported from the same rootfs berth builds, so nothing is pulled)
  crun floor    bare `crun run` of a busybox bundle: what no engine driving crun can beat
Probes, timed in the same rounds, split berth's time from the outside:
  berth --help           the CLI's start-up alone (no daemon call)
  berth version          start-up plus one API round trip
  docker version→berth   the Go CLI's start-up plus the same round trip

The issue's target: berth's median at most a quarter of Docker's, measured in the same run.
Usage: python -m tests.bench.run_rm [--runs 30] [--warmup 3] [--skip-docker] [--json FILE]
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from engine.images import busybox
from engine.runtime import cgroups

from .engines import VENV_BIN, arguments, running
from .record import Figure, check

TARGET = 0.25
TARGET_ISSUE_17 = 0.15  # the performance issue's, beside the first one


def time_run(argv: list[str], env: dict) -> float:
    """Seconds from spawn to exit, output drained; a failed run stops the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()}")
    return elapsed


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p90_ms": ordered[-(-9 * len(ordered) // 10) - 1] * 1000,  # nearest rank
            "min_ms": ordered[0] * 1000, "runs": len(ordered),
            "samples_ms": [round(s * 1000, 3) for s in samples]}


@contextlib.contextmanager
def crun_floor(work: Path):
    """The argv of a bare `crun run` of /bin/true in a read-only busybox bundle made
    with `crun spec`, or None when crun or a static busybox is missing.

    crun 1.8 refuses a hybrid cgroup host while /sys/fs/cgroup/unified is mounted. berthd
    hides that tree in its own mount namespace; here a helper `sleep` holds such a
    namespace and every run enters it with nsenter (~1-2 ms, counted in the floor)."""
    crun, static_busybox = shutil.which("crun"), busybox.find_busybox()
    if not crun or not static_busybox:
        yield None
        return
    bundle = work / "crun-bundle"
    (bundle / "rootfs").mkdir(parents=True)
    busybox.write_rootfs_tar(static_busybox, work / "floor.tar")
    # GNU tar: our own busybox tar, its absolute applet links kept (any Python)
    subprocess.run(["tar", "-xf", str(work / "floor.tar"), "-C", str(bundle / "rootfs")], check=True)
    subprocess.run([crun, "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["/bin/true"])
    config["root"]["readonly"] = True
    (bundle / "config.json").write_text(json.dumps(config))
    # `crun run` deletes the container when it exits, so one name serves every run.
    argv = [crun, "--root", str(work / "crun-state"), "run", "--bundle", str(bundle), "berth-bench-floor"]
    layout = cgroups.detect()
    if not layout.hybrid:
        yield argv
        return
    # preexec_fn is safe here: the benchmark runs no threads.
    holder = subprocess.Popen(["sleep", "infinity"], preexec_fn=lambda: cgroups.hide_hybrid_v2(layout))  # noqa: PLW1509
    try:
        yield ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", *argv]
    finally:
        holder.kill()
        holder.wait()


def machine() -> dict:
    """The facts a reader needs to compare figures across machines."""
    layout = cgroups.detect()
    tree = f"v{layout.version}"
    if layout.hybrid:
        tree += f" + a v2 tree with {','.join(layout.hybrid_v2_controllers)} (hybrid)"
    return {"cpus": os.cpu_count(), "kernel": os.uname().release, "python": sys.version.split()[0], "cgroups": tree}


def version(argv: list[str], env: dict | None = None) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else "?"


def main() -> int:
    args = arguments(__doc__, runs=30, warmup=3)
    with running(not args.skip_docker) as (work, berthd, dockerd), crun_floor(work) as floor:
        berth = [str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}"]
        to_berth = {"DOCKER_HOST": f"unix://{berthd.sock}"}
        commands = {"berth": (berth + ["run", "--rm", "--network", "none", "busybox", "true"], {}),
                    "berth bridge": (berth + ["run", "--rm", "busybox", "true"], {})}
        if shutil.which("docker"):
            commands["docker→berth"] = (["docker", "run", "--rm", "--network", "none", "busybox", "true"], to_berth)
        if dockerd:
            commands["docker"] = (["docker", "run", "--rm", "--network", "none", "busybox", "true"],
                                  {"DOCKER_HOST": f"unix://{dockerd.sock}"})
        if floor:
            commands["crun floor"] = (floor, {})
        commands["berth --help"] = (berth + ["--help"], {})
        commands["berth version"] = (berth + ["version"], {})
        if shutil.which("docker"):
            commands["docker version→berth"] = (["docker", "version"], to_berth)

        facts = machine()
        if dockerd:
            facts["dockerd"] = version(["docker", "version", "-f", "{{.Server.Version}}"],
                                       {**os.environ, "DOCKER_HOST": f"unix://{dockerd.sock}"})
        facts["docker CLI"] = version(["docker", "version", "-f", "{{.Client.Version}}"], {**os.environ, **to_berth})
        facts["crun"] = version(["crun", "--version"]).removeprefix("crun version ")

        # Rounds interleave the commands in a new order each time (seeded: reproducible), so
        # that machine drift, and the after-effects of whichever command ran just before
        # (the kernel tears network namespaces down asynchronously), hit all alike.
        rng = random.Random(0)
        order = list(commands)
        samples: dict[str, list[float]] = {name: [] for name in order}
        rounds: list[list[str]] = []
        for round_ in range(args.warmup + args.runs):
            rng.shuffle(order)
            rounds.append(list(order))
            for name in order:
                argv, env = commands[name]
                # DOCKER_CONFIG: the docker CLI reads no user configuration or contexts.
                elapsed = time_run(argv, {**os.environ, "DOCKER_CONFIG": str(work), **env})
                if round_ >= args.warmup:
                    samples[name].append(elapsed)

    results = {name: summary(s) for name, s in samples.items()}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"`run --rm busybox true`, {when}, {args.runs} runs each after {args.warmup} warm-ups, interleaved")
    print(", ".join(f"{k} {v}" for k, v in facts.items()) + "\n")
    print("| command | median ms | p90 ms | min ms |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {r['min_ms']:.1f} |")
    report = {"when": when, "machine": facts, "runs": args.runs, "warmup": args.warmup,
              "commands": {name: argv for name, (argv, _) in commands.items()}, "results": results,
              "rounds": rounds}  # the order of each round, warm-ups first
    if "docker" in results:
        ratio = results["berth"]["median_ms"] / results["docker"]["median_ms"]
        print(f"\nberth / Docker median: {ratio:.3f} (the first target ≤ {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}; "
              f"issue 17's ≤ {TARGET_ISSUE_17}: {'met' if ratio <= TARGET_ISSUE_17 else 'NOT met'})")
        report.update(ratio_berth_to_docker=ratio, target_met=ratio <= TARGET, issue_17_target_met=ratio <= TARGET_ISSUE_17)
    # Medians moved by ±4% over three runs (docs/performance.md); the crun floor is bimodal.
    check("run_rm", [Figure(name, r["median_ms"], "ms", noise=0.25 if name == "crun floor" else 0.10)
                     for name, r in results.items()], record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
