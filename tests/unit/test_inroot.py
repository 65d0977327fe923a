"""Resolving and extracting inside a container root: never a step outside it.

A temporary directory stands for the container root, a sibling directory for the host;
symlinks of every kind point from the one to the other, and whatever is resolved or
extracted must land below the root.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fs import inroot, tarstream
from engine.errors import BadRequest


@pytest.fixture
def box(tmp_path):
    """(root, host): a container root full of hostile links, and a 'host' dir beside it."""
    root, host = tmp_path / "root", tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/sh\n")
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "sub" / "f").write_text("in the box")
    host.mkdir()
    (host / "secret").write_text("host")
    os.symlink(str(host), root / "abs")                # absolute: the host's path
    os.symlink("../../../../..", root / "data" / "up")  # relative, climbing far
    os.symlink("/etc", root / "data" / "etc")         # absolute inside the box
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield root, host, fd
    os.close(fd)


def real(found: inroot.Found) -> Path:
    return Path(os.readlink(f"/proc/self/fd/{found.dir_fd}"))


def test_links_resolve_inside_the_root(box):
    root, host, fd = box
    with inroot.resolve(fd, "/data/etc/passwd") as found:
        assert (real(found), found.name, found.path) == (root / "etc", "passwd", "/etc/passwd")
    with inroot.resolve(fd, "/data/up/etc/passwd") as found:  # `..` stops at the root
        assert found.path == "/etc/passwd"
    with pytest.raises(FileNotFoundError):  # /abs → <host>, looked up inside the box
        inroot.resolve(fd, "/abs/secret")
    with inroot.resolve(fd, "/abs/secret", missing_ok=True) as found:
        assert found.stat is None and found.path == str(host / "secret")  # lexical, below the root
        assert real(found) == root
    with inroot.resolve(fd, "/data/up") as found:  # a link to "the top" is the root itself
        assert (found.name, found.path, real(found)) == (".", "/", root)
    with inroot.resolve(fd, "/data/etc", follow=False) as found:
        assert stat.S_ISLNK(found.stat.st_mode) and real(found) == root / "data"


def test_loops_and_non_directories(box):
    _, _, fd = box
    with pytest.raises(OSError) as exc:
        inroot.resolve(fd, "/loop1/x")
    assert exc.value.errno == errno.ELOOP
    with pytest.raises(NotADirectoryError):
        inroot.resolve(fd, "/data/sub/f/x")


def test_make_dirs_creates_inside(box):
    root, host, fd = box
    with inroot.resolve(fd, "/abs/new/file", missing_ok=True, make_dirs=True) as found:
        assert found.stat is None and found.name == "file"
    assert (root / str(host).lstrip("/") / "new").is_dir()
    assert sorted(os.listdir(host)) == ["secret"]


def test_in_root_path_reads_like_a_path(box):
    _, _, fd = box
    from engine.runtime import bundle

    assert bundle.resolve_user(inroot.InRootPath(fd), "web")[:2] == (33, 44)


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buf.seek(0)
    return buf


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "", mode: int = 0o644,
           uid: int = 0, gid: int = 0, mtime: int = 1_000_000_000) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid, info.mtime = kind, link, mode, uid, gid, mtime
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def test_extract_keeps_metadata(box):
    root, _, fd = box
    tarstream.extract(tar_of([
        member("d", tarfile.DIRTYPE, mode=0o2750, uid=7, gid=8, mtime=1_100_000_000),
        member("d/run", data=b"#!/bin/sh\n", mode=0o4755, uid=5, gid=6),
        member("d/ln", tarfile.SYMTYPE, link="/etc/passwd", uid=9, gid=9),
        member("d/hard", tarfile.LNKTYPE, link="d/run"),
        member("d/pipe", tarfile.FIFOTYPE, mode=0o600),
    ]), fd, "/data")
    d = root / "data" / "d"
    assert (stat.S_IMODE(d.stat().st_mode), d.stat().st_uid, d.stat().st_mtime) == (0o2750, 7, 1_100_000_000)
    run = (d / "run").stat()
    assert (stat.S_IMODE(run.st_mode), run.st_uid, run.st_gid, run.st_mtime, run.st_nlink) == (0o4755, 5, 6, 1e9, 2)
    assert os.readlink(d / "ln") == "/etc/passwd" and os.lstat(d / "ln").st_uid == 9
    assert stat.S_ISFIFO((d / "pipe").stat().st_mode)


def test_extract_with_container_user_drops_set_id_bits(box):
    root, _, fd = box
    tarstream.extract(tar_of([member("s", data=b"x", mode=0o6755)]), fd, "/data", chown_to=(33, 44))
    s = (root / "data" / "s").stat()
    assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (33, 44, 0o755)


@pytest.mark.parametrize("members,reason", [
    ([member("../x", data=b"x")], "outside the destination"),
    ([member("a/../../x", data=b"x")], "outside the destination"),
    ([member("/../../../x", data=b"x")], "outside the destination"),
    ([member("h", tarfile.LNKTYPE, link="../../etc/passwd")], "hard link"),
    ([member("c", tarfile.CHRTYPE)], "device node"),
    ([member("dir", tarfile.LNKTYPE, link="sub")], "directory"),
])
def test_extract_refuses(box, members, reason):
    _, host, fd = box
    with pytest.raises(BadRequest) as exc:
        tarstream.extract(tar_of(members), fd, "/data")
    assert reason in exc.value.message
    assert sorted(os.listdir(host)) == ["secret"]


def test_truncated_member_leaves_no_partial_file(box):
    root, _, fd = box
    data = tar_of([member("big", data=b"y" * 100_000)]).getvalue()[:20_000]
    with pytest.raises(BadRequest, match="invalid tar archive"):
        tarstream.extract(io.BytesIO(data), fd, "/data")
    assert not (root / "data" / "big").exists()


def test_no_overwrite_dir_non_dir(box):
    _, _, fd = box
    with pytest.raises(BadRequest, match="cannot overwrite directory"):
        tarstream.extract(tar_of([member("sub", data=b"x")]), fd, "/data", no_overwrite_dir_non_dir=True)
    tarstream.extract(tar_of([member("sub", data=b"x")]), fd, "/data")  # allowed by default: replaced


NAMES = st.lists(st.sampled_from(["..", ".", "a", "abs", "up", "etc", "lnk", ""]), min_size=1, max_size=5).map("/".join)
TARGETS = st.sampled_from(["/", "..", "../..", "../../../..", "/etc", "abs", "/abs", "a", "."])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink"]), NAMES, TARGETS), max_size=6))
def test_nothing_lands_outside_the_root(box, plan):
    """Whatever the archive holds — `..`, absolute names, links to the host, links
    planted by earlier members — the host directory never gains an entry."""
    root, host, fd = box
    for target in ("abs", "up", "lnk"):  # links the archive's names walk through
        try:
            os.symlink(str(host) if target == "abs" else "../../../..", root / "data" / target)
        except FileExistsError:
            pass
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    members = []
    for kind, name, target in plan:
        link = str(host) if target == "abs" else (str(host) + "/x" if target == "/abs" else target)
        members.append(member(name, kinds[kind], data=b"pwned" if kind == "file" else b"", link=link))
    try:
        tarstream.extract(tar_of(members), fd, "/data")
    except BadRequest:
        pass
    assert sorted(os.listdir(host)) == ["secret"] and (host / "secret").read_text() == "host"
    assert root.parent == host.parent and sorted(os.listdir(root.parent)) == ["host", "root"]
