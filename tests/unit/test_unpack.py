"""`engine.fs.unpack`, the one unpacker for untrusted tars, driven directly.

A temporary directory stands for the destination root (a layer being built, or a
container root), a sibling directory for the host: a canary file and a canary directory
whose content, inode, link count and times must never change, whatever the tar holds.
Every case runs twice: with openat2 (RESOLVE_IN_ROOT) and with the component-by-component
walk that stands in for it on kernels without openat2.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import BadRequest
from engine.fs import inroot, unpack
from engine.images import archive_load, tarsplit


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "", mode: int = 0o644,
           uid: int = 0, gid: int = 0, mtime: int = 1_100_000_000, dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid, info.mtime = kind, link, mode, uid, gid, mtime
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tar_of(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@pytest.fixture(params=["openat2", "walk"])
def resolution(request, monkeypatch):
    """Both ways of resolving inside the root: openat2 where the kernel has it, the walk."""
    if request.param == "openat2":
        if not inroot.has_openat2():
            pytest.skip("this kernel has no openat2")
    else:
        monkeypatch.setattr(inroot, "_openat2_works", False)
    return request.param


class Box:
    """A destination root beside a 'host' directory holding the canaries."""

    def __init__(self, tmp: Path):
        self.root, self.host = tmp / "box" / "root", tmp / "box" / "host"
        self.root.mkdir(parents=True)
        (self.host / "dir").mkdir(parents=True)
        self.file = self.host / "host-file"
        self.file.write_bytes(b"host secret\n")
        for p in (self.file, self.host / "dir", self.host):
            os.utime(p, (1_000_000_000, 1_000_000_000))
        self.before = self.snapshot()
        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)

    def snapshot(self) -> dict:
        st_, d, h = self.file.stat(), (self.host / "dir").stat(), self.host.stat()
        return {"content": self.file.read_bytes(), "inode": st_.st_ino, "nlink": st_.st_nlink,
                "mtime": st_.st_mtime_ns, "dir": sorted(os.listdir(self.host / "dir")), "dir_mtime": d.st_mtime_ns,
                "host": sorted(os.listdir(self.host)), "host_mtime": h.st_mtime_ns,
                "xattrs": os.listxattr(self.host / "dir"), "tmp": sorted(os.listdir(self.root.parent))}

    def unchanged(self) -> None:
        assert self.snapshot() == self.before

    def rel(self, path: Path) -> str:
        """A host path as a name inside the root (absolute names are confined there)."""
        return str(path).lstrip("/")

    def unpack(self, data: bytes, policy: unpack.Policy = unpack.LAYER, dest: str = "/", **kw) -> unpack.Unpacked:
        return unpack.unpack(io.BufferedReader(io.BytesIO(data)), self.fd, dest, policy, **kw)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def box(tmp_path, resolution):
    b = Box(tmp_path)
    yield b
    b.close()
    b.unchanged()  # whatever the test did, the host never changed


COPY = unpack.copy_policy()


# --- the stream ------------------------------------------------------------------------


def test_a_plain_layer_unpacks_with_metadata(box):
    d = box.unpack(tar_of([
        member("./", tarfile.DIRTYPE, mode=0o755, mtime=1_300_000_000),
        member("bin", tarfile.DIRTYPE, mode=0o2750, uid=7, gid=8, mtime=1_200_000_000),
        member("bin/su", data=b"#!", mode=0o4755, uid=5, gid=6),
        member("bin/sh", tarfile.SYMTYPE, link="/bin/busybox", uid=9),
        member("bin/hard", tarfile.LNKTYPE, link="/bin/su"),
        member("run/pipe", tarfile.FIFOTYPE, mode=0o640),
    ]), digest=True)
    assert d.digest.startswith("sha256:") and d.size > 0
    su = (box.root / "bin/su").stat()
    assert (stat.S_IMODE(su.st_mode), su.st_uid, su.st_gid, su.st_mtime, su.st_nlink) == (0o4755, 5, 6, 1.1e9, 2)
    b = (box.root / "bin").stat()
    assert (stat.S_IMODE(b.st_mode), b.st_uid, b.st_mtime) == (0o2750, 7, 1.2e9)  # set after its entries
    assert os.readlink(box.root / "bin/sh") == "/bin/busybox" and os.lstat(box.root / "bin/sh").st_uid == 9
    assert os.lstat(box.root / "bin/sh").st_mtime == 1.1e9
    assert stat.S_ISFIFO((box.root / "run/pipe").stat().st_mode)
    assert box.root.stat().st_mtime == 1.3e9  # a layer's `.` sets its root


def test_digest_and_size_are_of_the_plain_stream(box, tmp_path):
    data = tar_of([member("a.txt", data=b"hello")]) + b"\0" * 4096  # trailing blocks count too
    plain = box.unpack(data, digest=True)
    (box.root / "a.txt").unlink()
    zipped = box.unpack(gzip.compress(data), digest=True)
    assert plain == zipped == unpack.Unpacked("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize("case,reason", [
    ("empty", "the archive is empty"),
    ("garbage", "not a tar archive"),
    ("cut in a member", "unexpected end of data at byte .*truncated"),
    ("cut at a header", "unexpected end of data at byte 1536, where the end-of-archive block should be"),
    ("cut in a header", "unexpected end of data in a header"),
    ("bad checksum", "bad header at byte 1536 .*corrupt"),
    ("cut gzip", "invalid tar archive: "),
    ("huge extended header", "an extended header of"),
])
@pytest.mark.parametrize("policy", [unpack.LAYER, COPY], ids=["layer", "copy"])
def test_broken_streams_are_refused(box, case, reason, policy):
    """tarfile ends quietly at a bad or missing header; the unpacker says the archive is broken."""
    good = tar_of([member("a", data=b"x" * 600), member("b", data=b"y" * 10)])
    data = {
        "empty": b"",
        "garbage": b"not a tar at all" * 64,
        "cut in a member": good[:1024 + 100],
        "cut at a header": good[:1536],  # exactly after the first member: no end blocks
        "cut in a header": good[:1536 + 200],
        "bad checksum": good[:1536] + b"\x07" + good[1537:],
        "cut gzip": gzip.compress(good)[:-30],
        "huge extended header": b"",
    }[case]
    if case == "huge extended header":
        info = tarfile.TarInfo("././@LongLink")
        info.type, info.size = tarfile.GNUTYPE_LONGNAME, 2 << 20
        data = info.tobuf(tarfile.GNU_FORMAT) + b"a" * (2 << 20)
    with pytest.raises(BadRequest, match=reason) as exc:
        box.unpack(data, policy)
    assert exc.value.message.startswith("invalid tar archive")
    assert not (box.root / "a").exists() or (box.root / "a").read_bytes() == b"x" * 600  # never a half file


def test_a_lone_end_block_is_enough(box):
    data = tar_of([member("a", data=b"x")])
    box.unpack(data[:1024 + 512])  # header, data, one zero block
    assert (box.root / "a").read_bytes() == b"x"


def test_recorder_gives_the_tar_back(box, tmp_path):
    members = [member("d", tarfile.DIRTYPE), member("d/" + "n" * 150, data=b"long name" * 100),
               member("d/l", tarfile.SYMTYPE, link="x" * 120), member("d/.wh.gone"),
               member("d/h", tarfile.LNKTYPE, link="d/" + "n" * 150), member("e", data=b"")]
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        if fmt == tarfile.USTAR_FORMAT:
            members = [m for m in members if len(m[0].name) < 100 and len(m[0].linkname) < 100]
        data = tar_of(members, fmt) + b"trailing bytes after the end"
        shutil.rmtree(box.root)
        box.root.mkdir()
        os.close(box.fd)
        box.fd = os.open(box.root, os.O_RDONLY | os.O_DIRECTORY)
        split = tmp_path / "split.gz"
        with gzip.open(split, "wb") as out:
            done = box.unpack(data, recorder=tarsplit.Recorder(out), digest=True)
        assert done.size == len(data)
        assert b"".join(tarsplit.rebuild(split, box.root)) == data


def test_sparse_members(box, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"data in the middle")
        f.truncate(3 << 20)
    out = tmp_path / "sparse.tar"
    subprocess.run(["tar", "-S", "--format=gnu", "-C", str(src), "-cf", str(out), "sparse"], check=True)
    box.unpack(out.read_bytes())
    got = box.root / "sparse"
    assert got.read_bytes() == (src / "sparse").read_bytes()
    assert got.stat().st_blocks * 512 < 1 << 20  # the holes stayed holes


# --- where members land ------------------------------------------------------------------

def escape_cases(host: Path, root_len: int) -> list[tuple[str, list, str, str]]:
    """Every known tar escape as (name, members, what the layer rules do, what the copy
    rules do). "refused:<reason>" is a 400 matching <reason>; "confined:<path>" means it
    was done, but below the root, at <path>. `host` is the canary directory (with `dir`
    and `host-file` in it); `root_len` the length of the root's path on the host (the
    PATH_MAX chain is sized to overflow it, as in CVE-2025-4517)."""
    canary, dir_, file_ = str(host).lstrip("/"), str(host / "dir").lstrip("/"), str(host / "host-file")
    steps, component = "abcdefghijklmnop", "d" * ((4096 - root_len - 1) // 17)
    chain = [member("/".join([component] * i + [component]), tarfile.DIRTYPE) for i in range(16)]
    chain += [member("/".join([component] * i + [s]), tarfile.SYMTYPE, link=component) for i, s in enumerate(steps)]
    linkpath = "/".join(steps) + "/" + "l" * 254
    chain.append(member(linkpath, tarfile.SYMTYPE, link="/".join([".."] * 16)))
    # lexically inside (17 names, then 17 `..`), on the host 17 levels above the root, then the canary
    chain.append(member("escape", tarfile.SYMTYPE, link=linkpath + "/.." * 17 + "/" + dir_))
    return [
        ("dotdot", [member("../" * 12 + dir_ + "/pwned", data=b"x")], "refused:outside", "refused:outside"),
        ("absolute-dotdot", [member("/" + "../" * 12 + dir_ + "/pwned", data=b"x")], "refused:outside",
         "refused:outside"),
        ("inner-dotdot", [member("a/../b", data=b"x")], "refused:'..' component", "refused:'..' component"),
        ("absolute-name", [member("/" + dir_ + "/pwned", data=b"x")], f"confined:{dir_}/pwned", f"confined:{dir_}/pwned"),
        ("absolute-symlink", [member("lnk", tarfile.SYMTYPE, link="/" + dir_), member("lnk/pwned", data=b"x")],
         f"confined:{dir_}/pwned", f"confined:{dir_}/pwned"),
        ("relative-symlink", [member("up", tarfile.SYMTYPE, link="../" * 12), member(f"up/{dir_}/pwned", data=b"x")],
         f"confined:{dir_}/pwned", f"confined:{dir_}/pwned"),  # kept, as dockerd's chrooted unpack keeps it
        ("symlink-chain", [member("lnk", tarfile.SYMTYPE, link="."),
                           member("esc", tarfile.SYMTYPE, link="lnk/" * 30 + "../" * 30 + dir_),
                           member("esc/pwned", data=b"x")], f"confined:{dir_}/pwned", f"confined:{dir_}/pwned"),
        ("symlink-rewrite", [member("lnk", tarfile.SYMTYPE, link=file_), member("lnk", data=b"pwned")],
         "confined:lnk", "confined:lnk"),
        ("pathmax-symlink", chain + [member("escape/pwned", data=b"x")], f"confined:{dir_}/pwned",
         f"confined:{dir_}/pwned"),
        ("pathmax-hardlink", chain + [member("flaglink", tarfile.LNKTYPE, link="escape/../host-file"),
                                      member("flaglink", data=b"overwrite")],
         "refused:'..' component", "refused:'..' component"),
        ("pathmax-hardlink-through", chain + [member("e2", tarfile.SYMTYPE, link=linkpath + "/.." * 17 + "/" + canary),
                                              member("flaglink", tarfile.LNKTYPE, link="e2/host-file"),
                                              member("flaglink", data=b"overwrite")],
         "refused:hard link 'flaglink' does not point to a file already in the layer",
         "refused:hard link 'flaglink' does not point to a file already in the destination"),
        ("hardlink-absolute", [member("h", tarfile.LNKTYPE, link=file_), member("h", data=b"pwned")],
         "refused:hard link 'h' does not point", "refused:hard link 'h' does not point"),
        ("hardlink-absolute-shadowed", [member(canary + "/host-file", data=b"the layer's own"),
                                        member("h", tarfile.LNKTYPE, link=file_), member("h", data=b"pwned")],
         "confined:h", "confined:h"),
        ("hardlink-dotdot", [member("h", tarfile.LNKTYPE, link="../" * 12 + canary + "/host-file")],
         "refused:hard link 'h' to .* points outside", "refused:hard link 'h' to .* points outside"),
        ("hardlink-via-symlink", [member("lnk", tarfile.SYMTYPE, link="/" + canary),
                                  member("h", tarfile.LNKTYPE, link="lnk/host-file"), member("h", data=b"pwned")],
         "refused:hard link 'h' does not point", "refused:hard link 'h' does not point"),
        ("char-device", [member("dev/mem", tarfile.CHRTYPE, dev=(1, 1))], "refused:device node", "refused:device node"),
        ("block-device", [member("dev/sda", tarfile.BLKTYPE, dev=(8, 0))], "refused:device node", "refused:device node"),
        ("whiteout-0-0-device", [member("dev/null", tarfile.CHRTYPE)], "refused:device node", "refused:device node"),
        ("whiteout-dotdot", [member(".wh..."), member("x/.wh..")], "refused:bad whiteout", "confined:.wh..."),
        ("whiteout-dotdot-name", [member("x/.wh.../../" + dir_)], "refused:'..' component", "refused:'..' component"),
        ("whiteout-under-symlink", [member("lnk", tarfile.SYMTYPE, link="/" + canary), member("lnk/.wh.host-file")],
         f"confined:{canary}/host-file", f"confined:{canary}/.wh.host-file"),
        ("opaque-under-symlink", [member("lnk", tarfile.SYMTYPE, link="/" + dir_), member("lnk/.wh..wh..opq")],
         f"confined:{dir_}", f"confined:{dir_}/.wh..wh..opq"),
    ]


CASE_NAMES = [
    "dotdot", "absolute-dotdot", "inner-dotdot", "absolute-name", "absolute-symlink", "relative-symlink",
    "symlink-chain", "symlink-rewrite", "pathmax-symlink", "pathmax-hardlink", "pathmax-hardlink-through",
    "hardlink-absolute", "hardlink-absolute-shadowed", "hardlink-dotdot", "hardlink-via-symlink", "char-device", "block-device",
    "whiteout-0-0-device", "whiteout-dotdot", "whiteout-dotdot-name", "whiteout-under-symlink", "opaque-under-symlink"]


@pytest.mark.parametrize("rules", ["layer", "copy"])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_escape_classes(box, case, rules):
    """Each known tar escape, under the layer rules and the copy rules: refused with a
    400 naming the member, or confined below the root (where Docker confines it too)."""
    found = {c[0]: c for c in escape_cases(box.host, len(str(box.root)))}[case]
    _, members, layer, copy = found
    expected = layer if rules == "layer" else copy
    policy = unpack.LAYER if rules == "layer" else COPY
    outcome, _, detail = expected.partition(":")
    if outcome == "refused":
        with pytest.raises(BadRequest, match=detail) as exc:
            box.unpack(tar_of(members), policy)
        assert exc.value.message.startswith(policy.refused)
    else:
        box.unpack(tar_of(members), policy)
        assert os.path.lexists(box.root / detail), sorted(os.listdir(box.root))
        if case == "whiteout-under-symlink" and rules == "layer":
            assert (box.root / detail).lstat().st_rdev == 0 and stat.S_ISCHR((box.root / detail).lstat().st_mode)
        if case == "opaque-under-symlink" and rules == "layer":
            assert os.getxattr(box.root / detail, "trusted.overlay.opaque") == b"y"
        if case == "symlink-rewrite":
            assert (box.root / "lnk").read_bytes() == b"pwned" and not (box.root / "lnk").is_symlink()
        if case == "hardlink-absolute-shadowed":  # linked to the root's own copy, then replaced
            assert (box.root / "h").read_bytes() == b"pwned"
            assert (box.root / box.rel(box.file)).read_bytes() == b"the layer's own"


def test_escape_table_is_complete(tmp_path):
    b = Box(tmp_path)
    assert [c[0] for c in escape_cases(b.host, 100)] == CASE_NAMES
    b.close()


def test_dest_below_the_root(box):
    """Copy rules: names and hard links are relative to the extraction directory, and
    links still resolve from the container root."""
    (box.root / "data").mkdir()
    (box.root / "etc").mkdir()
    (box.root / "etc/passwd").write_text("root\n")
    box.unpack(tar_of([member("f", data=b"1"), member("h", tarfile.LNKTYPE, link="/f"),
                       member("abs", tarfile.SYMTYPE, link="/etc"), member("abs/new", data=b"2")]), COPY, "/data")
    assert (box.root / "data/h").stat().st_ino == (box.root / "data/f").stat().st_ino
    assert (box.root / "etc/new").read_bytes() == b"2"
    with pytest.raises(BadRequest, match="hard link 'x' does not point"):
        box.unpack(tar_of([member("x", tarfile.LNKTYPE, link="etc/passwd")]), COPY, "/data")


# --- hard links, replacing, whiteouts ---------------------------------------------------


@pytest.mark.parametrize("members,reason", [
    ([member("f", data=b"x"), member("f", tarfile.LNKTYPE, link="f")], "does not point to a file already in the layer: it names itself"),
    ([member("d", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, link="d")], "it points to a directory"),
    ([member("h", tarfile.LNKTYPE, link="missing")], "does not point to a file already in the layer"),
    ([member("h", tarfile.LNKTYPE, link="/")], "does not point to a file already in the layer"),
    ([member("d", tarfile.DIRTYPE), member("d", tarfile.SYMTYPE, link="x")], "symlink 'd' would replace a directory"),
    ([member("d", tarfile.DIRTYPE), member("d", data=b"x")], "file 'd' would replace a directory"),
    ([member("d", tarfile.DIRTYPE), member(".wh.d")], "whiteout '.wh.d' would replace a directory"),
    ([member("f", data=b"x"), member("f/g", data=b"y")], "member 'f/g': Not a directory"),
    ([member("x", b"V")], "unsupported type"),
])
def test_layer_refusals(box, members, reason):
    with pytest.raises(BadRequest, match=reason) as exc:
        box.unpack(tar_of(members))
    assert exc.value.message.startswith("invalid layer: ")


def test_a_later_member_never_writes_through_a_link(box):
    box.unpack(tar_of([member("f", data=b"original"), member("h", tarfile.LNKTYPE, link="f"),
                       member("h", data=b"new"), member("s", tarfile.SYMTYPE, link="f"), member("s", data=b"also new")]))
    assert (box.root / "f").read_bytes() == b"original" and (box.root / "f").stat().st_nlink == 1
    assert (box.root / "h").read_bytes() == b"new" and (box.root / "s").read_bytes() == b"also new"


def test_copy_rules_replace_and_merge(box):
    box.unpack(tar_of([member("d", tarfile.DIRTYPE), member("d/f", data=b"x"), member("d", data=b"file now"),
                       member("e", data=b"x"), member("e", tarfile.DIRTYPE)]), COPY)
    assert (box.root / "d").read_bytes() == b"file now" and (box.root / "e").is_dir()
    strict = unpack.copy_policy(no_overwrite_dir_non_dir=True)
    with pytest.raises(BadRequest, match="cannot overwrite non-directory '/d' with directory 'd'"):
        box.unpack(tar_of([member("d", tarfile.DIRTYPE)]), strict)
    with pytest.raises(BadRequest, match="cannot overwrite directory '/e' with non-directory 'e'"):
        box.unpack(tar_of([member("e", data=b"x")]), strict)


def test_copy_with_a_user_drops_set_id_bits(box):
    box.unpack(tar_of([member("s", data=b"x", mode=0o6755, uid=1)]), unpack.copy_policy(chown_to=(33, 44)))
    s = (box.root / "s").stat()
    assert (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)) == (33, 44, 0o755)


def test_whiteouts(box):
    box.unpack(tar_of([member("etc", tarfile.DIRTYPE), member("etc/passwd", data=b"x"), member("etc/.wh.passwd"),
                       member("var/.wh..wh..opq"), member(".wh..wh.plnk", tarfile.DIRTYPE),
                       member(".wh..wh.plnk/123", data=b"aufs")]))
    wh = (box.root / "etc/passwd").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(box.root / "var", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(box.root)) == ["etc", "var"]  # AUFS metadata skipped
    box.unpack(tar_of([member(".wh.x")]), COPY)  # no whiteouts in a copy: a file
    assert (box.root / ".wh.x").is_file()


def test_replacing_a_symlink_forgets_where_it_led(box):
    """Directories found through a symlink are not reused once the symlink is gone."""
    box.unpack(tar_of([member("real", tarfile.DIRTYPE), member("l", tarfile.SYMTYPE, link="real"),
                       member("l/a", data=b"1"), member("l", tarfile.DIRTYPE), member("l/b", data=b"2")]), COPY)
    assert sorted(os.listdir(box.root / "real")) == ["a"] and sorted(os.listdir(box.root / "l")) == ["b"]


def test_many_directories(box):
    """More directories than descriptors kept: the oldest are closed and found again."""
    members = [member(f"d{i}/f", data=b"x") for i in range(unpack._DIRS_KEPT + 50)]
    members += [member("d0/g", data=b"y"), member("d0", tarfile.DIRTYPE, mtime=1_000)]
    open_before = sorted(os.listdir("/proc/self/fd"))
    box.unpack(tar_of(members))
    assert (box.root / "d0/g").read_bytes() == b"y" and (box.root / "d0").stat().st_mtime == 1_000
    assert sorted(os.listdir("/proc/self/fd")) == open_before  # every descriptor closed again


NAMES = st.lists(st.sampled_from(["..", ".", "a", "up", "abs", "HOST", "", ".wh.a", ".wh..wh..opq"]),
                 min_size=1, max_size=5).map("/".join)
TARGETS = st.sampled_from(["/", "..", "../../..", "/HOST", "HOST/host-file", "/HOST/host-file", "a", "up", "."])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink"]), NAMES, TARGETS), min_size=1,
                max_size=6), st.sampled_from(["layer", "copy"]))
def test_random_archives_never_touch_the_host(box, plan, rules):
    host = str(box.host).lstrip("/")
    kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    members = [member(name.replace("HOST", host), kinds[kind], data=b"pwned" if kind == "file" else b"",
                      link=target.replace("HOST", host)) for kind, name, target in plan]
    try:
        box.unpack(tar_of(members), unpack.LAYER if rules == "layer" else COPY)
    except BadRequest:
        pass
    box.unchanged()


@pytest.mark.parametrize("later", [member("f", tarfile.FIFOTYPE), member("f", tarfile.DIRTYPE),
                                   member("f", tarfile.SYMTYPE, link="/etc/passwd"), member(".wh.f")],
                         ids=["fifo", "directory", "symlink", "whiteout"])
def test_a_file_replaced_later_keeps_the_original_tar(tmp_path, resolution, later):
    """`save` gives back the tar byte for byte: when a later member replaced a file whose
    content was recorded by reference, the store keeps the original tar instead (and
    reading the record back never blocks on a FIFO or follows a link)."""
    from engine.images.store import ORIGINAL, ImageStore
    data = tar_of([member("f", data=b"content"), later])
    store = ImageStore(tmp_path / "images")
    chain, diff_id = store.add_layer(lambda: io.BufferedReader(io.BytesIO(data)), "")
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (store.layers / chain[7:] / ORIGINAL).exists()
    assert b"".join(store.layer_tar(chain)[1]) == data


# --- archives read in place (docker load) ------------------------------------------------


def test_an_archive_index_is_read_strictly(tmp_path):
    good = tar_of([member("manifest.json", data=b"[]"), member("big", data=b"z" * 5000)])
    for data, reason in [(good[:3000], "unexpected end of data"), (b"\x01" + good[1:], "not a tar"),
                         (good[:1024] + b"\x01" + good[1025:], "bad header at byte 1024"), (b"", "empty")]:
        path = tmp_path / "a.tar"
        path.write_bytes(data)
        with pytest.raises(BadRequest, match=reason):
            archive_load.Archive(path)
    path = tmp_path / "a.tar"
    path.write_bytes(good)
    archive = archive_load.Archive(path)
    assert archive.read("manifest.json", "manifest") == b"[]"
    assert archive.open(archive.members["big"]).read() == b"z" * 5000
    archive.close()
