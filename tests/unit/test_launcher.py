"""The `berth` command `make install` writes: no `site` at start-up, the venv's paths
written in, and written again only when they changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shell import launcher

REPO = str(Path(__file__).resolve().parents[2])


def test_paths_are_what_site_added():
    paths = launcher.site_paths()
    assert paths and paths[0].endswith("site-packages")
    assert REPO in paths  # the editable install's path, from its .pth file


def test_written_command_runs_without_site(tmp_path):
    target = tmp_path / "berth"
    assert launcher.write(str(target))
    first = target.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -S"
    assert not launcher.write(str(target))  # unchanged: left as it is
    result = subprocess.run([str(target), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and "Usage" in result.stdout, result.stderr


def test_the_installed_command_is_the_written_one():
    """What `make install` left in the venv is what the launcher writes now (the first
    line names the interpreter `make install` ran, `python` or `python3` alike)."""
    installed = (Path(sys.executable).parent / "berth").read_text().splitlines()
    written = launcher.command_text().splitlines()
    assert installed[1:] == written[1:]
    assert installed[0].endswith(" -S") and written[0].endswith(" -S")
