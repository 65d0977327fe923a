"""berth's own one-shot CLI against the daemon: docker's syntax, output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.daemon import REPO


@pytest.fixture
def berth(daemon):
    env = {**os.environ, "BERTH_HOST": daemon.host}

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shell.cli", *args], cwd=REPO, env=env, input=input,
                              capture_output=True, timeout=60)

    return run


def test_run_rm_prints_and_exits_with_status(berth):
    assert berth("run", "--rm", "busybox", "echo", "hi").stdout == b"hi\n"
    result = berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_run_errors(berth):
    result = berth("run", "--rm", "busybox", "nosuchcmd")
    assert result.returncode == 127 and b"executable file not found" in result.stderr
    result = berth("run", "--rm", "nope:v1", "true")
    assert result.returncode == 125 and b"Unable to find image 'nope:v1' locally" in result.stderr
    assert berth("run", "--bogus", "busybox").returncode == 125


def test_detached_ps_logs_stop_rm(berth):
    cid = berth("run", "-d", "--name", "cli-w", "-l", "app=cli", "--init", "busybox", "sh", "-c",
                "echo up; sleep 60").stdout.decode().strip()
    assert len(cid) == 64
    ps = berth("ps").stdout.decode().splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert any(line.startswith(cid[:12]) and line.endswith("cli-w") for line in ps)
    assert berth("ps", "-q", "--filter", "label=app=cli").stdout.decode().split() == [cid[:12]]
    assert berth("ps", "--format", "{{.Names}} {{.State}}", "-f", "name=cli-w").stdout == b"cli-w running\n"
    time.sleep(0.2)
    assert berth("logs", "cli-w").stdout == b"up\n"
    assert berth("logs", "-t", "cli-w").stdout.endswith(b"Z up\n")
    assert berth("stop", "-t", "1", "cli-w").stdout == b"cli-w\n"
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "cli-w").stdout == b"exited 143\n"
    assert berth("rm", "cli-w").stdout == b"cli-w\n"
    result = berth("rm", "cli-w")
    assert result.returncode == 1 and b"No such container: cli-w" in result.stderr


def test_create_start_attach_wait_kill_restart(berth):
    cid = berth("create", "--name", "cli-c", "busybox", "sh", "-c", "echo once; exit 4").stdout.decode().strip()
    result = berth("start", "-a", "cli-c")
    assert (result.returncode, result.stdout) == (4, b"once\n")
    assert berth("wait", "cli-c").stdout == b"4\n"
    berth("run", "-d", "--name", "cli-k", "busybox", "sleep", "60")
    assert berth("kill", "-s", "TERM", "cli-k").returncode == 0  # sleep as PID 1 ignores it
    assert berth("restart", "-t", "0", "cli-k").stdout == b"cli-k\n"
    assert berth("kill", "cli-k").stdout == b"cli-k\n"
    assert berth("wait", "cli-k").stdout == b"137\n"
    assert berth("rm", "-f", cid, "cli-k").returncode == 0


def test_images_tag_history_import_rmi(berth, tmp_path):
    assert b"busybox" in berth("images").stdout
    assert berth("tag", "busybox", "cli-copy:v2").returncode == 0
    rows = [line.split()[:2] for line in berth("images").stdout.decode().splitlines()[1:]]
    assert ["cli-copy", "v2"] in rows and ["busybox", "latest"] in rows
    assert b"CREATED BY" in berth("history", "cli-copy:v2").stdout
    assert berth("rmi", "cli-copy:v2").stdout == b"Untagged: cli-copy:v2\n"
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", "/", "bin/busybox"], check=True)
    out = berth("import", "-c", 'CMD ["/bin/busybox", "echo", "imported"]', "-m", "cli", str(tar), "cli-imp:1")
    assert out.stdout.startswith(b"sha256:"), out.stderr
    assert berth("run", "--rm", "cli-imp:1").stdout == b"imported\n"
    assert berth("import", "-", "cli-imp:2", input=tar.read_bytes()).returncode == 0
    deleted = berth("rmi", "cli-imp:1", "cli-imp:2").stdout.decode()
    assert "Untagged: cli-imp:1" in deleted and "Deleted: sha256:" in deleted


def test_events_inspect_version_info_plugins(berth):
    since = f"{time.time():.3f}"
    berth("run", "--rm", "--name", "cli-ev", "busybox", "true")
    out = berth("events", "--since", since, "--until", "0s", "-f", "container=cli-ev", "--format", "{{.Action}}")
    assert out.stdout.decode().split() == ["create", "attach", "start", "die", "destroy"]
    line = berth("events", "--since", since, "--until", "0s", "-f", "event=die").stdout.decode().splitlines()[0]
    assert " container die " in line and "exitCode=0" in line and "name=cli-ev" in line
    inspected = json.loads(berth("inspect", "busybox").stdout)
    assert inspected[0]["RepoTags"] == ["busybox:latest"]
    assert berth("inspect", "nothing-here").returncode == 1
    assert b"API version: 1.41" in berth("version").stdout
    info = berth("info")
    assert b"Runtimes: crun runc" in info.stdout and b"Cgroup Version" in info.stdout
    assert b"janitor" in berth("plugin", "ls").stdout


def test_unreachable_daemon(tmp_path):
    result = subprocess.run([sys.executable, "-m", "shell.cli", "-H", f"unix://{tmp_path}/none.sock", "ps"],
                            cwd=REPO, capture_output=True, timeout=30)
    assert result.returncode == 1 and b"Cannot connect to the berth daemon" in result.stderr


def test_help(berth):
    assert b"Commands:" in berth("--help").stdout
    assert b"--memory" in berth("run", "--help").stdout


def test_repl_runs_the_same_commands(berth):
    result = berth("shell", input=b"run --rm busybox echo from-repl\nbogus\nexit\n")
    assert result.returncode == 0
    assert b"from-repl" in result.stdout
    assert b"unknown command 'bogus'" in result.stderr and b"Traceback" not in result.stderr


def test_health_flags(berth):
    berth("run", "-d", "--name", "cli-h", "--init", "--health-cmd", "true", "--health-interval", "100ms",
          "busybox", "sleep", "30")
    deadline = time.monotonic() + 10
    while berth("inspect", "-f", "{{.State.Health.Status}}", "cli-h").stdout != b"healthy\n":
        assert time.monotonic() < deadline, "never became healthy"
        time.sleep(0.1)
    assert berth("rm", "-f", "cli-h").returncode == 0
