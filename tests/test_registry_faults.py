"""Registries that fail: answers of 5xx, connections cut midway, slow blobs, and pulls
that run side by side. A proxy written here stands between berthd and a real
docker-registry on 127.0.0.1 and fails the requests each test names; berth must retry
with back-off, resume what it can, and store either the whole image or nothing.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.registry_server import Registry, free_port

pytestmark = pytest.mark.skipif(not shutil.which("docker-registry"),
                                reason="docker-registry is not installed (make install)")

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class Fault:
    def __init__(self, method: str, path: str, how: str, times: int):
        self.method, self.path, self.how, self.times = method, re.compile(path), how, times


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of `upstream` that fails the requests matching a
    fault, as many times as told: `503`/`502` (answered without forwarding), `drop`
    (forwarded, the answer never sent), `cut` (half the answer's body, then the
    connection closed), `slow` (answered a second late). Every request is recorded."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                proxy.serve(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self, method: str, path: str, how: str, times: int = 1) -> None:
        self.faults.append(Fault(method, path, how, times))

    def requests(self, method: str, path: str) -> list[dict[str, str]]:
        """The headers of every request seen matching `method` and the `path` pattern."""
        return [headers for m, p, headers in self.seen if m == method and re.search(path, p)]

    def _fault(self, method: str, path: str) -> str:
        with self._lock:
            for fault in self.faults:
                if fault.times and fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    return fault.how
        return ""

    def serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        with self._lock:
            self.seen.append((method, path, headers))
        how = self._fault(method, path)
        if how in ("502", "503"):
            answer = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected failure"}]}).encode()
            handler.send_response(int(how))
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if how == "drop":
            handler.close_connection = True
            return
        if how == "slow":
            time.sleep(1)
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        handler.end_headers()
        if how == "cut":
            handler.wfile.write(data[:len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        if method != "HEAD":
            handler.wfile.write(data)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def registry():
    r = Registry("", Path(tempfile.mkdtemp(prefix="berth-registry-")))
    yield r
    r.stop()


@pytest.fixture
def proxy(registry):
    p = FaultyProxy(registry.host)
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def forget_images(daemon):
    yield
    for image in daemon.api.get_json("/images/json"):
        for name in (image["RepoTags"] or []) + (image["RepoDigests"] or []):
            if name.startswith("127.0.0.1:"):
                daemon.api.delete(f"/images/{name}", force=1)


def messages(reply) -> list[dict]:
    return [json.loads(line) for line in reply.body.splitlines() if line.strip()]


def statuses(reply) -> list[str]:
    return [m.get("status", "") for m in messages(reply)]


def errors(reply) -> list[str]:
    return [m["error"] for m in messages(reply) if "error" in m]


def commit(api, image: str, repo: str, script: str) -> str:
    """`image` plus one layer made by `script`, committed as `repo:1`; its ID."""
    cid = api.run(["sh", "-c", script], image=image)
    assert api.wait(cid) == 0
    reply = api.post("/commit", container=cid, repo=repo, tag="1")
    assert reply.status == 201, reply.body
    api.remove(cid)
    return reply.json()["Id"]


def push(api, name: str):
    reply = api.request("POST", f"/images/{name}/push", query={"tag": "1"})
    assert reply.status == 200 and not errors(reply), reply.body
    return reply


def pull(api, name: str):
    return api.request("POST", "/images/create", query={"fromImage": name, "tag": "1"})


def layer_digests(registry: Registry, repo: str) -> list[str]:
    conn = http.client.HTTPConnection(registry.host)
    conn.request("GET", f"/v2/{repo}/manifests/1",
                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    manifest = json.loads(conn.getresponse().read())
    conn.close()
    return [layer["digest"] for layer in manifest["layers"]]


def layer_count(d) -> int:
    return len(list((d.root / "images" / "layers").iterdir()))


def test_pull_retries_5xx_and_resumes_a_cut_blob(api, registry, proxy, fresh_daemon):
    name = f"{registry.host}/resume"
    image_id = commit(api, "busybox", name, "head -c 3000000 /dev/urandom > /data && md5sum /data > /sum")
    push(api, name)
    top = layer_digests(registry, "resume")[-1]
    proxy.fail("GET", "/manifests/1$", "503", times=2)
    proxy.fail("GET", f"/blobs/{top}$", "cut")
    other = fresh_daemon()
    reply = pull(other.api, f"{proxy.host}/resume")
    assert reply.status == 200 and not errors(reply), reply.body
    assert statuses(reply)[-1] == f"Status: Downloaded newer image for {proxy.host}/resume:1"
    assert len(proxy.requests("GET", "/manifests/1$")) == 3  # two 503s, then the answer
    ranges = [h.get("Range") for h in proxy.requests("GET", f"/blobs/{top}$")]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert other.api.get_json(f"/images/{proxy.host}/resume:1/json")["Id"] == image_id
    cid = other.api.run(["md5sum", "-c", "/sum"], image=f"{proxy.host}/resume:1")
    assert other.api.wait(cid) == 0
    other.api.remove(cid)


def test_push_in_chunks_survives_failed_chunks(api, registry, proxy, fresh_daemon):
    """A 40 MB layer goes in 32 MiB chunks: a chunk answered 503 is sent again from
    where the registry stands, and one whose answer was lost (the registry has it, or
    has dropped the upload) resumes or starts anew; the config's monolithic PUT is
    retried after a 502. The pulled image is the pushed one, byte for byte."""
    name = f"{proxy.host}/chunked"
    image_id = commit(api, "busybox", name,
                      "head -c 40000000 /dev/urandom > /data && md5sum /data > /sum")
    proxy.fail("PATCH", "/blobs/uploads/", "503")
    proxy.fail("PATCH", "/blobs/uploads/", "drop")
    proxy.fail("PUT", "/blobs/uploads/", "502")
    reply = push(api, name)
    aux = [m["aux"] for m in messages(reply) if "aux" in m][0]
    patches = proxy.requests("PATCH", "/blobs/uploads/")
    assert len(patches) >= 4 and all("Content-Range" in h for h in patches)
    assert {h["Content-Range"].split("-")[0] for h in patches} >= {"0", str(32 << 20)}
    other = fresh_daemon()
    reply = pull(other.api, f"{registry.host}/chunked")
    assert reply.status == 200 and not errors(reply), reply.body
    assert f"Digest: {aux['Digest']}" in statuses(reply)
    assert other.api.get_json(f"/images/{registry.host}/chunked:1/json")["Id"] == image_id
    cid = other.api.run(["md5sum", "-c", "/sum"], image=f"{registry.host}/chunked:1")
    assert other.api.wait(cid) == 0
    other.api.remove(cid)


def test_a_registry_that_keeps_failing_leaves_nothing(api, registry, proxy, fresh_daemon):
    name = f"{registry.host}/failing"
    commit(api, "busybox", name, "echo one > /one")
    push(api, name)
    top = layer_digests(registry, "failing")[-1]
    proxy.fail("GET", f"/blobs/{top}$", "503", times=100)
    other = fresh_daemon()
    before = layer_count(other)
    started = time.monotonic()
    reply = pull(other.api, f"{proxy.host}/failing")
    assert time.monotonic() - started < 15
    assert reply.status == 200 and errors(reply), reply.body  # the stream had begun
    assert top in errors(reply)[0] and "injected failure" in errors(reply)[0]
    assert len(proxy.requests("GET", f"/blobs/{top}$")) == 4  # the first try and three retries
    assert layer_count(other) == before
    assert other.api.get(f"/images/{proxy.host}/failing:1/json").status == 404


def test_concurrent_pulls_fetch_a_shared_layer_once(api, registry, proxy, fresh_daemon):
    """Two images over one base layer the daemon lacks, pulled at once: the base blob is
    fetched by one pull (slowed, so the other finds it in flight and waits for it)."""
    base = commit(api, "busybox", f"{registry.host}/base", "head -c 5000000 /dev/urandom > /base")
    for flavour in ("left", "right"):
        commit(api, base, f"{registry.host}/{flavour}", f"echo {flavour} > /{flavour}")
        push(api, f"{registry.host}/{flavour}")
    shared = layer_digests(registry, "left")[-2]
    assert shared == layer_digests(registry, "right")[-2]
    proxy.fail("GET", f"/blobs/{shared}$", "slow", times=2)
    other = fresh_daemon()
    replies = {}

    def pull_one(flavour: str) -> None:
        replies[flavour] = pull(other.api, f"{proxy.host}/{flavour}")

    threads = [threading.Thread(target=pull_one, args=(f,)) for f in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for flavour, reply in replies.items():
        assert reply.status == 200 and not errors(reply), reply.body
        cid = other.api.run(["cat", "/base", f"/{flavour}"], image=f"{proxy.host}/{flavour}:1")
        assert other.api.wait(cid) == 0
        other.api.remove(cid)
    assert len(proxy.requests("GET", f"/blobs/{shared}$")) == 1
    assert "Waiting" in statuses(replies["left"]) + statuses(replies["right"])


def test_the_shell_pulls_and_pushes_in_the_background(daemon, api, registry):
    """`pull NAME &` and `push NAME &` at the prompt: the job's bytes in the toolbar while
    it runs, the stream's last status reported when it ends."""
    from shell import repl
    from shell.jobs import Jobs
    from shell.transport import Client

    ended = threading.Event()
    reports: list[tuple[str, bool]] = []
    toolbars: list[str] = []
    jobs = Jobs(Client(daemon.host),
                lambda: toolbars.append(jobs.toolbar()),
                lambda line, failed: (reports.append((line, failed)), ended.set()))
    name = f"{registry.host}/background:1"
    commit(api, "busybox", f"{registry.host}/background", "head -c 4000000 /dev/urandom > /data")
    assert repl.background(["push", name, "&"], jobs)
    assert ended.wait(60) and reports[-1][1] is False, reports
    assert reports[-1][0].startswith(f"[1] push {name}: 1: digest: sha256:")
    assert any("push" in bar and "%" in bar for bar in toolbars)
    api.delete(f"/images/{name}")
    ended.clear()
    toolbars.clear()
    assert repl.background(["pull", name, "&"], jobs)
    assert ended.wait(60) and reports[-1] == (f"[2] pull {name}: Status: Downloaded newer image for {name}", False)
    assert any("pull" in bar and "%" in bar for bar in toolbars)
    ended.clear()
    assert repl.background(["pull", f"{registry.host}/nosuch:1", "&"], jobs)
    assert ended.wait(60) and reports[-1][1] is True and "not found" in reports[-1][0]
    assert not jobs.running
