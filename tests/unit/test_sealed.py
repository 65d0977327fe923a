"""The runtime's sealed copy (engine/runtime/sealed.py): the runtimes skip their own
copy-and-re-exec only for a memfd sealed against every change, so the copy must be one."""

import fcntl
import os
import shutil
import subprocess

import pytest

from engine.runtime import sealed


def test_a_binary_runs_from_one_copy_sealed_against_every_change():
    binary = shutil.which("true")
    path = sealed.executable(binary)
    assert path.startswith(f"/proc/{os.getpid()}/fd/") and sealed.executable(binary) == path  # made once
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == sealed.SEALS
    finally:
        os.close(fd)
    fd = os.open(path, os.O_WRONLY)  # as root; what CVE-2019-5736 did to the host's runtime fails
    try:
        with pytest.raises(PermissionError):
            os.write(fd, b"\x7fELF")
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    assert subprocess.run([path]).returncode == 0


def test_a_binary_that_cannot_be_copied_runs_as_it_is(tmp_path):
    missing = str(tmp_path / "no-such-runtime")
    assert sealed.executable(missing) == missing
