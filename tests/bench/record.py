"""The benchmarks' regression check: each figure a benchmark reports is printed beside the
last recorded one and flagged when it moved by more than its noise; then the new figures
replace the old ones in `tests/bench/last.json`, which is kept in the repository so that
the next `make bench` (on any checkout) compares against it.

A figure's noise is a fraction of its value, set by the benchmark from what three runs in
a row on the shared 2-vCPU machine moved by (docs/performance.md, "Noise"): a change
within it says nothing, a change beyond it is printed as `SLOWER`/`FASTER` (or
`WORSE`/`BETTER` for memory).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

LAST = Path(__file__).with_name("last.json")


@dataclass
class Figure:
    """One reported figure: `better` is "lower" (times, memory) or "higher" (rates)."""

    name: str
    value: float
    unit: str
    better: str = "lower"
    noise: float = 0.15


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _verdict(figure: Figure, last: float) -> str:
    if not last:
        return ""
    change = figure.value / last - 1
    if abs(change) <= figure.noise:
        return ""
    worse = change > 0 if figure.better == "lower" else change < 0
    if figure.unit in ("MB", "kB"):
        return "WORSE" if worse else "BETTER"
    return "SLOWER" if worse else "FASTER"


def check(suite: str, figures: list[Figure], record: bool = True, path: Path = LAST) -> list[str]:
    """Print every figure beside the last recorded one for `suite`; record the new ones
    (unless `record` is false). Returns the names of the figures that got worse beyond
    their noise."""
    book = json.loads(path.read_text()) if path.exists() else {}
    before = book.get(suite, {})
    old = before.get("figures", {})
    print(f"\nRegression check ({suite}): last recorded {before.get('when', 'never')}")
    print("| figure | now | last | change | noise | flag |\n|---|---|---|---|---|---|")
    worse = []
    for f in figures:
        last = old.get(f.name, {}).get("value")
        change = f"{(f.value / last - 1) * 100:+.0f}%" if last else "new"
        flag = _verdict(f, last) if last else ""
        if flag in ("SLOWER", "WORSE"):
            worse.append(f.name)
        print(f"| {f.name} | {_fmt(f.value)} {f.unit} | {_fmt(last) + ' ' + f.unit if last else '—'} | "
              f"{change} | ±{f.noise * 100:.0f}% | {flag} |")
    if worse:
        print(f"beyond the noise, worse than last time: {', '.join(worse)}")
    if record:
        book[suite] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                       "figures": {f.name: {"value": round(f.value, 4), "unit": f.unit, "better": f.better,
                                            "noise": f.noise} for f in figures}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(book, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    return worse
