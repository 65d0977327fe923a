"""`GET /events`: live stream, replay with since/until, Docker's filters and fields."""

from __future__ import annotations

import json
import socket
import time


def events(api, **query) -> list[dict]:
    reply = api.get("/events", **query)
    assert reply.status == 200, reply.body
    return [json.loads(line) for line in reply.body.splitlines() if line]


def test_lifecycle_events_replay(api):
    since = time.time()
    cid = api.run(["sh", "-c", "exit 2"], name="ev-one", Labels={"team": "x"})
    api.wait(cid)
    api.remove(cid)
    until = time.time() + 0.3
    got = events(api, since=f"{since:.9f}", until=f"{until:.9f}", filters=json.dumps({"container": ["ev-one"]}))
    assert [e["Action"] for e in got] == ["create", "start", "die", "destroy"]
    die = got[2]
    assert die["Actor"]["Attributes"] == {"exitCode": "2", "image": "busybox", "name": "ev-one", "team": "x"}
    assert die["status"] == "die" and die["id"] == cid and die["from"] == "busybox" and die["Type"] == "container"
    assert die["scope"] == "local" and die["timeNano"] // 10**9 == die["time"]
    # as dockerd: `until` alone replays what is kept, and a name matches by its prefix
    # (`container=ev-o` follows ev-one; after a rename the old name's prefix still does)
    assert [e["Action"] for e in events(api, until=f"{until:.9f}", filters=json.dumps({"container": ["ev-o"]}))][-4:] \
        == ["create", "start", "die", "destroy"]


def test_filters(api):
    since = time.time()
    cid = api.run(["sleep", "30"], name="ev-two", Labels={"team": "y"})
    api.post(f"/containers/{cid}/stop", t=0)
    api.post("/images/busybox/tag", repo="ev-tag")
    api.delete("/images/ev-tag")
    api.remove(cid)
    until = f"{time.time() + 0.3:.9f}"
    window = {"since": f"{since:.9f}", "until": until}
    stop = events(api, **window, filters=json.dumps({"event": ["kill", "stop"], "label": ["team=y"]}))
    assert [(e["Action"], e["Actor"]["Attributes"].get("signal")) for e in stop] == [("kill", "15"), ("kill", "9"), ("stop", None)]
    images = events(api, **window, filters=json.dumps({"type": ["image"]}))
    assert [e["Action"] for e in images] == ["tag", "untag"]
    assert images[0]["Actor"]["Attributes"]["name"] == "ev-tag:latest" and "from" not in images[0]


def test_live_stream_and_subscriber_leaving(api):
    s = socket.socket(socket.AF_UNIX)
    s.connect(api.sock)
    s.sendall(b'GET /events?filters={"event":["create"]} HTTP/1.1\r\nHost: x\r\n\r\n')
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)  # headers arrive before any event
    assert b" 200 " in head.split(b"\r\n")[0] + b" "
    cid = api.create(["true"], name="ev-live")
    data = b""
    while b"ev-live" not in data:
        data += s.recv(65536)
    s.close()
    api.remove(cid)
    deadline = time.time() + 5
    while api.get_json("/info")["NEventsListener"] and time.time() < deadline:
        time.sleep(0.05)
    assert api.get_json("/info")["NEventsListener"] == 0
