"""`cp CONTAINER:SRC DEST` unpacks on the client: nothing in the archive may reach outside DEST."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from shell.grammar import UsageError
from shell.transfer import unpack


def archive(*members: tuple[str, str, str | bytes]) -> io.BytesIO:
    """(name, kind, data or link target) → a tar stream."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size, info.mode = len(payload), 0o6777
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE}[kind]
            info.linkname = payload if kind in ("sym", "hard") else ""
            tar.addfile(info)
    buf.seek(0)
    return buf


def test_files_links_and_renames_land_inside(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack(archive(("d", "dir", ""), ("d/f", "file", b"hi"), ("d/l", "sym", "f"), ("d/h", "hard", "d/f"),
                   ("d/g", "file", b"")), str(dest), rename_to="copy")
    assert (dest / "copy/f").read_bytes() == b"hi" and os.readlink(dest / "copy/l") == "f"
    assert (dest / "copy/h").stat().st_ino == (dest / "copy/f").stat().st_ino
    assert stat.S_IMODE((dest / "copy/g").stat().st_mode) == 0o755  # no setuid/setgid/sticky, no g/o write


@pytest.mark.parametrize("members", [
    [("../evil", "file", b"x")],
    [("d/../../evil", "file", b"x")],
    [("d", "sym", "../outside"), ("d/evil", "file", b"x")],
    [("d", "sym", "/"), ("d/evil", "file", b"x")],  # an absolute link, followed on the host
    [("h", "hard", "../outside/secret")],
])
def test_nothing_lands_outside(tmp_path, members):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("s")
    with pytest.raises(UsageError, match="outside the destination"):
        unpack(archive(*members), str(dest))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "outside"]
    assert [p.name for p in outside.iterdir()] == ["secret"]


def test_a_leading_slash_is_below_the_destination(tmp_path):
    unpack(archive(("/etc-copy", "file", b"x")), str(tmp_path))
    assert (tmp_path / "etc-copy").read_bytes() == b"x"
