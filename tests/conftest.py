"""Session fixture: one isolated berthd for the whole run, checked for leaks afterwards.

A leak (a mount under the daemon's root, one of its cgroups, a process naming its root)
fails the run: the finaliser raises after cleaning up, so the next run starts clean too.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

from tests.daemon import Daemon

# Property tests check what holds, never how fast: on a loaded 2-CPU machine an example
# may take longer than hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("berth", deadline=None)
settings.load_profile("berth")


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("berth's tests run real containers: run them as root (make test)")
    for tool in ("crun", "runc"):
        if not shutil.which(tool):
            raise pytest.UsageError(f"{tool} is not installed: run `make install` first")


@pytest.fixture(scope="session")
def daemon():
    with Daemon().running() as d:
        yield d


@pytest.fixture
def api(daemon):
    return daemon.api


@pytest.fixture
def fresh_daemon():
    """A daemon of the test's own (restart, crash and locking tests); leak-checked too."""
    daemons: list[Daemon] = []

    def make(*args: str, root=None, setup=None) -> Daemon:
        """Start a daemon; `setup(d)` runs first (to write its config file or plugins)."""
        d = Daemon(*args, root=root)
        daemons.append(d)
        if setup:
            setup(d)
        return d.start()

    try:
        yield make
        for d in daemons:
            if d.proc and d.proc.poll() is None:
                assert d.stop() == 0
        leaks = [leak for d in daemons for leak in d.leaks()]
        assert not leaks, "berthd leaked:\n" + "\n".join(leaks)
    finally:
        for d in daemons:
            d.cleanup()
