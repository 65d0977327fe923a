"""Contexts kept between builds (`POST /build/context`, `berthcontext=`, `POST /build/prune`):
a client that lists its files sends only those berthd has not kept; what it kept is
exactly what was sent, and nothing outside the kept tree can be linked in."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

import pytest

from gounits import size
from tests.daemon import REPO
from tests.test_build import Build, _output, context

OLD = 1_600_000_000 * 10**9  # file times long before any build: not racy


def _file(path: str, size: int, ino: int, mtime: int = OLD) -> list:
    return [path, 0o100644, size, mtime, mtime, ino, 64]


def _offer(api, source: str, files: list, now_ns: int | None = None) -> dict:
    reply = api.post("/build/context", {"source": source, "now_ns": now_ns or time.time_ns(), "files": files})
    assert reply.status == 200, reply.body
    return reply.json()


@pytest.fixture
def kept(api):
    """Build with a session; the images made are removed afterwards, the kept contexts pruned."""
    made: list[str] = []

    def build(session: str, files: dict, body: bytes | None = None) -> Build:
        reply = api.request("POST", "/build", query={"berthcontext": session, "rm": "1"},
                            body=body or context(files), headers={"Content-Type": "application/x-tar"})
        result = Build(reply.status, reply.body)
        made.extend(m["aux"]["ID"] for m in result.messages if "aux" in m)
        return result

    yield build
    for ref in made:
        api.delete(f"/images/{ref}", force="1")
    api.post("/build/prune")


DOCKERFILE = "FROM busybox\nCOPY . /ctx\n"


def test_only_what_changed_is_asked_for_and_the_rest_is_linked(api, kept):
    source = f"test:/kept/{time.time_ns()}"
    listing = [_file("Dockerfile", len(DOCKERFILE), 1), _file("a.txt", 3, 2), _file("dir/b.txt", 3, 3)]
    first = _offer(api, source, listing)
    assert first["send"] == [0, 1, 2]  # nothing kept yet
    built = kept(first["session"], {"Dockerfile": DOCKERFILE, "a.txt": "one", "dir/": "", "dir/b.txt": "two"})
    assert built.error is None, built.messages
    assert _output(api, built.id, "cat /ctx/a.txt /ctx/dir/b.txt") == "onetwo"

    again = _offer(api, source, listing)
    assert again["send"] == []
    built = kept(again["session"], {"dir/": ""})  # the directories still come in the tar
    assert built.error is None, built.messages
    assert _output(api, built.id, "cat /ctx/a.txt /ctx/dir/b.txt; ls /ctx") == "onetwoDockerfile\na.txt\ndir\n"

    listing[1] = _file("a.txt", 3, 2, mtime=OLD + 1)  # written since: asked for again
    changed = _offer(api, source, listing)
    assert changed["send"] == [1]
    built = kept(changed["session"], {"a.txt": "ONE", "dir/": ""})
    assert _output(api, built.id, "cat /ctx/a.txt /ctx/dir/b.txt") == "ONEtwo"

    fewer = _offer(api, source, listing[:2])  # dir/b.txt deleted by the client
    assert fewer["send"] == []
    built = kept(fewer["session"], {})
    assert _output(api, built.id, "find /ctx | sort") == "/ctx\n/ctx/Dockerfile\n/ctx/a.txt\n"


def test_a_file_changed_near_the_listing_is_never_trusted(api, kept):
    source = f"test:/racy/{time.time_ns()}"
    now = time.time_ns()
    listing = [_file("Dockerfile", len(DOCKERFILE), 1, mtime=now - 10**9)]  # within 2 s of the listing
    session = _offer(api, source, listing, now)["session"]
    assert kept(session, {"Dockerfile": DOCKERFILE}).error is None
    # a second write within the same tick of the file system's clock would leave these times
    assert _offer(api, source, listing, now)["send"] == [0]


def test_nothing_outside_the_kept_tree_is_linked(api, kept):
    """A client that lists `d/passwd` but sends `d` as a symlink to /etc: the next offer
    with the same listing cannot take the host's file through the link."""
    source = f"test:/escape/{time.time_ns()}"
    dockerfile = b"FROM busybox\nLABEL escape=tried\n"
    listing = [_file("Dockerfile", len(dockerfile), 1), _file("d/passwd", os.stat("/etc/passwd").st_size, 2)]
    session = _offer(api, source, listing)["session"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        link = tarfile.TarInfo("d")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    assert kept(session, {}, body=buf.getvalue()).error is None
    assert _offer(api, source, listing)["send"] == [1]


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "./a", "a/../b", ""])
def test_a_bad_path_in_the_listing_is_a_400_naming_it(api, path):
    reply = api.post("/build/context", {"source": "test:/bad", "now_ns": 0, "files": [_file(path, 1, 1)]})
    assert reply.status == 400
    assert "invalid path in the build context listing" in reply.message


def test_bad_offers_and_sessions_are_400s(api):
    twice = api.post("/build/context", {"source": "test:/twice", "now_ns": 0,
                                        "files": [_file("a", 1, 1), _file("a", 1, 2)]})
    assert twice.status == 400 and "names 'a' twice" in twice.message
    nameless = api.post("/build/context", {"source": "", "now_ns": 0, "files": []})
    assert nameless.status == 400 and "names its source" in nameless.message
    malformed = api.post("/build/context", {"source": "x", "files": "nope"})
    assert malformed.status == 400
    unknown = api.request("POST", "/build", query={"berthcontext": "feedface"}, body=context({"Dockerfile": "FROM busybox"}))
    assert unknown.status == 400 and "unknown or expired build context session 'feedface'" in unknown.message


def test_prune_drops_what_was_kept(api, kept, daemon):
    source = f"test:/prune/{time.time_ns()}"
    data = "x" * 100_000
    listing = [_file("Dockerfile", len(DOCKERFILE), 1), _file("big.bin", len(data), 2)]
    session = _offer(api, source, listing)["session"]
    assert kept(session, {"Dockerfile": DOCKERFILE, "big.bin": data}).error is None
    records = {r["ID"]: r for r in api.get_json("/system/df")["BuildCache"]}
    mine = next(r for r in records.values() if r["Description"] == f"local source for context {source}")
    assert mine["Type"] == "source.local" and mine["UsageCount"] == 1 and mine["Size"] >= len(data)
    assert not mine["InUse"] and mine["CreatedAt"].endswith("Z")
    shown = subprocess.run([sys.executable, "-m", "shell.cli", "-H", daemon.host, "system", "df"], cwd=REPO,
                           capture_output=True, text=True, timeout=60).stdout.splitlines()
    cache = next(line.split() for line in shown if line.startswith("Build Cache"))
    total = sum(r["Size"] for r in records.values() if not r["Shared"])
    assert cache[2:] == [str(len(records)), "0", size(total, 4), size(total, 4)]  # as the docker CLI's row
    refused = api.request("POST", "/build/prune", query={"filters": '{"dangling":["true"]}'})
    assert refused.status == 400 and "invalid filter 'dangling'" in refused.message
    nothing = {"CachesDeleted": [], "SpaceReclaimed": 0}
    assert api.post("/build/prune", **{"keep-storage": str(1 << 30)}).json() == nothing  # all within the limit
    assert api.request("POST", "/build/prune", query={"filters": '{"until":["1000000000"]}'}).json() == nothing
    assert api.request("POST", "/build/prune", query={"filters": '{"until":["24h"]}'}).json() == nothing
    assert api.request("POST", "/build/prune", query={"filters": '{"label":["x"]}'}).json() == nothing  # none has one
    pruned = api.request("POST", "/build/prune", query={"filters": '{"label!":["x"]}'}).json()
    assert mine["ID"] in pruned["CachesDeleted"] and pruned["SpaceReclaimed"] >= len(data)
    assert api.get_json("/system/df")["BuildCache"] == []
    assert _offer(api, source, listing)["send"] == [0, 1]


def test_offered_sessions_are_bounded(api):
    """Offers never built are dropped, the oldest first, beyond the daemon's bound (32)."""
    sessions = [_offer(api, f"test:/bound/{time.time_ns()}", [])["session"] for _ in range(33)]
    gone = api.request("POST", "/build", query={"berthcontext": sessions[0]}, body=context({}))
    assert gone.status == 400 and "unknown or expired build context session" in gone.message
    for session in sessions[1:]:  # each taken by a build that fails at once: its directory goes
        reply = api.request("POST", "/build", query={"berthcontext": session, "platform": "windows"},
                            body=context({}))
        assert reply.status == 400 and "not a supported platform" in reply.message
