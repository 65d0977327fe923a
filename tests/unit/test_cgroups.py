"""cgroup layout detection and limit reading, on fake v1, v2 and hybrid trees."""

from __future__ import annotations

import pytest

from engine.runtime import cgroups


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    return tmp_path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2(fake_root):
    write(fake_root / "cgroup.controllers", "cpu memory pids")
    layout = cgroups.detect(fake_root)
    assert layout == (2, ()) and not layout.hybrid
    base = fake_root / "berth" / "c1"
    write(base / "memory.max", "67108864\n")
    write(base / "cpu.max", "50000 100000\n")
    write(base / "cpu.weight", str(1 + ((512 - 2) * 9999) // 262142))
    write(base / "pids.max", "max\n")
    limits = cgroups.read_limits(layout, "/berth/c1")
    assert limits.memory == 67108864 and (limits.cpu_quota, limits.cpu_period) == (50000, 100000)
    assert abs(limits.cpu_shares - 512) < 30 and limits.pids is None


def test_hybrid_and_v1(fake_root):
    write(fake_root / "unified" / "cgroup.controllers", "hugetlb\n")
    for c in ("memory", "cpu", "pids"):
        (fake_root / c).mkdir()
    layout = cgroups.detect(fake_root)
    assert layout.version == 1 and layout.hybrid and layout.hybrid_v2_controllers == ("hugetlb",)
    write(fake_root / "memory" / "p" / "c" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(fake_root / "cpu" / "p" / "c" / "cpu.cfs_quota_us", "-1\n")
    write(fake_root / "cpu" / "p" / "c" / "cpu.shares", "1024\n")
    write(fake_root / "pids" / "p" / "c" / "pids.max", "42\n")
    limits = cgroups.read_limits(layout, "/p/c")
    assert limits.memory is None and limits.cpu_quota is None and limits.cpu_shares == 1024 and limits.pids == 42
    assert {p.parent.name for p in cgroups.existing(layout, "/p/c")} == {"p"}
    write(fake_root / "unified" / "cgroup.controllers", "")
    assert not cgroups.detect(fake_root).hybrid  # an empty v2 tree beside v1 does not bother crun
