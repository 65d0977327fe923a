"""Benchmark: the common operations besides `run --rm`, berth beside Docker in one run,
each with its floor (issue 17).

Engines: berth's own CLI and the docker CLI against one berthd started here, the docker
CLI against a dockerd started here (as run_rm.py does: own state, `--bridge=none`, busybox
imported from the host's static busybox). Containers run with `--network none` on both.
Every timed call is a whole process (spawn to exit, output drained, exit status 0
required), in rounds that run every row once in a freshly shuffled (seeded) order.

  ps        `ps -a -q` on engines with no containers; floors: the interpreter's start
            (`python -I -S -c pass`) and one API round trip (`GET /_ping`, new connection)
  exec      `exec CTR true` on a running `sleep`; `exec` through the API (create, start,
            inspect: the daemon's share, no CLI); floor `crun exec`
  pause     `pause CTR` + `unpause CTR` (two commands; the state checked between through
            the API, untimed); through the API; floors `crun pause` + `crun resume` and
            the freezer itself (FROZEN, THAWED written to freezer.state)
  burst     50 `run -d … sleep 600` from 8 client threads (a warm-up burst of 8 on each
            engine first), containers/s; then one `rm -f` of all 50; round by round, the
            engines in turn (each round's rates and ratio printed as it ends)
  memory    PSS of the engine's processes (smaps_rollup): the daemon behind the socket and
            its descendants, any process naming the engine's state directory (berth's
            keeper) or one of its containers (Docker's shims), not the containers'
            payloads (other PID namespaces); sampled while no CLI of this harness runs; fresh (berthd just started), idle (after the rows above, nothing
            running) and with the 50 of the first burst running
  image     `import` of a 202 MB rootfs tar (busybox plus 200 files of 1 MB of seeded
            random bytes, as shared/bench/ANCHORS.md's workload 9), then `save -o` of that
            image and `rmi`; a warm-up round, then `--rounds`; floors `tar -x` of that tar
            and `sha256sum` of it (an import unpacks and hashes), `cat` of it to a file
            (a save writes that many bytes)

Usage: python -m tests.bench.ops [--runs 20] [--warmup 3] [--rounds 3] [--skip-docker]
                                 [--json FILE] [--no-record]
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tarfile
import time
from pathlib import Path

from engine.images import busybox

from . import floors
from .engines import VENV_BIN, arguments, running
from .record import Figure, check
from .run_rm import machine, time_run

MB = 1_000_000
TARGETS = {  # berth / Docker, and which way is good
    "exec": (0.35, "≤"), "pause+unpause": (0.5, "≤"), "burst": (8.0, "≥"), "import": (1.5, "≥"),
    "save": (1.5, "≥"), "PSS idle": (0.3, "≤"), "PSS per container": (0.1, "≤"), "ps -a -q": (1.0, "≤"),
}


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path):
        super().__init__("localhost")
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix_path)


def api(sock: Path, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One request on a new connection, as a CLI makes it; (status, body)."""
    conn = UnixHTTP(sock)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def api_exec(sock: Path, name: str) -> float:
    """`exec NAME true` through the API as the docker CLI does it: create, start (read to
    the end of the stream), inspect for the exit code."""
    started = time.perf_counter()
    status, body = api(sock, "POST", f"/v1.41/containers/{name}/exec",
                       {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
    assert status == 201, body
    exec_id = json.loads(body)["Id"]
    status, body = api(sock, "POST", f"/v1.41/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    assert status == 200, body
    status, body = api(sock, "GET", f"/v1.41/exec/{exec_id}/json")
    assert status == 200 and json.loads(body)["ExitCode"] == 0, body
    return time.perf_counter() - started


def api_pause(sock: Path, name: str) -> float:
    started = time.perf_counter()
    for verb in ("pause", "unpause"):
        status, body = api(sock, "POST", f"/v1.41/containers/{name}/{verb}")
        assert status == 204, body
    return time.perf_counter() - started


def state(sock: Path, name: str) -> str:
    return json.loads(api(sock, "GET", f"/v1.41/containers/{name}/json")[1])["State"]["Status"]


def rounds(rows: dict, runs: int, warmup: int, seed: int) -> dict[str, list[float]]:
    """Call every row (a function → seconds) once per round, in a shuffled order."""
    rng = random.Random(seed)
    order = list(rows)
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for round_no in range(warmup + runs):
        rng.shuffle(order)
        for name in order:
            elapsed = rows[name]()
            if round_no >= warmup:
                samples[name].append(elapsed)
    return samples


# --- memory -----------------------------------------------------------------------------

def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid → (ppid, command line, pid namespace) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            table[int(entry)] = (int(stat[stat.rindex(")") + 2:].split()[1]), cmd, os.readlink(f"/proc/{entry}/ns/pid"))
        except (OSError, ValueError):
            continue
    return table


def _socket_owners(path: Path) -> set[int]:
    inodes = {f"socket:[{line.split()[6]}]" for line in Path("/proc/net/unix").read_text().splitlines()[1:]
              if len(line.split()) >= 8 and line.split()[7] == str(path)}
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with_fd = Path(f"/proc/{pid}/fd")
        try:
            if any(os.readlink(with_fd / fd) in inodes for fd in os.listdir(with_fd)):
                owners.add(int(pid))
        except OSError:
            continue
    return owners


def engine_pss(sock: Path, marks: list[str]) -> tuple[float, dict[str, int]]:
    """(MB of PSS, processes by command) of an engine: see the module's docstring."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)

    def below(roots: set[int]) -> set[int]:
        seen, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in seen and pid in table:
                seen.add(pid)
                todo.extend(children.get(pid, []))
        return seen

    roots = _socket_owners(sock) | {pid for pid, (_, cmd, _) in table.items() if any(m in cmd for m in marks)}
    own_ns = os.readlink("/proc/self/ns/pid")
    chosen = {p for p in below(roots) if table[p][2] == own_ns}
    total, kinds = 0, {}
    for pid in chosen:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        kind = os.path.basename(table[pid][1].split()[0]) if table[pid][1] else "?"
        kinds[kind] = kinds.get(kind, 0) + 1
    return total / 1024, kinds


def steady_pss(sock: Path, marks: list[str]) -> tuple[float, dict[str, int]]:
    """The median of 3 samples half a second apart."""
    samples = []
    for i in range(3):
        if i:
            time.sleep(0.5)
        samples.append(engine_pss(sock, marks))
    return sorted(samples, key=lambda s: s[0])[1]


# --- the image rows -----------------------------------------------------------------------

def big_tar(work: Path) -> Path:
    """The 202 MB rootfs tar of ANCHORS.md's workload 9 (same recipe: busybox rootfs plus
    200 files of 1,000,000 seeded random bytes, fixed mtimes)."""
    out = work / "big.tar"
    rng = random.Random(20240601)
    busybox.write_rootfs_tar(busybox.find_busybox(), work / "small.tar")
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar, tarfile.open(work / "small.tar") as src:
        for member in src.getmembers():
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("data")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
        tar.addfile(info)
        for i in range(200):
            info = tarfile.TarInfo(f"data/blob-{i:03d}")
            info.size, info.mode, info.mtime = MB, 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(rng.randbytes(MB)))
    return out


def image_round(cli: list[str], env: dict, tar: Path, work: Path, tag: str) -> tuple[float, float]:
    """(import MB/s, save MB/s) of one round; the image is removed afterwards."""
    size = tar.stat().st_size
    import_s = time_run([*cli, "import", str(tar), tag], env)
    out = work / "saved.tar"
    save_s = time_run([*cli, "save", "-o", str(out), tag], env)
    saved = out.stat().st_size
    with tarfile.open(out) as archive:
        assert "manifest.json" in archive.getnames()
    assert saved >= 200 * MB, saved
    out.unlink()
    time_run([*cli, "rmi", tag], env)
    return size / MB / import_s, saved / MB / save_s


def image_floors(tar: Path, work: Path) -> dict[str, float]:
    """MB/s of `tar -x` (a fresh directory each time), `sha256sum`, and `cat` to a file."""
    size = tar.stat().st_size / MB
    rates: dict[str, list[float]] = {"floor: tar -x": [], "floor: sha256sum": [], "floor: cat > file": []}
    for i in range(3):
        into = work / f"untar-{i}"
        into.mkdir()
        rates["floor: tar -x"].append(size / time_run(["tar", "-xf", str(tar), "-C", str(into)], {}))
        shutil.rmtree(into)
        rates["floor: sha256sum"].append(size / time_run(["sha256sum", str(tar)], {}))
        rates["floor: cat > file"].append(
            size / time_run(["sh", "-c", f"cat {tar} > {work}/copy.tar && sync -f {work}/copy.tar"], {}))
        (work / "copy.tar").unlink()
    return {name: statistics.median(v) for name, v in rates.items()}


# --- burst ---------------------------------------------------------------------------------

def burst(cli: list[str], env: dict, tag: str, count: int, clients: int = 8) -> tuple[list[str], float]:
    """Start `count` detached sleepers from `clients` threads; (names, containers/s)."""
    names = [f"bench-{tag}-{i}" for i in range(count)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda n: time_run([*cli, "run", "-d", "--network", "none", "--name", n,
                                          "busybox", "sleep", "600"], env), names))
    return names, count / (time.perf_counter() - started)


def running_names(sock: Path) -> set[str]:
    return {c["Names"][0].lstrip("/") for c in json.loads(api(sock, "GET", "/v1.41/containers/json")[1])}


def ids(sock: Path, names: list[str]) -> list[str]:
    return [json.loads(api(sock, "GET", f"/v1.41/containers/{n}/json")[1])["Id"] for n in names]


# --- the run -------------------------------------------------------------------------------

def med_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    args = arguments(__doc__, runs=20, warmup=3, rounds=3)
    rows: dict[str, dict[str, float]] = {}  # op → row → figure
    notes: dict[str, dict] = {}
    with running(not args.skip_docker) as (work, berthd, dockerd), floors.crun(work) as crun:
        environ = {**os.environ, "DOCKER_CONFIG": str(work)}
        clis = {"berth": ([str(VENV_BIN / "berth"), "-H", f"unix://{berthd.sock}"], environ, berthd.sock),
                "docker→berth": (["docker"], {**environ, "DOCKER_HOST": f"unix://{berthd.sock}"}, berthd.sock)}
        if dockerd:
            clis["docker"] = (["docker"], {**environ, "DOCKER_HOST": f"unix://{dockerd.sock}"}, dockerd.sock)
        marks = [str(work / "berth")]  # berthd's --root: its keeper names it
        notes["PSS fresh"] = engine_pss(berthd.sock, marks)
        if dockerd:
            notes["docker PSS fresh"] = engine_pss(dockerd.sock, [str(dockerd.root)])

        def cmd(engine: str, *words: str):
            argv, env, _ = clis[engine]
            return lambda: time_run([*argv, *words], env)

        # ps -a -q, with the floors of every client-side row
        ps = {name: cmd(name, "ps", "-a", "-q") for name in clis}
        ps["floor: python -I -S -c pass"] = lambda: time_run([str(VENV_BIN / "python"), "-I", "-S", "-c", "pass"], {})
        ps["floor: API round trip → berth"] = lambda: floors.api_ping(berthd.sock)
        if dockerd:
            ps["floor: API round trip → docker"] = lambda: floors.api_ping(dockerd.sock)
        rows["ps -a -q"] = {k: med_ms(v) for k, v in rounds(ps, args.runs, args.warmup, 1).items()}

        # exec and pause on one sleeper per engine
        for name in ("berth", "docker"):
            if name in clis:
                cmd(name, "run", "-d", "--network", "none", "--name", "bench-ops", "busybox", "sleep", "600")()
        with (crun.detached("sleeper", ["sleep", "600"]) if crun else contextlib.nullcontext()) as freezer:
            ex = {name: cmd(name, "exec", "bench-ops", "true") for name in clis}
            ex["API → berth"] = lambda: api_exec(berthd.sock, "bench-ops")
            if dockerd:
                ex["API → docker"] = lambda: api_exec(dockerd.sock, "bench-ops")
            if crun:
                ex["floor: crun exec"] = lambda: time_run(crun.argv("exec", "sleeper", "/bin/true"), {})
            rows["exec"] = {k: med_ms(v) for k, v in rounds(ex, args.runs, args.warmup, 2).items()}

            def pause_unpause(engine: str):
                argv, env, sock = clis[engine]

                def one() -> float:
                    took = time_run([*argv, "pause", "bench-ops"], env)
                    assert state(sock, "bench-ops") == "paused"
                    took += time_run([*argv, "unpause", "bench-ops"], env)
                    assert state(sock, "bench-ops") == "running"
                    return took
                return one
            pa = {name: pause_unpause(name) for name in clis}
            pa["API → berth"] = lambda: api_pause(berthd.sock, "bench-ops")
            if dockerd:
                pa["API → docker"] = lambda: api_pause(dockerd.sock, "bench-ops")
            if crun:
                pa["floor: crun pause + resume"] = lambda: (time_run(crun.argv("pause", "sleeper"), {})
                                                            + time_run(crun.argv("resume", "sleeper"), {}))
                if freezer:
                    pa["floor: freezer FROZEN + THAWED"] = lambda: floors.freeze_thaw(freezer)
            rows["pause+unpause"] = {k: med_ms(v) for k, v in rounds(pa, args.runs, args.warmup, 3).items()}
        for name in ("berth", "docker"):
            if name in clis:
                cmd(name, "rm", "-f", "bench-ops")()

        # idle memory, then bursts (and the memory of 50 running containers)
        time.sleep(1)
        notes["PSS idle"] = steady_pss(berthd.sock, marks)
        if dockerd:
            notes["docker PSS idle"] = steady_pss(dockerd.sock, [str(dockerd.root)])
        rates: dict[str, list[float]] = {name: [] for name in clis}
        for argv, env, _sock in clis.values():
            names, _rate = burst(argv, env, "warm", 8)
            time_run([*argv, "rm", "-f", *names], env)
        # Round by round, every engine in turn: this machine's speed drifts by ±20% over
        # minutes, and a ratio is only as good as the minutes its two rates share.
        for rep in range(args.rounds):
            for name, (argv, env, sock) in clis.items():
                names, rate = burst(argv, env, f"b{rep}", 50)
                assert running_names(sock) >= set(names), f"{name}: not all 50 running"
                rates[name].append(rate)
                if rep == 0 and name in ("berth", "docker"):
                    key = "PSS 50 running" if name == "berth" else "docker PSS 50 running"
                    notes[key] = steady_pss(sock, [*(marks if name == "berth" else [str(dockerd.root)]),
                                                   *ids(sock, names)])
                time_run([*argv, "rm", "-f", *names], env)
            this = {engine: measured[-1] for engine, measured in rates.items()}
            ratio = f": {this['berth'] / this['docker']:.2f}×" if "docker" in this else ""
            print(f"burst round {rep + 1}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in this.items()) + ratio,
                  file=sys.stderr)
        rows["burst"] = {k: statistics.median(v) for k, v in rates.items()}
        rows["memory"] = {"berth fresh": notes["PSS fresh"][0], "berth idle": notes["PSS idle"][0],
                          "berth per container": (notes["PSS 50 running"][0] - notes["PSS idle"][0]) / 50}
        if dockerd:
            rows["memory"].update({"docker fresh": notes["docker PSS fresh"][0], "docker idle": notes["docker PSS idle"][0],
                                   "docker per container": (notes["docker PSS 50 running"][0]
                                                            - notes["docker PSS idle"][0]) / 50})

        # import and save of the 202 MB tar
        tar = big_tar(work)
        image: dict[str, list[tuple[float, float]]] = {name: [] for name in clis}
        order = list(clis)
        rng = random.Random(4)
        for round_no in range(1 + args.rounds):
            rng.shuffle(order)
            for name in order:
                argv, env, _ = clis[name]
                figures = image_round(argv, env, tar, work, f"bench-import:{round_no}")
                if round_no:
                    image[name].append(figures)
        rows["import"] = {k: statistics.median(i for i, _ in v) for k, v in image.items()}
        rows["save"] = {k: statistics.median(s for _, s in v) for k, v in image.items()}
        image_floor = image_floors(tar, work)
        rows["import"].update({k: v for k, v in image_floor.items() if k != "floor: cat > file"})
        rows["save"]["floor: cat > file"] = image_floor["floor: cat > file"]
        facts = machine()

    return report(args, rows, notes, facts)


UNITS = {"ps -a -q": "ms", "exec": "ms", "pause+unpause": "ms", "burst": "containers/s", "memory": "MB",
         "import": "MB/s", "save": "MB/s"}


def report(args, rows: dict, notes: dict, facts: dict) -> int:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"common operations, {when}: {args.runs} runs after {args.warmup} warm-ups (bursts and images: "
          f"{args.rounds} rounds), medians; {', '.join(f'{k} {v}' for k, v in facts.items())}\n")
    print("| operation | row | figure |\n|---|---|---|")
    for op, figures in rows.items():
        for row, value in figures.items():
            print(f"| {op} | {row} | {value:.3g} {UNITS[op]} |")
    print("\nmemory by process: " + "; ".join(f"{k}: {v[1]}" for k, v in notes.items()))
    ratios = {}
    if "docker" in rows["exec"]:
        for op in ("exec", "pause+unpause", "burst", "import", "save", "ps -a -q"):
            ratios[op] = rows[op]["berth"] / rows[op]["docker"]
        ratios["PSS idle"] = rows["memory"]["berth idle"] / rows["memory"]["docker idle"]
        ratios["PSS per container"] = rows["memory"]["berth per container"] / rows["memory"]["docker per container"]
        print("\n| target | berth / Docker | target | |\n|---|---|---|---|")
        for op, ratio in ratios.items():
            bound, rel = TARGETS[op]
            met = ratio <= bound if rel == "≤" else ratio >= bound
            print(f"| {op} | {ratio:.3g} | {rel} {bound} | {'met' if met else 'NOT met'} |")
    print(f"ps -a -q, berth / the Go CLI against berthd: {rows['ps -a -q']['berth'] / rows['ps -a -q']['docker→berth']:.2f}")
    figures = []
    for op, values in rows.items():
        better = "higher" if op in ("burst", "import", "save") else "lower"
        # What three runs in a row moved by (docs/performance.md): bursts and big files most.
        noise = {"memory": 0.10, "import": 0.40, "save": 0.25, "burst": 0.40}.get(op, 0.15)
        figures += [Figure(f"{op}: {row}", value, UNITS[op], better, noise) for row, value in values.items()]
    check("ops", figures, record=not args.no_record)
    if args.json:
        args.json.write_text(json.dumps({"when": when, "machine": facts, "rows": rows, "ratios": ratios,
                                         "memory_processes": {k: v[1] for k, v in notes.items()}},
                                        indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
