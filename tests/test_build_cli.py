"""Builds through the real docker CLI (`DOCKER_BUILDKIT=0`), docker-py and `berth build`."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

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
    from shell.build_context import Upload, dockerfile_name, entries

    (project / "logs").mkdir()
    (project / "logs" / "a.log").write_text("x")
    (project / "logs" / "keep.log").write_text("x")
    (project / ".dockerignore").write_text("ignored.txt\nlogs\n!logs/keep.log\nDockerfile\n.dockerignore\n")
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere.Dockerfile"  # the project is tmp_path
    outside.write_text("FROM busybox\n")
    name, host = dockerfile_name(str(project), str(outside))
    assert name.startswith(".dockerfile.") and host == str(outside)
    assert dockerfile_name(str(project), str(project / "Dockerfile")) == ("Dockerfile", None)
    members = entries(str(project), Ignore((project / ".dockerignore").read_text(), (".dockerignore", "Dockerfile")),
                      (name, host))
    with open(tmp_path / "upload.tar", "w+b") as out:
        Upload(members).send_to(out.fileno())
        assert out.tell() == len(Upload(members))
    with tarfile.open(tmp_path / "upload.tar") as tar:
        names = sorted(m.name for m in tar)
    assert names == sorted([".dockerignore", "Dockerfile", "logs/keep.log", "msg.txt", name]), names


def test_the_upload_is_the_tar_of_what_the_daemon_lacks(tmp_path):
    """Files named as kept are left out; hard links, symlinks, big and small files come
    out as tarfile reads them; a file that changes size before it is sent is an error."""
    import tarfile

    from dockerignore import Ignore
    from shell.build_context import Upload, entries

    root = tmp_path / "ctx"
    (root / "sub").mkdir(parents=True)
    big = os.urandom(300_000)
    (root / "big.bin").write_bytes(big)
    (root / "small.txt").write_text("small")
    (root / "kept.txt").write_text("the daemon has it")
    os.link(root / "small.txt", root / "sub" / "again.txt")
    os.symlink("../big.bin", root / "sub" / "link")
    members = entries(str(root), Ignore("", ()))
    upload = Upload(members, frozenset({"kept.txt"}))
    with open(tmp_path / "out.tar", "w+b") as out:
        upload.send_to(out.fileno())
        assert out.tell() == len(upload)
    with tarfile.open(tmp_path / "out.tar") as tar:
        found = {m.name: m for m in tar}
        assert sorted(found) == ["big.bin", "small.txt", "sub", "sub/again.txt", "sub/link"]
        assert tar.extractfile("big.bin").read() == big
        assert found["sub/again.txt"].islnk() and found["sub/again.txt"].linkname == "small.txt"
        assert found["sub/link"].issym() and found["sub/link"].linkname == "../big.bin"
        assert {m.uid for m in found.values()} == {0}
    planned = Upload(members)
    (root / "big.bin").write_bytes(big[:1000])
    with open(tmp_path / "again.tar", "wb") as out, pytest.raises(OSError, match="big.bin changed"):
        planned.send_to(out.fileno())


def test_berth_build_sends_what_changed_and_drops_what_went(daemon, project, cleanup):
    """berth's CLI offers its listing first: a file rewritten with the same size right
    after a build, a file removed and one unchanged all come out as on the disk."""
    cleanup.append("bt-kept:latest")
    (project / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx\nCMD [\"sh\", \"-c\", \"cat /ctx/*.txt\"]\n")
    (project / "gone.txt").write_text("gone\n")
    env = {**os.environ, "BERTH_HOST": daemon.host}

    def build_and_run() -> bytes:
        built = subprocess.run([sys.executable, "-m", "shell.cli", "build", "-q", "-t", "bt-kept", str(project)],
                               env=env, capture_output=True, timeout=120)
        assert built.returncode == 0, built.stderr.decode()
        return subprocess.run([sys.executable, "-m", "shell.cli", "run", "--rm", "bt-kept"], env=env,
                              capture_output=True, timeout=60).stdout

    (project / "caf\udce9.txt").write_bytes(b"a name JSON cannot carry\n")  # bytes b"caf\xe9.txt"
    assert build_and_run() == b"a name JSON cannot carry\ngone\nfrom the context\n"
    (project / "caf\udce9.txt").unlink()
    (project / "msg.txt").write_text("FROM THE CONTEXT\n")  # same size, within the same second
    (project / "gone.txt").unlink()
    assert build_and_run() == b"FROM THE CONTEXT\n"
    time.sleep(2.1)  # the files were all racy so far (written within 2 s of each listing)
    assert build_and_run() == b"FROM THE CONTEXT\n"
    from dockerignore import Ignore
    from shell.build_context import entries, offer
    from shell.transport import Client

    listing = offer(str(project), entries(str(project), Ignore("ignored.txt\n", ())), time.time_ns())
    assert Client(daemon.host).call("POST", "/build/context", body=listing)["send"] == []  # all kept


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


def test_berth_build_against_a_daemon_without_kept_contexts_sends_everything(project, tmp_path):
    """A daemon that does not know `/build/context` (a dockerd) gets the whole context,
    with no session named."""
    import socket
    import tarfile
    import threading

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "d.sock"))
    server.listen(4)
    seen: list[tuple[bytes, bytes]] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += conn.recv(1 << 20)
                seen.append((head.split(b"\r\n")[0], body))
                if b"/build/context" in head:
                    answer = b'{"message":"page not found"}'
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                else:
                    answer = b'{"stream":"Successfully built 0123456789ab\\n"}\r\n'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    result = subprocess.run([sys.executable, "-m", "shell.cli", "-H", f"unix://{tmp_path / 'd.sock'}", "build",
                             str(project)], capture_output=True, timeout=60)
    thread.join(10)
    server.close()
    assert result.returncode == 0, result.stderr.decode()
    assert b"Successfully built 0123456789ab" in result.stdout
    (first, _), (second, body) = seen
    assert first.endswith(b"/build/context HTTP/1.1") and b"berthcontext" not in second
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert sorted(tar.getnames()) == [".dockerignore", "Dockerfile", "msg.txt"]


def test_berth_builder_prune_takes_force_filters_and_keep_storage(daemon, project):
    env = {**os.environ, "BERTH_HOST": daemon.host}
    built = subprocess.run([sys.executable, "-m", "shell.cli", "build", "-q", str(project)], env=env,
                           capture_output=True, timeout=120)
    assert built.returncode == 0, built.stderr.decode()

    def prune(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "shell.cli", "builder", "prune", *args], env=env,
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    assert prune("-f", "--filter", "until=24h") == "Total reclaimed space: 0B\n"  # built just now
    assert prune("--keep-storage", "1g") == "Total reclaimed space: 0B\n"
    assert prune("-f").startswith("Deleted build cache objects:\n")
