"""Fuzz berthd's API with requests generated from Docker's Engine API v1.41 description.

    python -m tests.fuzz.run [--seconds 900] [--requests 25000] [--report FILE]
    make fuzz [FUZZ_SECONDS=900] [FUZZ_REQUESTS=25000]

An isolated berthd (tests/daemon.py: its own root, socket, bridge and cgroup parent) is
started, seeded with containers, execs, networks, volumes and images (pools.py), and sent
requests schemathesis generates from `swagger-v1.41.json` (spec.py; positive and negative
cases, round after round over every operation) until the time or the request budget runs
out. About half the generated references are replaced by real ones, so requests get past
the 404. What must not reach the host or the network is taken out first (safety.py).

Every request has a connection of its own (wire.py). Reported, each with the request that
caused it (method, target, headers, body, and a curl command that resends it):

* every 5xx answer (berth's rule: bad input is never a 500);
* every connection reset or closed without an answer, and every body cut short;
* every traceback or ERROR line in the daemon's log, with the request just sent;
* the daemon dying, and what it left behind after it stopped (`Daemon.leaks()`).

Answers that took longer than the time allowed (a stop waiting out its timeout) are listed
apart. The JSON report holds each distinct finding once (by endpoint, kind, status and the
exception or message), with how often it came and the shortest request that caused it;
the summary prints requests sent, 5xx and resets, by endpoint. Exit status 1 when anything
was found.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, strategies as st
from schemathesis import GenerationMode

from tests.daemon import Daemon

from . import safety, spec
from .pools import Pools, random_tar
from .wire import Outcome, Request, send

BASE = "/v1.41"
_DROP_HEADERS = {"user-agent", "accept-encoding", "accept", "connection", "x-schemathesis-testcaseid", "content-length"}
_SLOW = ("/stop", "/restart", "/kill", "/wait", "/pause", "/unpause", "/start", "/update")


@schemathesis.serializer("application/x-tar")
def _tar(ctx, value):
    """Docker's tar bodies: bytes as they are, anything else as its text."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": value if isinstance(value, str) else json.dumps(value)}


def _normalise(message: str) -> str:
    """A message without what the request put in it, to tell findings apart."""
    message = re.sub(r"[0-9a-f]{12,64}", "<id>", message)
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "<s>", message)
    return re.sub(r"\d+", "<n>", message)[:160]


def _traceback_signature(text: str) -> str:
    """The exception and the innermost engine frame of the last traceback in `text`."""
    frames = re.findall(r'File "([^"]*/(?:engine|plugins)/[^"]+)", line (\d+), in (\S+)', text)
    exc_lines = [line for line in text.splitlines() if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Group)\b", line)]
    where = ""
    if frames:
        path, line, func = frames[-1]
        where = f" at {path.split('/main/')[-1]}:{line} in {func}"
    return (exc_lines[-1].split(":")[0] if exc_lines else "traceback") + where


def _query_string(params, already: str) -> str:
    """`?…` for schemathesis' params (a mapping, or in negative cases whatever it chose)."""
    if isinstance(params, (str, bytes)):
        text = quote(params, safe="=&")
    elif isinstance(params, dict):
        text = urlencode({str(k): v if isinstance(v, (list, tuple)) else str(v) for k, v in params.items()}, doseq=True)
    elif params:
        text = urlencode([tuple(p) if isinstance(p, (list, tuple)) and len(p) == 2 else (str(p), "") for p in params])
    else:
        text = ""
    text = "&".join(filter(None, [already, text]))
    return "?" + text if text else ""


class Run:
    def __init__(self, daemon: Daemon, seconds: float, max_requests: int):
        self.daemon = daemon
        self.sock = str(daemon.sock)
        self.deadline = time.monotonic() + seconds
        self.max_requests = max_requests
        self.started = time.monotonic()
        self.sent = 0
        self.skipped = collections.Counter()  # requests that could not be put on the wire
        self.statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.findings: dict[tuple, dict] = {}
        self.timeouts: dict[str, dict] = {}
        self.samples: dict[str, dict[str, list[str]]] = collections.defaultdict(dict)
        self.log_offset = daemon.log.stat().st_size if daemon.log.exists() else 0
        self.dead = False
        self.pools = Pools(daemon.api, self._housekeeping_error)
        self.last_tend = 0

    # --- budget ----------------------------------------------------------------------

    @property
    def over(self) -> bool:
        return self.dead or self.sent >= self.max_requests or time.monotonic() >= self.deadline

    # --- findings --------------------------------------------------------------------

    def _new_log(self) -> str:
        try:
            size = self.daemon.log.stat().st_size
        except FileNotFoundError:
            return ""
        if size <= self.log_offset:
            return ""
        with open(self.daemon.log, "rb") as f:
            f.seek(self.log_offset)
            text = f.read(size - self.log_offset).decode(errors="replace")
        self.log_offset = size
        return text

    def _record(self, kind: str, endpoint: str, status: int, signature: str, req: Request | None, detail: str,
                log: str = "") -> None:
        key = (kind, endpoint, status, signature)
        entry = self.findings.get(key)
        size = len(req.target) + len(req.body) if req else 0
        if entry is None:
            entry = self.findings[key] = {"kind": kind, "endpoint": endpoint, "status": status,
                                          "signature": signature, "count": 0, "detail": detail, "log": log[-6000:]}
            print(f"  found: {kind} {status or ''} {endpoint}: {signature}", flush=True)
        entry["count"] += 1
        if req and ("request" not in entry or size < entry["_size"]):
            entry.update(request=req.as_dict(), curl=req.curl(self.sock), _size=size, detail=detail)
            if log:
                entry["log"] = log[-6000:]

    def _housekeeping_error(self, what: str, problem, body: bytes) -> None:
        detail = body[:2000].decode(errors="replace")
        kind = "5xx" if isinstance(problem, int) else "reset"
        method, _, target = what.partition(" ")
        endpoint = f"{method} {urlsplit(target).path} (housekeeping)"
        self._record(kind, endpoint, problem if isinstance(problem, int) else 0,
                     _normalise(detail or repr(problem)), Request(method, target), detail or repr(problem))

    def _judge(self, endpoint: str, req: Request, out: Outcome) -> None:
        log = self._new_log()
        errors_logged = "Traceback" in log or re.search(r" (ERROR|CRITICAL) ", log)
        signature = _traceback_signature(log) if "Traceback" in log else ""
        if out.kind == "answer" and out.status == 501 and out.message.startswith("unsupported transfer coding"):
            pass  # RFC 9112's answer to a Transfer-Encoding other than chunked
        elif out.kind == "answer" and out.status >= 500:
            self._record("5xx", endpoint, out.status, signature or _normalise(out.message), req, out.message, log)
        elif out.kind in ("reset", "cut"):
            self._record(out.kind, endpoint, out.status, signature or out.error, req, out.error, log)
            if not self._alive():
                self.dead = True
                self._record("daemon died", endpoint, 0, "berthd exited", req,
                             self.daemon.log.read_text()[-4000:] if self.daemon.log.exists() else "")
        elif out.kind == "timeout":
            if not self._alive():
                self.dead = True
                self._record("daemon died", endpoint, 0, "berthd exited", req, "")
            entry = self.timeouts.setdefault(endpoint, {"count": 0, "request": req.as_dict()})
            entry["count"] += 1
        elif errors_logged:
            line = next((ln for ln in log.splitlines() if " ERROR " in ln or " CRITICAL " in ln), "")
            self._record("log error", endpoint, out.status, signature or _normalise(line.split(": ", 1)[-1]), req,
                         line, log)

    def _alive(self) -> bool:
        if self.daemon.proc.poll() is not None:
            return False
        try:
            return self.daemon.api.get("/_ping").status == 200
        except OSError:
            return False

    # --- one generated case ----------------------------------------------------------

    def build(self, op, case, rnd: random.Random) -> Request | None:
        method, path = op.method.upper(), op.path
        if case.path_parameters and rnd.random() < 0.6:
            ref = self.pools.reference(path, method, rnd)
            if ref is not None:
                name = next(iter(case.path_parameters))
                case.path_parameters[name] = ref
        body = case.body
        if isinstance(body, dict) and rnd.random() < 0.6:
            if path in ("/containers/create", "/commit"):
                body["Image"] = rnd.choice(self.pools.images or ["busybox"])
                if rnd.random() < 0.3 and isinstance(body.get("HostConfig"), dict):
                    body["HostConfig"]["NetworkMode"] = rnd.choice(["none", "bridge", self.pools.network(rnd),
                                                                    "container:" + self.pools.container(rnd)])
            if path in ("/networks/{id}/connect", "/networks/{id}/disconnect"):
                body["Container"] = self.pools.container(rnd)
        if case.query is None:
            case.query = {}
        query = case.query if isinstance(case.query, dict) else None
        if query is not None and rnd.random() < 0.6:
            if path == "/commit":
                query["container"] = self.pools.container(rnd)
            if path == "/images/get":
                query["names"] = [rnd.choice(self.pools.images or ["busybox"])]
            if path == "/containers/{id}/archive":
                query["path"] = rnd.choice(["/", "/etc", "/etc/passwd", "/bin/busybox", "/tmp", "/tmp/", "/nonexistent",
                                            "etc/../etc", "/dev/null", "/proc/self/status"])
            if path == "/images/create":
                query["fromSrc"] = "-"
            if path == "/containers/{id}/logs":
                query[rnd.choice(["stdout", "stderr"])] = rnd.choice(["1", "true"])
        real_tar = False
        if case.media_type == "application/x-tar" and rnd.random() < 0.5:
            real_tar = True
            if path == "/images/load" and self.pools.saved_busybox and rnd.random() < 0.3:
                case.body = self.pools.saved_busybox
            else:
                case.body = random_tar(rnd)
        safety.body(method, path, case.body)
        if query is not None:
            safety.query(method, path, query, real_tar)
        try:
            kw = case.as_transport_kwargs(base_url="http://localhost" + BASE)
        except Exception as exc:  # e.g. a media type schemathesis cannot serialise
            self.skipped[type(exc).__name__] += 1
            return None
        url = urlsplit(kw["url"])
        target = url.path + _query_string(kw.get("params"), url.query)
        headers = [(k, str(v)) for k, v in (kw.get("headers") or {}).items() if k.lower() not in _DROP_HEADERS]
        if "json" in kw:
            data = json.dumps(kw["json"]).encode()
        else:
            data = kw.get("data") or b""
            if isinstance(data, str):
                data = data.encode()
            elif not isinstance(data, bytes):
                data = json.dumps(data).encode() if not isinstance(data, dict) else urlencode(data).encode()
        return Request(method, target, headers, data)

    def one(self, op, case, rnd: random.Random) -> None:
        if self.over:
            return
        if self.sent - self.last_tend >= 150:
            self.last_tend = self.sent
            self.pools.tend()
            log = self._new_log()  # what tending logged is not the next request's doing
            if "Traceback" in log or re.search(r" (ERROR|CRITICAL) ", log):
                self._record("log error", "(housekeeping)", 0, _traceback_signature(log), None, log[-2000:], log)
        endpoint = f"{op.method.upper()} {op.path}"
        try:
            req = self.build(op, case, rnd)
        except Exception as exc:  # the fuzzer's own bug: say so, go on
            self.skipped[f"build: {type(exc).__name__}: {exc}"[:120]] += 1
            return
        if req is None:
            return
        timeout = 20.0 if op.path.endswith(_SLOW) or op.method.upper() == "DELETE" else 10.0
        try:
            out = send(self.sock, req, head_timeout=timeout)
        except Exception as exc:  # h11 will not frame it (a header value it refuses, say)
            self.skipped[f"send: {type(exc).__name__}"] += 1
            return
        self.sent += 1
        self.statuses[endpoint][out.status if out.kind == "answer" else out.kind] += 1
        if out.kind == "answer" and out.status >= 400:  # what the refusals say, a few of each
            said = self.samples[endpoint].setdefault(str(out.status), [])
            if len(said) < 5 and out.message[:200] not in said:
                said.append(out.message[:200])
        self._judge(endpoint, req, out)
        if self.sent % 1000 == 0:
            self.progress()

    def progress(self) -> None:
        elapsed = time.monotonic() - self.started
        bad = sum(f["count"] for f in self.findings.values())
        print(f"[{elapsed:6.0f} s] {self.sent} requests ({self.sent / elapsed:.0f}/s), {bad} findings "
              f"({len(self.findings)} distinct)", flush=True)


def _operations(schema) -> list:
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if not spec.excluded(op.path):
            ops.append(op)
    return ops


def _probe(run: Run, ops: list) -> dict[str, bool]:
    """Which operations berth routes: a 404 'page not found' or 'method … not allowed'
    for a request with dummy parameters means it does not (it gets fewer examples)."""
    routed = {}
    for op in ops:
        path = re.sub(r"\{[^}]+\}", "fz-probe", op.path)
        out = send(run.sock, Request(op.method.upper(), BASE + path, [("Content-Type", "application/json")],
                                     b"{}" if op.method.upper() in ("POST", "PUT") else b""))
        unrouted = out.status == 404 and ("page not found" in out.message or "is not allowed" in out.message)
        routed[f"{op.method.upper()} {op.path}"] = not unrouted
    run._new_log()
    return routed


def _test_for(run: Run, op, mode: GenerationMode, examples: int):
    strategy = op.as_strategy(generation_mode=mode)

    @hypothesis.settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                         report_multiple_bugs=False)
    @hypothesis.given(case=strategy, seed=st.integers(0, 2**32 - 1))
    def fuzz(case, seed):
        run.one(op, case, random.Random(seed))  # not st.randoms(): what it draws depends on the pools

    return fuzz


def report(run: Run, path: Path, command: str, leaks: list[str], exit_status: int | None) -> dict:
    elapsed = time.monotonic() - run.started
    by_endpoint = {}
    for endpoint, counts in sorted(run.statuses.items()):
        by_endpoint[endpoint] = {"sent": sum(counts.values()),
                                 "5xx": sum(n for k, n in counts.items() if isinstance(k, int) and k >= 500),
                                 "resets": counts["reset"] + counts["cut"],
                                 "statuses": {str(k): n for k, n in sorted(counts.items(), key=str)},
                                 "refusals": run.samples.get(endpoint, {})}
    findings = sorted(run.findings.values(), key=lambda f: (f["kind"], f["endpoint"]))
    for f in findings:
        f.pop("_size", None)
    data = {"command": command, "seconds": round(elapsed, 1), "requests": run.sent,
            "five_xx": sum(e["5xx"] for e in by_endpoint.values()),
            "resets": sum(e["resets"] for e in by_endpoint.values()),
            "distinct_findings": len(findings), "daemon_exit_status": exit_status, "leaks": leaks,
            "skipped": dict(run.skipped), "timeouts": run.timeouts, "by_endpoint": by_endpoint, "findings": findings}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def print_summary(data: dict, path: Path) -> None:
    print(f"\n{data['requests']} requests in {data['seconds']:.0f} s: {data['five_xx']} 5xx, {data['resets']} resets "
          f"or cut bodies, {data['distinct_findings']} distinct findings")
    print(f"{'endpoint':48} {'sent':>6} {'5xx':>5} {'reset':>5}")
    for endpoint, e in data["by_endpoint"].items():
        flag = "  <--" if e["5xx"] or e["resets"] else ""
        print(f"{endpoint:48} {e['sent']:6} {e['5xx']:5} {e['resets']:5}{flag}")
    for f in data["findings"]:
        print(f"\n{f['kind']} {f['status'] or ''} {f['endpoint']} x{f['count']}: {f['signature']}")
        if f.get("detail"):
            print(f"  {f['detail'][:300]}")
        if f.get("curl"):
            body = f["request"].get("body", f["request"].get("body_hex", ""))
            print(f"  {f['curl']}" + (f"  <<< {body[:300]!r}" if body else ""))
    if data["timeouts"]:
        print("\nno status line in time (not counted):",
              ", ".join(f"{k} x{v['count']}" for k, v in data["timeouts"].items()))
    if data["leaks"]:
        print("\nleft behind:", *data["leaks"], sep="\n  ")
    if data["daemon_exit_status"] not in (0, None):
        print(f"\nberthd exited with {data['daemon_exit_status']} on SIGTERM")
    print(f"\nreport: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=900, help="stop after this long (default 900)")
    parser.add_argument("--requests", type=int, default=25000, help="stop after this many requests (default 25000)")
    parser.add_argument("--examples", type=int, default=25, help="cases per operation and round (default 25)")
    parser.add_argument("--report", type=Path, default=Path("/tmp/berth-fuzz/report.json"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("the fuzzer starts a berthd that runs containers: run it as root")
    warnings.simplefilter("ignore")
    command = "python -m tests.fuzz.run " + " ".join(sys.argv[1:] if argv is None else argv)
    schema = schemathesis.openapi.from_dict(spec.load())
    ops = _operations(schema)

    daemon = Daemon()
    exit_status = None
    leaks: list[str] = []
    try:
        daemon.start()
        run = Run(daemon, args.seconds, args.requests)
        run.pools.start()
        routed = _probe(run, ops)
        print(f"fuzzing berthd ({daemon.root}) with {len(ops)} operations of Docker's API v1.41, "
              f"{sum(routed.values())} of them routed by berth; up to {args.requests} requests "
              f"or {args.seconds:.0f} s", flush=True)
        tests = {}
        rounds = 0
        while not run.over:
            mode = GenerationMode.POSITIVE if rounds % 2 == 0 else GenerationMode.NEGATIVE
            order = ops[:]
            random.shuffle(order)
            for op in order:
                if run.over:
                    break
                key = (op.method, op.path, mode)
                examples = args.examples if routed[f"{op.method.upper()} {op.path}"] else 2
                if key not in tests:
                    tests[key] = _test_for(run, op, mode, examples)
                if tests[key] is None:
                    continue
                try:
                    tests[key]()
                except hypothesis.errors.Unsatisfiable:  # no negative case exists (no parameters to break)
                    tests[key] = None
                except Exception as exc:  # generation itself failed for this operation
                    run.skipped[f"generate {op.method.upper()} {op.path}: {type(exc).__name__}"] += 1
            rounds += 1
        run.progress()
        run.pools.clear()
        run._judge("(after the run)", Request("GET", "/"), Outcome("answer", 200))
        exit_status = daemon.stop()
        leaks = daemon.leaks()
        data = report(run, args.report, command, leaks, exit_status)
    finally:
        if daemon.log.exists():  # the whole daemon log, beside the report
            args.report.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(daemon.log, args.report.with_suffix(".berthd.log"))
        daemon.cleanup()
    print_summary(data, args.report)
    return 1 if data["findings"] or leaks or exit_status != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
