"""A container's files through the Engine API: archive (cp), changes (diff), commit, export.

The daemon's overlay mounts are visible only inside its own mount namespace on a hybrid
cgroup host, so every check of a container's files goes through the API (or runs in a
container); the host side is looked at only where it must stay untouched.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api import demux
from tests.test_events import events

GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


def out(api, cid) -> str:
    return b"".join(p for s, p in api.logs(cid) if s == 1).decode()


def run_to_end(api, cmd: list[str], **fields) -> str:
    cid = api.run(cmd, **fields)
    assert api.wait(cid) == 0, out(api, cid)
    return cid


def head(api, cid, path):
    return api.request("HEAD", f"/containers/{cid}/archive", query={"path": path})


def path_stat(api, cid, path) -> dict:
    reply = head(api, cid, path)
    assert reply.status == 200, (reply.status, reply.headers)
    return json.loads(base64.b64decode(reply.headers["x-docker-container-path-stat"]))


def get_tar(api, cid, path) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    reply = api.request("GET", f"/containers/{cid}/archive", query={"path": path})
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/x-tar" and "x-docker-container-path-stat" in reply.headers
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar}


def put_tar(api, cid, path, data: bytes, **query):
    return api.request("PUT", f"/containers/{cid}/archive", query={"path": path, **query}, body=data,
                       headers={"Content-Type": "application/x-tar"})


def make_tar(*members: tuple[str, bytes, dict]) -> bytes:
    """A tar of (name, data, TarInfo attributes) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, attrs in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_200_000_000
            for key, value in attrs.items():
                setattr(info, key, value)
            if info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def container(api):
    """Containers made by a test, removed afterwards even when it fails."""
    made: list[str] = []

    def make(cmd: list[str], start: bool = True, **fields) -> str:
        cid = api.run(cmd, **fields) if start else api.create(cmd, **fields)
        made.append(cid)
        return cid

    yield make
    for cid in made:
        api.remove(cid)


@pytest.fixture
def images(api):
    """Image names a test makes, removed afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        api.delete(f"/images/{name}", force=1)


@pytest.fixture
def canary():
    """A host directory that containers are pointed at and must never write into."""
    path = Path(tempfile.mkdtemp(prefix="berth-canary-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


SETUP = ("mkdir -p /data/sub && printf hello > /data/sub/f && chown 1234:99 /data/sub/f && chmod 4710 /data/sub/f "
         "&& touch -d '2001-02-03 04:05:06' /data/sub/f && ln -s /etc/passwd /data/abs && ln -s sub/f /data/rel "
         "&& ln -s /data/sub /data/dirlink")


def test_stat_and_get_of_a_running_container(api, container):
    cid = container(["sh", "-c", SETUP + " && touch /ready && sleep 60"])
    deadline = time.monotonic() + 10
    while head(api, cid, "/ready").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    d = path_stat(api, cid, "/data")
    assert d["name"] == "data" and d["mode"] == GO_DIR | 0o755 and d["linkTarget"] == ""
    f = path_stat(api, cid, "/data/sub/f")
    assert (f["name"], f["size"], f["mode"]) == ("f", 5, 0o710 | 1 << 23)  # Go's ModeSetuid
    assert f["mtime"].startswith("2001-02-03T04:05:06")
    link = path_stat(api, cid, "/data/abs")
    assert link["mode"] == GO_SYMLINK | 0o777 and link["linkTarget"] == "/etc/passwd"
    assert path_stat(api, cid, "/data/rel")["linkTarget"] == "/data/sub/f"
    followed = path_stat(api, cid, "/data/dirlink/")  # a trailing slash asks for the directory
    assert (followed["name"], followed["mode"], followed["linkTarget"]) == ("dirlink", GO_DIR | 0o755, "")

    tree = get_tar(api, cid, "/data")
    assert sorted(tree) == ["data", "data/abs", "data/dirlink", "data/rel", "data/sub", "data/sub/f"]
    raw = api.request("GET", f"/containers/{cid}/archive", query={"path": "/data"}).body
    assert raw.startswith(b"data/\0")  # directories carry a trailing slash, as moby writes them
    info, data = tree["data/sub/f"]
    assert (data, info.mode, info.uid, info.gid, info.mtime) == (b"hello", 0o4710, 1234, 99, 981173106)
    assert tree["data/abs"][0].issym() and tree["data/abs"][0].linkname == "/etc/passwd"
    assert sorted(get_tar(api, cid, "/data/.")) == [".", "./abs", "./dirlink", "./rel", "./sub", "./sub/f"]
    assert sorted(get_tar(api, cid, "/data/dirlink/")) == ["dirlink", "dirlink/f"]
    one = get_tar(api, cid, "/data/rel")  # a symlink comes as itself
    assert list(one) == ["rel"] and one["rel"][0].linkname == "sub/f"
    reply = api.request("GET", f"/containers/{cid}/archive", query={"path": "/data/rel/"})
    assert (reply.status, reply.message) == (400, "/data/rel/: not a directory")  # a slash asks for a dir
    since = time.time()
    get_tar(api, cid, "/etc/passwd")
    got = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}", filters=json.dumps({"container": [cid]}))
    assert [e["Action"] for e in got] == ["archive-path"]


def test_archive_errors(api, container):
    cid = container(["true"], start=False, HostConfig={"ReadonlyRootfs": True})
    reply = api.request("GET", f"/containers/{cid}/archive", query={"path": "/nope/x"})
    assert (reply.status, reply.message) == (404, f"Could not find the file /nope/x in container {cid}")
    assert head(api, cid, "/nope").status == 404
    assert api.request("GET", "/containers/nosuch/archive", query={"path": "/"}).message == "No such container: nosuch"
    assert api.request("GET", f"/containers/{cid}/archive").message == "bad parameter: path cannot be empty"
    reply = put_tar(api, cid, "/etc/passwd", make_tar(("x", b"x", {})))
    assert (reply.status, reply.message) == (400, "extraction point is not a directory")
    reply = put_tar(api, cid, "/tmp", make_tar(("x", b"x", {})))
    assert (reply.status, reply.message) == (403, "container rootfs is marked read-only")
    assert put_tar(api, cid, "/nope", make_tar(("x", b"x", {}))).status == 404
    reply = put_tar(api, cid, "/" + "n" * 300, make_tar(("x", b"x", {})))  # found by the API fuzzer: was a 500
    assert (reply.status, reply.message) == (400, "/" + "n" * 300 + ": File name too long")


def test_put_into_a_created_container_keeps_metadata(api, container, daemon):
    cid = container(["sh", "-c", "ls -ln --full-time /dst/d; cat /dst/d/f; readlink /dst/d/l; stat -c '%h %a' /dst/d/h"],
                    start=False)
    assert put_tar(api, cid, "/", make_tar(("dst", b"", {"type": tarfile.DIRTYPE, "mode": 0o755}))).status == 200
    since = time.time()
    body = make_tar(("d", b"", {"type": tarfile.DIRTYPE, "mode": 0o2750, "uid": 5, "gid": 6}),
                    ("d/f", b"content", {"mode": 0o640, "uid": 1000, "gid": 1001}),
                    ("d/l", b"", {"type": tarfile.SYMTYPE, "linkname": "/no/where"}),
                    ("d/h", b"", {"type": tarfile.LNKTYPE, "linkname": "d/f"}))
    reply = put_tar(api, cid, "/dst", body, noOverwriteDirNonDir="true")
    assert reply.status == 200, reply.body
    assert not [m for m in daemon.mounts() if cid in m]  # the temporary mount is gone again
    got = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}", filters=json.dumps({"container": [cid]}))
    assert [e["Action"] for e in got] == ["extract-to-dir"]
    tree = get_tar(api, cid, "/dst/d")
    assert (tree["d"][0].mode, tree["d"][0].uid, tree["d"][0].gid) == (0o2750, 5, 6)
    info, data = tree["d/f"]
    assert (data, info.mode, info.uid, info.gid, info.mtime) == (b"content", 0o640, 1000, 1001, 1_200_000_000)
    assert tree["d/h"][0].islnk() and tree["d/h"][0].linkname == "d/f"
    assert tree["d/l"][0].linkname == "/no/where"
    assert api.post(f"/containers/{cid}/start").status == 204
    assert api.wait(cid) == 0
    listing = out(api, cid)
    assert "-rw-r-----    2 1000     1001             7 2008-01-10 21:20:00" in listing
    assert listing.endswith("content/no/where\n2 640\n")


def test_cp_of_an_exited_container(api, container, daemon):
    cid = container(["sh", "-c", "echo gone > /left"])
    assert api.wait(cid) == 0
    assert get_tar(api, cid, "/left")["left"][1] == b"gone\n"
    assert put_tar(api, cid, "/", make_tar(("added", b"new\n", {}))).status == 200
    assert not [m for m in daemon.mounts() if cid in m]
    assert api.post(f"/containers/{cid}/start").status == 204  # the mount point is free again
    assert api.wait(cid) == 0
    assert get_tar(api, cid, "/added")["added"][1] == b"new\n"


def test_cp_of_files_bound_over_the_root(api, container, tmp_path):
    (tmp_path / "app.conf").write_text("setting=1\n")
    cid = container(["sleep", "60"], Hostname="cphost", HostConfig={"Binds": [f"{tmp_path / 'app.conf'}:/etc/x.conf:ro"]})
    # as dockerd: what the container sees there, not the file the bind covers in its root
    assert get_tar(api, cid, "/etc/x.conf")["x.conf"][1] == b"setting=1\n"
    assert get_tar(api, cid, "/etc/hostname")["hostname"][1] == b"cphost\n"
    assert b"cphost" in get_tar(api, cid, "/etc/hosts")["hosts"][1]
    assert path_stat(api, cid, "/etc/resolv.conf")["name"] == "resolv.conf"


@pytest.mark.parametrize("start", [True, False], ids=["running", "created"])
def test_cp_sees_the_mounts_as_the_container_does(api, container, tmp_path, daemon, start):
    """As dockerd mounts a container's volumes for a copy: a copy lands in the volume or
    bind its path (or a symlink on it) leads to, a copy out of an ancestor holds what is
    mounted below it, and a file bind mount is not replaced (which would detach it)."""
    (tmp_path / "bound").mkdir()
    (tmp_path / "bound" / "old").write_text("on the host\n")
    (tmp_path / "conf").write_text("host conf\n")
    volume = f"cp-view-{uuid.uuid4().hex[:8]}"
    binds = [f"{volume}:/named", f"{tmp_path / 'bound'}:/bnd", f"{tmp_path / 'conf'}:/conf", f"{volume}:/ro:ro"]
    cid = container(["sh", "-c", "ln -s /named /link; sleep 60"], start=start, Hostname="viewhost",
                    HostConfig={"Binds": binds})
    if not start:  # the symlink, without running anything
        assert put_tar(api, cid, "/", make_tar(("link", b"", {"type": tarfile.SYMTYPE, "linkname": "/named"}))).status == 200
    try:
        # in: a directory named as a volume goes into it, and through the symlink too
        assert put_tar(api, cid, "/", make_tar(("named/viaroot", b"x\n", {}))).status == 200
        assert put_tar(api, cid, "/link", make_tar(("vialink", b"y\n", {}))).status == 200
        assert put_tar(api, cid, "/", make_tar(("bnd/new", b"z\n", {}))).status == 200
        assert (tmp_path / "bound" / "new").read_text() == "z\n"
        # a file bind mount stays: the kernel refuses to replace a mount point (as dockerd)
        reply = put_tar(api, cid, "/", make_tar(("conf", b"replaced\n", {})))
        assert reply.status == 400 and "Device or resource busy" in reply.message
        assert (tmp_path / "conf").read_text() == "host conf\n"
        reply = put_tar(api, cid, "/", make_tar(("ro/no", b"n\n", {})))  # the volume's read-only mount
        assert reply.status == 500 and "Read-only file system" in reply.message
        assert put_tar(api, cid, "/ro", make_tar(("no", b"n\n", {}))).status == 403
        # out: through the symlink, and an ancestor's archive with the mounts' files in it
        assert get_tar(api, cid, "/link/viaroot")["viaroot"][1] == b"x\n"
        whole = get_tar(api, cid, "/")
        assert whole["/named/vialink"][1] == b"y\n" and whole["/bnd/old"][1] == b"on the host\n"
        assert whole["/conf"][1] == b"host conf\n" and whole["/etc/hostname"][1] == b"viewhost\n"
        if start:
            seen = api.post(f"/containers/{cid}/exec", {"Cmd": ["sh", "-c", "cat /named/viaroot /named/vialink /conf"],
                                                        "AttachStdout": True}).json()["Id"]
            reply = api.post(f"/exec/{seen}/start", {"Detach": False})
            assert b"".join(data for _, data in demux(reply.body)) == b"x\ny\nhost conf\n"
        assert not [m for m in daemon.mounts() if f"{cid}/rootfs/" in m or volume in m]  # the view's mounts were its own
    finally:
        api.remove(cid)
        api.delete(f"/volumes/{volume}")


def test_symlinks_resolve_inside_the_container(api, container, canary):
    """Links in the container to a host directory, or climbing with `..`, name paths in
    the container: reads come from it and writes land in it."""
    (canary / "host-only").write_text("host")
    setup = f"mkdir -p {canary} && ln -s {canary} /escape && ln -s ../../../../../.. /data && sleep 60"
    cid = container(["sh", "-c", setup])
    deadline = time.monotonic() + 10
    while head(api, cid, "/data").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert head(api, cid, "/escape/host-only").status == 404
    assert path_stat(api, cid, "/escape")["linkTarget"] == str(canary)
    assert path_stat(api, cid, "/data")["linkTarget"] == "/"
    reply = put_tar(api, cid, "/escape", make_tar(("pwned", b"x", {})))  # /escape/ → the container's own path
    assert reply.status == 200, reply.body
    reply = put_tar(api, cid, "/data/tmp", make_tar(("up", b"y", {})))
    assert reply.status == 200, reply.body
    assert sorted(os.listdir(canary)) == ["host-only"]
    assert get_tar(api, cid, f"{canary}/pwned")["pwned"][1] == b"x"
    assert get_tar(api, cid, "/tmp/up")["up"][1] == b"y"


def test_copy_waits_for_a_restarting_container_without_blocking_stop(api, container):
    cid = container(["sh", "-c", "exit 1"], HostConfig={"RestartPolicy": {"Name": "always"}})
    deadline = time.monotonic() + 20
    while not (api.get_json(f"/containers/{cid}/json")["RestartCount"] >= 4
               and api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "restarting"):
        assert time.monotonic() < deadline
        time.sleep(0.02)  # now in a back-off of at least 1.6 s
    replies = []
    waiter = threading.Thread(target=lambda: replies.append(head(api, cid, "/etc/passwd")))
    waiter.start()
    time.sleep(0.1)
    began = time.monotonic()
    assert api.post(f"/containers/{cid}/stop", t=1).status == 204
    assert time.monotonic() - began < 1.5  # the waiting copy does not hold the lock
    waiter.join(10)
    assert replies and replies[0].status == 200  # answered from the stopped container


MALICIOUS = [
    ("dotdot", [("../../../../../../CANARY/pwned", b"x", {})], "outside the destination directory"),
    ("absolute-dotdot", [("/../../../../CANARY/pwned", b"x", {})], "outside the destination directory"),
    ("hardlink-escape", [("h", b"", {"type": tarfile.LNKTYPE, "linkname": "../../../../CANARY/host-only"})],
     "hard link"),
    ("device", [("dev", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})], "device node"),
    ("not-a-tar", None, "invalid tar archive"),
]


@pytest.mark.parametrize("label,members,reason", MALICIOUS, ids=[m[0] for m in MALICIOUS])
def test_malicious_archives_are_refused(api, container, canary, label, members, reason):
    (canary / "host-only").write_text("host")
    cid = container(["true"], start=False)
    body = b"\x00not a tar" * 100 if members is None else make_tar(
        *[(n.replace("CANARY", str(canary).lstrip("/")), d, {k: (v.replace("CANARY", str(canary).lstrip("/"))
                                                              if isinstance(v, str) else v) for k, v in a.items()})
          for n, d, a in members])
    reply = put_tar(api, cid, "/tmp", body)
    assert reply.status == 400 and reason in reply.message, (reply.status, reply.body)
    assert sorted(os.listdir(canary)) == ["host-only"]


def test_links_planted_by_the_archive_stay_inside(api, container, canary):
    cid = container(["true"], start=False)
    body = make_tar(("lnk", b"", {"type": tarfile.SYMTYPE, "linkname": str(canary)}),
                    ("lnk/pwned", b"x", {}),
                    ("up", b"", {"type": tarfile.SYMTYPE, "linkname": "../../../../.."}),
                    ("up" + str(canary) + "/pwned2", b"y", {}))
    assert put_tar(api, cid, "/tmp", body).status == 200
    assert os.listdir(canary) == []
    assert get_tar(api, cid, f"{canary}/pwned")["pwned"][1] == b"x"
    assert get_tar(api, cid, f"{canary}/pwned2")["pwned2"][1] == b"y"


def test_truncated_member_is_refused_without_a_partial_file(api, container):
    cid = container(["true"], start=False)
    body = make_tar(("big", b"z" * 300_000, {}))[:100_000]
    reply = put_tar(api, cid, "/tmp", body)
    assert reply.status == 400 and "invalid tar archive" in reply.message
    assert head(api, cid, "/tmp/big").status == 404


NAMES = st.lists(st.sampled_from(["..", ".", "a", "lnk", "up", "CANARY", ""]), min_size=1, max_size=6).map("/".join)


@pytest.fixture
def sleeper(container):
    """One running container (shared by a test's hypothesis examples)."""
    return container(["sleep", "300"])


# Hypothesis runs every example in one call of the test: the fixtures are shared on purpose.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
                          NAMES, st.sampled_from(["CANARY", "/CANARY", "..", "../../..", "/", "lnk", "a"])),
                min_size=1, max_size=5))
def test_crafted_archives_never_write_outside(api, sleeper, canary, plan):
    """Random archives of `..`, absolute names and links (to the canary host directory,
    or climbing), into a running container: whatever the answer, the host dir stays empty."""
    cid = sleeper
    host = str(canary).lstrip("/")
    members = [(name.replace("CANARY", host), b"pwned", {"type": kind, "linkname": target.replace("CANARY", host)})
               for kind, name, target in plan]
    reply = put_tar(api, cid, "/tmp", make_tar(*members))
    assert reply.status in (200, 400), reply.body
    assert os.listdir(canary) == []
    assert not Path("/pwned").exists()


def test_changes(api, container):
    script = ("test -f /.dockerenv && test ! -s /.dockerenv;"  # dockerd's init layer has it, empty
              " echo x > /tmp/new; echo more >> /etc/passwd; rm /etc/group; mkdir -p /added/deep;"
              " rm -rf /home; mkdir /home; touch /home/fresh")
    cid = container(["sh", "-c", script], start=False)
    assert api.get_json(f"/containers/{cid}/changes") == []
    assert api.post(f"/containers/{cid}/start").status == 204
    assert api.wait(cid) == 0
    changes = [(c["Kind"], c["Path"]) for c in api.get_json(f"/containers/{cid}/changes")]
    assert changes == [(1, "/added"), (1, "/added/deep"), (0, "/etc"), (2, "/etc/group"), (0, "/etc/passwd"),
                       (0, "/home"), (1, "/home/fresh"), (0, "/tmp"), (1, "/tmp/new")]  # /home made again: C, as dockerd
    sized = api.get_json(f"/containers/{cid}/json", size=1)  # `docker inspect -s`
    assert 0 < sized["SizeRw"] < sized["SizeRootFs"]
    assert api.get("/containers/nosuch/changes").status == 404


def test_commit_and_run_the_new_image(api, container, images):
    cid = container(["sh", "-c", "echo committed > /hello; rm /etc/group"], Labels={"team": "fs"})
    assert api.wait(cid) == 0
    since = time.time()
    reply = api.post("/commit", container=cid, repo="docker.io/library/fs-commit", tag="v1", comment="a message",
                     author="me <me@x>", changes=['CMD ["cat", "/hello"]', "ENV GREETING=hi", "WORKDIR /tmp",
                                                  "ENV PATH=/opt/bin:$PATH", "ONBUILD RUN ls"])
    assert reply.status == 201, reply.body
    images.append("fs-commit:v1")
    image_id = reply.json()["Id"]
    got = [e for e in events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}")
           if e["Actor"]["ID"] in (cid, image_id)]
    assert [(e["Type"], e["Action"]) for e in got] == [("image", "tag"), ("container", "commit")]
    assert got[1]["Actor"]["Attributes"] == {"comment": "a message", "image": "busybox", "imageID": image_id,
                                             "imageRef": "fs-commit:v1", "name": api.get_json(f"/containers/{cid}/json")["Name"][1:],
                                             "team": "fs"}
    inspect = api.get_json("/images/fs-commit:v1/json")
    assert inspect["Id"] == image_id and inspect["Author"] == "me <me@x>" and inspect["Comment"] == "a message"
    config = inspect["Config"]
    assert config["Cmd"] == ["cat", "/hello"] and config["WorkingDir"] == "/tmp" and config["OnBuild"] == ["RUN ls"]
    # as dockerd: a change expands the config's own variables (a literal $PATH made an image nothing ran in)
    assert "GREETING=hi" in config["Env"] and "PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:" \
        "/sbin:/bin" in config["Env"]
    bad = api.post("/commit", container=cid, changes=["RUN true"])
    assert (bad.status, bad.message) == (400, "run is not a valid change command")
    assert config["Labels"] == {"team": "fs"}
    busybox_layers = api.get_json("/images/busybox/json")["RootFS"]["Layers"]
    assert inspect["RootFS"]["Layers"][:-1] == busybox_layers and len(inspect["RootFS"]["Layers"]) == 2
    history = api.get_json("/images/fs-commit:v1/history")
    assert history[0]["CreatedBy"] == "sh -c echo committed > /hello; rm /etc/group"
    assert history[0]["Comment"] == "a message" and history[0]["Size"] > 0 and history[0]["Id"] == image_id

    run = container([], image="fs-commit:v1")
    assert api.wait(run) == 0 and out(api, run) == "committed\n"
    gone = container(["sh", "-c", "test ! -e /etc/group && echo $GREETING $(pwd)"], image="fs-commit:v1")
    assert api.wait(gone) == 0 and out(api, gone) == "hi /tmp\n"
    assert api.get_json(f"/containers/{gone}/changes") == []  # the committed layer is the image now


def test_commit_keeps_deletions_and_replaced_directories(api, container, images):
    # /usr is removed and made again (an opaque directory), /var removed, one file deleted.
    cid = container(["sh", "-c", "rm -rf /var /usr; mkdir -p /usr/bin; echo only > /usr/only; rm /bin/ls"])
    assert api.wait(cid) == 0
    assert api.post("/commit", container=cid, repo="fs-opaque").status == 201
    images.append("fs-opaque")
    layer = api.get_json("/images/fs-opaque/json")["RootFS"]["Layers"][-1]
    check = container(["sh", "-c", "ls -A /usr /usr/bin; test -e /var || echo no-var; test -e /bin/ls || echo no-ls"],
                      image="fs-opaque")
    assert api.wait(check) == 0 and out(api, check).split() == ["/usr:", "bin", "only", "/usr/bin:", "no-var", "no-ls"]
    # The same changes committed again make the same layer: it is shared, not stored twice.
    assert api.post("/commit", container=cid, repo="fs-opaque-again").status == 201
    images.append("fs-opaque-again")
    assert api.get_json("/images/fs-opaque-again/json")["RootFS"]["Layers"][-1] == layer


def test_commit_pauses_a_running_container(api, container, images):
    cid = container(["sh", "-c", "echo up > /state; sleep 60"])
    time.sleep(0.2)
    since = time.time()
    reply = api.post("/commit", container=cid, repo="fs-paused")
    assert reply.status == 201, reply.body
    images.append("fs-paused")
    reply = api.post("/commit", container=cid, repo="fs-unpaused", pause="0")
    assert reply.status == 201
    images.append("fs-unpaused")
    got = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}", filters=json.dumps({"container": [cid]}))
    assert [e["Action"] for e in got] == ["pause", "unpause", "commit", "commit"]
    assert api.get_json(f"/containers/{cid}/json")["State"]["Status"] == "running"


def test_commit_with_config_body_and_empty_layer(api, container, images):
    cid = run_to_end(api, ["true"])
    try:
        body = {"Env": ["EXTRA=1"], "Cmd": ["echo", "from-body"], "Labels": {"k": "v"}}
        reply = api.request("POST", "/commit", query={"container": cid, "repo": "fs-body"}, json_body=body)
        assert reply.status == 201, reply.body
        images.append("fs-body")
        inspect = api.get_json("/images/fs-body/json")
        assert inspect["Config"]["Cmd"] == ["echo", "from-body"] and inspect["Config"]["Labels"] == {"k": "v"}
        assert inspect["Config"]["Env"][0] == "EXTRA=1" and any(e.startswith("PATH=") for e in inspect["Config"]["Env"])
        # Nothing changed in the container: no new layer, an empty-layer history entry.
        assert inspect["RootFS"]["Layers"] == api.get_json("/images/busybox/json")["RootFS"]["Layers"]
        assert api.get_json("/images/fs-body/history")[0]["Size"] == 0
        assert api.post("/commit", container="nosuch").status == 404
        assert api.post("/commit", container=cid, repo="Bad Name").status == 400
    finally:
        api.remove(cid)


def test_export_and_import_back(api, container, images):
    cid = run_to_end(api, ["sh", "-c", "echo exported > /proof; rm /etc/group"])
    try:
        since = time.time()
        reply = api.get(f"/containers/{cid}/export")
        assert reply.status == 200 and reply.headers["content-type"] == "application/octet-stream"
        assert reply.headers.get("transfer-encoding") == "chunked"
        got = events(api, since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}", filters=json.dumps({"container": [cid]}))
        assert [e["Action"] for e in got] == ["export"]
        with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
            names = tar.getnames()
        assert "proof" in names and "bin/busybox" in names and "etc/group" not in names
        assert not any(n.startswith(("/", "./")) for n in names)
        imported = api.request("POST", "/images/create", query={"fromSrc": "-", "repo": "fs-imported:v1",
                                                                  "changes": 'CMD ["cat", "/proof"]'},
                               body=reply.body)
        assert imported.status == 200, imported.body
        images.append("fs-imported:v1")
        back = container([], image="fs-imported:v1")
        assert api.wait(back) == 0 and out(api, back) == "exported\n"
    finally:
        api.remove(cid)


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_files_stream_both_ways(api, container, daemon):
    """64 MiB in and out of a container: the daemon's peak memory grows far less."""
    size = 64 << 20
    cid = container(["sh", "-c", "sha256sum /big/blob"], start=False)
    blob = hashlib.sha256()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big/blob")
        info.size = size
        data = bytes(range(256)) * (size // 256)
        blob.update(data)
        tar.addfile(info, io.BytesIO(data))
    Path(f"/proc/{daemon.proc.pid}/clear_refs").write_text("5")  # reset the peak to the current RSS
    before = vm_hwm_kib(daemon.proc.pid)
    assert put_tar(api, cid, "/", buf.getvalue()).status == 200
    del buf, data
    assert api.post(f"/containers/{cid}/start").status == 204 and api.wait(cid) == 0
    assert out(api, cid).split()[0] == blob.hexdigest()
    reply = api.request("GET", f"/containers/{cid}/archive", query={"path": "/big"})
    with tarfile.open(fileobj=io.BytesIO(reply.body)) as tar:
        assert hashlib.sha256(tar.extractfile("big/blob").read()).hexdigest() == blob.hexdigest()
    grown = vm_hwm_kib(daemon.proc.pid) - before
    assert grown < 32 << 10, f"the daemon's peak memory grew by {grown} KiB"
