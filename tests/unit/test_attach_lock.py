"""Taking the cgroup attach lock ahead of the runtime (engine/runtime/attach_lock.py):
which file it writes, that it writes this process's own PID there, and that on the real
host the write is a move that moves nothing."""

import os
import time
from pathlib import Path

import pytest

from engine.runtime import cgroups
from engine.runtime.attach_lock import AttachLock, procs_file

V1_SELF = """12:pids:/user.slice
11:memory:/process_api/abc
9:name=systemd:/user.slice/session-1.scope
1:cpu,cpuacct:/
0::/user.slice/session-1.scope
"""


def tree(root: Path, *dirs: str) -> None:
    for d in dirs:
        (root / d).mkdir(parents=True)
        (root / d / "cgroup.procs").touch()


def test_a_hierarchy_without_controllers_is_preferred(tmp_path):
    tree(tmp_path, "pids/user.slice", "systemd/user.slice/session-1.scope", "memory/process_api/abc")
    assert procs_file(V1_SELF, tmp_path) == tmp_path / "systemd/user.slice/session-1.scope/cgroup.procs"


def test_pids_when_there_is_no_named_hierarchy(tmp_path):
    tree(tmp_path, "pids/user.slice", "memory/process_api/abc")
    assert procs_file(V1_SELF, tmp_path) == tmp_path / "pids/user.slice/cgroup.procs"


def test_nothing_to_write_without_either(tmp_path):
    tree(tmp_path, "memory/process_api/abc", "cpu,cpuacct")
    assert procs_file(V1_SELF, tmp_path) is None
    assert procs_file("0::/system.slice/berth.service\n", tmp_path) is None  # cgroup v2
    AttachLock(None).take_ahead()  # nothing to do, nothing raised


def wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the attach lock's thread did not write"
        time.sleep(0.01)


def test_take_ahead_writes_this_process_pid_from_its_thread(tmp_path):
    procs = tmp_path / "cgroup.procs"
    procs.touch()
    lock = AttachLock(procs)
    lock.take_ahead()
    wait_for(lambda: procs.read_bytes() == str(os.getpid()).encode())
    procs.write_bytes(b"")
    lock.take_ahead()  # the same thread, woken again
    wait_for(lambda: procs.read_bytes() == str(os.getpid()).encode())


@pytest.mark.skipif(cgroups.detect().version != 1, reason="cgroup v1 host only")
def test_on_this_host_the_move_leaves_the_process_where_it_was():
    before = Path("/proc/self/cgroup").read_text()
    lock = AttachLock.for_host(cgroups.detect())
    assert lock._procs is not None and lock._procs.exists()
    lock.take_ahead()
    time.sleep(0.2)  # ample for a grace period; the check is only that nothing moved
    assert Path("/proc/self/cgroup").read_text() == before
