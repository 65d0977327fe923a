"""berth's own one-shot CLI against the daemon: docker's syntax, output and exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import REPO


@pytest.fixture
def berth(daemon):
    env = {**os.environ, "BERTH_HOST": daemon.host}

    def run(*args: str, input: bytes | None = None, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shell.cli", *args], cwd=REPO, env={**env, **extra_env},
                              input=input, capture_output=True, timeout=60)

    return run


def test_run_rm_prints_and_exits_with_status(berth):
    assert berth("run", "--rm", "busybox", "echo", "hi").stdout == b"hi\n"
    result = berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_installed_launcher_starts_light(daemon):
    """The `berth` command as installed, on a one-shot `run`, imports none of the modules
    that once made up half of its start-up (docs/performance.md) nor the REPL's."""
    launcher = Path(sys.executable).parent / "berth"
    result = subprocess.run([sys.executable, "-X", "importtime", launcher, "-H", daemon.host, "run", "--rm", "busybox",
                             "echo", "hi"], capture_output=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, b"hi\n"), result.stderr
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "shell.cli" in imported
    assert not imported & {"re", "enum", "json", "socket", "selectors", "prompt_toolkit", "msgspec", "trio", "__future__"}
    # a container command's table is its own module's: no other noun's module is imported
    nouns = {name for name in imported if name.startswith("shell.commands.")}
    assert nouns == {"shell.commands.containers", "shell.commands.container_options", "shell.commands.printers"}


def _imports(daemon, *argv: str) -> set[str]:
    """The modules the installed launcher imports for a one-shot command, run as its first
    line runs it (`python -S`)."""
    launcher = Path(sys.executable).parent / "berth"
    result = subprocess.run([sys.executable, "-S", "-X", "importtime", launcher, "-H", daemon.host, *argv],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {line.rpartition("|")[2].strip() for line in result.stderr.decode().splitlines()
            if line.startswith("import time:")}


def test_pause_imports_only_what_it_uses(daemon, api):
    """A container command that prints no listing loads neither the renderers nor `run`'s
    options, nor JSON when it sends and reads none (pause + unpause are two CLI starts:
    every 0.1 ms of each counts); exec does without `run`'s options too."""
    cid = api.run(["sleep", "300"])
    try:
        assert not _imports(daemon, "pause", cid) & {"shell.render", "shell.commands.container_options", "__future__",
                                                     "shell.fastjson", "_json"}
        assert _imports(daemon, "unpause", cid) >= {"shell.cli", "shell.commands.containers"}
        assert "shell.commands.container_options" not in _imports(daemon, "exec", cid, "true")
    finally:
        api.remove(cid)


def test_one_shot_commands_leave_the_costly_modules_out(daemon):
    """`ps` imports not even `os` (~1 ms of its ~12), nor `run`'s options; a command of
    another noun loads the whole table of commands, whose modules import their heavy parts
    (the build context's tar, json for config.json, subprocess for credential helpers)
    only when used."""
    assert not _imports(daemon, "ps", "-a", "-q") & {"os", "struct", "typing", "__future__",
                                                      "shell.commands.container_options"}
    assert "shell.commands.build" in (table := _imports(daemon, "version"))
    assert not table & {"re", "json", "subprocess", "tarfile", "typing", "base64", "secrets", "shell.build_context"}


def test_run_errors(berth):
    result = berth("run", "--rm", "busybox", "nosuchcmd")
    assert result.returncode == 127 and b"executable file not found" in result.stderr
    result = berth("run", "--rm", "--pull", "never", "nope:v1", "true")
    assert result.returncode == 125 and b"No such image: nope:v1" in result.stderr
    # a missing image is pulled, here from a closed port on loopback: never off this machine
    result = berth("run", "--rm", "127.0.0.1:1/nope:v1", "true")
    assert result.returncode == 125 and b"Unable to find image '127.0.0.1:1/nope:v1' locally" in result.stderr
    assert berth("run", "--bogus", "busybox").returncode == 125


def test_detached_ps_logs_stop_rm(berth):
    cid = berth("run", "-d", "--name", "cli-w", "-l", "app=cli", "--init", "busybox", "sh", "-c",
                "echo up; sleep 60").stdout.decode().strip()
    assert len(cid) == 64
    ps = berth("ps").stdout.decode().splitlines()
    assert re.fullmatch(r"CONTAINER ID   IMAGE +COMMAND +CREATED +STATUS +PORTS     NAMES", ps[0])
    row = next(line for line in ps if line.startswith(cid[:12]))
    assert re.fullmatch(rf'{cid[:12]}   busybox +"sh -c \'echo up; sle…"   .* ago +Up .* +cli-w', row)
    (listed,) = [json.loads(line) for line in berth("ps", "--format", "json", "-f", "name=cli-w").stdout.splitlines()]
    assert (listed["ID"], listed["Names"], listed["State"], listed["Labels"]) == (cid[:12], "cli-w", "running", "app=cli")
    assert berth("ps", "-q", "--filter", "label=app=cli").stdout.decode().split() == [cid[:12]]
    assert berth("ps", "--format", "{{.Names}} {{.State}}", "-f", "name=cli-w").stdout == b"cli-w running\n"
    time.sleep(0.2)
    assert berth("logs", "cli-w").stdout == b"up\n"
    assert berth("logs", "-t", "cli-w").stdout.endswith(b"Z up\n")
    assert berth("stop", "-t", "1", "cli-w").stdout == b"cli-w\n"
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "cli-w").stdout == b"exited 143\n"
    assert berth("rm", "cli-w").stdout == b"cli-w\n"
    result = berth("rm", "cli-w")
    assert result.returncode == 1 and result.stderr == b"Error response from daemon: No such container: cli-w\n"


def test_logs_split_streams_and_rm_f_of_a_running_container(berth):
    berth("run", "-d", "--name", "cli-l", "busybox", "sh", "-c", "echo o1; echo e1 >&2; sleep 0.2; echo o2; sleep 60")
    time.sleep(0.6)  # stdout and stderr are separate pipes: order is only kept per stream
    result = berth("logs", "cli-l")
    assert (result.stdout, result.stderr) == (b"o1\no2\n", b"e1\n")
    assert berth("logs", "--tail", "1", "cli-l").stdout == b"o2\n"
    assert berth("logs", "--details", "--tail", "1", "cli-l").stdout == b" o2\n"
    assert berth("rm", "cli-l").returncode == 1  # running: docker refuses without -f
    assert berth("rm", "-f", "cli-l").stdout == b"cli-l\n"
    assert b"cli-l" not in berth("ps", "-a").stdout
    result = berth("logs", "cli-l")
    assert result.returncode == 1 and b"No such container: cli-l" in result.stderr


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
    result = berth("start", "-a", "cli-c", "cli-k")
    assert result.returncode == 1 and b"cannot start and attach multiple containers" in result.stderr
    assert berth("rm", "-f", cid, "cli-k").returncode == 0


def test_images_tag_history_import_rmi(berth, tmp_path):
    assert b"busybox" in berth("images").stdout
    assert berth("tag", "busybox", "cli-copy:v2").returncode == 0
    rows = [line.split()[:2] for line in berth("images").stdout.decode().splitlines()[1:]]
    assert ["cli-copy", "v2"] in rows and ["busybox", "latest"] in rows
    history = berth("history", "cli-copy:v2").stdout.decode().splitlines()
    assert re.fullmatch(r"IMAGE +CREATED +CREATED BY +SIZE +COMMENT", history[0])
    assert re.match(r"[0-9a-f]{12}   .* ago .* \d+(\.\d+)?[kMG]?B +\S", history[1]), history
    assert berth("history", "-q", "busybox").stdout.decode().split()[0] == berth("images", "-q", "busybox").stdout.decode().strip()
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
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container die [0-9a-f]{64} "
                        r"\(exitCode=0, image=busybox, name=cli-ev\)", line), line
    inspected = json.loads(berth("inspect", "busybox").stdout)
    assert inspected[0]["RepoTags"] == ["busybox:latest"]
    assert json.loads(berth("inspect", "--format", "json", "busybox").stdout) == inspected
    missing = berth("inspect", "nothing-here")
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, b"[]\n", b"Error: No such object: nothing-here\n")
    version = berth("version").stdout.decode()
    assert version.startswith("Client:\n") and "\nServer: berth\n" in version
    assert re.search(r"API version: +1\.41 \(minimum version", version)
    info = berth("info")
    text = info.stdout.decode()
    assert text.startswith("Client:\n") and "\nServer:\n" in text and "Runtimes: crun runc\n" in text
    for field in ("Default Runtime", "Cgroup Driver", "Cgroup Version", "Total Memory"):
        assert re.search(rf"^ {field}: \S", text, re.M), field
    assert all(line.startswith("WARNING: ") for line in info.stderr.decode().splitlines())
    assert b"janitor" in berth("plugin", "ls").stdout


def test_inspect_prints_alike_for_every_noun(berth):
    """container, image, volume, network and plugin inspect, and plain inspect, share one
    printer: an indented JSON array, a compact one with `--format json`, a template line
    each with `-f`; a missing name is an error of its own while the others still print."""
    name = f"cli-insp-{os.getpid()}"
    assert berth("create", "--name", name, "busybox", "true").returncode == 0
    assert berth("volume", "create", name).returncode == 0
    assert berth("network", "create", name).returncode == 0
    try:
        for noun, known, template, line in [("container", name, "{{.Name}}", "/" + name),
                                            ("image", "busybox", "{{json .RepoTags}}", '["busybox:latest"]'),
                                            ("volume", name, "{{.Name}}", name), ("network", name, "{{.Name}}", name),
                                            ("plugin", "janitor", "{{.Name}}", "janitor")]:
            result = berth(noun, "inspect", "nope-1", known, "nope-2")
            assert result.returncode == 1, noun
            said = result.stderr.decode().splitlines()  # the daemon's words, as `docker image inspect`
            assert [line.startswith("Error response from daemon: ") for line in said] == [True, True], said
            assert "nope-1" in said[0] and "nope-2" in said[1]
            assert result.stdout.startswith(b"[\n    {") and len(json.loads(result.stdout)) == 1
            compact = berth(noun, "inspect", "--format", "json", known, known)
            assert compact.returncode == 0 and compact.stdout.count(b"\n") == 1 and len(json.loads(compact.stdout)) == 2
            assert berth(noun, "inspect", "-f", template, known, known).stdout.decode() == f"{line}\n{line}\n"
            missing = berth(noun, "inspect", "-f", template, "nope-1")
            assert (missing.returncode, missing.stdout) == (1, b"\n"), noun  # docker's empty line for none
            typed = berth("inspect", "--type", noun, "-f", template, known, "nope-1")
            assert (typed.returncode, typed.stdout.decode()) == (1, f"{line}\n"), noun
            assert typed.stderr.decode() == f"Error: No such {noun}: nope-1\n"
        # plain inspect: a container first, else an image, a network, a volume, a plugin
        found = berth("inspect", "-f", "{{.Name}}", name, "janitor", "nope-1")
        assert (found.returncode, found.stdout.decode()) == (1, f"/{name}\njanitor\n")
        assert found.stderr == b"Error: No such object: nope-1\n"
        assert berth("inspect", "--type", "bogus", name).returncode == 1
    finally:
        berth("rm", name)
        berth("volume", "rm", name)
        berth("network", "rm", name)


def test_nouns_verbs_and_system_prune(fresh_daemon):
    """`container ls`/`image ls` are `ps`/`images`; a noun's verbs have their own help and
    errors; `system prune` removes what each noun's prune would, in one report."""
    daemon = fresh_daemon()

    def berth(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shell.cli", "-H", daemon.host, *args], cwd=REPO,
                              capture_output=True, timeout=60)

    assert berth("run", "--name", "stopped", "busybox", "true").returncode == 0
    names = ("-a", "--format", "{{.Names}}")
    assert berth("container", "ls", *names).stdout == berth("ps", *names).stdout == b"stopped\n"
    assert berth("image", "ls", "-q").stdout == berth("images", "-q").stdout != b""
    assert b"Usage: berth volume rm [OPTIONS] VOLUMES..." in berth("volume", "rm", "--help").stdout
    assert re.search(rb"^  prune +remove unused networks$", berth("network", "--help").stdout, re.M)
    result = berth("network", "explode")
    assert result.returncode == 125 and b"must be one of create, ls, inspect" in result.stderr
    result = berth("volume", "rm")  # as docker: 1 for a missing argument (125 for flag errors)
    assert result.returncode == 1 and result.stderr.startswith(b"berth: 'berth volume rm' requires at least 1 argument\n")
    assert berth("volume", "create", "unused").returncode == 0
    assert berth("network", "create", "unused").returncode == 0
    out = berth("system", "prune", "-f", "--volumes").stdout.decode()
    assert out.startswith("Deleted Containers:\n")
    assert "\n\nDeleted Networks:\nunused\n\nDeleted Volumes:\nunused\n\n" in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert berth("ps", "-aq").stdout == berth("volume", "ls", "-q").stdout == b""


def test_unreachable_daemon(tmp_path):
    result = subprocess.run([sys.executable, "-m", "shell.cli", "-H", f"unix://{tmp_path}/none.sock", "ps"],
                            cwd=REPO, capture_output=True, timeout=30)
    assert result.returncode == 1 and b"Cannot connect to the berth daemon" in result.stderr


def test_help(berth):
    assert b"Commands:" in berth("--help").stdout
    assert b"--memory" in berth("run", "--help").stdout


def test_repl_runs_the_same_commands(berth, tmp_path):
    result = berth("shell", input=b"run --rm busybox echo from-repl\nbogus\nexit\n", HOME=str(tmp_path))
    assert result.returncode == 0
    assert b"run --rm busybox echo from-repl" in (tmp_path / ".berth_history").read_bytes()
    assert b"from-repl" in result.stdout
    assert b"unknown command 'bogus'" in result.stderr and b"Traceback" not in result.stderr


def test_health_flags(berth):
    berth("run", "-d", "--name", "cli-h", "--init", "--health-cmd", "true", "--health-interval", "100ms",
          "busybox", "sleep", "30")
    deadline = time.monotonic() + 10
    while berth("inspect", "-f", "{{.State.Health.Status}}", "cli-h").stdout != b"healthy\n":
        assert time.monotonic() < deadline, "never became healthy"
        time.sleep(0.1)
    status = berth("ps", "--filter", "name=^cli-h$", "--filter", "health=healthy", "--format", "{{.Status}}").stdout
    assert status.endswith(b" (healthy)\n")  # as dockerd's ps: `Up 2 seconds (healthy)`
    assert berth("rm", "-f", "cli-h").returncode == 0


def test_exit_126_and_usage_125(berth):
    result = berth("run", "--rm", "busybox", "/etc")
    assert result.returncode == 126 and b"permission denied" in result.stderr
    assert berth("ps", "--bogus").returncode == 125


def test_exec_top_stats_rename_update_pause_prune_df(berth):
    name = f"cli-ops-{os.getpid()}"
    assert berth("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 300; true").returncode == 0
    result = berth("exec", "-e", "XV=1", "-w", "/etc", name, "sh", "-c", "echo $XV $(pwd); exit 6")
    assert (result.returncode, result.stdout) == (6, b"1 /etc\n")
    assert berth("exec", "-i", name, "cat", input=b"piped\n").stdout == b"piped\n"
    top = berth("top", name).stdout.decode().splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and top[-1].endswith("sleep 300")
    assert berth("top", name, "-o", "pid,comm").stdout.decode().split()[:2] == ["PID", "COMMAND"]
    gateway = json.loads(berth("inspect", name).stdout)[0]["NetworkSettings"]["Gateway"]
    berth("exec", name, "ping", "-c", "2", "-W", "1", gateway)  # traffic on its own test bridge
    stats = berth("stats", "--no-stream", name).stdout.decode().splitlines()
    assert stats[0].startswith("CONTAINER ID") and stats[1].split()[1] == name
    net_io = stats[1][stats[0].index("NET I/O"):stats[0].index("BLOCK I/O")].strip()
    received, sent = net_io.split(" / ")
    assert received != "0B" and sent != "0B" and sent.endswith("B"), stats
    assert berth("pause", name).stdout == name.encode() + b"\n"
    assert b"is paused" in berth("exec", name, "true").stderr
    assert berth("unpause", name).returncode == 0
    assert berth("rename", name, name + "-2").returncode == 0
    assert berth("update", "-m", "40m", name + "-2").stdout == (name + "-2\n").encode()
    assert berth("update", "--memory-reservation", "20m", "--cpuset-cpus", "0", name + "-2").returncode == 0
    shown = "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpusetCpus}}"
    assert berth("inspect", "-f", shown, name + "-2").stdout == b"41943040 20971520 0\n"
    assert berth("port", name + "-2").stdout == b""
    assert berth("rm", "-f", name + "-2").returncode == 0
    assert berth("run", "--name", name + "-3", "--label", "cli-prune=1", "busybox", "true").returncode == 0
    out = berth("container", "prune", "-f", "--filter", "label=cli-prune=1").stdout.decode()
    assert out.startswith("Deleted Containers:") and "Total reclaimed space:" in out
    assert berth("system", "df").stdout.decode().splitlines()[0].split()[:3] == ["TYPE", "TOTAL", "ACTIVE"]


def test_cp_diff_commit_export(berth, tmp_path):
    name = f"cli-fs-{os.getpid()}"
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("hello\n")
    os.symlink("f", src / "sub" / "link")
    os.chmod(src / "sub", 0o751)
    os.utime(src / "sub" / "f", (1_600_000_000, 1_600_000_000))
    assert berth("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
    assert berth("cp", str(src), f"{name}:/tmp/").returncode == 0          # into an existing directory
    assert berth("cp", str(src), f"{name}:/tmp/renamed").returncode == 0   # to a new name
    listing = berth("exec", name, "sh", "-c", "stat -c '%a %Y' /tmp/src/sub /tmp/renamed/sub/f; readlink /tmp/src/sub/link")
    assert listing.stdout.decode().split("\n")[:3] == ["751 " + listing.stdout.decode().split()[1], "644 1600000000", "f"]
    back = tmp_path / "back"
    assert berth("cp", f"{name}:/tmp/src", str(back)).returncode == 0
    assert (back / "sub" / "f").read_text() == "hello\n" and os.readlink(back / "sub" / "link") == "f"
    assert int((back / "sub" / "f").stat().st_mtime) == 1_600_000_000
    assert berth("cp", "nowhere", f"{name}:/tmp").returncode == 1
    changes = berth("diff", name).stdout.decode().splitlines()
    assert "A /tmp/src/sub/f" in changes and "C /tmp" in changes
    image = f"cli-fs-{os.getpid()}:1"
    out = berth("commit", "-c", 'CMD ["cat", "/tmp/src/sub/f"]', "-m", "snap", name, image)
    assert out.returncode == 0 and out.stdout.startswith(b"sha256:")
    assert berth("run", "--rm", image).stdout == b"hello\n"
    assert b"snap" in berth("history", image).stdout
    tar = tmp_path / "fs.tar"
    assert berth("export", "-o", str(tar), name).returncode == 0
    assert berth("import", str(tar), image.replace(":1", ":2")).returncode == 0
    assert berth("run", "--rm", image.replace(":1", ":2"), "cat", "/tmp/renamed/sub/f").stdout == b"hello\n"
    berth("rm", "-f", name)
    berth("rmi", image, image.replace(":1", ":2"))


def test_save_load_image_prune(berth, tmp_path):
    image = f"cli-save-{os.getpid()}:1"
    assert berth("tag", "busybox", image).returncode == 0
    archive = tmp_path / "img.tar"
    assert berth("save", "-o", str(archive), image).returncode == 0
    assert archive.stat().st_size > 1_000_000
    assert berth("rmi", image).returncode == 0
    out = berth("load", "-i", str(archive))
    assert out.returncode == 0 and f"Loaded image: {image}".encode() in out.stdout
    assert berth("run", "--rm", image, "echo", "loaded").stdout == b"loaded\n"
    piped = berth("save", image)  # stdout a pipe, not a terminal: the tar goes there
    assert piped.returncode == 0 and piped.stdout == archive.read_bytes()  # saves are deterministic
    berth("rmi", image)
    out = berth("image", "prune", "-f")
    assert out.returncode == 0 and b"Total reclaimed space:" in out.stdout


def test_signals_reach_a_container_without_a_terminal(daemon, api):
    """--sig-proxy (default true): Ctrl-C (SIGINT) to an attached `run` or `attach` goes to
    the container, whose trap answers; three within two seconds detach, the container
    running on; `--sig-proxy=false` leaves the signal to the client, as docker's."""
    env = {**os.environ, "BERTH_HOST": daemon.host}
    trap = "trap 'echo got $0; exit 3' INT TERM; echo ready; while true; do sleep 0.1; done"
    name = f"sigproxy-{os.getpid()}"

    def attached(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "shell.cli", *args], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        return proc

    try:
        proc = attached("run", "--rm", "--name", name, "busybox", "sh", "-c", trap, "INT")
        proc.send_signal(signal.SIGINT)
        assert proc.communicate(timeout=30)[0] == b"got INT\n" and proc.returncode == 3
        api.post("/containers/create", {"Image": "busybox", "Cmd": ["sh", "-c", trap, "TERM"]}, name=name)
        assert api.post(f"/containers/{name}/start").status == 204
        time.sleep(0.5)  # its `ready` went to the log before anyone attached
        proc = subprocess.Popen([sys.executable, "-m", "shell.cli", "attach", name], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.communicate(timeout=30)[0] == b"got TERM\n" and proc.returncode == 3
        api.remove(name)

        proc = attached("run", "--name", name, "busybox", "sh", "-c", "echo ready; exec sleep 600")  # PID 1 ignores INT
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        _, error = proc.communicate(timeout=30)
        assert proc.returncode == 130 and f"detached from {name}".encode() in error
        assert api.get_json(f"/containers/{name}/json")["State"]["Running"]
        api.remove(name)

        proc = attached("run", "--sig-proxy=false", "--name", name, "busybox", "sh", "-c", trap, "INT")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert api.get_json(f"/containers/{name}/json")["State"]["Running"]  # the client left, alone
    finally:
        api.remove(name)


def test_format_errors_are_one_line_and_missing_attributes_no_value(berth):
    """events, info and version take a template as docker's do: a missing attribute of an
    event is `<no value>`; a template that does not parse is one line and status 64, one
    that cannot run one line and status 1 (never a traceback)."""
    name = f"fmt-{os.getpid()}"
    assert berth("run", "--name", name, "busybox", "true").returncode == 0
    shown = berth("events", "--since", "1m", "--until", "0s", "--filter", f"container={name}",
                  "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}").stdout.decode().splitlines()
    assert "create <no value>" in shown and "die 0" in shown
    for args, status, words in ((("events", "--since", "1m", "--until", "0s", "--format", "{{.Nope"), 64,
                                 "Error parsing format: template: :1: unclosed action"),
                                (("info", "--format", "{{.X}}"), 1, 'map has no entry for key "X"'),
                                (("version", "--format", "{{.X"), 64, "template parsing error")):
        result = berth(*args)
        assert result.returncode == status and words.encode() in result.stderr, result
        assert b"Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert berth("rm", name).returncode == 0
