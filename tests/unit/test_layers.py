"""Applying untrusted layer tars: nothing is ever written outside the target."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import BadRequest
from engine.images import tarsplit
from engine.images.layers import apply_tar


def make_tar(members: list[tarfile.TarInfo], gz: bool = False) -> io.BufferedReader:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return io.BufferedReader(io.BytesIO(buf.getvalue()))


def entry(name: str, kind=tarfile.REGTYPE, size: int = 1, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode = kind, size if kind == tarfile.REGTYPE else 0, link, mode
    return info


def test_files_modes_links_and_diff_id(tmp_path):
    raw = make_tar([entry("bin", tarfile.DIRTYPE, mode=0o755), entry("bin/su", mode=0o4755),
                    entry("bin/sh", tarfile.SYMTYPE, link="/bin/busybox"), entry("etc/hard", tarfile.REGTYPE, 3),
                    entry("etc/hard2", tarfile.LNKTYPE, link="etc/hard")])
    done = apply_tar(raw, str(tmp_path))
    assert done.digest.startswith("sha256:") and done.size > 0
    assert stat.S_IMODE(os.stat(tmp_path / "bin/su").st_mode) == 0o4755  # setuid kept for the rootfs
    assert os.readlink(tmp_path / "bin/sh") == "/bin/busybox"  # absolute symlinks are fine in a rootfs
    assert os.stat(tmp_path / "etc/hard").st_ino == os.stat(tmp_path / "etc/hard2").st_ino


def test_gzip_layer_has_the_plain_diff_id(tmp_path):
    members = [entry("a.txt", size=5)]
    plain = apply_tar(make_tar(members), str(tmp_path / "p"))
    zipped = apply_tar(make_tar(members, gz=True), str(tmp_path / "z"))
    assert plain.digest == zipped.digest


def test_whiteouts_become_overlay_whiteouts(tmp_path):
    apply_tar(make_tar([entry("etc", tarfile.DIRTYPE, mode=0o755), entry("etc/.wh.passwd", size=0),
                        entry("var", tarfile.DIRTYPE, mode=0o755), entry("var/.wh..wh..opq", size=0)]), str(tmp_path))
    st_ = os.stat(tmp_path / "etc/passwd")
    assert stat.S_ISCHR(st_.st_mode) and st_.st_rdev == 0
    assert os.getxattr(tmp_path / "var", "trusted.overlay.opaque") == b"y"


def test_an_absolute_symlink_resolves_inside_the_layer(tmp_path):
    """As dockerd's chrooted unpack: `link -> /` leads to the layer's own root."""
    apply_tar(make_tar([entry("link", tarfile.SYMTYPE, link="/"), entry("etc", tarfile.DIRTYPE, mode=0o755),
                        entry("link/etc/evil", size=4)]), str(tmp_path / "layer"))
    assert (tmp_path / "layer/etc/evil").stat().st_size == 4
    assert not (tmp_path / "etc").exists()


def test_a_climbing_relative_symlink_is_kept_and_resolves_inside(tmp_path):
    """As dockerd's chrooted unpack: `link -> ../..` is kept, and a write through it stays in the layer."""
    layer = tmp_path / "layer"
    apply_tar(make_tar([entry("link", tarfile.SYMTYPE, link="../.."), entry("link/evil", size=4)]), str(layer))
    assert os.readlink(layer / "link") == "../.." and (layer / "evil").stat().st_size == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]


@pytest.mark.parametrize("members,reason", [
    ([entry("../evil")], "outside"),
    ([entry("a/../../evil")], "outside"),
    ([entry("hard", tarfile.LNKTYPE, link="../../etc/passwd")], "outside"),
    ([entry("dev/sda", tarfile.BLKTYPE)], "device node"),
    ([entry("x/.wh.../../evil", size=0)], "invalid layer"),
])
def test_escapes_are_refused(tmp_path, members, reason):
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(BadRequest, match=reason):
        apply_tar(make_tar(members), str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_truncated_tar_is_refused(tmp_path):
    data = make_tar([entry("big", size=100_000)]).read()[:50_000]
    with pytest.raises(BadRequest, match="invalid tar"):
        apply_tar(io.BufferedReader(io.BytesIO(data)), str(tmp_path))


segment = st.sampled_from(["..", ".", "a", "b", "", "/", "etc", ".wh.a", "c/.."])


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(segment, min_size=1, max_size=5).map("/".join), min_size=1, max_size=4),
       st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]))
def test_no_path_writes_outside(tmp_path, names, kind):
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        target = Path(scratch) / "target"
        target.mkdir()
        members = [entry(n or "x", kind, link="../../../outside" if kind == tarfile.SYMTYPE else "") for n in names]
        members.append(entry(names[0] + "/after" if names[0] else "after"))
        try:
            apply_tar(make_tar(members), str(target))
        except (BadRequest, OSError):
            pass
        assert sorted(p.name for p in Path(scratch).iterdir()) == ["target"]


# --- when the tar-split record needs checking --------------------------------------------

@pytest.mark.parametrize("members,in_place", [
    ([entry("a", size=3), entry("b", tarfile.LNKTYPE, link="a"), entry("l", tarfile.SYMTYPE, link="a")], True),
    ([entry("d", tarfile.DIRTYPE), entry("d/f", size=2), entry("d", tarfile.DIRTYPE)], True),  # a directory again
    ([entry("a", size=3), entry("a", size=2)], False),  # the same path twice
    ([entry("a", size=3), entry("b", tarfile.LNKTYPE, link="a"), entry("b", size=5)], False),
    ([entry("d", tarfile.DIRTYPE), entry("l", tarfile.SYMTYPE, link="d"), entry("l/f", size=2)], False),
    ([entry("d", tarfile.DIRTYPE), entry("l", tarfile.SYMTYPE, link="/d"), entry("l/e/f", size=2)], False),
    ([entry("a", size=3), entry(".wh.a", size=0)], False),  # a whiteout over a file of its own layer
])
def test_the_unpacker_tells_when_a_file_may_not_be_where_it_was_recorded(tmp_path, members, in_place):
    assert apply_tar(make_tar(members), str(tmp_path / "layer")).in_place is in_place


# Few names, so that members meet: files at the top, in a directory, below a name that
# is a symlink in some tars; hard links between files; whiteouts.
_files = st.sampled_from(["a", "b", "d/a", "d/b", "l/a", "l/d/b", ".wh.a", "d/.wh.b"])
_kinds = {
    tarfile.REGTYPE: (_files, st.just("")),
    tarfile.DIRTYPE: (st.sampled_from(["d", "l", "l/d"]), st.just("")),
    tarfile.SYMTYPE: (st.sampled_from(["l", "a", "l/d"]), st.sampled_from(["d", "/d", ".", "a", "d/a"])),
    tarfile.LNKTYPE: (_files, _files),
}


@st.composite
def tars(draw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for _ in range(draw(st.integers(1, 10))):
            kind = draw(st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                         tarfile.LNKTYPE]))
            names, targets = _kinds[kind]
            info = tarfile.TarInfo(draw(names))
            data = draw(st.binary(max_size=64)) if kind == tarfile.REGTYPE else b""
            info.type, info.size, info.linkname = kind, len(data), draw(targets)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=tars())
def test_a_layer_said_in_place_is_rebuilt_from_its_record(tmp_path, data):
    """The image store trusts `in_place` instead of reading the layer back: it must never
    be said of a layer whose record does not give the tar back."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        split = Path(scratch) / "split"
        with gzip.open(split, "wb") as out:  # as the image store keeps it
            try:
                done = apply_tar(io.BufferedReader(io.BytesIO(data)), f"{scratch}/layer", tarsplit.Recorder(out))
            except BadRequest:
                return  # refused: nothing is stored
        if done.in_place:
            assert b"".join(tarsplit.rebuild(split, Path(scratch) / "layer")) == data


def test_a_name_that_is_no_utf8_is_stored_and_given_back(tmp_path):
    """Docker's layers may name files with any bytes (`caf\\xe9`): unpacked under those
    bytes, and the tar given back byte for byte from the record."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("dir/caf\udce9.txt")  # the bytes b"caf\xe9.txt", as Python names them
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    data = buf.getvalue()
    split = tmp_path / "split"
    with gzip.open(split, "wb") as out:
        apply_tar(io.BufferedReader(io.BytesIO(data)), str(tmp_path / "layer"), tarsplit.Recorder(out))
    assert (tmp_path / "layer" / "dir" / "caf\udce9.txt").read_bytes() == b"hi"
    assert os.listdir(os.fsencode(tmp_path / "layer" / "dir")) == [b"caf\xe9.txt"]
    assert b"".join(tarsplit.rebuild(split, tmp_path / "layer")) == data
