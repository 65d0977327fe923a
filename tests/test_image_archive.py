"""`docker save` / `docker load` / `image prune`: the archive formats, exact layer bytes,
untrusted archives, the docker CLI, and the round trip through a real dockerd.

The first part drives `engine.images` directly on a store in a scratch directory (fast,
so hypothesis can try many archives); the rest goes through the API of the session
daemon, the docker CLI, and a private Debian dockerd started here.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import BadRequest
from engine.images import archive, archive_load, busybox
from engine.images.store import ImageStore
from tests.dockerd import DockerdUnavailable, PrivateDockerd
from tests.test_events import events
from tests.test_images import import_, rootfs_tar

# --- building archives ------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(layers: list[bytes], cmd: list[str] | None = None, labels: dict | None = None) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-11-23T00:00:00Z",
        "config": {"Cmd": cmd or ["/bin/busybox", "true"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        "history": [{"created": "2026-11-23T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }).encode()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "",
           mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode = kind, len(data), link, mode
    return info, data


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def docker_archive(images: list[tuple[list[bytes], list[str]]], *, configs: list[bytes] | None = None,
                   manifest: list | dict | bytes | None = None, extra: list[tuple[tarfile.TarInfo, bytes]] = ()) -> bytes:
    """A docker-save archive in the pre-25 layout (`<config>.json`, `<id>/layer.tar`),
    each layer stored once; `manifest` (JSON, or its raw bytes) and `extra` members
    replace or add to what is built."""
    members, items, seen = [], [], set()
    for i, (layers, tags) in enumerate(images):
        config = configs[i] if configs else image_config(layers)
        members.append(member(sha(config)[7:] + ".json", config))
        for layer in layers:
            if sha(layer) not in seen:
                seen.add(sha(layer))
                members.append(member(f"{sha(layer)[7:]}/layer.tar", layer))
        items.append({"Config": sha(config)[7:] + ".json", "RepoTags": tags,
                      "Layers": [f"{sha(layer)[7:]}/layer.tar" for layer in layers]})
    if not isinstance(manifest, bytes):
        manifest = json.dumps(items if manifest is None else manifest).encode()
    members.append(member("manifest.json", manifest))
    return tar_of(members + list(extra))


BASE = rootfs_tar({"etc/base.txt": b"base\n", "etc/gone.txt": b"soon gone\n"})
TOP = tar_of([member("etc/top.txt", b"top\n"), member("etc/.wh.gone.txt")])


def state(store_root: Path) -> dict:
    """Everything a load may change, to prove a failed one changed nothing."""
    images = store_root / "images"
    tags = images / "repositories.json"
    return {"layers": sorted(p.name for p in (images / "layers").iterdir()),
            "blobs": sorted(p.name for p in (images / "blobs" / "sha256").iterdir()),
            "tmp": sorted(p.name for p in (images / "tmp").iterdir()),
            "tags": tags.read_bytes() if tags.exists() else b""}


class Scratch:
    """A store in a scratch directory, and archive files written next to it."""

    def __init__(self, root: Path):
        self.root = root
        self.store = ImageStore(root / "images")

    def load(self, data: bytes, quiet: bool = True) -> archive_load.LoadResult:
        path = self.root / "in.tar"
        path.write_bytes(data)
        try:
            return archive_load.load(self.store, archive_load.decompress(path, self.root / "in.plain"), quiet)
        finally:
            path.unlink()
            (self.root / "in.plain").unlink(missing_ok=True)

    def refuses(self, data: bytes, reason: str) -> None:
        before = state(self.root)
        with pytest.raises(BadRequest, match=reason):
            self.load(data)
        assert state(self.root) == before
        assert sorted(p.name for p in self.root.iterdir()) == ["images"]  # nothing written beside the store

    def save(self, *names: str) -> bytes:
        return b"".join(archive.save_chunks(archive.plan_save(self.store, list(names))))


@pytest.fixture
def scratch(tmp_path):
    return Scratch(tmp_path)


def read_tar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else None for m in tar}


# --- the store: layer tars come back byte for byte ---------------------------------------

_names = st.lists(st.sampled_from(["a", "b", "etc", "x" * 120, "ü", ".wh.b", ".wh..wh..opq"]), min_size=1, max_size=3)


@st.composite
def layer_members(draw):
    members = []
    for _ in range(draw(st.integers(1, 8))):
        name = "/".join(draw(_names))
        kind = draw(st.sampled_from(["file", "file", "dir", "symlink", "hardlink"]))
        if kind == "file" or ".wh." in name:
            members.append(member(name, draw(st.binary(max_size=1500))))
        elif kind == "dir":
            members.append(member(name, kind=tarfile.DIRTYPE))
        elif kind == "symlink":
            members.append(member(name, kind=tarfile.SYMTYPE, link=draw(st.sampled_from(["a", "/bin/busybox", "../b"]))))
        elif members:
            members.append(member(name, kind=tarfile.LNKTYPE, link=members[0][0].name))
    return members


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=layer_members(), fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]), gz=st.booleans())
def test_layer_tar_is_rebuilt_byte_for_byte(members, fmt, gz):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    original = buf.getvalue()
    stored = gzip.compress(original) if gz else original
    with tempfile.TemporaryDirectory() as tmp:
        store = ImageStore(Path(tmp))
        try:
            chain, diff_id = store.add_layer(lambda: io.BufferedReader(io.BytesIO(stored)), "")
        except BadRequest:
            assume(False)  # a tar apply_tar refuses (a file where a directory is, …): not this test's case
        size, chunks = store.layer_tar(chain)
        assert diff_id == sha(original) and size == len(original)
        assert b"".join(chunks) == original


def test_file_below_a_hard_link_to_a_symlink_comes_back(tmp_path):
    """`etc` a hard link to the symlink `a`, then `etc/a`: the file lands where the link
    leads, not at its name, so the layer keeps its original tar (found by the test above)."""
    members = [member("a", kind=tarfile.SYMTYPE, link="/bin/busybox"), member("b", b""),
               member("etc", kind=tarfile.LNKTYPE, link="a"), member("etc/a", b"\0")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    store = ImageStore(tmp_path)
    chain, diff_id = store.add_layer(lambda: io.BufferedReader(io.BytesIO(buf.getvalue())), "")
    size, chunks = store.layer_tar(chain)
    assert diff_id == sha(buf.getvalue()) and size == len(buf.getvalue())
    assert b"".join(chunks) == buf.getvalue()


def test_busybox_layer_keeps_only_its_headers(scratch):
    data = rootfs_tar({"bin/busybox": Path(shutil.which("busybox")).read_bytes()})
    chain, _ = scratch.store.add_layer(lambda: io.BufferedReader(io.BytesIO(data)), "")
    home = scratch.store.layers / chain[7:]
    assert sorted(p.name for p in home.iterdir()) == ["diff", "layer.json", "tar-split.gz"]
    assert (home / "tar-split.gz").stat().st_size < 2000  # headers only, not the 2 MB binary
    assert b"".join(scratch.store.layer_tar(chain)[1]) == data


def test_a_layer_changed_on_disk_is_not_exported(scratch):
    scratch.load(docker_archive([([BASE], ["chg:1"])]))
    chain = scratch.store.layer_chain(scratch.store.resolve("chg:1"))[0]
    (scratch.store.layer_dir(chain) / "etc" / "base.txt").write_bytes(b"BASE\n")  # same size, other bytes
    with pytest.raises(Exception, match="no longer matches its DiffID"):
        scratch.save("chg:1")


def test_orphan_layers_go_when_the_store_opens(scratch):
    scratch.store.add_layer(lambda: io.BufferedReader(io.BytesIO(BASE)), "")  # a load cut short before its config
    assert len(list(scratch.store.layers.iterdir())) == 1
    assert list(ImageStore(scratch.root / "images").layers.iterdir()) == []


# --- save and load on a store -----------------------------------------------------------


def test_save_layout_docker_and_oci(scratch):
    scratch.load(docker_archive([([BASE], ["base:1", "base:latest"]), ([BASE, TOP], ["top:1"])]))
    data = scratch.save("base", "top:1")
    files = read_tar(data)
    base, top = scratch.store.resolve("base:1"), scratch.store.resolve("top:1")
    layers = [f"blobs/sha256/{sha(BASE)[7:]}", f"blobs/sha256/{sha(TOP)[7:]}"]
    assert json.loads(files["manifest.json"]) == [
        {"Config": f"blobs/sha256/{base.id[7:]}", "RepoTags": ["base:1", "base:latest"], "Layers": layers[:1]},
        {"Config": f"blobs/sha256/{top.id[7:]}", "RepoTags": ["top:1"], "Layers": layers}]
    assert files[layers[0]] == BASE and files[layers[1]] == TOP  # the shared layer once, exact bytes
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames().count(layers[0]) == 1
    assert json.loads(files["repositories"]) == {"base": {"1": sha(BASE)[7:], "latest": sha(BASE)[7:]},
                                                 "top": {"1": sha(TOP)[7:]}}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == archive.OCI_INDEX
    refs = [(m["annotations"][archive.ANNOTATION_NAME], m["annotations"][archive.ANNOTATION_REF]) for m in index["manifests"]]
    assert refs == [("docker.io/library/base:1", "1"), ("docker.io/library/base:latest", "latest"),
                    ("docker.io/library/top:1", "1")]
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][2]["digest"][7:]])
    assert manifest["config"] == {"mediaType": archive.OCI_CONFIG, "digest": top.id, "size": top.config_size}
    assert [(m["mediaType"], m["digest"], m["size"]) for m in manifest["layers"]] == [
        (archive.OCI_LAYER, sha(BASE), len(BASE)), (archive.OCI_LAYER, sha(TOP), len(TOP))]
    assert sha(files[f"blobs/sha256/{top.id[7:]}"]) == top.id  # the config as stored: the ID holds
    assert scratch.save("base", "top:1") == data  # deterministic


def test_save_by_id_is_untagged(scratch):
    scratch.load(docker_archive([([BASE], ["byid:1"])]))
    image = scratch.store.resolve("byid:1")
    files = read_tar(scratch.save(image.id[7:19]))
    assert json.loads(files["manifest.json"])[0].get("RepoTags") is None
    assert "repositories" not in files and "annotations" not in json.loads(files["index.json"])["manifests"][0]


def test_load_reuses_layers_and_reports(scratch):
    first = scratch.load(docker_archive([([BASE], ["reuse:1"])]), quiet=False)
    assert [m.status for m in first.messages] == ["Loading layer", ""]
    assert first.messages[0].id == sha(BASE)[7:19] and first.messages[1].stream == "Loaded image: reuse:1\n"
    layer_dir = scratch.store.layers / sha(BASE)[7:]
    inode = layer_dir.stat().st_ino
    again = scratch.load(docker_archive([([BASE, TOP], ["reuse:2"]), ([BASE], [])]), quiet=False)
    assert [m.id for m in again.messages if m.status] == [sha(TOP)[7:19]]  # BASE is not unpacked again
    assert layer_dir.stat().st_ino == inode
    assert again.messages[-1].stream == f"Loaded image ID: {scratch.store.resolve('reuse:1').id}\n"
    top = scratch.store.layer_dir(scratch.store.layer_chain(scratch.store.resolve("reuse:2"))[1])
    assert (top / "etc" / "top.txt").read_bytes() == b"top\n"
    assert os.stat(top / "etc" / "gone.txt").st_rdev == 0  # the whiteout, as overlay wants it


def test_retag_says_so(scratch):
    scratch.load(docker_archive([([BASE], ["moved:1"])]))
    old = scratch.store.resolve("moved:1").id
    result = scratch.load(docker_archive([([TOP], ["moved:1"])]))
    assert result.messages[0].stream == f"The image moved:1 already exists, renaming the old one with ID {old} to empty string\n"


def test_load_oci_layout_alone_and_gzip(scratch):
    scratch.load(docker_archive([([BASE, TOP], ["oci:1"])]))
    image = scratch.store.resolve("oci:1")
    files = read_tar(scratch.save("oci:1"))
    oci_only = tar_of([member(name, data) for name, data in files.items()
                       if data is not None and name not in ("manifest.json", "repositories")])
    other = Scratch(scratch.root / "other")
    result = other.load(gzip.compress(oci_only))
    assert [m.stream for m in result.messages] == ["Loaded image: oci:1\n"]
    assert other.store.resolve("oci:1").id == image.id


def test_load_docker_25_layout_with_linked_layers(scratch):
    """Docker 20.10 links a layer.tar to an earlier copy of the same DiffID."""
    config = image_config([BASE, BASE])
    data = tar_of([member("c.json", config), member("one/layer.tar", BASE),
                   member("two/layer.tar", kind=tarfile.SYMTYPE, link="../one/layer.tar"),
                   member("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["linked:1"],
                                                        "Layers": ["one/layer.tar", "two/layer.tar"]}]).encode())])
    scratch.load(data)
    assert scratch.store.resolve("linked:1").id == sha(config)


# --- untrusted archives ------------------------------------------------------------------

_segment = st.sampled_from(["..", "a", "blobs", ".", "etc", "sha256"])
bad_paths = st.one_of(
    st.lists(_segment, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts)),  # absolute
    st.tuples(st.lists(_segment, max_size=3), st.lists(_segment, max_size=3))
      .map(lambda t: "/".join([*t[0], "..", *t[1]])),  # a `..` somewhere
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=bad_paths, where=st.sampled_from(["member", "layer", "config", "symlink", "hardlink"]))
def test_paths_out_of_the_archive_are_refused(tmp_path_factory, path, where):
    scratch = Scratch(tmp_path_factory.mktemp("s"))
    manifest = [{"Config": sha(image_config([BASE]))[7:] + ".json", "RepoTags": ["evil:1"],
                 "Layers": [f"{sha(BASE)[7:]}/layer.tar"]}]
    if where == "member":
        data = docker_archive([([BASE], ["evil:1"])], extra=[member(path, b"x")])
    elif where == "layer":
        data = docker_archive([([BASE], ["evil:1"])], manifest=[{**manifest[0], "Layers": [path]}])
    elif where == "config":
        data = docker_archive([([BASE], ["evil:1"])], manifest=[{**manifest[0], "Config": path}])
    else:
        kind = tarfile.SYMTYPE if where == "symlink" else tarfile.LNKTYPE
        data = docker_archive([([BASE], ["evil:1"])], manifest=[{**manifest[0], "Layers": ["l/layer.tar"]}],
                              extra=[member("l/layer.tar", kind=kind, link=path)])
    scratch.refuses(data, "invalid image archive: .*(absolute|outside the archive|is not in the archive)")


@pytest.mark.parametrize("case,reason", [
    ("garbage", "invalid tar archive"),
    ("empty", "invalid tar archive"),
    ("truncated", "invalid tar archive|unexpected end of data"),
    ("device", "is a device node"),
    ("fifo", "is a special file"),
    ("twice", "appears twice"),
    ("missing layer", "layer '.*' is not in the archive"),
    ("manifest not json", "malformed manifest 'manifest.json'"),
    ("manifest wrong type", r"malformed manifest 'manifest.json': Expected `array \| null`, got `object`"),
    ("manifest null", "manifest.json is null"),
    ("manifest field", r"Expected `str`, got `int` - at `\$\[0\].Config`"),
    ("config not json", "malformed image config"),
    ("too few layers", "layers length mismatch: expected 2, got 1"),
    ("diff id", "does not match its DiffID"),
    ("bad diff id", "invalid DiffID"),
    ("bad tag", "invalid reference format"),
    ("windows", "cannot load windows image"),
    ("escaping layer", "outside"),
    ("device in layer", "device node"),
    ("symlink over a directory", "symlink 'etc' would replace a directory"),
    ("hard link to itself", "hard link 'f' does not point to a file already in the layer"),
    ("no manifest", "not a docker save or OCI archive"),
    ("zstd", "zstd-compressed archives are not supported"),
])
def test_bad_archives_are_refused_whole(scratch, case, reason):
    tags = ["bad:1"]
    good = [([BASE, TOP], tags)]
    cfg = image_config([BASE, TOP])
    items = [{"Config": sha(cfg)[7:] + ".json", "RepoTags": tags, "Layers": [f"{sha(BASE)[7:]}/layer.tar", f"{sha(TOP)[7:]}/layer.tar"]}]
    data = {
        "garbage": lambda: b"this is not a tar archive" * 40,
        "empty": lambda: b"",
        "truncated": lambda: docker_archive(good)[:len(BASE) // 2 + 3000],
        "device": lambda: docker_archive(good, extra=[member("dev/sda", kind=tarfile.BLKTYPE)]),
        "fifo": lambda: docker_archive(good, extra=[member("pipe", kind=tarfile.FIFOTYPE)]),
        "twice": lambda: docker_archive(good, extra=[member("manifest.json", b"[]")]),
        "missing layer": lambda: docker_archive(good, manifest=[{**items[0], "Layers": [items[0]["Layers"][0], "nope/layer.tar"]}]),
        "manifest not json": lambda: docker_archive(good, manifest=b'[{"Config'),
        "manifest wrong type": lambda: docker_archive(good, manifest={"Config": 1}),
        "manifest null": lambda: docker_archive(good, manifest=b"null"),
        "manifest field": lambda: docker_archive(good, manifest=[{**items[0], "Config": 7}]),
        "config not json": lambda: docker_archive(good, configs=[b"{not json"]),
        "too few layers": lambda: docker_archive(good, manifest=[{**items[0], "Layers": items[0]["Layers"][:1]}]),
        "diff id": lambda: docker_archive(good, configs=[image_config([BASE, BASE + b"\0" * 512])]),
        "bad diff id": lambda: docker_archive(good, configs=[cfg.replace(sha(BASE).encode(), b"sha256:../../../etc")]),
        "bad tag": lambda: docker_archive([([BASE, TOP], ["Bad Tag"])]),
        "windows": lambda: docker_archive(good, configs=[cfg.replace(b'"os": "linux"', b'"os": "windows"')]),
        "escaping layer": lambda: docker_archive([([BASE, tar_of([member("../../evil", b"x")])], tags)]),
        "device in layer": lambda: docker_archive([([BASE, tar_of([member("dev/null", kind=tarfile.CHRTYPE)])], tags)]),
        "symlink over a directory": lambda: docker_archive([([BASE, tar_of([member("etc", kind=tarfile.DIRTYPE), member("etc", kind=tarfile.SYMTYPE, link="etc")])], tags)]),
        "hard link to itself": lambda: docker_archive([([BASE, tar_of([member("f", b"x"), member("f", kind=tarfile.LNKTYPE, link="f")])], tags)]),
        "no manifest": lambda: tar_of([member("hello.txt", b"hi")]),
        "zstd": lambda: b"\x28\xb5\x2f\xfd" + b"\0" * 100,
    }[case]()
    scratch.refuses(data, reason)


def test_a_bad_second_image_leaves_nothing_of_the_first(scratch):
    bad_top = tar_of([member("ok.txt", b"fine")])
    data = docker_archive([([BASE], ["first:1"]), ([BASE, bad_top], ["second:1"])],
                          configs=[image_config([BASE]), image_config([BASE, bad_top + b"x"])])
    scratch.refuses(data, "does not match its DiffID")


@pytest.mark.parametrize("case,reason", [
    ("size", "size 1 in its descriptor"),
    ("digest", "content does not match its digest"),
    ("media type", "is not supported"),
])
def test_bad_oci_layouts_are_refused(scratch, case, reason):
    scratch.load(docker_archive([([BASE], ["ocibad:1"])]))
    files = read_tar(scratch.save("ocibad:1"))
    index = json.loads(files["index.json"])
    manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"][7:]
    manifest = json.loads(files[manifest_name])
    if case == "size":
        manifest["layers"][0]["size"] = 1
    elif case == "digest":
        blob = "blobs/sha256/" + manifest["layers"][0]["digest"][7:]
        files[blob] = files[blob][:-1] + b"\1"  # same size, other bytes
    else:
        manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    raw = json.dumps(manifest).encode()
    index["manifests"][0].update(digest=sha(raw), size=len(raw))
    files["index.json"] = json.dumps(index).encode()
    files["blobs/sha256/" + sha(raw)[7:]] = raw
    other = Scratch(scratch.root / "other")
    other.refuses(tar_of([member(n, d) for n, d in files.items() if d is not None and n not in ("manifest.json", "repositories")]),
                  reason)


# --- through the API ---------------------------------------------------------------------


def load(api, data: bytes, **query):
    return api.request("POST", "/images/load", query=query or None, body=data, headers={"Content-Type": "application/x-tar"})


def messages(reply) -> list[dict]:
    assert reply.status == 200, reply.body
    return [json.loads(line) for line in reply.body.splitlines() if line.strip()]


def load_refusal(reply) -> str:
    """The message of a refused load: dockerd answers it as a chunked 200 whose JSON
    stream holds the `errorDetail` alone (docker-py raises ImageLoadError from it)."""
    assert reply.headers.get("transfer-encoding") == "chunked", reply.headers
    [message] = messages(reply)
    assert message["error"] == message["errorDetail"]["message"], message
    return message["error"]


def test_api_round_trip_save_rmi_load_run(api):
    since = time.time()
    data = tar_of([member("bin/busybox", Path(shutil.which("busybox")).read_bytes(), mode=0o755), member("hello.txt", b"saved\n")])
    image_id = import_(api, data, repo="rt-one:v1", changes=['CMD ["/bin/busybox", "cat", "/hello.txt"]']).json()["status"]
    assert api.post(f"/images/{image_id}/tag", repo="rt-two", tag="x").status == 201
    saved = api.get("/images/get", names=["rt-one:v1", "rt-two:x"])
    assert saved.status == 200 and saved.headers["content-type"] == "application/x-tar"
    assert json.loads(read_tar(saved.body)["manifest.json"])[0]["RepoTags"] == ["rt-one:v1", "rt-two:x"]
    single = read_tar(api.get("/images/rt-one:v1/get").body)
    assert json.loads(single["manifest.json"])[0]["RepoTags"] == ["rt-one:v1"]  # a tagged name: that tag only
    assert api.delete(f"/images/{image_id}", force=1).status == 200
    reply = load(api, saved.body, quiet="1")
    assert messages(reply) == [{"stream": "Loaded image: rt-one:v1\n"}, {"stream": "Loaded image: rt-two:x\n"}]
    assert api.get_json("/images/rt-two:x/json")["Id"] == image_id
    cid = api.run([], image="rt-one:v1")
    assert api.wait(cid) == 0 and api.logs(cid) == [(1, b"saved\n")]
    api.remove(cid)
    got = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}",
                 filters=json.dumps({"type": ["image"], "event": ["save", "load"]}))
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in got] == [
        ("save", image_id, image_id), ("save", image_id, image_id), ("load", image_id, image_id)]
    api.delete(f"/images/{image_id}", force=1)


def test_api_load_errors_change_nothing(api, daemon):
    before = (api.get_json("/images/json"), state(daemon.root))
    reply = load(api, docker_archive([([BASE], ["api-bad:1"])], extra=[member("../escape", b"x")]))
    assert load_refusal(reply) == "invalid image archive: '../escape' points outside the archive"
    assert load_refusal(load(api, b"not a tar at all" * 100)).startswith("invalid tar archive")
    assert (api.get_json("/images/json"), state(daemon.root)) == before
    assert api.get("/images/nope:1/get").message == "No such image: nope:1"
    assert api.get("/images/get", names=["busybox", "nope:2"]).status == 404


def test_api_save_of_a_changed_layer_fails_the_transfer(api, daemon):
    layer = tar_of([member("c.txt", b"original")])
    messages(load(api, docker_archive([([layer], ["changed:1"])])))
    (daemon.root / "images" / "layers" / sha(layer)[7:] / "diff" / "c.txt").write_bytes(b"ORIGINAL")
    with pytest.raises(http.client.IncompleteRead):  # not a complete tar with an error glued on
        api.get("/images/changed:1/get")
    assert api.get("/_ping").status == 200
    assert api.delete("/images/changed:1").status == 200


def test_api_load_progress_and_gzip(api):
    reply = load(api, gzip.compress(docker_archive([([BASE, TOP], ["api-gz:1"])])), quiet="0")
    got = messages(reply)
    assert [m.get("status") for m in got[:2]] == ["Loading layer", "Loading layer"]
    assert got[0]["progressDetail"] == {"current": len(BASE), "total": len(BASE)} and got[0]["id"] == sha(BASE)[7:19]
    assert got[2] == {"stream": "Loaded image: api-gz:1\n"}
    assert api.delete("/images/api-gz:1").status == 200


def test_api_prune(api):
    since = time.time()
    label = {"changes": ["LABEL prune-test=1"]}
    dangling = import_(api, rootfs_tar({"d": b"1"}), **label).json()["status"]
    tagged = import_(api, rootfs_tar({"t": b"2"}), repo="prune-me:1", **label).json()["status"]
    kept = import_(api, rootfs_tar({"k": b"3"}), repo="prune-kept:1", **label).json()["status"]
    cid = api.create(["true"], image="prune-kept:1")
    only = '{"dangling":{"true":true},"label":{"prune-test=1":true}}'
    young = '{"dangling":{"true":true},"label":{"prune-test=1":true},"until":{"1h":true}}'
    assert api.post("/images/prune", filters=young).json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    reply = api.post("/images/prune", filters=only).json()
    assert reply["ImagesDeleted"][0] == {"Deleted": dangling} and reply["SpaceReclaimed"] == 1
    # `docker image prune --filter dangling=false` sends the CLI's own `true` beside it: false wins, as dockerd
    every = '{"dangling":{"false":true,"true":true},"label":{"prune-test=1":true}}'
    spared = '{"dangling":{"false":true},"label":{"prune-test=1":true},"label!":{"prune-test":true}}'
    assert api.post("/images/prune", filters=spared).json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    reply = api.post("/images/prune", filters=every).json()
    assert reply["ImagesDeleted"][:2] == [{"Untagged": "prune-me:1"}, {"Deleted": tagged}]  # kept: a container uses it
    assert api.post("/images/prune", filters=every).json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    assert api.post("/images/prune", filters='{"dangling":{"maybe":true}}').status == 400
    pruned = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}", filters='{"event":["prune"]}')
    assert [e["Actor"]["Attributes"] for e in pruned] == [{"reclaimed": "0"}, {"reclaimed": "1"}, {"reclaimed": "0"},
                                                          {"reclaimed": "1"}, {"reclaimed": "0"}]
    api.remove(cid)
    assert api.delete(f"/images/{kept}").status == 200


# --- the docker CLI against berth ----------------------------------------------------------

needs_cli = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")


@pytest.fixture
def docker(daemon, tmp_path):
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "cli")}

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=env, input=input, capture_output=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {result.returncode}\n{result.stderr.decode()}")
        return result

    return run


@needs_cli
def test_docker_cli_save_load_run(docker, tmp_path):
    docker("tag", "busybox", "cli-save:a")
    docker("tag", "busybox", "cli-save:b")
    rootfs = tmp_path / "rootfs.tar"
    busybox.write_rootfs_tar(busybox.find_busybox(), rootfs)  # the built-in image's very layer
    docker("import", "-c", 'CMD ["echo", "from c"]', str(rootfs), "cli-save:c")  # another image on it
    out = tmp_path / "all.tar"
    docker("save", "-o", str(out), "cli-save:a", "cli-save:b", "busybox", "cli-save:c")
    files = read_tar(out.read_bytes())
    manifest = json.loads(files["manifest.json"])
    assert [m["RepoTags"] for m in manifest] == [["cli-save:a", "cli-save:b", "busybox:latest"], ["cli-save:c"]]
    assert manifest[0]["Layers"] == manifest[1]["Layers"]
    assert sum(1 for name in files if name.startswith("blobs/sha256/")) == 5  # 2 configs, 2 manifests, 1 layer
    docker("rmi", "cli-save:a", "cli-save:b", "cli-save:c")
    loaded = docker("load", "-i", str(out)).stdout.decode()
    assert loaded == ("Loaded image: cli-save:a\nLoaded image: cli-save:b\nLoaded image: busybox:latest\n"
                      "Loaded image: cli-save:c\n")
    assert docker("run", "--rm", "cli-save:b", "echo", "hi").stdout == b"hi\n"
    assert docker("run", "--rm", "cli-save:c").stdout == b"from c\n"
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"garbage" * 100)
    result = docker("load", "-i", str(bad), check=False)
    # the error comes inside the 200's stream, as dockerd sends it: the CLI prints it as is
    assert result.returncode == 1 and result.stderr.startswith(b"invalid tar archive")
    docker("rmi", "cli-save:a", "cli-save:b", "cli-save:c")


@needs_cli
def test_docker_cli_image_prune(docker):
    docker("import", "-c", "LABEL cli-prune=1", "-", input=rootfs_tar({"p": b"1"}))
    out = docker("image", "prune", "-f", "--filter", "label=cli-prune=1").stdout.decode()
    assert out.startswith("Deleted Images:\ndeleted: sha256:") and out.endswith("Total reclaimed space: 1B\n")
    docker("import", "-c", "LABEL cli-prune=2", "-", "cli-prune:1", input=rootfs_tar({"p": b"2"}))
    out = docker("image", "prune", "-a", "-f", "--filter", "label=cli-prune=2").stdout.decode()
    assert out.startswith("Deleted Images:\nuntagged: cli-prune:1\ndeleted: sha256:")
    assert docker("image", "prune", "-a", "-f", "--filter", "label=cli-prune=2").stdout == b"Total reclaimed space: 0B\n"


# --- the round trip through a real Docker -------------------------------------------------


@pytest.fixture(scope="module")
def dockerd():
    """A private Debian dockerd (own roots and socket, no networking), stopped by its PID
    at the end; its mounts are detached and its directories removed."""
    d = PrivateDockerd()
    try:
        d.start()
    except DockerdUnavailable as exc:
        print(f"\nskipping the Docker round trip: {exc}")
        pytest.skip(f"dockerd cannot be started: {exc}")
    try:
        yield d
    finally:
        left = d.stop()
        if left:
            print(f"\ncleaned up after the private dockerd: {', '.join(left)}")


@needs_cli
def test_berth_save_loads_and_runs_in_docker(api, dockerd, tmp_path):
    load(api, docker_archive([([BASE, TOP], ["to-docker:1"])]))  # a second layer with a whiteout
    busybox_id = api.get_json("/images/busybox/json")["Id"]
    out = tmp_path / "berth.tar"
    out.write_bytes(api.get("/images/get", names=["busybox", "to-docker:1"]).body)
    loaded = dockerd.docker("load", "-i", str(out)).stdout
    assert loaded == b"Loaded image: busybox:latest\nLoaded image: to-docker:1\n"
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip() == busybox_id
    assert dockerd.docker("run", "--rm", "--network", "none", "busybox", "echo", "hi").stdout == b"hi\n"
    top = dockerd.docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", "to-docker:1").stdout
    assert json.loads(top) == [sha(BASE), sha(TOP)]  # Docker checked every DiffID as it loaded
    dockerd.docker("rmi", "to-docker:1")
    assert api.delete("/images/to-docker:1").status == 200


@needs_cli
def test_docker_save_loads_and_runs_in_berth_and_back(api, dockerd, tmp_path):
    dockerd.import_busybox("dbox:1")  # from the host's busybox: nothing is pulled
    script = "echo from-docker > /hello.txt && rm /etc/group && rm -rf /home && mkdir /home && echo new > /home/new"
    dockerd.docker("run", "--name", "mk", "--network", "none", "dbox:1", "sh", "-c", script)
    dockerd.docker("commit", "-c", 'CMD ["cat", "/hello.txt"]', "mk", "dbox:2")  # a layer Go wrote, whiteouts and all
    dockerd.docker("rm", "mk")
    docker_id = dockerd.docker("image", "inspect", "-f", "{{.Id}}", "dbox:2").stdout.decode().strip()
    saved = tmp_path / "docker.tar"
    dockerd.docker("save", "-o", str(saved), "dbox:2")
    assert messages(load(api, saved.read_bytes(), quiet="1")) == [{"stream": "Loaded image: dbox:2\n"}]
    assert api.get_json("/images/dbox:2/json")["Id"] == docker_id
    cid = api.run(["sh", "-c", "cat /hello.txt; test -e /etc/group || echo no-group; ls /home"], image="dbox:2")
    assert api.wait(cid) == 0
    assert api.logs(cid) == [(1, b"from-docker\n"), (1, b"no-group\n"), (1, b"new\n")]  # a frame per line
    api.remove(cid)
    # and back: berth gives Docker the very layer bytes Docker wrote
    back = tmp_path / "back.tar"
    back.write_bytes(api.get("/images/dbox:2/get").body)
    dockerd.docker("rmi", "dbox:2", "dbox:1")
    assert dockerd.docker("load", "-i", str(back)).stdout == b"Loaded image: dbox:2\n"
    assert dockerd.docker("image", "inspect", "-f", "{{.Id}}", "dbox:2").stdout.decode().strip() == docker_id
    assert dockerd.docker("run", "--rm", "--network", "none", "dbox:2").stdout == b"from-docker\n"
    dockerd.docker("rmi", "dbox:2")
    assert api.delete("/images/dbox:2").status == 200
