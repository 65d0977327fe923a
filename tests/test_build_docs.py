"""The examples of docs/build.md, run with `berth build` and `berth run`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "build.md"
_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```dockerfile\n(.*?)```\n(.*?)<!-- run: (.*?) -->\n```\n(.*?)```",
                      re.S)
_FILE = re.compile(r"<!-- file: (\S+) -->\n```\n(.*?)```", re.S)


def examples():
    return [pytest.param(*m.groups(), id=m.group(1)) for m in _EXAMPLE.finditer(DOC.read_text())]


@pytest.mark.parametrize("name, dockerfile, files, commands, expected", examples())
def test_example(daemon, api, tmp_path, name, dockerfile, files, commands, expected):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for path, content in _FILE.findall(files):
        (tmp_path / path).write_text(content)
    env = {**os.environ, "BERTH_HOST": daemon.host}
    output = b""
    try:
        for command in commands.split(" ; "):
            words = shlex.split(command)
            assert words[0] == "berth"
            result = subprocess.run([sys.executable, "-m", "shell.cli", *words[1:]], cwd=tmp_path, env=env,
                                    capture_output=True, timeout=120)
            assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
            output = result.stdout
        assert output.decode() == expected
    finally:
        api.delete(f"/images/{name}", force="1")
