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


def test_berth_build_sends_no_ignored_file(project, tmp_path):
    """The upload leaves out what `.dockerignore` says (the Dockerfile and .dockerignore
    always go), and a Dockerfile from outside the context goes in under a generated name."""
    import tarfile

    from dockerignore import Ignore
    from shell.build_context import context_tar, dockerfile_name

    (project / "logs").mkdir()
    (project / "logs" / "a.log").write_text("x")
    (project / "logs" / "keep.log").write_text("x")
    (project / ".dockerignore").write_text("ignored.txt\nlogs\n!logs/keep.log\nDockerfile\n.dockerignore\n")
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere.Dockerfile"  # the project is tmp_path
    outside.write_text("FROM busybox\n")
    name, host = dockerfile_name(str(project), str(outside))
    assert name.startswith(".dockerfile.") and host == str(outside)
    assert dockerfile_name(str(project), str(project / "Dockerfile")) == ("Dockerfile", None)
    body, thread = context_tar(str(project), Ignore((project / ".dockerignore").read_text(),
                                                    (".dockerignore", "Dockerfile")), (name, host))
    with body, tarfile.open(fileobj=body, mode="r|") as tar:
        names = sorted(m.name for m in tar)
    thread.join()
    assert names == sorted([".dockerignore", "Dockerfile", "logs/keep.log", "msg.txt", name]), names


def test_berth_build_with_a_dockerfile_outside_the_context(daemon, project, tmp_path, cleanup):
    cleanup.append("bt-outside:latest")
    outside = tmp_path.parent / f"{tmp_path.name}-other" / "Dockerfile.dev"  # the project is tmp_path
    outside.parent.mkdir()
    outside.write_text("FROM busybox\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n")
    env = {**os.environ, "BERTH_HOST": daemon.host}
    result = subprocess.run([sys.executable, "-m", "shell.cli", "build", "-f", str(outside), "-t", "bt-outside",
                             str(project)], env=env, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    assert "Step 2/3 : COPY msg.txt /msg.txt" in result.stdout.decode()
    if shutil.which("docker"):  # the docker CLI does the same with its own generated name
        cleanup.append("bt-outside-docker:latest")
        docker = _docker(daemon, tmp_path, "build", "-f", str(outside), "-t", "bt-outside-docker", str(project))
        assert docker.returncode == 0, docker.stderr.decode() + docker.stdout.decode()


def test_ctrl_c_in_the_shell_cancels_the_build(daemon, api, project, tmp_path):
    """In the shell a build runs in the foreground; Ctrl-C ends it: the prompt comes back,
    the RUN step's container is removed, no image is tagged."""
    import time
    import uuid

    from tests.daemon import REPO

    (project / "Dockerfile").write_text('FROM busybox\nRUN echo "step-$((6*7))"; sleep 60\n')
    session = f"berth-build-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "HOME": str(tmp_path)}
    before = {c["Id"] for c in api.get_json("/containers/json", all="1")}

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], env=env, capture_output=True, text=True, check=True).stdout

    def wait_for(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while text not in (shown := tmux("capture-pane", "-p", "-t", session)):
            assert time.monotonic() < deadline, f"{text!r} never showed:\n{shown}"
            time.sleep(0.1)
        return shown

    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "40",
         f"cd {REPO} && exec {sys.executable} -m shell.cli -H {daemon.host}")
    try:
        wait_for("berth>")
        tmux("send-keys", "-t", session, f"build -t bt-cancel {project}", "Enter")
        wait_for("step-42")
        tmux("send-keys", "-t", session, "C-c")
        deadline = time.monotonic() + 15
        while True:  # the prompt is back below the step's output
            lines = tmux("capture-pane", "-p", "-t", session).splitlines()
            last = max(i for i, line in enumerate(lines) if "step-42" in line)
            if any("berth>" in line for line in lines[last + 1:]):  # `^Cberth>`
                break
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while {c["Id"] for c in api.get_json("/containers/json", all="1")} - before:
            assert time.monotonic() < deadline, "the RUN step's container outlived the cancelled build"
            time.sleep(0.2)
        assert api.get("/images/bt-cancel/json").status == 404
        tmux("send-keys", "-t", session, "exit", "Enter")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], env=env, capture_output=True)
