"""`docker cp`, `diff`, `commit`, `export` and `import` with the real docker CLI against berth."""

from __future__ import annotations

import io
import os
import shutil
import tarfile

import pytest

from tests.test_docker_cli import docker  # noqa: F401  (the fixture: the CLI bound to the test daemon)

pytestmark = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")


@pytest.fixture
def names(docker):  # noqa: F811
    """Containers and images a test makes (by name), removed afterwards even when it fails."""
    made: dict[str, list[str]] = {"containers": [], "images": []}
    yield made
    for name in made["containers"]:
        docker("rm", "-f", name, check=False)
    for name in made["images"]:
        docker("rmi", "-f", name, check=False)


def test_cp_both_ways_keeps_modes_owners_times_and_links(docker, names, tmp_path):  # noqa: F811
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("payload")
    os.chown(src / "sub" / "f", 1000, 1001)
    os.chmod(src / "sub" / "f", 0o640)
    os.utime(src / "sub" / "f", (1_000_000_000, 1_000_000_000))
    os.symlink("sub/f", src / "link")
    names["containers"].append("fs-cp")
    docker("create", "--name", "fs-cp", "busybox", "sh", "-c",
           "ls -ln --full-time /dst/sub/f; readlink /dst/link; cat /dst/link")
    docker("cp", str(src), "fs-cp:/dst")  # into a created (stopped) container: a new name
    listing = docker("start", "-a", "fs-cp").stdout.decode().splitlines()
    assert listing[0].split()[:6] == ["-rw-r-----", "1", "1000", "1001", "7", "2001-09-09"]
    assert listing[1:] == ["sub/f", "payload"]

    docker("cp", "fs-cp:/dst", str(tmp_path / "back"))  # out of the exited container
    back = tmp_path / "back"
    f = (back / "sub" / "f").stat()
    assert (f.st_mode & 0o7777, f.st_mtime, (back / "sub" / "f").read_text()) == (0o640, 1e9, "payload")
    assert os.readlink(back / "link") == "sub/f"
    raw = docker("cp", "fs-cp:/dst/sub/f", "-").stdout  # the tar as the daemon sent it
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.uid, member.gid, member.mode, member.mtime) == ("f", 1000, 1001, 0o640, 1_000_000_000)

    docker("cp", str(src / "sub" / "f"), "fs-cp:/dst/")  # into an existing directory
    assert docker("cp", "fs-cp:/dst/f", "-").stdout
    missing = docker("cp", "fs-cp:/nope", str(tmp_path / "x"), check=False)
    assert missing.returncode == 1 and b"Could not find the file /nope in container fs-cp" in missing.stderr


def test_diff(docker, names):  # noqa: F811
    names["containers"].append("fs-diff")
    docker("run", "--name", "fs-diff", "busybox", "sh", "-c",
           "mkdir /new; echo x > /new/file; echo y >> /etc/passwd; rm /etc/group")
    lines = docker("diff", "fs-diff").stdout.decode().splitlines()
    assert lines == ["C /etc", "D /etc/group", "C /etc/passwd", "A /new", "A /new/file"]


def test_commit_run_and_history(docker, names):  # noqa: F811
    names["containers"].append("fs-commit")
    names["images"].append("fs-cli-commit:v1")
    docker("run", "--name", "fs-commit", "busybox", "sh", "-c", "echo from-layer > /made")
    image_id = docker("commit", "-m", "cli message", "-a", "me", "-c", 'CMD ["echo","x"]', "fs-commit",
                      "fs-cli-commit:v1").stdout.decode().strip()
    assert image_id.startswith("sha256:")
    assert docker("run", "--rm", "fs-cli-commit:v1").stdout == b"x\n"
    assert docker("run", "--rm", "fs-cli-commit:v1", "cat", "/made").stdout == b"from-layer\n"
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}|{{.Size}}",
                     "fs-cli-commit:v1").stdout.decode().splitlines()
    assert history[0].startswith("sh -c echo from-layer > /made|cli message|") and not history[0].endswith("|0B")
    assert len(history) == 2


def test_export_import_round_trip(docker, names, tmp_path):  # noqa: F811
    names["containers"].append("fs-export")
    names["images"].append("fs-cli-imported:v1")
    docker("run", "--name", "fs-export", "busybox", "sh", "-c", "echo round-trip > /proof")
    exported = docker("export", "fs-export").stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "proof" in tar.getnames()
    docker("import", "-c", 'CMD ["cat","/proof"]', "-m", "back again", "-", "fs-cli-imported:v1", input=exported)
    assert docker("run", "--rm", "fs-cli-imported:v1").stdout == b"round-trip\n"
