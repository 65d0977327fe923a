"""Benchmark: pull and push through a loopback registry, berth beside Docker in the same run.

Both engines talk to the same registry: Debian's docker-registry (Docker Distribution
2.8) on 127.0.0.1, storage in a scratch directory, no auth, plain HTTP (127.0.0.0/8 is
insecure by default in both engines). The images are made here from random data (so
gzip cannot shrink them) as a docker-save archive, loaded into berth and pushed once to
the source registry by berth: both engines then pull the very same manifest.

  big     6 layers of 64, 48, 40, 28, 14 and 6 MB of random bytes (200 MB)
  small   1 layer of 2 MB of random bytes

Rows (each engine driven through its Engine API socket, the same client for both, the
JSON progress stream read to its end and checked for errors; no CLI start-up in them):
  pull cold       POST /images/create with nothing of the image local (removed and its
                  layers checked gone before each sample)
  pull warm       the same pull again, every layer present ("Image is up to date")
  push            POST /images/{name}/push to a fresh, empty registry (a new
                  docker-registry per sample: no blob there, nothing to mount), of the
                  image as pulled: each engine compresses the layers
  push again      the same image to another fresh registry: berth keeps the gzip blob of
                  its first push; Docker compresses again
  push warm       the same push once more: the registry has every blob (HEADs, manifest)
Floors, timed in the same rounds:
  manifest GET    a plain HTTP GET of the big image's manifest from the registry, new
                  connection each time (the warm pull's floor: one manifest round trip)
  API ping        GET /_ping on each engine's socket (its API round trip alone)

Targets (issue 13, item 9): cold pull ≥2× faster than Docker, push ≥1.5× faster, warm
pull within 10% of the bare manifest round trip. Medians of --rounds rounds (3).
Usage: python -m tests.bench.registry [--rounds 3] [--skip-docker] [--json FILE]
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from engine.images.store import host_arch
from tests.api import _UnixConnection
from tests.daemon import LOOPBACK_ONLY
from tests.registry_server import Registry

from .engines import arguments, running
from .record import Figure, check
from .run_rm import machine, version

BIG_MB = (64, 48, 40, 28, 14, 6)
SMALL_MB = (2,)
MB = 1 << 20
MANIFEST_ACCEPT = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                             "application/vnd.docker.distribution.manifest.list.v2+json",
                             "application/vnd.oci.image.manifest.v1+json",
                             "application/vnd.oci.image.index.v1+json"])
NO_AUTH = {"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()}
TARGET_COLD_PULL, TARGET_PUSH, TARGET_WARM = 2.0, 1.5, 1.10
WARM_SAMPLES, FLOOR_SAMPLES = 5, 20


# --- the images ---------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_image(path: Path, tag: str, sizes_mb: tuple[int, ...], seed: int) -> None:
    """A docker-save archive of `tag`: one layer per size, each a file of random bytes."""
    rng = random.Random(seed)
    diff_ids, layer_names = [], []
    with tarfile.open(path, "w") as out:
        for i, size in enumerate(sizes_mb):
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as lt:
                d = tarfile.TarInfo(f"bench{i}")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                lt.addfile(d)
                _add(lt, f"bench{i}/random.bin", rng.randbytes(size * MB))
            data = layer.getvalue()
            hexa = hashlib.sha256(data).hexdigest()
            diff_ids.append(f"sha256:{hexa}")
            layer_names.append(f"{hexa}/layer.tar")
            _add(out, layer_names[-1], data)
        created = "2026-01-01T00:00:00Z"
        config = json.dumps({
            "architecture": host_arch(), "os": "linux", "created": created,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"random layer {i} ({mb} MB)"}
                        for i, mb in enumerate(sizes_mb)]}, separators=(",", ":")).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        _add(out, config_name, config)
        _add(out, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag],
                                                "Layers": layer_names}]).encode())


# --- talking to an engine -------------------------------------------------------------


class Engine:
    """One engine's API socket, the PID whose CPU time is counted, and where its layers are."""

    def __init__(self, name: str, sock: Path, pid: int, layer_dir: Path):
        self.name, self.sock, self.pid, self.layer_dir = name, str(sock), pid, layer_dir

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 600) -> tuple[int, bytes]:
        conn = _UnixConnection(self.sock, timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def stream(self, path: str, headers: dict | None = None) -> tuple[float, list[tuple[float, dict]], float]:
        """POST `path`, read its JSON message stream to the end: (seconds, [(seconds
        since the request, message)], daemon CPU seconds). An error message or a
        failed status stops the benchmark."""
        cpu = self.cpu()
        conn = _UnixConnection(self.sock, 600)
        started = time.perf_counter()
        try:
            conn.request("POST", path, headers=headers or {})
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: POST {path} → {resp.status}: {resp.read()[:500]!r}")
            messages = []
            while line := resp.readline():
                if line.strip():
                    messages.append((time.perf_counter() - started, json.loads(line)))
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
        errors = [m for _, m in messages if "error" in m or "errorDetail" in m]
        if errors:
            raise RuntimeError(f"{self.name}: POST {path}: {errors[0]}")
        return elapsed, messages, self.cpu() - cpu

    def cpu(self) -> float:
        """User + system CPU seconds of the daemon and its children waited for."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def pull(self, ref: str):
        repo, _, tag = ref.rpartition(":")
        return self.stream(f"/images/create?fromImage={repo}&tag={tag}", NO_AUTH)

    def push(self, ref: str):
        repo, _, tag = ref.rpartition(":")
        return self.stream(f"/images/{repo}/push?tag={tag}", NO_AUTH)

    def tag(self, source: str, ref: str) -> None:
        repo, _, tag = ref.rpartition(":")
        status, body = self.request("POST", f"/images/{source}/tag?repo={repo}&tag={tag}")
        if status != 201:
            raise RuntimeError(f"{self.name}: tag {source} {ref} → {status}: {body!r}")

    def ping(self) -> float:
        started = time.perf_counter()
        status, _ = self.request("GET", "/_ping")
        elapsed = time.perf_counter() - started
        assert status == 200
        return elapsed

    def layers(self) -> int:
        return len(list(self.layer_dir.iterdir())) if self.layer_dir.exists() else 0

    def forget(self, keep_layers: int) -> None:
        """Remove every image that came from a registry (tags and digests on 127.0.0.1),
        and check that the engine is back at its `keep_layers` layers."""
        status, body = self.request("GET", "/images/json")
        for image in json.loads(body):
            names = [n for n in (image.get("RepoTags") or []) + (image.get("RepoDigests") or [])
                     if n.startswith("127.0.0.1:")]
            if names:
                status, reply = self.request("DELETE", f"/images/{image['Id']}?force=1")
                if status != 200:
                    raise RuntimeError(f"{self.name}: rmi {image['Id']} → {status}: {reply!r}")
        if self.layers() != keep_layers:
            raise RuntimeError(f"{self.name}: {self.layers()} layers left, expected {keep_layers}")


def manifest_get(host: str, path: str) -> float:
    """A plain HTTP GET of a manifest, on a new connection: seconds to the last byte."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": MANIFEST_ACCEPT})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    finally:
        conn.close()
    return time.perf_counter() - started


# --- phases of a progress stream ------------------------------------------------------


def phases(messages: list[tuple[float, dict]], total: float) -> dict:
    """When the stream said what: first message, first byte moving, last download or
    push complete, last layer extracted, end (seconds since the request)."""
    def first(*statuses):
        return next((t for t, m in messages if m.get("status") in statuses), None)

    def last(*statuses):
        return next((t for t, m in reversed(messages) if m.get("status") in statuses), None)

    return {"first message": messages[0][0] if messages else None,
            "first Downloading/Pushing": first("Downloading", "Pushing"),
            "last Download complete": last("Download complete"),
            "first Extracting": first("Extracting"),
            "last Pull complete": last("Pull complete"),
            "last Pushed": last("Pushed", "Layer already exists"),
            "end": total}


# --- the run ----------------------------------------------------------------------------


@contextlib.contextmanager
def registry(scratch: Path):
    """A fresh, empty docker-registry, gone (process and storage) on the way out."""
    r = Registry("", Path(tempfile.mkdtemp(prefix="registry-", dir=scratch)))
    try:
        yield r
    finally:
        r.stop()


def summary(samples: list[float]) -> dict:
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "runs": len(samples), "samples_s": [round(s, 4) for s in samples]}


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> int:
    args = arguments(__doc__, rounds=3)
    if not shutil.which("docker-registry"):
        raise SystemExit("docker-registry is not installed (make install)")
    # berthd inherits this environment: a registry off this machine would be reached only
    # through a closed port on loopback (dockerd gets the same from PrivateDockerd).
    os.environ.update({k: LOOPBACK_ONLY[k] for k in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")})
    begun = time.monotonic()
    with running(not args.skip_docker) as (work, berthd, dockerd):
        scratch = work / "registry-bench"
        scratch.mkdir()
        with registry(scratch) as source:
            engines = [Engine("berth", berthd.sock, berthd.proc.pid, work / "berth" / "images" / "layers")]
            if dockerd:
                layerdb = next((dockerd.root / "data" / "image").glob("*/layerdb/sha256"))
                engines.append(Engine("docker", dockerd.sock, dockerd.proc.pid, layerdb))
            berth = engines[0]
            images = {"big": f"{source.host}/bench/big:1", "small": f"{source.host}/bench/small:1"}
            made = time.monotonic()
            for (kind, ref), (sizes, seed) in zip(images.items(), [(BIG_MB, 1), (SMALL_MB, 2)]):
                archive = scratch / f"{kind}.tar"
                write_image(archive, ref, sizes, seed)
                status, body = berth.request("POST", "/images/load?quiet=1", archive.read_bytes(),
                                             {"Content-Type": "application/x-tar"})
                if status != 200 or b"error" in body:
                    raise RuntimeError(f"berth load of {kind}: {status} {body[:500]!r}")
                archive.unlink()
                berth.push(ref)
            print(f"images made, loaded into berth and pushed to {source.host} in "
                  f"{time.monotonic() - made:.1f} s", file=sys.stderr)
            base = {e.name: 0 for e in engines}
            for e in engines:
                e.forget(keep_layers=e.layers() - (len(BIG_MB) + len(SMALL_MB) if e is berth else 0))
                base[e.name] = e.layers()
            # A warm-up pull and push of the small image per engine: berthd imports its
            # HTTP client at the first registry call, dockerd sets up its own.
            for e in engines:
                e.pull(images["small"])
                with registry(scratch) as target:
                    e.tag(images["small"], f"{target.host}/warmup/small:1")
                    e.push(f"{target.host}/warmup/small:1")
                e.forget(base[e.name])
            manifest_path = "/v2/bench/big/manifests/1"

            samples: dict[str, dict[str, list[float]]] = {}
            cpu: dict[str, dict[str, list[float]]] = {}
            streams: dict[str, dict[str, list[dict]]] = {}
            floors: dict[str, list[float]] = {"manifest GET": []}
            floors.update({f"API ping {e.name}": [] for e in engines})
            order_log = []
            rng = random.Random(0)

            def record(engine: Engine, row: str, result) -> None:
                elapsed, messages, used = result
                samples.setdefault(row, {}).setdefault(engine.name, []).append(elapsed)
                cpu.setdefault(row, {}).setdefault(engine.name, []).append(used)
                streams.setdefault(row, {}).setdefault(engine.name, []).append(phases(messages, elapsed))

            for round_ in range(args.rounds):
                for kind, ref in images.items():
                    order = list(engines)
                    rng.shuffle(order)
                    order_log.append([round_, kind, [e.name for e in order]])
                    for e in order:
                        e.forget(base[e.name])
                        record(e, f"pull cold {kind}", e.pull(ref))
                        for _ in range(WARM_SAMPLES):
                            record(e, f"pull warm {kind}", e.pull(ref))
                    for _ in range(FLOOR_SAMPLES):
                        floors["manifest GET"].append(manifest_get(source.host, manifest_path))
                        for e in engines:
                            floors[f"API ping {e.name}"].append(e.ping())
                    for e in order:
                        with registry(scratch) as first, registry(scratch) as second:
                            for target, row in ((first, "push"), (second, "push again")):
                                name = f"{target.host}/bench/pushed-{kind}:1"
                                e.tag(ref, name)
                                record(e, f"{row} {kind}", e.push(name))
                            record(e, f"push warm {kind}", e.push(name))
                print(f"round {round_ + 1}/{args.rounds} done at {time.monotonic() - begun:.0f} s", file=sys.stderr)
            for e in engines:
                e.forget(base[e.name])

            facts = machine()
            if dockerd:
                facts["dockerd"] = version(["docker", "version", "-f", "{{.Server.Version}}"],
                                           {**os.environ, "DOCKER_HOST": f"unix://{dockerd.sock}"})
            facts["docker-registry"] = version(["docker-registry", "--version"]).split()[-1]

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {row: {name: summary(s) for name, s in per.items()} for row, per in samples.items()}
    floor = {name: summary(s) for name, s in floors.items()}
    print(f"registry pull/push, {when}, {args.rounds} rounds ({WARM_SAMPLES} warm pulls and "
          f"{FLOOR_SAMPLES} floor samples per image and round), big = {len(BIG_MB)} layers, "
          f"{sum(BIG_MB)} MB random; small = {sum(SMALL_MB)} MB; total {time.monotonic() - begun:.0f} s")
    print(", ".join(f"{k} {v}" for k, v in facts.items()) + "\n")
    names = [e.name for e in engines]
    header = " | ".join(f"{n} median (min–max)" for n in names)
    print(f"| row | {header} | {'berth speed-up | ' if len(names) > 1 else ''}berth daemon CPU |")
    print("|---|" + "---|" * (len(names) + (2 if len(names) > 1 else 1)))
    ratios = {}
    for row, per in results.items():
        cells = " | ".join(f"{fmt(per[n]['median_s'])} ({fmt(per[n]['min_s'])}–{fmt(per[n]['max_s'])})"
                           for n in names)
        extra = ""
        if len(names) > 1:
            ratios[row] = per["docker"]["median_s"] / per["berth"]["median_s"]
            extra = f"{ratios[row]:.2f}× | "
        print(f"| {row} | {cells} | {extra}{statistics.median(cpu[row]['berth']):.2f} s |")
    for name, s in floor.items():
        print(f"| floor: {name} | {fmt(s['median_s'])} ({fmt(s['min_s'])}–{fmt(s['max_s'])}) |")

    targets = {}
    if "docker" in names:
        for row in ("pull cold big", "pull cold small"):
            targets[row] = (ratios[row], TARGET_COLD_PULL, ratios[row] >= TARGET_COLD_PULL)
        for row in ("push big", "push small", "push again big", "push again small"):
            targets[row] = (ratios[row], TARGET_PUSH, ratios[row] >= TARGET_PUSH)
    for kind in images:
        warm = results[f"pull warm {kind}"]["berth"]["median_s"] / floor["manifest GET"]["median_s"]
        targets[f"pull warm {kind} / manifest GET"] = (warm, TARGET_WARM, warm <= TARGET_WARM)
    print("\nTargets:")
    for row, (value, target, met) in targets.items():
        rel = "≤" if "warm" in row else "≥"
        print(f"  {row}: {value:.2f} (target {rel} {target}: {'met' if met else 'NOT met'})")
    print("\nWhere the time goes (medians, seconds since the request):")
    for row in ("pull cold big", "push big", "push again big"):
        for name in names:
            marks = streams[row][name]
            keys = [k for k in marks[0] if all(m.get(k) is not None for m in marks)]
            print(f"  {row}, {name}: " + ", ".join(f"{k} {statistics.median(m[k] for m in marks):.2f}" for k in keys)
                  + f"; daemon CPU {statistics.median(cpu[row][name]):.2f} s")
    # Big transfers move by up to ±20% within a run, millisecond rows more (docs/performance.md).
    check("registry", [Figure(f"{row}: {name}", s["median_s"] * 1000, "ms", noise=0.25 if "warm" not in row else 0.50)
                       for row, per in results.items() for name, s in per.items()]
          + [Figure(f"floor: {name}", s["median_s"] * 1000, "ms", noise=0.50) for name, s in floor.items()],
          record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps({"when": when, "machine": facts, "rounds": args.rounds,
                                         "big_mb": BIG_MB, "small_mb": SMALL_MB, "results": results,
                                         "floors": floor, "daemon_cpu_s": cpu, "phases": streams,
                                         "orders": order_log, "targets": targets}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
