"""Benchmark: `docker build` (classic builder, DOCKER_BUILDKIT=0) of a 10-instruction
Dockerfile with a 50 MB context, against berthd and Docker 20.10's dockerd in the same
run, through the same docker CLI, and berthd through berth's own CLI too (`berth-cli`:
it offers the context's listing first and sends only the files berthd has not kept from
the last build): cold (`--no-cache`), rebuilt unchanged (every step cached), and with
one file changed near the end (the cache holds up to its COPY).
The context upload alone is timed too (a Dockerfile of one FROM line: the build is the
upload and its unpacking), and its floor: the same `docker build` against a server that
reads the body and throws it away (the CLI's start-up, its tar of the 50 MB and the
socket; no engine can answer sooner). RUN steps use `--network none` on both engines.
Usage: python -m tests.bench.build [--runs 5] [--json FILE] [--skip-docker]
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from .engines import VENV_BIN, arguments, running
from .record import Figure, check
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
    """`root/project` (the Dockerfile above, 50 MB of data, late.txt) and `root/upload`
    (one FROM line and the same data, hard-linked once: the files' link counts and
    ctimes stay as they are through the run, as a user's files do between builds)."""
    rng = random.Random(14)
    project, upload = root / "project", root / "upload"
    (project / "data").mkdir(parents=True)
    (upload / "data").mkdir(parents=True)
    for i in range(50):  # 50 files of 1 MiB: 50 MB
        (project / "data" / f"blob-{i:02}.bin").write_bytes(rng.randbytes(1 << 20))
        os.link(project / "data" / f"blob-{i:02}.bin", upload / "data" / f"blob-{i:02}.bin")
    (project / "late.txt").write_text("v0\n")
    (project / "Dockerfile").write_text(DOCKERFILE)
    (upload / "Dockerfile").write_text("FROM busybox\n")


class Client(NamedTuple):
    argv: list[str]  # the CLI, before `build`
    env: dict
    prune: list[str] | None = None  # drops what berthd kept of earlier contexts


def timed(client: Client, *args: str, cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run([*client.argv, "build", "--network", "none", *args], env=client.env, cwd=cwd,
                            capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{client.argv[0]} build failed: {result.stderr.decode()}")
    return elapsed


def warm(client: Client, ctx: Path) -> None:
    timed(client, "-t", "bench-build", ".", cwd=ctx / "project")  # the page cache, the base image, berthd's imports


def one_round(client: Client, ctx: Path, change: str, samples: dict) -> None:
    """One sample of each case on one engine (the engines take turns round by round, so
    the load of a shared machine falls on both alike). Before the upload berthd drops
    the contexts it kept, so berth's CLI too sends the whole 50 MB there."""
    project = ctx / "project"
    samples.setdefault("cold", []).append(timed(client, "--no-cache", "-t", "bench-build", ".", cwd=project))
    samples.setdefault("cached", []).append(timed(client, "-t", "bench-build", ".", cwd=project))
    (project / "late.txt").write_text(change)  # new to this engine: its cache holds up to this COPY
    samples.setdefault("one file changed", []).append(timed(client, "-t", "bench-build", ".", cwd=project))
    if client.prune is not None:
        subprocess.run(client.prune, env=client.env, check=True, capture_output=True)
    samples.setdefault("upload (50 MB)", []).append(timed(client, "--no-cache", ".", cwd=ctx / "upload"))


class _Discard:
    """A unix-socket server that reads a request's body and throws it away, answering as a
    build that did nothing: what the docker CLI alone costs for an upload."""

    def __init__(self, path: Path):
        import socket
        import threading

        self.path = path
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf and (data := conn.recv(1 << 20)):
                    buf += data
                if buf.startswith(b"POST"):
                    tail = buf[-5:]
                    while not tail.endswith(b"0\r\n\r\n") and (data := conn.recv(1 << 20)):
                        tail = (tail + data)[-5:]
                    body = b'{"stream":"done\\n"}\r\n{"aux":{"ID":"sha256:0"}}\r\n'
                else:
                    body = b"OK"
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    def close(self) -> None:
        self.sock.close()


def floor(work: Path, ctx: Path, runs: int) -> dict:
    server = _Discard(work / "discard.sock")
    client = Client(["docker"], {**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(work / "cli"),
                                 "DOCKER_HOST": f"unix://{server.path}"})
    try:
        timed(client, ".", cwd=ctx / "upload")
        return {"upload floor (CLI only)": summary([timed(client, ".", cwd=ctx / "upload") for _ in range(runs * 3)])}
    finally:
        server.close()


def main() -> int:
    args = arguments(__doc__, runs=5)
    with running(not args.skip_docker) as (work, berthd, dockerd):
        ctx = work / "context"
        make_context(ctx)
        cli = {"DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(work / "cli")}
        clients = {"berth": Client(["docker"], {**os.environ, **cli, "DOCKER_HOST": f"unix://{berthd.sock}"}),
                "berth-cli": Client([str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}"], dict(os.environ),
                                    [str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}", "builder", "prune", "-f"])}
        if dockerd is not None:
            clients["docker"] = Client(["docker"], {**dockerd.env, **cli})
        samples: dict[str, dict] = {name: {} for name in clients}
        for client in clients.values():
            warm(client, ctx)
        for i in range(args.runs):
            for name in (list(clients) if i % 2 == 0 else list(clients)[::-1]):
                one_round(clients[name], ctx, f"v{i + 1} {name}\n", samples[name])
        results = {name: {case: summary(values) for case, values in found.items()} for name, found in samples.items()}
        results["floor"] = floor(work, ctx, args.runs)
    for engine, found in results.items():
        for name, s in found.items():
            print(f"{engine:9} {name:18} median {s['median_ms']:8.0f} ms  p90 {s['p90_ms']:8.0f} ms")
    if "docker" in results:
        for engine in ("berth", "berth-cli"):
            for name in results["docker"]:
                ratio = results[engine][name]["median_ms"] / results["docker"][name]["median_ms"]
                print(f"{engine}/docker {name:18} {ratio:.2f}x")
    # Builds moved by up to ±30% between runs on the shared machine (docs/performance.md).
    check("build", [Figure(f"{engine} {name}", s["median_ms"], "ms", noise=0.30)
                    for engine, found in results.items() for name, s in found.items()],
          record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
