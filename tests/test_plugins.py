"""Plugins in a real daemon: discovery, typed config, events, supervision, management,
the documented example, and the shipped janitor."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def doc_example() -> str:
    text = DOCS.read_text()
    return re.search(r"<!-- example: deathwatch.py -->\n```python\n(.*?)```", text, re.S).group(1)


def until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def plugin_events(d, name: str, since: str) -> list[dict]:
    reply = d.api.get("/events", since=since, until=f"{time.time():.9f}",
                      filters=json.dumps({"type": ["plugin"], "plugin": [name]}))
    return [json.loads(line) for line in reply.body.splitlines()]


def setup_files(files: dict[str, str], config: str):
    def setup(d) -> None:
        d.plugins_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (d.plugins_dir / name).write_text(text)
        d.config_file.write_text(config)
    return setup


def test_documented_example_runs(fresh_daemon):
    d = fresh_daemon(setup=setup_files({"deathwatch.py": doc_example()},
                                       '[plugins.deathwatch]\nenabled = true\nreport = "failures.log"\n'))
    listed = {p["Name"]: p for p in d.api.get_json("/plugins")}
    assert listed["deathwatch"]["Enabled"] and listed["deathwatch"]["BerthStatus"]["Status"] == "running"
    assert not listed["janitor"]["Enabled"]  # shipped, discovered by entry point, off by default
    ok = d.api.run(["true"], name="fine")
    bad = d.api.run(["sh", "-c", "exit 3"], name="broken", Labels={"restart-me": "yes"})
    report = d.root / "plugins" / "deathwatch" / "failures.log"
    until(lambda: report.exists() and report.read_text().count("broken exited 3") >= 2)  # it restarted it once at least
    assert "fine" not in report.read_text()
    d.api.remove(ok)
    d.api.remove(bad)
    # a stop or a removal is the user's: noted, not undone, and the plugin does not fail on it
    stopped = d.api.run(["sleep", "60"], name="stopped", Labels={"restart-me": "yes"})
    removed = d.api.run(["sleep", "60"], name="removed", Labels={"restart-me": "yes"})
    assert d.api.post(f"/containers/{stopped}/stop", t=0).status == 204
    assert d.api.delete(f"/containers/{removed}", force=1).status == 204
    until(lambda: "stopped exited 137" in report.read_text() and "removed exited 137" in report.read_text())
    time.sleep(0.5)
    assert d.api.get_json(f"/containers/{stopped}/json")["State"]["Status"] == "exited"
    state = d.api.get_json("/plugins/deathwatch/json")["BerthStatus"]
    assert (state["Status"], state["Restarts"], state["LastError"]) == ("running", 0, "")
    d.api.remove(stopped)


def test_published_attributes_are_text(fresh_daemon):
    """Docker's attributes are a map of strings: a number or a boolean a plugin publishes
    is written as text (an int in the journal broke every events client, and cut the
    journal at the next start), and `name` or another kind of value is refused."""
    publisher = '''
from engine.plugin_api import Plugin
plugin = Plugin("publisher", events={"type": ["container"], "event": ["create"]})
@plugin.on_event
async def publish(ctx, event):
    ctx.publish("seen", container=event.Actor.Attributes["name"], count=3, ok=True, ratio=0.5, action="x")
    if event.Actor.Attributes["name"] == "second":
        ctx.publish("bad", name="second")
'''
    since = f"{time.time():.9f}"
    d = fresh_daemon(setup=setup_files({"publisher.py": publisher}, "[plugins.publisher]\nenabled = true\n"))
    first = d.api.create(["true"], name="first")
    until(lambda: [e for e in plugin_events(d, "publisher", since) if e["Action"] == "seen"])
    [seen] = [e for e in plugin_events(d, "publisher", since) if e["Action"] == "seen"]
    assert seen["Actor"]["Attributes"] == {"container": "first", "count": "3", "ok": "true", "ratio": "0.5",
                                           "action": "x", "name": "publisher"}
    second = d.api.create(["true"], name="second")
    error = until(lambda: [e for e in plugin_events(d, "publisher", since) if e["Action"] == "error"])
    assert "`name` is the plugin's own name" in error[0]["Actor"]["Attributes"]["error"]
    assert d.stop() == 0
    d.start()  # every event after the numbers is still there
    third = d.api.create(["true"], name="third")
    actions = [e["Action"] for e in plugin_events(d, "publisher", since)]
    assert actions.count("seen") >= 3 and "error" in actions
    for cid in (first, second, third):
        d.api.remove(cid)


def test_crashing_plugin_is_restarted_and_reported(fresh_daemon):
    crasher = '''
from engine.plugin_api import Plugin
plugin = Plugin("crasher", events={"event": ["create"]})
@plugin.on_event
async def boom(ctx, event):
    raise RuntimeError("kaboom " + event.Actor.Attributes["name"])
'''
    since = f"{time.time():.9f}"
    d = fresh_daemon(setup=setup_files({"crasher.py": crasher}, "[plugins.crasher]\nenabled = true\n"))
    cid = d.api.create(["true"], name="victim")
    state = until(lambda: (p := d.api.get_json("/plugins/crasher/json")["BerthStatus"])["Restarts"] >= 1 and p)
    assert "RuntimeError: kaboom victim" in state["LastError"]
    errors = [e for e in plugin_events(d, "crasher", since) if e["Action"] == "error"]
    assert errors and "kaboom victim" in errors[0]["Actor"]["Attributes"]["error"]
    assert d.api.get("/_ping").status == 200  # the daemon is unharmed
    d.api.remove(cid)


def test_invalid_config_is_refused_with_the_field_named(fresh_daemon):
    d = fresh_daemon(setup=setup_files({}, '[plugins.janitor]\nenabled = false\ninterval = "soon"\n'
                                           '[plugins.metrics]\nmax_failures = 0\n'))
    reply = d.api.post("/plugins/janitor/enable")
    assert reply.status == 400 and "janitor" in reply.message and "interval" in reply.message
    reply = d.api.post("/plugins/metrics/enable")
    assert reply.status == 400 and "metrics" in reply.message and "max_failures" in reply.message
    assert d.api.get("/plugins/nope/json").status == 404


def test_unknown_option_fails_the_plugin_until_reloaded(fresh_daemon):
    """A typo in a plugin's table (the documented example's Config accepts unknown keys
    by itself) is refused, and the plugin stays `failed` with the reason until a reload."""
    d = fresh_daemon(setup=setup_files({"deathwatch.py": doc_example()},
                                       '[plugins.deathwatch]\nenabled = true\nreprot = "x.log"\n'))
    state = until(lambda: (p := d.api.get_json("/plugins/deathwatch/json")["BerthStatus"])["Status"] == "failed" and p)
    assert "unknown option reprot" in state["LastError"] and "report" in state["LastError"]
    assert state["Restarts"] == 0
    d.config_file.write_text('[plugins.deathwatch]\nenabled = true\nreport = "x.log"\n')
    assert d.api.post("/plugins/deathwatch/reload").status == 200
    until(lambda: d.api.get_json("/plugins/deathwatch/json")["BerthStatus"]["Status"] == "running")
    d.config_file.write_text('[plugins.deathwatch]\nenabled = true\nbogus = 1\n')
    reply = d.api.post("/plugins/deathwatch/reload")
    assert reply.status == 400 and "unknown option bogus" in reply.message
    state = d.api.get_json("/plugins/deathwatch/json")["BerthStatus"]
    assert state["Status"] == "failed" and "bogus" in state["LastError"]


def test_enable_disable_reload_and_remembered(fresh_daemon):
    counter = '''
from engine.plugin_api import Plugin
plugin = Plugin("counter", events={"event": ["create"]}, durable=True)
@plugin.on_event
async def count(ctx, event):
    with open(ctx.state_dir / "seen", "a") as f:
        f.write(event.Actor.Attributes["name"] + "\\n")
'''
    d = fresh_daemon(setup=setup_files({"counter.py": counter}, ""))
    seen = d.root / "plugins" / "counter" / "seen"
    assert d.api.post("/plugins/counter/enable").status == 200
    a = d.api.create(["true"], name="one")
    until(lambda: seen.exists() and "one" in seen.read_text())
    assert d.api.post("/plugins/counter/disable").status == 200
    b = d.api.create(["true"], name="two")  # missed while disabled… but the cursor is durable
    assert d.stop() == 0
    d.start()
    assert d.api.get_json("/plugins/counter/json")["Enabled"] is False  # remembered
    (d.plugins_dir / "counter.py").write_text(counter.replace('+ "\\n"', '+ " v2\\n"'))
    assert d.api.post("/plugins/counter/reload").status == 200
    assert d.api.post("/plugins/counter/enable").status == 200
    until(lambda: "two v2" in seen.read_text())  # resumed from its cursor, with the new code
    assert seen.read_text().splitlines() == ["one", "two v2"]
    d.api.remove(a)
    d.api.remove(b)


def test_janitor_removes_expired_containers(fresh_daemon):
    since = f"{time.time():.9f}"
    d = fresh_daemon(setup=setup_files({}, "[plugins.janitor]\nenabled = true\ninterval = 0.2\n"))
    short = d.api.run(["true"], name="short-lived", Labels={"berth.ttl": "1s"})
    keep = d.api.run(["true"], name="kept")
    until(lambda: d.api.get(f"/containers/{short}/json").status == 404)
    assert d.api.get(f"/containers/{keep}/json").status == 200
    removed = until(lambda: [e for e in plugin_events(d, "janitor", since) if e["Action"] == "removed"])
    assert removed[0]["Actor"]["Attributes"]["containerName"] == "short-lived"
    d.api.remove(keep)


class HookServer:
    """A loopback HTTP server that records POSTed events; `failing` makes it answer 500."""

    def __init__(self):
        import http.server
        import threading

        self.bodies: list[dict] = []
        self.failing = 0  # how many more requests to fail
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.failing:
                    outer.failing -= 1
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> list[str]:
        return [b["Actor"]["Attributes"]["name"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_delivers_at_least_once_across_restarts(fresh_daemon):
    hook = HookServer()
    try:
        config = (f'[plugins.webhook]\nenabled = true\nurls = ["{hook.url}"]\nretry_initial = 0.05\n'
                  'filters = { type = ["container"], event = ["die"] }\n')
        d = fresh_daemon(setup=setup_files({}, config))
        hook.failing = 2
        first = d.api.run(["sh", "-c", "exit 3"], name="hooked-1")
        until(lambda: "hooked-1" in hook.names())
        assert hook.bodies[0]["Actor"]["Attributes"]["exitCode"] == "3" and hook.failing == 0
        hook.failing = 10**6  # the receiver is down…
        second = d.api.run(["true"], name="hooked-2")
        d.api.wait(second)
        time.sleep(0.3)
        assert d.stop() == 0  # …while the daemon stops with the event undelivered
        hook.failing = 0
        d.start()
        until(lambda: "hooked-2" in hook.names())
        assert hook.names().count("hooked-1") == 1
        d.api.remove(first)
        d.api.remove(second)
    finally:
        hook.close()


def test_metrics_endpoint(fresh_daemon):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = fresh_daemon(setup=setup_files({}, f'[plugins.metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'))

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            return r.read().decode()

    until(lambda: "\nberth_bus_lag_events 0\n" in scrape())  # caught up from the start, not behind every event
    cid = d.api.run(["sh", "-c", "while true; do :; done"], name="busy")
    time.sleep(0.5)

    text = until(lambda: (t := scrape()) and 'action="start"' in t and t)
    assert 'berth_containers{state="running"} 1' in text
    cpu = re.search(r'berth_container_cpu_seconds_total\{id="%s",name="busy"\} ([0-9.]+)' % cid[:12], text)
    assert cpu and float(cpu.group(1)) > 0.05
    assert re.search(r'berth_container_memory_bytes\{id="%s",name="busy"\} [1-9]\d*' % cid[:12], text)
    assert 'berth_events_total{type="container",action="start"} 1' in text
    assert "berth_bus_lag_events" in text and "berth_bus_published_total" in text
    d.api.remove(cid)


def test_healthcheck_keeps_state_health(fresh_daemon):
    d = fresh_daemon()  # shipped and on by default
    since = f"{time.time():.9f}"
    check = {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 100_000_000, "Timeout": 1_000_000_000, "Retries": 2}
    cid = d.api.run(["sh", "-c", "touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 60"], name="checked",
                    Healthcheck=check, HostConfig={"Init": True})
    assert d.state(cid)["Health"]["Status"] in ("starting", "healthy")  # as dockerd: there once start returns
    until(lambda: d.state(cid)["Health"]["Status"] == "healthy")
    health = until(lambda: (h := d.state(cid)["Health"])["Status"] == "unhealthy" and h)
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1 and len(health["Log"]) <= 5

    def actions() -> list[str]:
        reply = d.api.get("/events", since=since, until=f"{time.time():.9f}", filters=json.dumps({"container": ["checked"]}))
        return [json.loads(line)["Action"] for line in reply.body.splitlines()]

    seen = until(lambda: (a := actions()) and "health_status: unhealthy" in a and a)
    assert seen.index("health_status: healthy") < seen.index("health_status: unhealthy")
    assert any(a.startswith("exec_start: /bin/sh -c test -e /tmp/ok") for a in seen)
    assert "health_status: starting" not in seen  # as dockerd: healthy and unhealthy only
    plain = d.api.run(["sleep", "5"])
    assert "Health" not in d.state(plain)
    # stopped: the checks end and the status is unhealthy, as dockerd leaves it
    healthy = d.api.run(["sleep", "60"], Healthcheck={**check, "Test": ["CMD", "true"]}, HostConfig={"Init": True})
    until(lambda: d.state(healthy)["Health"]["Status"] == "healthy")
    d.api.post(f"/containers/{healthy}/stop", t=0)
    until(lambda: d.state(healthy)["Health"]["Status"] == "unhealthy")
    # paused: the checks stop and the status is unhealthy (as dockerd); an unpause resumes them
    paused = d.api.run(["sleep", "60"], Healthcheck={**check, "Test": ["CMD", "true"]}, HostConfig={"Init": True})
    until(lambda: d.state(paused)["Health"]["Status"] == "healthy")
    assert d.api.post(f"/containers/{paused}/pause").status == 204
    until(lambda: d.state(paused)["Health"]["Status"] == "unhealthy")
    assert d.api.post(f"/containers/{paused}/unpause").status == 204
    until(lambda: d.state(paused)["Health"]["Status"] == "healthy")
    # the start period spares only a container not yet healthy; a check killed at its timeout is -1
    once = {**check, "Test": ["CMD-SHELL", "test ! -e /tmp/seen && touch /tmp/seen"], "Retries": 1,
            "StartPeriod": 60_000_000_000}
    spared = d.api.run(["sleep", "60"], Healthcheck=once, HostConfig={"Init": True})
    until(lambda: d.state(spared)["Health"]["Status"] == "unhealthy")
    slow = d.api.run(["sleep", "60"], Healthcheck={**check, "Test": ["CMD", "sleep", "5"], "Timeout": 200_000_000},
                     HostConfig={"Init": True})
    last = until(lambda: (log := d.state(slow)["Health"]["Log"]) and log[-1])
    assert (last["ExitCode"], last["Output"]) == (-1, "Health check exceeded timeout (0.2s)")
    for c in (cid, plain, healthy, paused, spared, slow):
        d.api.remove(c)
    # a `rm -f` beside the checks' end (docker-py's tearDown) leaves the plugin running
    for _ in range(5):
        gone = d.api.run(["sleep", "60"], Healthcheck={**check, "Test": ["CMD", "true"]}, HostConfig={"Init": True})
        assert d.state(gone)["Health"]["Status"] in ("starting", "healthy")
        d.api.remove(gone)
    status = d.api.get_json("/plugins/healthcheck/json")["BerthStatus"]
    assert (status["Status"], status["Restarts"]) == ("running", 0), status


PICKY = '''
from engine.plugin_api import Plugin
plugin = Plugin("picky", events={"type": ["container"], "event": ["create"]}, durable=True)
@plugin.on_event
async def note(ctx, event):
    name = event.Actor.Attributes["name"]
    with open(ctx.state_dir / "seen", "a") as f:
        f.write(f"{ctx.cursor} {name}\\n")
    if name.startswith("poison"):
        raise RuntimeError("cannot digest " + name)
'''


def seen_by(d, name: str) -> list[tuple[int, str]]:
    """(cursor, container name) of every create event the plugin's handler was called with."""
    path = d.root / "plugins" / name / "seen"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(cursor), who) for cursor, who in (line.split() for line in lines)]


def test_poison_event_is_skipped_after_five_failures(fresh_daemon):
    since = f"{time.time():.9f}"
    d = fresh_daemon(setup=setup_files({"picky.py": PICKY}, "[plugins.picky]\nenabled = true\n"))
    ids = {name: d.api.create(["true"], name=name) for name in ("before", "poison", "after")}
    # back-off 0.5 + 1 + 2 + 4 + 8 s between the five failures and the skip
    skip = until(lambda: [e for e in plugin_events(d, "picky", since) if e["Action"] == "skip"], timeout=40)[0]
    until(lambda: ("after" in [who for _, who in seen_by(d, "picky")]))
    seen = seen_by(d, "picky")
    poison = [cursor for cursor, who in seen if who == "poison"]
    assert len(poison) == 5 and len(set(poison)) == 1  # the same event, five times
    assert [who for _, who in seen] == ["before"] + ["poison"] * 5 + ["after"]  # the others once each, in order
    attrs = skip["Actor"]["Attributes"]
    assert attrs["cursor"] == str(poison[0]) and attrs["failures"] == "5"
    assert (attrs["eventType"], attrs["eventAction"], attrs["eventActor"]) == ("container", "create", ids["poison"])
    assert attrs["error"] == "RuntimeError: cannot digest poison"
    errors = [e for e in plugin_events(d, "picky", since) if e["Action"] == "error"]
    assert len(errors) == 5 and errors[-1]["timeNano"] < skip["timeNano"]
    # the skipped event, found by its time
    found = d.api.get("/events", since=attrs["eventTime"], until=attrs["eventTime"])
    [event] = [json.loads(line) for line in found.body.splitlines()]
    assert (event["Action"], event["Actor"]["ID"]) == ("create", ids["poison"])
    for cid in ids.values():
        d.api.remove(cid)


def test_poison_limit_is_configurable_and_survives_restarts(fresh_daemon):
    since = f"{time.time():.9f}"
    d = fresh_daemon(setup=setup_files({"picky.py": PICKY}, "[plugins.picky]\nenabled = true\nmax_failures = 3\n"))
    poison = d.api.create(["true"], name="poison")
    until(lambda: len([e for e in plugin_events(d, "picky", since) if e["Action"] == "error"]) >= 2)
    assert d.stop() == 0  # two failures counted, on disk
    d.start()
    after = d.api.create(["true"], name="after")
    until(lambda: "after" in [who for _, who in seen_by(d, "picky")])
    [skip] = [e for e in plugin_events(d, "picky", since) if e["Action"] == "skip"]
    assert skip["Actor"]["Attributes"]["failures"] == "3" and skip["Actor"]["Attributes"]["eventActor"] == poison
    assert [who for _, who in seen_by(d, "picky")] == ["poison"] * 3 + ["after"]  # the third failure, after the restart
    assert d.stop() == 0
    d.start()  # neither the skipped event nor the handled one comes back
    later = d.api.create(["true"], name="later")
    until(lambda: "later" in [who for _, who in seen_by(d, "picky")])
    assert [who for _, who in seen_by(d, "picky")] == ["poison"] * 3 + ["after", "later"]
    assert len([e for e in plugin_events(d, "picky", since) if e["Action"] == "skip"]) == 1
    for cid in (poison, after, later):
        d.api.remove(cid)


def test_a_plugin_file_added_later_is_found_by_enable(fresh_daemon):
    d = fresh_daemon(setup=setup_files({}, ""))
    assert d.api.post("/plugins/latecomer/enable").status == 404
    (d.plugins_dir / "late.py").write_text('''
from engine.plugin_api import Plugin
plugin = Plugin("latecomer", events={"event": ["create"]})
@plugin.on_event
async def seen(ctx, event):
    (ctx.state_dir / "seen").write_text(event.Actor.Attributes["name"])
''')
    assert d.api.post("/plugins/latecomer/enable").status == 200
    until(lambda: d.api.get_json("/plugins/latecomer/json")["BerthStatus"]["Status"] == "running")
    cid = d.api.create(["true"], name="late-one")
    until(lambda: (d.root / "plugins" / "latecomer" / "seen").exists())
    d.api.remove(cid)
