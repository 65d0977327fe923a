"""`docker search`: `GET /images/search` against tiny registries served here on 127.0.0.1.

One answers `/v2/` and Docker Hub's v1 search (`/v1/search?q=…&n=…`); the other is like
Docker Distribution, whose `/v1/search` is a 404. Nothing reaches outside this machine.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

RESULTS = [
    {"name": "library/busybox", "description": "Busybox base image.", "star_count": 3000,
     "is_official": True, "is_automated": False},
    {"name": "someone/busybox-tools", "description": "A very long description of busybox tools that goes on and on",
     "star_count": 12, "is_official": False, "is_automated": True},
    {"name": "other/busybox", "description": "line\nbreak", "star_count": 0, "is_official": False,
     "is_automated": False},
]


class _Handler(http.server.BaseHTTPRequestHandler):
    searchable = True
    queries: list = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/":
            self._send(200, {})
        elif url.path == "/v1/search" and self.searchable:
            query = urllib.parse.parse_qs(url.query)
            self.queries.append(query)
            term, n = query.get("q", [""])[0], int(query.get("n", ["25"])[0])
            found = [r for r in RESULTS if term in r["name"]][:n]
            self._send(200, {"num_pages": 1, "num_results": len(found), "page_size": n, "page": 1,
                             "query": term, "results": found})
        else:
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})


def _serve(searchable: bool):
    handler = type("Handler", (_Handler,), {"searchable": searchable, "queries": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.fixture(scope="module")
def hub():
    server, handler = _serve(True)
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def distribution():
    server, _ = _serve(False)
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_api_search(api, hub):
    host, handler = hub
    found = api.get_json("/images/search", term=f"{host}/busybox")
    assert found == [{"star_count": r["star_count"], "is_official": r["is_official"], "name": r["name"],
                      "is_automated": r["is_automated"], "description": r["description"]} for r in RESULTS]
    assert handler.queries[-1] == {"q": ["busybox"], "n": ["25"]}
    assert api.get_json("/images/search", term=f"{host}/busybox", limit="1") == [found[0]]
    assert handler.queries[-1]["n"] == ["1"]
    assert api.get_json("/images/search", term=f"{host}/tools") == [found[1]]


def test_api_search_filters(api, hub):
    host, _ = hub

    def names(filters: dict) -> list[str]:
        return [r["name"] for r in api.get_json("/images/search", term=f"{host}/busybox",
                                                filters=json.dumps(filters))]

    assert names({"is-official": {"true": True}}) == ["library/busybox"]
    assert names({"is-official": ["false"]}) == ["someone/busybox-tools", "other/busybox"]
    assert names({"is-automated": ["true"]}) == ["someone/busybox-tools"]
    assert names({"stars": ["10"]}) == ["library/busybox", "someone/busybox-tools"]
    assert names({"stars": ["10", "100"]}) == ["library/busybox"]
    for bad, words in (({"nope": ["1"]}, "invalid filter 'nope'"), ({"stars": ["many"]}, "invalid filter 'stars=many'"),
                       ({"is-official": ["maybe"]}, "invalid filter 'is-official=maybe'")):
        reply = api.get("/images/search", term=f"{host}/busybox", filters=json.dumps(bad))
        assert reply.status == 400 and words in reply.message
    for limit in ("0", "101"):
        reply = api.get("/images/search", term=f"{host}/busybox", limit=limit)
        assert reply.status == 400 and "outside the range of [1, 100]" in reply.message


def test_api_search_without_search(api, distribution):
    reply = api.get("/images/search", term=f"{distribution}/busybox")
    assert reply.status == 404
    assert reply.message == f"registry {distribution} offers no search (it has no /v1/search)"


def test_api_search_unreachable(api):
    host = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    reply = api.get("/images/search", term=f"{host}/busybox")
    assert reply.status == 500 and host in reply.message and "unreachable" in reply.message
    assert time.monotonic() - started < 5


@pytest.fixture
def cli_env(daemon, tmp_path):
    return {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}


def berth(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shell.cli", "-H", env["DOCKER_HOST"], *args], env=env, cwd=REPO,
                          capture_output=True, timeout=60, text=True)


def test_berth_search(hub, distribution, cli_env):
    host, _ = hub
    result = berth(cli_env, "search", f"{host}/busybox")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    assert lines[1].split() == ["library/busybox", "Busybox", "base", "image.", "3000", "[OK]"]
    assert "A very long description of busybox tools tha…" in lines[2] and lines[2].split()[-2:] == ["12", "[OK]"]
    assert "line break" in lines[3]
    assert "goes on and on" in berth(cli_env, "search", "--no-trunc", f"{host}/tools").stdout
    result = berth(cli_env, "search", "--limit", "1", "--format", "{{.Name}} {{.StarCount}} {{.IsOfficial}}",
                   f"{host}/busybox")
    assert result.stdout == "library/busybox 3000 true\n"
    result = berth(cli_env, "search", "-f", "stars=10", "-f", "is-official=false", "--format", "{{.Name}}",
                   f"{host}/busybox")
    assert result.stdout == "someone/busybox-tools\n"
    bad = berth(cli_env, "search", "-f", "color=red", f"{host}/busybox")
    assert bad.returncode == 1 and "invalid filter 'color'" in bad.stderr
    none = berth(cli_env, "search", f"{distribution}/busybox")
    assert none.returncode == 1 and f"registry {distribution} offers no search" in none.stderr


def test_docker_cli_search(hub, distribution, cli_env):
    if not shutil_which("docker"):
        pytest.skip("the docker CLI is not installed")
    host, _ = hub
    result = subprocess.run(["docker", "search", f"{host}/busybox"], env=cli_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:4] == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [r["name"] for r in RESULTS]
    result = subprocess.run(["docker", "search", "--filter", "is-official=true", "--format", "{{.Name}}",
                             f"{host}/busybox"], env=cli_env, capture_output=True, text=True, timeout=60)
    assert result.stdout == "library/busybox\n", result.stderr
    none = subprocess.run(["docker", "search", f"{distribution}/busybox"], env=cli_env, capture_output=True,
                          text=True, timeout=60)
    assert none.returncode != 0 and f"registry {distribution} offers no search" in none.stderr


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)
