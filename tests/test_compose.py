"""docker-compose 1.29.2 (Debian's package, which `make install` adds) driving projects
against berth end to end: a user network with service-name DNS and a named volume, a
published port fetched with the host's HTTP client, legacy links on the default bridge,
`depends_on` a healthy service, env files, restart policies, `--scale`, `top`,
`pause`/`unpause`, `run --rm`, `logs -f`, and `down -v` leaving nothing behind. Projects only ever use the local busybox."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")

THREE_SERVICES = """
    version: "3.8"
    services:
      writer:
        image: busybox
        command: sh -c 'echo hello-from-volume > /data/index.html; sleep 3600'
        volumes: ["content:/data"]
      web:
        image: busybox
        command: httpd -f -p 8080 -h /www
        volumes: ["content:/www:ro"]
        ports: ["127.0.0.1:{port}:8080"]
        depends_on: [writer]
      client:
        image: busybox
        command: sh -c 'until wget -qO- http://web:8080/index.html; do sleep 0.2; done; sleep 3600'
        depends_on: [web]
    volumes:
      content:
    """

LINKS = """
    version: "3.8"
    services:
      web:
        image: busybox
        command: sh -c 'mkdir /www; echo linked > /www/index.html; httpd -f -p 8080 -h /www'
        network_mode: bridge
        environment: [ROLE=server]
      client:
        image: busybox
        command: sh -c 'echo "role=$$WEB_ENV_ROLE"; until wget -qO- http://web:8080/; do sleep 0.2; done; sleep 3600'
        network_mode: bridge
        links: [web]
    """


@pytest.fixture
def compose(daemon, tmp_path):
    """Run docker-compose in a project directory of the test's own, against the test daemon;
    the project is taken down (volumes too) afterwards."""
    project = f"cp{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DOCKER_HOST": daemon.host, "COMPOSE_PROJECT_NAME": project, "COMPOSE_HTTP_TIMEOUT": "120"}

    def run(*args: str, check: bool = True) -> str:
        done = subprocess.run(["docker-compose", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert not check or done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def write(text: str) -> None:
        (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(text))

    run.write = write
    run.project = project
    run.env = env
    yield run
    if (tmp_path / "docker-compose.yml").exists():
        run("down", "-v", "--remove-orphans", "-t", "1", check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logs_until(compose, service: str, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while text not in (out := compose("logs", "--no-color", service)):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    return out


def test_three_services_on_a_user_network(compose, api):
    port = free_port()
    compose.write(THREE_SERVICES.format(port=port))
    compose("up", "-d")
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read() == b"hello-from-volume\n"
    logs_until(compose, "client", "hello-from-volume")
    listed = compose("ps")
    assert listed.count(" Up ") == 3 and f"127.0.0.1:{port}->8080/tcp" in listed
    assert "hello-from-volume" in compose("exec", "-T", "web", "cat", "/www/index.html")
    compose("stop", "-t", "1", "client")
    compose("start", "client")
    assert "Recreating" not in compose("up", "-d"), "an unchanged project is left as it is"
    compose("down", "-v", "-t", "1")
    assert not [c for c in api.get_json("/containers/json", all=1) if compose.project in c["Names"][0]]
    assert not [v for v in api.get_json("/volumes")["Volumes"] or [] if v["Name"].startswith(compose.project)]
    assert not [n for n in api.get_json("/networks") if n["Name"].startswith(compose.project)]


def test_legacy_links_on_the_default_bridge(compose):
    compose.write(LINKS)
    compose("up", "-d")
    out = logs_until(compose, "client", "linked")
    assert "role=server" in out


SIDECAR = """
    version: "3.8"
    services:
      base:
        image: busybox
        hostname: basehost
        command: sh -c 'mkdir /www; echo from-base > /www/i; exec httpd -f -p 8080 -h /www'
        volumes: ["./app.conf:/etc/app.conf:ro"]
      side:
        image: busybox
        network_mode: "service:base"
        depends_on: [base]
        command: sh -c 'until wget -qO- http://127.0.0.1:8080/i; do sleep 0.1; done; hostname; sleep 3600'
    """


def test_a_sidecar_on_a_services_network_and_a_file_bind(compose, tmp_path):
    (tmp_path / "app.conf").write_text("setting=1\n")
    compose.write(SIDECAR)
    compose("up", "-d")
    assert "from-base" in (out := logs_until(compose, "side", "basehost")), out
    assert compose("exec", "-T", "base", "cat", "/etc/app.conf") == "setting=1\n"


HEALTHY_DEPENDENCY = """
    version: "3.8"
    services:
      db:
        image: busybox
        command: sh -c 'sleep 2; touch /tmp/ready; sleep 3600'
        healthcheck:
          test: ["CMD", "test", "-f", "/tmp/ready"]
          interval: 500ms
          timeout: 2s
          retries: 20
      app:
        image: busybox
        command: sh -c 'echo "greeting=$$GREETING other=$$OTHER"; sleep 3600'
        env_file: [app.env]
        restart: unless-stopped
        depends_on:
          db:
            condition: service_healthy
      flaky:
        image: busybox
        command: sh -c 'echo attempt; exit 3'
        restart: on-failure:2
        depends_on: [app]
    """


def test_healthy_dependency_env_file_and_restart_policies(compose, api, tmp_path):
    (tmp_path / "app.env").write_text("GREETING=hi-from-envfile\n# a comment\nOTHER=two words\n")
    compose.write(HEALTHY_DEPENDENCY)
    compose("up", "-d")
    db = api.get_json(f"/containers/{compose.project}_db_1/json")
    app = api.get_json(f"/containers/{compose.project}_app_1/json")
    assert db["State"]["Health"]["Status"] == "healthy"
    passed = [entry["End"] for entry in db["State"]["Health"]["Log"] if entry["ExitCode"] == 0]
    assert passed and passed[0] < app["State"]["StartedAt"], "app started only once db was healthy"
    assert app["HostConfig"]["RestartPolicy"] == {"Name": "unless-stopped", "MaximumRetryCount": 0}
    logs_until(compose, "app", "greeting=hi-from-envfile other=two words")
    deadline = time.monotonic() + 30
    while (flaky := api.get_json(f"/containers/{compose.project}_flaky_1/json"))["RestartCount"] < 2 \
            or flaky["State"]["Status"] != "exited":
        assert time.monotonic() < deadline, flaky["State"]
        time.sleep(0.2)
    assert flaky["State"]["ExitCode"] == 3 and flaky["HostConfig"]["RestartPolicy"]["MaximumRetryCount"] == 2
    assert "(healthy)" in compose("ps", "db")


WORKERS = """
    version: "3.8"
    services:
      ticker:
        image: busybox
        command: sh -c 'i=0; while true; do echo tick $$i; i=$$((i+1)); sleep 0.3; done'
      worker:
        image: busybox
        command: sleep 3600
    """


def test_scale_top_pause_run_and_logs_follow(compose, api, tmp_path):
    compose.write(WORKERS)
    compose("up", "-d", "--scale", "worker=3")
    assert compose("ps", "worker").count(" Up ") == 3
    compose("up", "-d", "--scale", "worker=1")
    assert compose("ps", "worker").count(" Up ") == 1
    assert "sleep 3600" in compose("top", "worker")
    compose("pause", "worker")
    assert " Paused " in compose("ps", "worker")
    assert api.get_json(f"/containers/{compose.project}_worker_1/json")["State"]["Paused"] is True
    compose("unpause", "worker")
    assert " Up " in compose("ps", "worker")
    assert "one-off" in compose("run", "--rm", "-T", "worker", "echo", "one-off")
    assert not [c for c in api.get_json("/containers/json", all=1) if "_run_" in c["Names"][0]
                and compose.project in c["Names"][0]], "run --rm removes its container"
    follow = subprocess.Popen(["docker-compose", "logs", "-f", "--no-color", "ticker"], cwd=tmp_path,
                              env=compose.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 20
        while "tick 12" not in seen:  # lines written after `logs -f` started arrive as they are written
            assert time.monotonic() < deadline and follow.poll() is None, seen
            seen += follow.stdout.readline()
    finally:
        follow.terminate()
        follow.wait(10)
