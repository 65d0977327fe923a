"""Every known tar escape, through the real daemon: `import`, `load` and `cp` (PUT archive).

The cases are the unpacker's own table (`tests.unit.test_unpack.escape_cases`): `..`,
absolute names, absolute and relative symlinks, symlink chains that escape only once
resolved, the PATH_MAX symlink chain of CVE-2025-4517, hard links to absolute host paths
then rewritten through, devices, whiteouts with `..` or under symlinks; and here also
truncated and corrupt archives. Each goes through the three entry points:

* import: `POST /images/create?fromSrc=-` with the tar as the rootfs;
* load: `POST /images/load` of a docker-save archive whose one layer is the tar;
* cp: `PUT /containers/{id}/archive?path=/` into a created container.

Their targets are a canary directory and a canary host file under a temporary
directory; after every request the file's content, inode, link count and mtime, and the
directories' entries, times and xattrs must be as they were. Each test's id ends in what
berth does: `refused` (a 400 naming the reason; for import and load nothing stored: no
layer, no scratch directory, no config, no tag) or `confined` (done, as Docker does it,
but below the root: the file is then found inside the layer or the container).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.test_container_fs import put_tar
from tests.api import Reply
from tests.test_image_archive import docker_archive, image_config, load, load_refusal, sha, state
from tests.test_images import import_
from tests.unit.test_unpack import escape_cases, member, tar_of

ENTRIES = ["import", "load", "cp"]
TABLE = {name: (layer, copy) for name, _, layer, copy in escape_cases(Path("/canary"), 100)}


def outcome(case: str, entry: str) -> str:
    layer, copy = TABLE[case]
    return (copy if entry == "cp" else layer).partition(":")[0]


class Canary:
    """A host directory with a directory and a file in it that no archive may touch."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="berth-canary-"))
        self.dir, self.file = self.path / "dir", self.path / "host-file"
        self.dir.mkdir()
        self.file.write_bytes(b"host secret\n")
        for p in (self.file, self.dir, self.path):
            os.utime(p, (1_000_000_000, 1_000_000_000))

    def snapshot(self) -> dict:
        f, d, top = self.file.stat(), self.dir.stat(), self.path.stat()
        return {"content": self.file.read_bytes(), "inode": f.st_ino, "nlink": f.st_nlink, "mtime": f.st_mtime_ns,
                "dir": sorted(os.listdir(self.dir)), "dir_mtime": d.st_mtime_ns, "dir_xattrs": os.listxattr(self.dir),
                "top": sorted(os.listdir(self.path)), "top_mtime": top.st_mtime_ns}


@pytest.fixture(scope="module")
def canary():
    c = Canary()
    yield c
    shutil.rmtree(c.path, ignore_errors=True)


@pytest.fixture
def target(api):
    """A created container for cp, removed afterwards."""
    cid = api.create(["true"])
    yield cid
    api.remove(cid)


def send(api, entry: str, data: bytes, tag: str, cid: str):
    if entry == "import":
        return import_(api, data, repo=tag)
    if entry == "load":  # a refused load is a 200 with `errorDetail`: read here as the others' 400
        reply = load(api, docker_archive([([data], [tag])]), quiet="1")
        failed = b'"errorDetail"' in reply.body
        return Reply(400, reply.headers, json.dumps({"message": load_refusal(reply)}).encode()) if failed else reply
    return put_tar(api, cid, "/", data)


def found_inside(api, daemon, entry: str, layer: bytes, cid: str, path: str) -> bool:
    """Whether `path` (relative to the root) exists in the stored layer, or in the container."""
    if entry == "cp":
        return api.request("HEAD", f"/containers/{cid}/archive", query={"path": "/" + path}).status == 200
    return os.path.lexists(daemon.root / "images" / "layers" / sha(layer)[7:] / "diff" / path)


@pytest.mark.parametrize("case,entry", [pytest.param(case, entry, id=f"{case}-{entry}-{outcome(case, entry)}")
                                        for case in TABLE for entry in ENTRIES])
def test_escape(api, daemon, canary, target, case, entry):
    """See the module docstring; the reasons and places are in `escape_cases`."""
    _, members, layer_rule, copy_rule = {c[0]: c for c in escape_cases(canary.path, len(str(daemon.root)) + 40)}[case]
    expected, _, detail = (copy_rule if entry == "cp" else layer_rule).partition(":")
    data = tar_of(members)
    tag = f"escape-{case}:1"
    before, stored = canary.snapshot(), state(daemon.root)
    try:
        reply = send(api, entry, data, tag, target)
        assert canary.snapshot() == before
        if expected == "refused":
            assert reply.status == 400, (reply.status, reply.body)
            assert re.search(detail, reply.message), reply.message
            if entry != "cp":
                assert state(daemon.root) == stored  # nothing half-stored
        else:
            assert reply.status == 200, reply.body
            assert found_inside(api, daemon, entry, data, target, detail)
    finally:
        if entry != "cp":
            api.delete(f"/images/{tag}", force=1)
    assert canary.snapshot() == before


# --- broken archives -------------------------------------------------------------------

GOOD = tar_of([member("a", data=b"x" * 600), member("big", data=b"y" * 300_000), member("c", data=b"z")])
# (archive, reason, a file cp must not leave behind); "big" is at 1536, its data at 2048
BROKEN = {
    "truncated-in-a-member": (GOOD[:100_000], "unexpected end of data at byte 100000: the archive is truncated",
                              "/big"),
    "truncated-at-a-member": (GOOD[:2048 + 300_032], "at byte 302080, where the end-of-archive block should be", None),
    "corrupt-header": (GOOD[:1536] + b"\x07" + GOOD[1537:], "bad header at byte 1536 .*corrupt", "/big"),
}


@pytest.mark.parametrize("case,entry", [pytest.param(c, e, id=f"{c}-{e}-refused") for c in BROKEN for e in ENTRIES])
def test_broken_archive(api, daemon, canary, target, case, entry):
    """tarfile stops quietly at a bad or missing header (a cut-off layer was imported up to
    the cut); berth refuses the archive and keeps nothing of it: no layer for import and
    load, no partial file for cp (whose earlier members stay, as with Docker)."""
    data, reason, absent = BROKEN[case]
    before, stored = canary.snapshot(), state(daemon.root)
    reply = send(api, entry, data, f"broken-{case}:1", target)
    assert reply.status == 400 and re.search(reason, reply.message), (reply.status, reply.body)
    assert canary.snapshot() == before
    if entry != "cp":
        assert state(daemon.root) == stored
    elif absent:
        assert api.request("HEAD", f"/containers/{target}/archive", query={"path": absent}).status == 404


@pytest.mark.parametrize("case", ["truncated", "corrupt-header", "no-end-block"])
def test_broken_outer_archive_is_refused(api, daemon, case):
    """docker load: the outer archive's index is read by the same strict reader."""
    good = docker_archive([([GOOD], ["outer:1"])])
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        layer = tar.getmember(f"{sha(GOOD)[7:]}/layer.tar")
    end = -(-len(good.rstrip(b"\0")) // 512) * 512  # the last member's padded end: no zero blocks
    data = {"truncated": good[:layer.offset_data + 5000],
            "corrupt-header": good[:layer.offset] + b"\x07" + good[layer.offset + 1:],
            "no-end-block": good[:end]}[case]
    stored = state(daemon.root)
    assert load_refusal(load(api, data)).startswith("invalid tar archive")
    assert state(daemon.root) == stored


# --- load: a config without `created` ------------------------------------------------------


def test_load_a_config_without_created(api, daemon):
    """`created` is optional in the OCI image spec and Docker loads such images; the
    config is kept byte for byte (the ID is its sha256), listings still sort."""
    layer = tar_of([member("hello.txt", data=b"hi\n")])
    config = json.loads(image_config([layer]))
    del config["created"]
    for entry in config["history"]:
        del entry["created"]
    raw = json.dumps(config).encode()
    reply = load(api, docker_archive([([layer], ["no-created:1"])], configs=[raw]), quiet="1")
    assert reply.status == 200, reply.body
    try:
        image = api.get_json("/images/no-created:1/json")
        assert image["Id"] == sha(raw) and image["Created"] in ("", "0001-01-01T00:00:00Z")
        listed = [i for i in api.get_json("/images/json") if i["Id"] == sha(raw)]
        assert listed and listed[0]["Created"] == 0
        assert api.get_json("/images/no-created:1/history")[0]["Created"] == 0
        saved = api.get("/images/no-created:1/get")
        with tarfile.open(fileobj=io.BytesIO(saved.body)) as tar:
            assert tar.extractfile(f"blobs/sha256/{sha(raw)[7:]}").read() == raw
    finally:
        api.delete("/images/no-created:1", force=1)
