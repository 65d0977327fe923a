"""Builds through the real docker CLI (`DOCKER_BUILDKIT=0`), docker-py and `berth build`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

DOCKERFILE = """\
FROM busybox
ENV GREETING=hello-build
WORKDIR /app
COPY msg.txt /app/msg.txt
RUN echo "built at build time" > /app/built.txt
CMD ["sh", "-c", "cat /app/msg.txt; echo $GREETING"]
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "msg.txt").write_text("from the context\n")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    (tmp_path / "ignored.txt").write_text("never sent\n")
    return tmp_path


@pytest.fixture
def cleanup(api):
    refs: list[str] = []
    yield refs
    for ref in refs:
        api.delete(f"/images/{ref}", force="1")


def _docker(daemon, tmp_path, *args, cwd=None):
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / ".docker"),
           "DOCKER_BUILDKIT": "0"}
    return subprocess.run(["docker", *args], env=env, capture_output=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
def test_docker_cli_build_and_run(daemon, project, tmp_path, cleanup):
    cleanup.append("bt-cli:v1")
    result = _docker(daemon, tmp_path, "build", "-t", "bt-cli:v1", "--label", "extra=yes", ".", cwd=project)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode() + out
    assert "Step 1/7 : FROM busybox\n ---> " in out
    assert "Step 7/7 : LABEL extra=yes" in out
    assert " ---> Running in " in out and "Removing intermediate container " in out
    assert "Successfully built " in out and "Successfully tagged bt-cli:v1\n" in out
    run = _docker(daemon, tmp_path, "run", "--rm", "bt-cli:v1")
    assert run.stdout == b"from the context\nhello-build\n"
    ls = _docker(daemon, tmp_path, "run", "--rm", "bt-cli:v1", "ls", "/app")
    assert ls.stdout.split() == [b"built.txt", b"msg.txt"]
    again = _docker(daemon, tmp_path, "build", "-t", "bt-cli:v1", "--label", "extra=yes", ".", cwd=project)
    assert again.stdout.decode().count(" ---> Using cache") == 6
    history = _docker(daemon, tmp_path, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "bt-cli:v1")
    assert "/bin/sh -c #(nop)  ENV GREETING=hello-build" in history.stdout.decode()


@pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
def test_docker_cli_failing_run_exits_with_its_code(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    result = _docker(daemon, tmp_path, "build", "--force-rm", ".", cwd=tmp_path)
    assert result.returncode == 7
    assert "The command '/bin/sh -c exit 7' returned a non-zero code: 7" in result.stderr.decode()


@pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")
def test_docker_cli_parse_error(daemon, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nBOGUS x\n")
    result = _docker(daemon, tmp_path, "build", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "Dockerfile parse error line 2: unknown instruction: BOGUS" in result.stderr.decode()


def test_dockerpy_build(daemon, project, cleanup):
    docker = pytest.importorskip("docker")
    cleanup.append("bt-py:latest")
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    lines = list(client.build(path=str(project), tag="bt-py", rm=True, decode=True))
    text = "".join(m.get("stream", "") for m in lines)
    assert "Successfully tagged bt-py:latest" in text, lines
    assert any("aux" in m for m in lines)


def test_berth_build(daemon, project, cleanup):
    cleanup.append("bt-berth:latest")
    env = {**os.environ, "BERTH_HOST": daemon.host}
    result = subprocess.run([sys.executable, "-m", "shell.cli", "build", "-t", "bt-berth", str(project)],
                            env=env, capture_output=True, timeout=120)
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode() + out
    assert "Step 1/6 : FROM busybox" in out and "Successfully tagged bt-berth:latest" in out
    (project / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    failed = subprocess.run([sys.executable, "-m", "shell.cli", "build", "--force-rm", str(project)],
                            env=env, capture_output=True, timeout=120)
    assert failed.returncode == 3
    assert "returned a non-zero code: 3" in failed.stderr.decode()
