"""Benchmark: a daemon restart with running containers, and the keeper's memory.

A private berthd runs N containers (`sleep`, on the default bridge, one with a published
port), is killed with -9 (and, in the second row, stopped with SIGTERM under
--live-restore), and started again: the time is from the new daemon's exec to the moment
its API answers `GET /containers/json` with every container running (the PIDs checked
unchanged) and the published port answering again. Docker has no equivalent without
--live-restore and containerd, so there is no Docker row; the target (issue 16) is under
2 s with 50 containers. The keeper's and berthd's PSS are read from /proc.

Usage: python -m tests.bench.restart [--containers 50] [--rounds 3] [--no-record]
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

from engine.keeper import protocol
from tests.bench.record import Figure, check
from tests.daemon import Daemon


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def keeper_pid(d: Daemon) -> int:
    pid = protocol.running_pid(d.root / "run" / "keeper")
    assert pid is not None, "the keeper is not running"
    return pid


def serving(d: Daemon, pids: dict[str, int], port: int) -> bool:
    try:
        listed = {c["Id"]: c for c in d.api.get_json("/containers/json")}
    except (OSError, ValueError):
        return False
    if set(listed) != set(pids):
        return False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def restart_time(d: Daemon, pids: dict[str, int], port: int, how: str) -> float:
    if how == "kill -9":
        d.stop(signal.SIGKILL)
    else:
        d.stop()  # SIGTERM; the daemon runs with --live-restore
    began = time.monotonic()
    d.start()
    while not serving(d, pids, port):
        time.sleep(0.002)
    took = time.monotonic() - began
    for cid, pid in pids.items():
        assert d.api.get_json(f"/containers/{cid}/json")["State"]["Pid"] == pid, cid
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-record", action="store_true",
                        help="compare with tests/bench/last.json but do not record this run there")
    args = parser.parse_args()
    d = Daemon("--live-restore")
    d.start()
    try:
        web = d.api.run(["sh", "-c", "mkdir /w && echo hi > /w/i && exec httpd -f -p 80 -h /w"],
                        HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}})
        port = int(d.api.get_json(f"/containers/{web}/json")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        cids = [web] + [d.api.run(["sleep", "3600"]) for _ in range(args.containers - 1)]
        pids = {cid: d.api.get_json(f"/containers/{cid}/json")["State"]["Pid"] for cid in cids}
        keeper_idle = pss_mb(keeper_pid(d))
        results = {}
        for how in ("kill -9", "SIGTERM, live restore"):
            results[how] = [restart_time(d, pids, port, how) for _ in range(args.rounds)]
        print(f"restart to serving with {args.containers} running containers (berthd --live-restore), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.rounds} rounds")
        print("| how | median | min–max |\n|---|---|---|")
        for how, samples in results.items():
            print(f"| {how} | {statistics.median(samples):.2f} s | {min(samples):.2f}–{max(samples):.2f} s |")
        daemon_pss = pss_mb(d.proc.pid)
        print(f"keeper PSS with {args.containers} containers: {keeper_idle:.1f} MB; "
              f"berthd PSS after the last restart: {daemon_pss:.1f} MB")
        check("restart", [Figure(f"restart, {how}", statistics.median(samples) * 1000, "ms", noise=0.30)
                          for how, samples in results.items()]
              + [Figure("keeper PSS", keeper_idle, "MB", noise=0.10),
                 Figure("berthd PSS after restart", daemon_pss, "MB", noise=0.10)],
              record=not args.no_record)
        for cid in cids:
            d.api.delete(f"/containers/{cid}", force=1)
        d.args.remove("--live-restore")
        d.stop()
        d.start()
        d.stop()
        leaks = d.leaks()
        if leaks:
            print("leaked:", leaks)
            return 1
        return 0
    finally:
        d.cleanup()


if __name__ == "__main__":
    sys.exit(main())
