"""The real docker CLI against berth (DOCKER_HOST=unix://…), command by command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")


@pytest.fixture
def docker(daemon, tmp_path):
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(tmp_path)}

    def run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=env, capture_output=True, input=input, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} → {result.returncode}\n{result.stderr.decode()}")
        return result

    return run


def test_run_rm_echo(docker):
    result = docker("run", "--rm", "busybox", "echo", "hi")
    assert result.stdout == b"hi\n"


def test_run_i_with_empty_stdin_ends(docker):
    """The client's EOF may come before the container starts (`run -i … </dev/null`): it is kept for the start."""
    assert docker("run", "--rm", "-i", "busybox", "sh", "-c", "wc -c; echo done", input=b"").stdout.split() == [b"0", b"done"]


def test_attached_output_is_byte_exact_whatever_the_log(docker):
    """What `run` prints is what the container wrote: not the log's text (invalid UTF-8
    kept), and nothing lost to a log rotating faster than the client reads."""
    raw = docker("run", "--rm", "busybox", "printf", r"\377\376\000abc\200\n").stdout
    assert raw == b"\xff\xfe\x00abc\x80\n"
    expected = b"".join(b"%d\n" % n for n in range(1, 100001))
    for options in (["--log-opt", "max-size=2k", "--log-opt", "max-file=2"], ["--log-driver", "none"]):
        assert docker("run", "--rm", *options, "busybox", "seq", "1", "100000").stdout == expected, options
    tty = docker("run", "--rm", "-t", "busybox", "printf", r"\377\303(ok").stdout
    assert tty == b"\xff\xc3(ok"


def test_run_exit_status_and_stderr(docker):
    result = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (5, b"out\n", b"err\n")


def test_run_missing_executable_exits_127(docker):
    result = docker("run", "--rm", "busybox", "nosuchcmd", check=False)
    assert result.returncode == 127
    assert b"executable file not found" in result.stderr


def test_run_unknown_image(docker):
    """The CLI then pulls: from a closed port on loopback, never from a registry off this machine."""
    result = docker("run", "--rm", "127.0.0.1:1/no-such-image:v9", "true", check=False)
    assert result.returncode == 125
    assert b"Unable to find image '127.0.0.1:1/no-such-image:v9' locally" in result.stderr


def test_detached_lifecycle(docker):
    cid = docker("run", "-d", "--name", "cli-d", "-l", "app=cli", "busybox", "sh", "-c",
                 "echo started; while true; do sleep 0.1; done").stdout.decode().strip()
    assert len(cid) == 64
    ps = docker("ps", "-a", "--filter", "label=app=cli", "--format", "{{.Names}} {{.Status}}").stdout.decode()
    assert ps.startswith("cli-d Up")
    time.sleep(0.3)
    assert docker("logs", "cli-d").stdout == b"started\n"
    inspect = json.loads(docker("inspect", "cli-d").stdout)[0]
    assert inspect["Id"] == cid and inspect["State"]["Running"] and inspect["Config"]["Labels"] == {"app": "cli"}
    assert docker("inspect", "-f", "{{.State.Status}}", "cli-d").stdout == b"running\n"
    assert docker("stop", "-t", "1", "cli-d").stdout == b"cli-d\n"
    assert docker("inspect", "-f", "{{.State.ExitCode}}", "cli-d").stdout == b"137\n"
    assert docker("rm", "-f", "cli-d").stdout == b"cli-d\n"
    assert docker("inspect", "cli-d", check=False).returncode == 1


def test_images_tag_history_rmi(docker):
    assert b"busybox" in docker("images").stdout
    docker("tag", "busybox", "cli-tagged:v1")
    rows = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert "cli-tagged:v1" in rows and "busybox:latest" in rows
    history = docker("history", "cli-tagged:v1").stdout.decode()
    assert "IMAGE" in history and "CREATED BY" in history
    assert docker("rmi", "cli-tagged:v1").stdout == b"Untagged: cli-tagged:v1\n"


def test_import(docker, tmp_path):
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", "/", "bin/busybox"], check=True)
    out = docker("import", "-c", 'CMD ["/bin/busybox", "echo", "from import"]', "-m", "cli import", str(tar), "cli-imported:v1")
    assert out.stdout.startswith(b"sha256:")
    assert docker("run", "--rm", "cli-imported:v1").stdout == b"from import\n"
    assert docker("rmi", "cli-imported:v1").returncode == 0


def test_events(docker):
    since = str(time.time())
    docker("run", "--rm", "--name", "cli-ev", "busybox", "true")
    until = str(time.time() + 0.5)
    out = docker("events", "--since", since, "--until", until, "--filter", "container=cli-ev",
                 "--format", "{{.Action}}").stdout.decode().split()
    assert out[0] == "create" and "start" in out and "die" in out and out[-1] == "destroy"


def test_version_and_info(docker):
    version = docker("version").stdout.decode()
    assert "Server:" in version and "1.41" in version
    info = docker("info").stdout.decode()
    assert "Runtimes:" in info and "crun" in info and "runc" in info and "Cgroup Version" in info


def test_run_rm_delivers_all_output(docker):
    """The container and its log are removed at exit; the attach stream still gets every byte."""
    result = docker("run", "--rm", "busybox", "sh", "-c", "yes 0123456789abcdef | head -c 5000000")
    assert result.stdout == (b"0123456789abcdef\n" * 300_000)[:5_000_000]


def test_pause_exec_top_stats_rename_update(docker):
    cid = docker("run", "-d", "--name", "cli-ops", "busybox", "sh", "-c", "sleep 300; true").stdout.decode().strip()
    result = docker("exec", "-e", "XV=42", "-w", "/etc", "-u", "nobody", "cli-ops", "sh", "-c",
                    "echo $XV $(pwd) $(id -u); exit 4", check=False)
    assert (result.returncode, result.stdout) == (4, b"42 /etc 65534\n")
    assert docker("exec", "-i", "cli-ops", "tr", "a-z", "A-Z", input=b"quiet\n").stdout == b"QUIET\n"
    assert docker("exec", "cli-ops", "nosuchcmd", check=False).returncode == 126
    docker("exec", "-d", "cli-ops", "sh", "-c", "echo bg > /tmp/bg")
    time.sleep(0.3)
    assert docker("exec", "cli-ops", "cat", "/tmp/bg").stdout == b"bg\n"
    top = docker("top", "cli-ops").stdout.decode().splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and any(line.endswith("sleep 300") for line in top)
    stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "cli-ops").stdout
    assert stats.split()[0] == b"cli-ops" and int(stats.split()[1]) >= 2  # a just-ended exec may linger a moment
    docker("pause", "cli-ops")
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cli-ops").stdout == b"paused true\n"
    assert b"is paused" in docker("exec", "cli-ops", "true", check=False).stderr
    docker("unpause", "cli-ops")
    docker("rename", "cli-ops", "cli-ops-2")
    docker("update", "-m", "48m", "--pids-limit", "40", "cli-ops-2")
    assert docker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.Name}}",
                  "cli-ops-2").stdout == b"50331648 40 /cli-ops-2\n"
    # the CLI sends every field, zero where not given: as dockerd, a zero changes nothing
    docker("update", "--cpu-shares", "512", "--memory-reservation", "16m", "--cpuset-cpus", "0", "cli-ops-2")
    shown = "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpusetCpus}}"
    assert docker("inspect", "-f", shown, "cli-ops-2").stdout == b"50331648 512 16777216 0\n"
    assert docker("port", "cli-ops-2").stdout == b""
    docker("rm", "-f", cid)


def test_container_prune_and_system_df(docker):
    docker("run", "--name", "cli-prune", "--label", "cli-prune=1", "busybox", "true")
    out = docker("container", "prune", "-f", "--filter", "label=cli-prune=1").stdout.decode()
    assert out.startswith("Deleted Containers:") and "Total reclaimed space:" in out
    assert docker("ps", "-aq", "--filter", "name=cli-prune").stdout == b""
    lines = docker("system", "df").stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["TYPE", "TOTAL", "ACTIVE"] and lines[1].startswith("Images")
