"""The benchmarks' regression check (tests/bench/record.py): figures beside the last
recorded ones, changes beyond the noise flagged, the new ones recorded."""

import ast
import json
import re
from pathlib import Path

from tests.bench.record import Figure, check


def test_first_run_records_and_flags_nothing(tmp_path, capsys):
    book = tmp_path / "last.json"
    assert check("ops", [Figure("exec: berth", 40.0, "ms")], path=book) == []
    assert json.loads(book.read_text())["ops"]["figures"]["exec: berth"]["value"] == 40.0
    assert "| exec: berth | 40 ms | — | new |" in capsys.readouterr().out


def test_changes_beyond_the_noise_are_flagged_either_way(tmp_path, capsys):
    book = tmp_path / "last.json"
    check("ops", [Figure("exec", 40.0, "ms"), Figure("import", 100.0, "MB/s", "higher"),
                  Figure("idle", 40.0, "MB", noise=0.1)], path=book)
    worse = check("ops", [Figure("exec", 50.0, "ms"), Figure("import", 130.0, "MB/s", "higher"),
                          Figure("idle", 42.0, "MB", noise=0.1)], path=book)
    out = capsys.readouterr().out
    assert worse == ["exec"]
    assert "| exec | 50 ms | 40 ms | +25% | ±15% | SLOWER |" in out
    assert "| import | 130 MB/s | 100 MB/s | +30% | ±15% | FASTER |" in out
    assert "| idle | 42 MB | 40 MB | +5% | ±10% |  |" in out


def test_no_record_leaves_the_book_alone(tmp_path):
    book = tmp_path / "last.json"
    check("ops", [Figure("exec", 40.0, "ms")], path=book)
    check("ops", [Figure("exec", 80.0, "ms")], record=False, path=book)
    assert json.loads(book.read_text())["ops"]["figures"]["exec"]["value"] == 40.0


def test_every_benchmark_of_make_bench_runs_the_check():
    """Issue 17: `make bench` prints every figure beside the last recorded one, so each
    benchmark it runs must hand its figures to `record.check`."""
    root = Path(__file__).resolve().parents[1]
    target = re.search(r"^bench:.*?\n((?:\t.*\n)+)", (root / "Makefile").read_text(), re.MULTILINE).group(1)
    modules = re.findall(r"-m tests\.bench\.(\w+)", target)
    assert len(modules) >= 8
    for name in modules:
        tree = ast.parse((root / "tests" / "bench" / f"{name}.py").read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "check"]
        assert calls, f"tests/bench/{name}.py does not call record.check"
