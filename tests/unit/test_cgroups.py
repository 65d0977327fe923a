"""cgroup layout detection and limit reading, on fake v1, v2 and hybrid trees."""

from __future__ import annotations

import os
from pathlib import Path

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


def test_freezer_and_stats_files_on_v2(fake_root):
    """cgroup v2's spelling (this host is v1: the v2 paths are proven on a fake tree)."""
    write(fake_root / "cgroup.controllers", "cpu memory pids")
    layout = cgroups.detect(fake_root)
    base = fake_root / "berth" / "c1"
    write(base / "cgroup.freeze", "0\n")
    write(base / "cgroup.events", "populated 1\nfrozen 0\n")
    cgroups.set_frozen(layout, "/berth/c1", True)
    assert (base / "cgroup.freeze").read_text() == "1"
    assert cgroups.is_frozen(layout, "/berth/c1") is False  # the kernel says when it is done
    write(base / "cgroup.events", "populated 1\nfrozen 1\n")
    assert cgroups.is_frozen(layout, "/berth/c1") is True
    write(base / "cpu.stat", "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n")
    write(base / "memory.current", "4096\n")
    write(base / "memory.max", "max\n")
    write(base / "memory.stat", "anon 100\nfile 200\n")
    write(base / "pids.current", "2\n")
    write(base / "pids.max", "10\n")
    write(base / "cgroup.procs", "11\n12\n")
    write(base / "io.stat", "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n\n")
    st = cgroups.read_stats(layout, "/berth/c1")
    assert st.io_bytes == [{"major": 8, "minor": 0, "op": "read", "value": 4096},
                           {"major": 8, "minor": 0, "op": "write", "value": 512}]
    assert [e["value"] for e in st.io_ops] == [2, 1]
    assert (st.cpu_total_ns, st.cpu_user_ns, st.cpu_system_ns) == (2_000_000, 1_500_000, 500_000)
    assert st.throttling == {"periods": 3, "throttled_periods": 1, "throttled_time": 7000}
    assert (st.memory, st.memory_limit, st.memory_stat, st.pids, st.pids_limit) == (4096, None, {"anon": 100, "file": 200}, 2, 10)
    assert cgroups.procs(layout, "/berth/c1") == {11, 12}


def test_freezer_on_v1(fake_root):
    (fake_root / "freezer").mkdir()
    layout = cgroups.detect(fake_root)
    write(fake_root / "freezer" / "p" / "c" / "freezer.state", "THAWED\n")
    cgroups.set_frozen(layout, "/p/c", True)
    assert (fake_root / "freezer" / "p" / "c" / "freezer.state").read_text() == "FROZEN"
    write(fake_root / "freezer" / "p" / "c" / "freezer.state", "FREEZING\n")
    assert cgroups.is_frozen(layout, "/p/c") is None


def test_only_a_process_still_in_the_cgroup_counts_as_its_member():
    """kill_and_remove signals a PID read from cgroup.procs only while it is still in
    that cgroup: a PID reused since by another process is left alone."""
    own = [line.split(":", 2)[2] for line in open("/proc/self/cgroup").read().splitlines()]
    deepest = max(own, key=len)
    assert cgroups._member(str(os.getpid()), deepest)
    assert not cgroups._member(str(os.getpid()), deepest.rstrip("/") + "/berth-not-here")
    assert not cgroups._member("999999999", deepest)  # no such process


def test_the_namespace_keeps_its_hierarchies_and_loses_the_unified_directory(tmp_path):
    """`_without_unified_dir` on a fake /sys/fs/cgroup (a tmpfs with a "hierarchy" mounted
    on `cpu`, a `cpu,cpuacct` symlink, an empty `rdma` and an emptied `unified` holding
    what crun left), in a mount namespace of a child process of its own."""
    import subprocess
    import sys
    import textwrap

    root = tmp_path / "cgroup"
    root.mkdir()
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from engine.runtime import cgroups, syscalls
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount("none", "/", "", syscalls.MS_REC | syscalls.MS_SLAVE)
        root = Path({str(root)!r})
        syscalls.mount("tmpfs", str(root), "tmpfs")
        (root / "cpu").mkdir()
        syscalls.mount("tmpfs", str(root / "cpu"), "tmpfs")
        (root / "cpu" / "tasks").write_text("1")
        os.symlink("cpu", root / "cpu,cpuacct")
        (root / "rdma").mkdir()  # nothing mounted on it: crun would fill it as it did `unified`
        (root / "unified" / "berth" / "abc").mkdir(parents=True)
        (root / "unified" / "berth" / "abc" / "cgroup.procs").write_text("4242")
        cgroups.CGROUP_ROOT, cgroups.UNIFIED = root, root / "unified"
        cgroups._without_unified_dir()
        assert sorted(p.name for p in root.iterdir()) == ["cpu", "cpu,cpuacct"], list(root.iterdir())
        assert (root / "cpu" / "tasks").read_text() == "1"  # the same mount, moved
        assert os.readlink(root / "cpu,cpuacct") == "cpu"
        try:
            (root / "unified").mkdir()
        except OSError as exc:
            assert exc.errno == 30  # EROFS: nothing can make it again
        else:
            raise AssertionError("the new /sys/fs/cgroup is writable")
        cgroups._without_unified_dir()  # once done, nothing more to do
        syscalls.umount(str(root), syscalls.MNT_DETACH)
        assert sorted(p.name for p in root.iterdir()) == ["cpu", "cpu,cpuacct", "rdma", "unified"]
        assert list((root / "unified").iterdir()) == []  # what crun left is gone from beneath
        print("ok")
    """)
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[2])
    assert found.stdout.strip() == "ok", found.stderr


def test_block_io_on_v1(fake_root):
    """dockerd's reading: the proportional policy's counters, the throttle policy's where
    those are absent or hold only their `Total`; the `Total` line is no entry."""
    for c in ("blkio", "memory", "cpuacct", "cpu"):
        (fake_root / c).mkdir()
    layout = cgroups.detect(fake_root)
    base = fake_root / "blkio" / "p" / "c"
    write(base / "blkio.io_service_bytes_recursive", "Total 0\n")
    write(base / "blkio.throttle.io_service_bytes_recursive",
          "8:0 Read 8192\n8:0 Write 1024\n8:0 Total 9216\nTotal 9216\n")
    write(base / "blkio.throttle.io_serviced_recursive", "8:0 Read 2\n8:0 Write 1\nTotal 3\n")
    st = cgroups.read_stats(layout, "/p/c")
    assert [(e["op"], e["value"]) for e in st.io_bytes] == [("Read", 8192), ("Write", 1024), ("Total", 9216)]
    assert [(e["op"], e["value"]) for e in st.io_ops] == [("Read", 2), ("Write", 1)]
    write(base / "blkio.io_service_bytes_recursive", "8:16 Read 1\nTotal 1\n")
    assert cgroups.read_stats(layout, "/p/c").io_bytes == [{"major": 8, "minor": 16, "op": "Read", "value": 1}]
