"""Volumes and bind mounts: `/volumes/...`, `-v`/`--mount` on containers, seeding from the
image, device volumes (tmpfs, bind), `rm -v`, events — through the Engine API, the real
docker CLI and berth's own CLI. The session fixture fails the run on any leftover mount."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from shell.cli import COMMANDS
from shell.completion import Names, ShellCompleter
from shell.transport import Client
from tests.daemon import REPO


def out(api, cid) -> str:
    return b"".join(p for s, p in api.logs(cid) if s == 1).decode()


def events(api, since: float, **filters) -> list[dict]:
    reply = api.get("/events", since=f"{since:.9f}", until=f"{time.time() + 0.3:.9f}",
                    **({"filters": json.dumps(filters)} if filters else {}))
    assert reply.status == 200, reply.body
    return [json.loads(line) for line in reply.body.splitlines() if line]


@pytest.fixture
def made(api):
    """Remembers what a test made (containers, volumes, images) and removes it after,
    even when the test fails: containers first, since they hold volumes and images."""
    things: dict[str, list[str]] = {"containers": [], "volumes": [], "images": []}
    yield things
    for cid in things["containers"]:
        api.delete(f"/containers/{cid}", force=1)
    for name in things["volumes"]:
        api.delete(f"/volumes/{name}", force=1)
    for ref in things["images"]:
        api.delete(f"/images/{ref}", force=1)


def run(api, made, cmd: list[str], **fields) -> str:
    cid = api.run(cmd, **fields)
    made["containers"].append(cid)
    return cid


def volume(api, made, name: str = "", **fields) -> dict:
    reply = api.post("/volumes/create", {"Name": name, **fields})
    assert reply.status == 201, reply.body
    made["volumes"].append(reply.json()["Name"])
    return reply.json()


def image_with_volume(api, made, repo: str, setup: str) -> None:
    """An image whose config declares VOLUME /data, committed from a container that ran `setup`."""
    cid = run(api, made, ["sh", "-c", setup])
    assert api.wait(cid) == 0
    reply = api.post("/commit", container=cid, repo=repo, changes=['VOLUME ["/data"]'])
    assert reply.status == 201, reply.body
    made["images"].append(repo)


# --- the volume API ------------------------------------------------------------------


def test_create_inspect_list_remove(api, made, daemon):
    vol = volume(api, made, "vol-api", Labels={"app": "t"})
    assert vol["Name"] == "vol-api" and vol["Driver"] == "local" and vol["Scope"] == "local"
    assert vol["Mountpoint"] == f"{daemon.root}/volumes/vol-api/_data" and vol["Options"] is None
    assert vol["Labels"] == {"app": "t"} and vol["CreatedAt"].endswith("Z")
    assert api.post("/volumes/create", {"Name": "vol-api"}).json() == vol  # an existing name: the same volume
    anon = volume(api, made)
    assert len(anon["Name"]) == 64 and int(anon["Name"], 16) >= 0
    assert api.get_json("/volumes/vol-api") == vol
    listed = api.get_json("/volumes")
    assert {v["Name"] for v in listed["Volumes"]} >= {"vol-api", anon["Name"]} and listed["Warnings"] == []
    for filters, wanted in (({"label": ["app=t"]}, ["vol-api"]), ({"name": {"ol-ap": True}}, ["vol-api"]),
                            ({"driver": ["local"], "label": ["app"]}, ["vol-api"]), ({"label": ["app=x"]}, [])):
        found = api.get_json("/volumes", filters=json.dumps(filters))["Volumes"]
        assert [v["Name"] for v in found] == wanted, filters
    assert api.get("/volumes", filters='{"bogus":["x"]}').status == 400
    assert api.delete("/volumes/vol-api").status == 204
    reply = api.get("/volumes/vol-api")
    assert (reply.status, reply.message) == (404, "get vol-api: no such volume")
    assert api.delete("/volumes/vol-api").status == 404
    assert api.delete("/volumes/vol-api", force=1).status == 204
    assert not Path(vol["Mountpoint"]).parent.exists()


def test_create_refusals(api):
    reply = api.post("/volumes/create", {"Name": "x", "Driver": "nfs-plugin"})
    assert (reply.status, reply.message) == (404, 'error looking up volume plugin nfs-plugin: plugin "nfs-plugin" not found')
    assert api.post("/volumes/create", {"Name": "bad/name"}).status == 400
    reply = api.post("/volumes/create", {"Name": "opts", "DriverOpts": {"colour": "red"}})
    assert (reply.status, reply.message) == (400, 'invalid option: "colour"')
    reply = api.post("/volumes/create", {"Name": "opts", "DriverOpts": {"type": "tmpfs"}})
    assert (reply.status, reply.message) == (400, 'missing required option: "device"')


def test_in_use_volume_is_409_and_dangling_filter(api, made):
    volume(api, made, "vol-used")
    volume(api, made, "vol-free")
    cid = run(api, made, ["true"], HostConfig={"Binds": ["vol-used:/v"]})
    assert api.wait(cid) == 0  # stopped, still in use
    for force in (0, 1):
        reply = api.delete("/volumes/vol-used", force=force)
        assert (reply.status, reply.message) == (409, f"remove vol-used: volume is in use - [{cid}]")
    dangling = {v["Name"] for v in api.get_json("/volumes", filters='{"dangling":["true"]}')["Volumes"]}
    assert "vol-free" in dangling and "vol-used" not in dangling
    assert "vol-used" in {v["Name"] for v in api.get_json("/volumes", filters='{"dangling":["0"]}')["Volumes"]}
    api.delete(f"/containers/{cid}")
    assert api.delete("/volumes/vol-used").status == 204


def test_prune_takes_unused_volumes(api, made):
    volume(api, made, "prune-named", Labels={"prune": "yes"})
    kept = volume(api, made, "prune-kept", Labels={"prune": "yes"})
    anon = volume(api, made, Labels={"prune": "yes", "com.docker.volume.anonymous": ""})
    cid = run(api, made, ["sh", "-c", "echo 12345 > /v/f"], HostConfig={"Binds": ["prune-kept:/v"]})
    assert api.wait(cid) == 0
    since = time.time()
    only_anonymous = api.post("/volumes/prune", filters=json.dumps({"label": ["prune=yes"], "all": ["false"]})).json()
    assert only_anonymous == {"VolumesDeleted": [anon["Name"]], "SpaceReclaimed": 0}
    # API 1.41: everything unused goes (the docker CLI 28 warns so for this API version)
    reply = api.post("/volumes/prune", filters=json.dumps({"label": ["prune=yes"]})).json()
    assert reply["VolumesDeleted"] == ["prune-named"]
    assert kept["Name"] in {v["Name"] for v in api.get_json("/volumes")["Volumes"]}
    got = events(api, since, type=["volume"])
    assert [(e["Action"], e["Actor"]["ID"]) for e in got] == [
        ("destroy", anon["Name"]), ("prune", ""), ("destroy", "prune-named"), ("prune", "")]
    assert got[0]["Actor"]["Attributes"] == {"driver": "local"} and "status" not in got[0]


# --- containers: named volumes, binds, tmpfs -------------------------------------------


def test_named_volume_survives_rm_and_daemon_restart(fresh_daemon):
    d = fresh_daemon()
    api = d.api
    cid = api.run(["sh", "-c", "echo kept > /data/f"], HostConfig={"Binds": ["keep:/data"]})  # created on first use
    assert api.wait(cid) == 0
    assert api.get_json("/volumes/keep")["Name"] == "keep"
    assert api.delete(f"/containers/{cid}", v=1).status == 204  # -v leaves named volumes alone
    assert d.stop() == 0
    d.start()
    assert api.get_json("/volumes/keep")["Labels"] is None
    cid = api.run(["cat", "/data/f"], HostConfig={"Binds": ["keep:/data:ro"]})
    assert api.wait(cid) == 0 and out(api, cid) == "kept\n"
    api.remove(cid)
    assert api.delete("/volumes/keep").status == 204


@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_bind_mounts_ro_rw_and_missing_host_dir(api, made, tmp_path, daemon, runtime):
    (tmp_path / "in").write_text("from host\n")
    created = tmp_path / "made" / "by-run"
    cid = run(api, made, ["sh", "-c", "cat /ro/in; echo out > /rw/out; echo x > /ro/no || echo refused; echo y > /new/f"],
              HostConfig={"Binds": [f"{tmp_path}:/ro:ro", f"{tmp_path}:/rw", f"{created}:/new"], "Runtime": runtime})
    assert api.wait(cid) == 0
    assert out(api, cid) == "from host\nrefused\n"
    assert (tmp_path / "out").read_text() == "out\n" and not (tmp_path / "no").exists()
    assert (created / "f").read_text() == "y\n"  # -v creates a missing host directory
    mounts = api.get_json(f"/containers/{cid}/json")["Mounts"]
    assert mounts[0] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/ro", "Mode": "ro", "RW": False,
                         "Propagation": "rprivate"}
    assert mounts[1]["RW"] is True and mounts[1]["Mode"] == ""
    assert not [m for m in daemon.mounts() if cid in m]
    # a file, by -v and by --mount (the compose `./app.conf:/etc/app.conf:ro` shape)
    cid = run(api, made, ["sh", "-c", "cat /etc/app.conf /one; echo no >> /etc/app.conf || echo refused"],
              HostConfig={"Binds": [f"{tmp_path / 'in'}:/etc/app.conf:ro"], "Runtime": runtime,
                          "Mounts": [{"Type": "bind", "Source": str(tmp_path / "in"), "Target": "/one"}]})
    assert api.wait(cid) == 0 and out(api, cid) == "from host\nfrom host\nrefused\n"
    assert (tmp_path / "in").read_text() == "from host\n"
    reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {
        "Mounts": [{"Type": "bind", "Source": str(tmp_path / "nope"), "Target": "/x"}]}})
    assert (reply.status, reply.message) == (
        400, f'invalid mount config for type "bind": bind source path does not exist: {tmp_path / "nope"}')
    for binds, status in ((["rel/dir:/x"], 400), (["v:relative"], 400), (["/a:/x", "/b:/x"], 400),
                          (["v:/x:bogus"], 400), (["v:/"], 400)):
        reply = api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": binds}})
        assert reply.status == status, (binds, reply.body)


def test_mounts_go_parents_first_whatever_their_order(api, made, tmp_path):
    """dockerd sorts every mount by depth: a directory over /etc keeps the container's own
    /etc/hosts, and `-v A:/data/sub -v B:/data` shows A inside B."""
    for name in ("etc", "top", "sub"):
        (tmp_path / name).mkdir()
    (tmp_path / "top" / "f").write_text("top\n")
    (tmp_path / "sub" / "g").write_text("sub\n")
    cid = run(api, made, ["sh", "-c", "cat /data/f /data/sub/g; grep -c localhost /etc/hosts; cat /etc/hostname"],
              HostConfig={"Binds": [f"{tmp_path / 'sub'}:/data/sub", f"{tmp_path / 'top'}:/data", f"{tmp_path / 'etc'}:/etc"]},
              Hostname="parents-first")
    assert api.wait(cid) == 0, out(api, cid)
    assert out(api, cid).split() == ["top", "sub", "2", "parents-first"]


def test_bind_propagation_needs_a_shared_source(api, made, daemon, tmp_path):
    """`:rslave` receives what is mounted later under a shared source; a private source
    is refused in dockerd's words rather than left silently private. Sources are tmpfs
    mounts of the test's own: the check reads the host's mount table (as dockerd's), the
    container binds what the daemon sees, and on a hybrid cgroup host berthd has a mount
    namespace of its own, so the shared one is made in both (the same one where they are
    one namespace)."""
    own = os.readlink(f"/proc/{daemon.proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    namespaces = [[], *([["nsenter", "-m", "-t", str(daemon.proc.pid)]] if own else [])]  # the host's (this test's), berthd's
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    private.mkdir()
    try:
        for ns in namespaces:
            script = f"mount -t tmpfs src {shared} && mount --make-shared {shared} && mkdir -p {shared}/in"
            subprocess.run([*ns, "sh", "-c", script], check=True)
        subprocess.run([*namespaces[0], "sh", "-c", f"mount -t tmpfs src {private} && mount --make-private {private}"],
                       check=True)
        cid = run(api, made, ["sh", "-c", "for i in $(seq 200); do [ -e /p/in/late ] && break; sleep 0.05; done; ls /p/in"],
                  HostConfig={"Binds": [f"{shared}:/p:rslave"]})
        subprocess.run([*namespaces[-1], "sh", "-c", f"mount -t tmpfs late {shared}/in && touch {shared}/in/late"],
                       check=True)
        assert api.wait(cid) == 0 and out(api, cid) == "late\n"
        for mode, words in (("rslave", "a shared or slave mount"), ("shared", "a shared mount")):
            cid = api.create(["true"], HostConfig={"Binds": [f"{private}:/p:{mode}"]})
            made["containers"].append(cid)
            reply = api.post(f"/containers/{cid}/start")
            assert (reply.status, reply.message) == (500, f"path {private} is mounted on {private} but it is not {words}")
    finally:
        for cid in made["containers"]:
            api.delete(f"/containers/{cid}", force=1)
        for ns in namespaces:
            for path in (shared, private):
                subprocess.run([*ns, "sh", "-c", f"while mountpoint -q {path}; do umount -R {path}; done"], check=True)


def test_tmpfs_mount(api, made, daemon):
    cid = run(api, made, ["sh", "-c", "grep ' /scratch ' /proc/mounts; echo x > /scratch/f; cat /scratch/f"],
              HostConfig={"Mounts": [{"Type": "tmpfs", "Target": "/scratch",
                                      "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1770}}]})
    assert api.wait(cid) == 0
    line, content = out(api, cid).splitlines()
    assert line.startswith("tmpfs /scratch tmpfs rw,") and "size=1024k" in line and "mode=1770" in line
    assert content == "x"
    assert api.get_json(f"/containers/{cid}/json")["Mounts"] == [
        {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "", "RW": True, "Propagation": ""}]


def test_local_tmpfs_volume_is_shared_while_used_and_unmounted_after(api, made, daemon):
    vol = volume(api, made, "vol-tmpfs", DriverOpts={"type": "tmpfs", "device": "tmpfs", "o": "size=8m,uid=1000"})
    assert vol["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,uid=1000"}
    writer = run(api, made, ["sh", "-c", "echo shared > /t/f; stat -c %u /t; sleep 30"], HostConfig={"Binds": ["vol-tmpfs:/t"]})
    deadline = time.time() + 10
    while "1000" not in out(api, writer) and time.time() < deadline:
        time.sleep(0.05)
    assert vol["Mountpoint"] in daemon.mounts()  # mounted once, at the volume's _data
    reader = run(api, made, ["sh", "-c", "cat /t/f; grep ' /t ' /proc/mounts"], HostConfig={"Binds": ["vol-tmpfs:/t"]})
    assert api.wait(reader) == 0
    text, mount = out(api, reader).splitlines()
    assert text == "shared" and mount.startswith("tmpfs /t tmpfs") and "size=8192k" in mount
    assert vol["Mountpoint"] in daemon.mounts()  # the writer still uses it
    api.post(f"/containers/{writer}/kill")
    api.wait(writer)
    assert vol["Mountpoint"] not in daemon.mounts()  # the last user stopped
    again = run(api, made, ["ls", "/t"], HostConfig={"Binds": ["vol-tmpfs:/t"]})
    assert api.wait(again) == 0 and out(api, again) == ""  # a fresh tmpfs each time it is first used


def test_local_bind_volume_keeps_host_data(api, made, daemon, tmp_path):
    host = tmp_path / "device"
    host.mkdir()
    (host / "keep").write_text("host file\n")
    vol = volume(api, made, "vol-bind", DriverOpts={"type": "none", "o": "bind", "device": str(host)})
    cid = run(api, made, ["sh", "-c", "cat /b/keep; echo new > /b/new"], HostConfig={"Binds": ["vol-bind:/b"]})
    assert api.wait(cid) == 0 and out(api, cid) == "host file\n"
    assert (host / "new").read_text() == "new\n"
    assert vol["Mountpoint"] not in daemon.mounts()
    api.delete(f"/containers/{cid}")
    assert api.delete("/volumes/vol-bind").status == 204
    assert sorted(os.listdir(host)) == ["keep", "new"]  # removing the volume never touches the device


# --- anonymous volumes, seeding, rm -v ---------------------------------------------------


def test_image_volume_is_anonymous_and_seeded(api, made, daemon):
    image_with_volume(api, made, "vol-image", "mkdir -p /data/sub && echo seed > /data/sub/f && chown -R 1000:1000 /data && chmod 0750 /data")
    cid = run(api, made, ["sh", "-c", "cat /data/sub/f; echo more > /data/g"], Image="vol-image")
    assert api.wait(cid) == 0 and out(api, cid) == "seed\n"
    inspect = api.get_json(f"/containers/{cid}/json")
    assert inspect["Config"]["Volumes"] == {"/data": {}}
    [mount] = inspect["Mounts"]
    name = mount["Name"]
    assert len(name) == 64 and mount["Type"] == "volume" and mount["Destination"] == "/data" and mount["Mode"] == ""
    data = Path(mount["Source"])
    st = data.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o750)  # the volume root takes the image dir's
    assert (data / "sub" / "f").stat().st_uid == 1000 and (data / "g").read_text() == "more\n"
    assert api.get_json(f"/volumes/{name}")["Labels"] == {"com.docker.volume.anonymous": ""}
    api.delete(f"/containers/{cid}")  # plain rm keeps it
    assert api.get(f"/volumes/{name}").status == 200
    made["volumes"].append(name)
    other = run(api, made, ["true"], Image="vol-image", HostConfig={"Binds": ["/data"]})  # `-v /data`: anonymous too
    assert api.wait(other) == 0
    other_name = api.get_json(f"/containers/{other}/json")["Mounts"][0]["Name"]
    assert other_name != name
    made["volumes"].append(other_name)


def test_rm_v_through_the_api(api, made):
    cid = run(api, made, ["true"], HostConfig={"Binds": ["/anon"]})
    assert api.wait(cid) == 0
    name = api.get_json(f"/containers/{cid}/json")["Mounts"][0]["Name"]
    made["volumes"].append(name)
    assert api.delete(f"/containers/{cid}", v=1).status == 204
    assert api.get(f"/volumes/{name}").status == 404


def test_run_rm_removes_anonymous_volumes_and_events(api, made):
    volume(api, made, "vol-ev")
    since = time.time()
    cid = api.run(["true"], HostConfig={"AutoRemove": True, "Binds": ["vol-ev:/named:ro", "/anon"]})
    api.wait(cid, "removed")
    got = events(api, since, type=["volume"])
    anon = next(e["Actor"]["ID"] for e in got if e["Actor"]["ID"] != "vol-ev")
    assert [(e["Action"], e["Actor"]["ID"]) for e in got] == [
        ("create", anon), ("mount", "vol-ev"), ("mount", anon), ("unmount", "vol-ev"), ("unmount", anon), ("destroy", anon)]
    assert got[1]["Actor"]["Attributes"] == {"driver": "local", "container": cid, "destination": "/named",
                                             "read/write": "false", "propagation": ""}
    assert got[2]["Actor"]["Attributes"]["read/write"] == "true"
    assert got[3]["Actor"]["Attributes"] == {"driver": "local", "container": cid}
    assert api.get("/volumes/vol-ev").status == 200 and api.get(f"/volumes/{anon}").status == 404


def test_seeding_keeps_modes_owners_links_and_nocopy(api, made):
    image_with_volume(api, made, "vol-seed", "mkdir /data && echo a > /data/a && chown 7:8 /data/a && chmod 4750 /data/a "
                      "&& ln -s a /data/link && ln /data/a /data/hard && mkdir -m 0700 /data/d")
    cid = run(api, made, ["sh", "-c", "cd /data && stat -c '%n %a %u %g %h' a d hard && readlink link"],
              Image="vol-seed", HostConfig={"Binds": ["vol-seeded:/data"]})
    made["volumes"].append("vol-seeded")
    assert api.wait(cid) == 0
    assert out(api, cid) == "a 4750 7 8 2\nd 700 0 0 2\nhard 4750 7 8 2\na\n"
    # a volume with content is not seeded over; nocopy skips seeding
    run_again = run(api, made, ["sh", "-c", "rm /data/a; ls /data"], Image="vol-seed", HostConfig={"Binds": ["vol-seeded:/data"]})
    assert api.wait(run_again) == 0 and out(api, run_again) == "d\nhard\nlink\n"
    empty = run(api, made, ["ls", "-A", "/data"], Image="vol-seed", HostConfig={"Mounts": [
        {"Type": "volume", "Source": "vol-nocopy", "Target": "/data", "VolumeOptions": {"NoCopy": True}}]})
    made["volumes"].append("vol-nocopy")
    assert api.wait(empty) == 0 and out(api, empty) == ""
    nocopy = run(api, made, ["ls", "-A", "/data"], Image="vol-seed", HostConfig={"Binds": ["vol-nocopy2:/data:nocopy"]})
    made["volumes"].append("vol-nocopy2")
    assert api.wait(nocopy) == 0 and out(api, nocopy) == ""


def test_mount_creates_volume_with_options_and_labels(api, made):
    cid = run(api, made, ["sh", "-c", "grep ' /m ' /proc/mounts"], HostConfig={"Mounts": [{
        "Type": "volume", "Source": "vol-mounted", "Target": "/m", "ReadOnly": True,
        "VolumeOptions": {"Labels": {"via": "mount"},
                          "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"}}}}]})
    made["volumes"].append("vol-mounted")
    assert api.wait(cid) == 0
    line = out(api, cid)
    assert line.startswith("tmpfs /m tmpfs ro,") and "size=2048k" in line
    vol = api.get_json("/volumes/vol-mounted")
    assert vol["Labels"] == {"via": "mount"} and vol["Options"]["o"] == "size=2m"
    assert api.get_json(f"/containers/{cid}/json")["Mounts"][0]["RW"] is False


# --- the docker CLI and berth's CLI ----------------------------------------------------------


@pytest.fixture
def docker(daemon, tmp_path):
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path)}

    def run_(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=env, capture_output=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {result.returncode}\n{result.stderr.decode()}")
        return result

    return run_


def test_docker_cli_volumes(docker, made, tmp_path):
    made["volumes"] += ["cli-vol", "cli-vol2"]
    assert docker("volume", "create", "--label", "app=cli", "cli-vol").stdout == b"cli-vol\n"
    assert docker("volume", "ls", "-q", "--filter", "label=app=cli").stdout == b"cli-vol\n"
    assert b"local     cli-vol" in docker("volume", "ls").stdout
    [vol] = json.loads(docker("volume", "inspect", "cli-vol").stdout)
    assert vol["Labels"] == {"app": "cli"} and vol["Mountpoint"].endswith("/volumes/cli-vol/_data")
    assert docker("inspect", "--type", "volume", "-f", "{{.Driver}}", "cli-vol").stdout == b"local\n"
    (tmp_path / "top.txt").write_text("top\n")
    result = docker("run", "--rm", "-v", "cli-vol:/vol", "-v", f"{tmp_path}:/bind:ro", "busybox", "sh", "-c",
                    "echo data > /vol/f; cat /bind/top.txt; cat /vol/f")
    assert result.stdout == b"top\ndata\n"
    result = docker("run", "--rm", "--mount", "type=volume,src=cli-vol,dst=/v2,readonly", "--mount",
                    "type=tmpfs,dst=/t,tmpfs-size=1m", "busybox", "sh", "-c", "cat /v2/f; grep ' /t ' /proc/mounts")
    first, second = result.stdout.decode().splitlines()
    assert first == "data" and second.startswith("tmpfs /t tmpfs") and "size=1024k" in second
    cid = docker("create", "-v", "cli-vol:/vol", "busybox", "true").stdout.decode().strip()
    made["containers"].append(cid)
    result = docker("volume", "rm", "cli-vol", check=False)
    assert result.returncode == 1
    assert result.stderr.decode() == f"Error response from daemon: remove cli-vol: volume is in use - [{cid}]\n"
    docker("rm", cid)
    docker("volume", "create", "cli-vol2")
    pruned = docker("volume", "prune", "-f", "--filter", "label=app=cli").stdout.decode()
    assert "cli-vol\n" in pruned and "cli-vol2" not in pruned and "Total reclaimed space: 5B" in pruned
    assert docker("volume", "rm", "cli-vol2").stdout == b"cli-vol2\n"
    result = docker("volume", "inspect", "cli-vol2", check=False)
    assert result.returncode == 1 and b"get cli-vol2: no such volume" in result.stderr


@pytest.fixture
def berth(daemon):
    env = {**os.environ, "BERTH_HOST": daemon.host}

    def run_(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shell.cli", *args], cwd=REPO, env=env,
                              capture_output=True, timeout=60)

    return run_


def test_berth_cli_volumes(berth, made, tmp_path):
    made["volumes"] += ["b-vol", "b-tmp"]
    assert berth("volume", "create", "--label", "app=b", "b-vol").stdout == b"b-vol\n"
    created = berth("volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "b-tmp")
    assert created.returncode == 0, created.stderr
    assert berth("volume", "ls", "-q", "--filter", "label=app=b").stdout == b"b-vol\n"
    listing = berth("volume", "ls").stdout.decode().splitlines()
    assert listing[0].split() == ["DRIVER", "VOLUME", "NAME"] and ["local", "b-tmp"] in [r.split() for r in listing]
    [vol] = json.loads(berth("volume", "inspect", "b-tmp").stdout)
    assert vol["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    assert berth("volume", "inspect", "-f", "{{.Driver}}", "b-vol").stdout == b"local\n"
    result = berth("run", "--rm", "-v", "b-vol:/v", "-v", f"{tmp_path}:/h", "--mount", "type=tmpfs,target=/t,tmpfs-size=64k",
                   "busybox", "sh", "-c", "echo hi > /v/f; echo host > /h/f; grep -c ' /t tmpfs' /proc/mounts")
    assert result.stdout == b"1\n", result.stderr
    assert (tmp_path / "f").read_text() == "host\n"
    result = berth("run", "--rm", "--mount", "type=volume,source=b-vol,target=/v,readonly", "busybox", "cat", "/v/f")
    assert result.stdout == b"hi\n", result.stderr
    result = berth("run", "--rm", "--mount", "type=nonsense,target=/x", "busybox", "true")
    assert result.returncode == 125 and b'invalid mount config for type "nonsense": mount type unknown' in result.stderr
    assert berth("volume", "rm", "b-vol", "b-tmp").stdout == b"b-vol\nb-tmp\n"
    result = berth("volume", "rm", "b-vol")
    assert result.returncode == 1 and b"get b-vol: no such volume" in result.stderr
    berth("volume", "create", "b-prune")
    pruned = berth("volume", "prune", "-f").stdout.decode()
    assert "Deleted Volumes:\nb-prune\n" in pruned and "Total reclaimed space" in pruned


def test_shell_completes_volume_names(daemon, made, api):
    volume(api, made, "complete-me")
    completer = ShellCompleter(COMMANDS, Names(Client(daemon.host)))
    event = CompleteEvent(completion_requested=True)
    assert [c.text for c in completer.get_completions(Document("volume rm compl"), event)] == ["complete-me"]
    assert [c.text for c in completer.get_completions(Document("volume ins"), event)] == ["inspect"]
