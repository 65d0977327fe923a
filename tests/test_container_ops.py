"""Acting on running containers through the Engine API: pause/unpause, exec, top, port,
rename, update, stats, prune."""

from __future__ import annotations

import json
import time

import pytest

from engine.runtime import cgroups

RUNTIMES = ["crun", "runc"]
COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done"]


def lines_out(api, cid) -> int:
    return b"".join(p for s, p in api.logs(cid) if s == 1).count(b"\n")


def state(api, cid) -> dict:
    return api.get_json(f"/containers/{cid}/json")["State"]


def events(api, cid, since: float) -> list[str]:
    reply = api.get("/events", since=f"{since:.9f}", until=f"{time.time():.9f}",
                    filters=json.dumps({"container": [cid]}))
    return [json.loads(line)["Action"] for line in reply.body.splitlines() if line.strip()]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pause_freezes_and_unpause_thaws(api, daemon, runtime):
    started = time.time()
    cid = api.run(COUNTER, HostConfig={"Runtime": runtime})
    time.sleep(0.2)
    assert api.post(f"/containers/{cid}/pause").status == 204
    st = state(api, cid)
    assert (st["Status"], st["Running"], st["Paused"]) == ("paused", True, True)
    layout = cgroups.detect()
    assert cgroups.is_frozen(layout, f"/{daemon.cgroup_parent}/{cid}") is True
    row = api.get_json("/containers/json", filters=json.dumps({"status": ["paused"]}))
    assert [c["Id"] for c in row] == [cid] and row[0]["Status"].endswith("(Paused)")
    frozen_at = lines_out(api, cid)
    time.sleep(0.3)
    assert lines_out(api, cid) == frozen_at  # nothing ran while frozen

    assert api.post(f"/containers/{cid}/pause").message == f"Container {cid} is already paused"
    assert api.post(f"/containers/{cid}/unpause").status == 204
    assert state(api, cid)["Status"] == "running" and not state(api, cid)["Paused"]
    time.sleep(0.3)
    assert lines_out(api, cid) > frozen_at
    assert api.post(f"/containers/{cid}/unpause").message == f"Container {cid} is not paused"
    api.remove(cid)
    assert events(api, cid, started)[:4] == ["create", "start", "pause", "unpause"]


def test_pause_refusals(api):
    cid = api.create(["true"])
    reply = api.post(f"/containers/{cid}/pause")
    assert reply.status == 409 and reply.message == f"Container {cid} is not running"
    assert api.post("/containers/nope/pause").status == 404
    api.remove(cid)


def test_a_paused_container_stops_kills_and_goes(api):
    # sh as PID 1 ignores SIGTERM: stop must end with SIGKILL, delivered although frozen
    cid = api.run(["sh", "-c", "sleep 60"])
    api.post(f"/containers/{cid}/pause")
    assert api.post(f"/containers/{cid}/start").status == 409
    reply = api.delete(f"/containers/{cid}")
    assert reply.status == 409 and "paused" in reply.message
    assert api.post(f"/containers/{cid}/stop", t=1).status == 204
    st = state(api, cid)
    assert (st["Status"], st["Paused"], st["ExitCode"]) == ("exited", False, 137)

    cid2 = api.run(["sleep", "60"], HostConfig={"Init": True})
    api.post(f"/containers/{cid2}/pause")
    assert api.post(f"/containers/{cid2}/kill").status == 204
    assert api.wait(cid2) == 137

    cid3 = api.run(["sleep", "60"])
    api.post(f"/containers/{cid3}/pause")
    assert api.delete(f"/containers/{cid3}", force=1).status == 204
    assert api.get(f"/containers/{cid3}/json").status == 404
    for c in (cid, cid2):
        api.remove(c)
