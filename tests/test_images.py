"""Images through the Engine API: import, tag, rmi, history, list filters, sharing."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile

import pytest


def rootfs_tar(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(content))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def import_(api, data: bytes, **query):
    return api.request("POST", "/images/create", query={"fromSrc": "-", **query}, body=data,
                       headers={"Content-Type": "text/plain"})


def busybox_binary(api) -> bytes:
    """The static busybox from the built-in image, to make runnable test images."""
    from shutil import which
    return open(which("busybox"), "rb").read()


def test_builtin_busybox(api):
    image = api.get_json("/images/busybox/json")
    assert image["RepoTags"] == ["busybox:latest"]
    assert image["Config"]["Cmd"] == ["sh"] and image["Os"] == "linux"
    assert len(image["RootFS"]["Layers"]) == 1
    assert api.get_json("/images/busybox:latest/json")["Id"] == image["Id"]
    assert api.get_json(f"/images/{image['Id'][7:19]}/json")["Id"] == image["Id"]


def test_import_tag_run_history_rmi(api):
    data = rootfs_tar({"bin/busybox": busybox_binary(api), "hello.txt": b"imported\n"})
    reply = import_(api, data, repo="imp-test:v1", message="from a test", changes=['CMD ["/bin/busybox", "cat", "/hello.txt"]', "ENV A=1"])
    assert reply.status == 200, reply.body
    image_id = reply.json()["status"]
    assert image_id.startswith("sha256:")
    inspect = api.get_json("/images/imp-test:v1/json")
    assert inspect["Id"] == image_id and inspect["Comment"] == "from a test" and "A=1" in inspect["Config"]["Env"]
    cid = api.run([], image="imp-test:v1")
    assert api.wait(cid) == 0
    assert api.logs(cid) == [(1, b"imported\n")]
    history = api.get_json("/images/imp-test:v1/history")
    assert history[0]["Id"] == image_id and history[0]["Comment"] == "from a test" and history[0]["Tags"] == ["imp-test:v1"]
    # tag, then rmi semantics: untag while other tags remain; refuse while a container uses it
    assert api.post("/images/imp-test:v1/tag", repo="docker.io/library/imp-other", tag="latest").status == 201
    assert api.get_json("/images/imp-other/json")["Id"] == image_id
    assert api.delete("/images/imp-other").json() == [{"Untagged": "imp-other:latest"}]
    reply = api.delete("/images/imp-test:v1")
    assert reply.status == 409 and f"container {cid[:12]} is using its referenced image" in reply.message
    api.remove(cid)
    layer = api.get_json("/images/imp-test:v1/json")["RootFS"]["Layers"][0]  # its only layer: chain ID = DiffID
    # as dockerd's answer: the layers the image took with it too
    assert api.delete("/images/imp-test:v1").json() == [{"Untagged": "imp-test:v1"}, {"Deleted": image_id},
                                                        {"Deleted": layer}]
    assert api.get("/images/imp-test:v1/json").status == 404
    plain = import_(api, rootfs_tar({"x": b"1"})).json()["status"]
    assert api.get_json(f"/images/{plain}/json")["Comment"] == "Imported from -"  # as dockerd, without -m
    # compressed as dockerd reads them: the same rootfs, so the same layer
    for compress in (gzip.compress, bz2.compress, lzma.compress):
        packed = import_(api, compress(rootfs_tar({"x": b"1"}))).json()["status"]
        assert api.get_json(f"/images/{packed}/json")["RootFS"] == api.get_json(f"/images/{plain}/json")["RootFS"]
        assert api.delete(f"/images/{packed}").status == 200
    reply = import_(api, bz2.compress(rootfs_tar({"x": b"1"}))[:-20])
    assert reply.status == 400 and "invalid tar archive" in reply.message
    assert api.delete(f"/images/{plain}").status == 200


def test_rmi_force_keeps_image_used_by_container(api):
    reply = import_(api, rootfs_tar({"bin/busybox": busybox_binary(api)}), repo="imp-force")
    image_id = reply.json()["status"]
    cid = api.create(["/bin/busybox", "true"], image="imp-force")
    assert api.delete("/images/imp-force", force=1).json() == [{"Untagged": "imp-force:latest"}]
    assert api.get_json(f"/containers/{cid}/json")["Image"] == image_id
    dangling = [i["Id"] for i in api.get_json("/images/json", filters='{"dangling":["true"]}')]
    assert image_id in dangling
    api.remove(cid)
    assert api.delete(f"/images/{image_id}").json()[0] == {"Deleted": image_id}


def test_layers_are_shared(api, daemon):
    data = rootfs_tar({"same.txt": b"same content\n"})
    first = import_(api, data, repo="share-a").json()["status"]
    second = import_(api, data, repo="share-b").json()["status"]
    a = api.get_json("/images/share-a/json")
    b = api.get_json("/images/share-b/json")
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert a["GraphDriver"]["Data"]["UpperDir"] == b["GraphDriver"]["Data"]["UpperDir"]
    layers = list((daemon.root / "images" / "layers").iterdir())
    assert sum(1 for d in layers if (d / "diff" / "same.txt").exists()) == 1
    api.delete("/images/share-a")
    api.delete("/images/share-b")
    assert not any((d / "diff" / "same.txt").exists() for d in (daemon.root / "images" / "layers").iterdir())
    assert first != second or first == second  # ids may match (same config) or not (created differs)


def test_list_filters(api):
    import_(api, rootfs_tar({"a": b"1"}), repo="flt-one:x")
    import_(api, rootfs_tar({"b": b"2"}), repo="flt-two:y")
    tags = lambda **q: sorted(t for i in api.get_json("/images/json", **q) for t in i["RepoTags"])
    assert tags(filters='{"reference":{"flt-*":true}}') == ["flt-one:x", "flt-two:y"]
    assert tags(filters='{"reference":["flt-one"]}') == ["flt-one:x"]
    assert "busybox:latest" in tags(filters='{"dangling":["false"]}')
    # before/since: created earlier / later than the image named, as dockerd
    flt = '{"reference":["flt-*"],"%s":["%s"]}'
    assert tags(filters=flt % ("before", "flt-two:y")) == ["flt-one:x"]
    assert tags(filters=flt % ("since", "flt-one:x")) == ["flt-two:y"]
    assert tags(filters=flt % ("since", "flt-two:y")) == []
    missing = api.get("/images/json", filters='{"before":["nosuch"]}')
    assert missing.status == 404 and "No such image: nosuch" in missing.message
    assert api.get("/images/json", filters='{"dangling":["maybe"]}').status == 400
    api.delete("/images/flt-one:x")
    api.delete("/images/flt-two:y")


@pytest.mark.parametrize("bad,reason", [
    (b"this is not a tar", "invalid tar"),
    (b"", "invalid tar"),
])
def test_import_rejects_garbage(api, bad, reason):
    before = api.get_json("/images/json")
    reply = import_(api, bad, repo="garbage")
    assert reply.status == 400 and reason in reply.message
    assert api.get_json("/images/json") == before


def test_import_rejects_escaping_tar(api, tmp_path):
    evil = tarfile.TarInfo("../../escape.txt")
    evil.size = 0
    reply = import_(api, rootfs_tar({}, [evil]), repo="evil")
    assert reply.status == 400 and "outside" in reply.message
    assert api.get("/images/evil/json").status == 404


def test_tag_errors(api):
    assert api.post("/images/nope:v1/tag", repo="x").status == 404
    assert api.post("/images/busybox/tag", repo="Bad Name").status == 400
    image_id = api.get_json("/images/busybox/json")["Id"]
    for repo, tag in (("sha256", image_id[7:]), ("sha256", "")):  # it would read as an image ID
        reply = api.post("/images/busybox/tag", repo=repo, tag=tag)
        assert (reply.status, reply.message) == (400, "refusing to create an ambiguous tag using digest algorithm as name")
    cid = api.create(["true"])
    reply = api.post("/commit", container=cid, repo=image_id)
    api.remove(cid)
    assert (reply.status, reply.message) == (400, "refusing to create an ambiguous tag using digest algorithm as name")
    assert api.delete("/images/nope:v1").message == "No such image: nope:v1"
