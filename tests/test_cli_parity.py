"""berth's CLI beside the real docker CLI on the same berthd: docker's management commands
and their aliases, `--version`, `--format` over Go's field names, `images -q REF`, exposed
ports in `ps`: the same input gives the same output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.daemon import REPO

pytestmark = pytest.mark.skipif(not shutil.which("docker"), reason="the docker CLI is not installed")


def cli(prog: str, args, daemon, config_dir) -> subprocess.CompletedProcess:
    """`prog` ("docker" or "berth") run with `args` against the test daemon."""
    if prog == "docker":
        argv, env = ["docker", *args], {"DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(config_dir)}
    else:
        argv, env = [sys.executable, "-m", "shell.cli", *args], {"BERTH_HOST": daemon.host}
    return subprocess.run(argv, cwd=REPO, env={**os.environ, **env}, capture_output=True, timeout=60)


@pytest.fixture
def both(daemon, tmp_path):
    """`run(*args)`: (docker's, berth's) results for the same command line on the test daemon."""
    def run(*args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        return cli("docker", args, daemon, tmp_path), cli("berth", args, daemon, tmp_path)

    return run


def running(api, prefix: str, **fields):
    """A running `sleep` container named `prefix-…` with `fields`, removed afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cid = api.create(["sleep", "300"], name=name, **fields)
    assert api.post(f"/containers/{cid}/start").status == 204
    yield name
    api.delete(f"/containers/{cid}", force=1)


@pytest.fixture
def exposing(api):
    """A running container with an exposed-only TCP port, a UDP one and a published one."""
    yield from running(api, "parity", ExposedPorts={"9999/tcp": {}, "53/udp": {}},
                       HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}})


@pytest.mark.parametrize("args", [
    ("container", "ls", "-a", "--format", "{{.Names}} {{.Image}}"),
    ("container", "list", "-a", "--format", "{{.Names}} {{.Image}}"),
    ("container", "ps", "-a", "--format", "{{.Names}}"),
    ("container", "inspect", "--format", "{{.Name}} {{.State.Status}}", "{name}"),
    ("container", "port", "{name}", "80"),
    ("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "busybox"),
    ("image", "list", "-q", "busybox:latest"),
    ("image", "inspect", "--format", "{{.Id}}", "busybox"),
    ("image", "history", "-q", "busybox"),
    ("network", "list", "--format", "{{.Name}} {{.Driver}}", "--filter", "name=bridge"),
    ("volume", "list", "-q", "--filter", "name=no-such-volume"),
    ("ps", "--filter", "name={name}", "--format", "{{.Names}}\t{{.Ports}}"),
    ("ps", "-s", "--filter", "name={name}", "--format", "{{.Names}}"),
    ("container", "ls", "--last", "1", "--format", "{{.Names}}"),
    ("container", "ls", "-l", "-q", "--no-trunc"),
    ("top", "{name}", "-o", "pid,comm"),
    ("stats", "--no-stream", "--format", "{{.Name}}", "{name}"),
    ("history", "--format", "{{.CreatedBy}}", "busybox"),
])
def test_same_output_as_docker(both, exposing, args):
    docker, berth = both(*(arg.replace("{name}", exposing) for arg in args))
    assert docker.returncode == 0, docker.stderr
    assert (berth.returncode, berth.stdout) == (0, docker.stdout)


def test_exposed_ports_in_ps(both, exposing):
    docker, berth = both("ps", "--filter", f"name={exposing}", "--format", "{{.Ports}}")
    assert berth.stdout == docker.stdout
    assert docker.stdout.decode().startswith("53/udp, 9999/tcp, 127.0.0.1:")


def test_images_quiet_reference_lists_the_reference_once(both, api):
    tag = f"parity{uuid.uuid4().hex[:6]}"
    assert api.post("/images/busybox/tag", repo="busybox", tag=tag).status == 201
    try:
        docker, berth = both("images", "-q", f"busybox:{tag}")
        assert berth.stdout == docker.stdout and len(docker.stdout.split()) == 1
    finally:
        api.delete(f"/images/busybox:{tag}")


def test_event_format_knows_go_field_names(both, api):
    since = int(time.time()) - 1
    api.create(["true"], name=f"ev-{uuid.uuid4().hex[:8]}")
    until = str(int(time.time()) + 1)
    fmt = "{{.TimeNano}} {{.Type}} {{.Action}} {{.ID}} {{.Actor.Attributes.name}}"
    docker, berth = both("events", "--since", str(since), "--until", until, "--format", fmt,
                         "--filter", "event=create")
    assert docker.stdout and berth.stdout == docker.stdout
    assert docker.stdout.split()[0].isdigit()


def test_version_flag(both):
    for flag in ("--version", "-v"):
        docker, berth = both(flag)
        assert docker.stdout.startswith(b"Docker version ")
        assert berth.returncode == 0 and berth.stdout.startswith(b"berth version ")


def test_management_aliases_refuse_as_docker(both):
    for args in (("image", "remove", "no-such-image:v1"), ("image", "rmi", "no-such-image:v1"),
                 ("container", "remove", "no-such-container")):
        docker, berth = both(*args)
        assert (berth.returncode, berth.stderr) == (docker.returncode, docker.stderr)


@pytest.fixture
def labelled(api):
    """A running container with labels and environment, for templates to walk."""
    yield from running(api, "tmpl", Labels={"tier": "web", "owner": "ops"}, Env=["A=1", "B=two"])


@pytest.mark.parametrize("args", [
    ("ps", "--filter", "name={name}", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Status}}"),
    ("ps", "--filter", "name={name}", "--format", "table"),
    ("ps", "--filter", "name=no-such-container", "--format", "table {{.Names}}\\t{{.Image}}"),
    ("ps", "--filter", "name={name}", "--format", '{{.Names}} {{join (split .Labels ",") ";"}} {{len .Names}} {{upper .Names}}'),
    ("ps", "--filter", "name={name}", "--format", '{{if eq .State "running"}}{{printf "%-8s|" .Image}}{{else}}no{{end}} {{title .State}}'),
    ("inspect", "-f", '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}} {{index .Config.Labels "tier"}} {{json .Config.Labels}}', "{name}"),
    ("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "{name}"),
    ("inspect", "-f", "{{.State.Running}} {{lower .State.Status}} {{len .Config.Env}} {{.Config.Cmd}}", "{name}"),
    ("container", "inspect", "-f", "{{with .State}}{{.Status}}{{end}} {{if not .State.Paused}}unpaused{{end}}", "{name}"),
    ("image", "ls", "--format", "table {{.Repository}}\\t{{.Tag}}", "busybox"),
    ("network", "ls", "--filter", "name=bridge", "--format", "table {{.ID}}\\t{{.Name}}\\t{{.IPv6}}\\t{{.Internal}}"),
    ("network", "ls", "--filter", "name=bridge", "--format", "json"),
    ("volume", "ls", "--filter", "name=no-such-volume", "--format", "table {{.Name}}\\t{{.Driver}}"),
    # docker's typed values: a map's missing key, a row's .Label method, sizes a template asks for
    ("inspect", "-f", '[{{index .Config.Labels "nope"}}] {{.Config.Labels.nope}} {{.Config.Labels.tier}}', "{name}"),
    ("inspect", "-f", '[{{index .Config.Labels "nope"}}] {{.Config.Labels.nope}}', "busybox"),
    ("inspect", "-f", "{{.State.Health}} {{if .State.Health}}y{{else}}n{{end}} {{.Config.Healthcheck}}", "{name}"),
    ("inspect", "-f", "{{.State.Health.Status}}", "{name}"),
    ("ps", "--filter", "name={name}", "--format", '{{.Names}} [{{.Label "tier"}}] [{{.Label "nope"}}] {{.Size}}'),
    ("images", "--format", "{{.Repository}} {{.CreatedAt}} {{.Containers}} {{.SharedSize}} {{.VirtualSize}}",
     "busybox"),
    ("system", "df"),
    # errors: the same words and status (64 for inspect's unparsable template)
    ("ps", "--format", "{{.Names"),
    ("inspect", "-f", "{{.Name", "{name}"),
    ("inspect", "-f", "{{.Nope}}", "{name}"),
])
def test_templates_as_docker_renders_them(both, labelled, args):
    docker, berth = both(*(arg.replace("{name}", labelled) for arg in args))
    assert (berth.returncode, berth.stdout, berth.stderr) == (docker.returncode, docker.stdout, docker.stderr)


@pytest.mark.parametrize("args", [("image", "rm"), ("rename", "a"), ("volume", "ls", "extra"), ("logs",), ("ps", "x"),
                                  ("port",), ("network", "connect", "n"), ("run",), ("image", "rm", "--bogus")])
def test_argument_errors_exit_as_dockers(both, args):
    """1 for missing or extra arguments, 125 for flag errors, in docker's words."""
    docker, berth = both(*args)
    assert berth.returncode == docker.returncode
    first = docker.stderr.decode().splitlines()[0].replace("docker", "berth")
    assert berth.stderr.decode().splitlines()[0] == first
    assert berth.stderr.decode().splitlines()[-1] == docker.stderr.decode().splitlines()[-1].replace("docker", "berth")


def test_help_into_a_closed_pipe_is_quiet():
    """`berth --help | head`: the reader going away is no error and prints no traceback."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, "-m", "shell.cli", "--help"], cwd=REPO, stdout=writer,
                              stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize("args", [
    ("rm", "nosuch"), ("stop", "nosuch"), ("start", "nosuch"), ("restart", "nosuch"), ("kill", "nosuch"),
    ("pause", "nosuch"), ("unpause", "nosuch"), ("logs", "nosuch"), ("inspect", "nosuch"), ("top", "nosuch"),
    ("port", "nosuch"), ("wait", "nosuch"), ("rename", "nosuch", "x"), ("diff", "nosuch"), ("export", "nosuch"),
    ("exec", "nosuch", "true"), ("attach", "nosuch"), ("stats", "--no-stream", "nosuch"),
    ("update", "--cpus", "1", "nosuch"), ("commit", "nosuch"), ("cp", "nosuch:/a", "/tmp/berth-parity-x"),
    ("rmi", "nosuch"), ("tag", "nosuch", "x"), ("history", "nosuch"), ("image", "inspect", "nosuch"),
    ("save", "nosuch"), ("network", "rm", "nosuch"), ("network", "inspect", "nosuch"),
    ("network", "connect", "nosuch", "nosuch"), ("volume", "rm", "nosuch"), ("volume", "inspect", "nosuch"),
    ("container", "inspect", "nosuch"), ("ps", "--filter", "bogus=1"), ("images", "--filter", "bogus=1"),
    ("network", "ls", "--filter", "bogus=1"), ("volume", "ls", "--filter", "bogus=1"),
    ("events", "--filter", "bogus=1", "--until", "1"), ("version", "--format", "{{.Server.Os}}"),
    ("info", "--format", "{{.Driver}} {{.OSType}}"), ("system", "df", "--format", "{{.Type}}"),
])
def test_same_errors_and_exit_status_as_docker(both, args):
    """What each command says for a name nobody knows, a bad filter, a format: the same
    bytes on stdout and stderr, the same status, as the docker CLI on the same daemon."""
    docker, berth = both(*args)
    assert (berth.returncode, berth.stdout, berth.stderr) == (docker.returncode, docker.stdout, docker.stderr)


def _exited(api, name: str) -> None:
    # pauses between the streams: stdout and stderr are read by two pumps, whose order
    # within a few microseconds is the kernel's (dockerd's too)
    cid = api.run(["sh", "-c", "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three"], name=name)
    api.wait(cid)


def _running(api, name: str) -> None:
    api.run(["sleep", "300"], name=name)


def _tagged(api, name: str) -> None:
    assert api.post("/images/busybox/tag", repo=name, tag="1").status == 201


@pytest.mark.parametrize("setup, args", [
    (None, ("volume", "create", "{n}")),
    (lambda api, n: api.post("/volumes/create", json_body={"Name": n}), ("volume", "rm", "{n}")),
    (lambda api, n: api.post("/networks/create", json_body={"Name": n}), ("network", "rm", "{n}")),
    (_tagged, ("rmi", "{n}:1")), (_tagged, ("tag", "{n}:1", "{n}:2")),
    (_exited, ("logs", "{n}")), (_exited, ("logs", "--tail", "1", "{n}")), (_exited, ("wait", "{n}")),
    (_exited, ("rm", "{n}")), (_running, ("rm", "{n}")), (_running, ("stop", "-t", "0", "{n}")),
    (_running, ("kill", "{n}")), (_running, ("pause", "{n}")), (_running, ("restart", "-t", "0", "{n}")),
    (_running, ("exec", "{n}", "echo", "hi")), (_running, ("exec", "{n}", "sh", "-c", "exit 3")),
    (_running, ("exec", "{n}", "nosuchcmd")), (_exited, ("exec", "{n}", "true")), (_exited, ("start", "{n}")),
    (_running, ("rename", "{n}", "{n}x")), (_running, ("port", "{n}")), (_exited, ("diff", "{n}")),
    (_running, ("update", "--memory", "64m", "{n}")), (_exited, ("cp", "{n}:/etc/passwd", "-")),  # the image's file: the same mtime in both tars
    (None, ("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")),
    (None, ("run", "--rm", "busybox", "nosuchcmd")), (None, ("run", "--rm", "--bogus", "busybox")),
    (None, ("run", "--rm", "-m", "abc", "busybox")), (None, ("run", "--rm", "--name", "bad name", "busybox")),
    (None, ("create", "--name", "{n}", "busybox", "true")), (None, ("exec", "--bogus", "x", "true")),
])
def test_same_result_on_objects_of_its_own(both_each, setup, args):
    """Each CLI acts on an object made for it alike (a container, a volume, a tag): the
    same status and output once the names and IDs are set aside."""
    docker, berth = both_each(setup, args)
    assert berth == docker


@pytest.fixture
def both_each(daemon, api, tmp_path):
    import re

    def run(setup, args: tuple[str, ...]) -> list[tuple[int, bytes, bytes]]:
        found = []
        for prog in ("docker", "berth"):
            name = f"par{prog[0]}{uuid.uuid4().hex[:8]}"
            if setup is not None:
                setup(api, name)
            argv = [a.replace("{n}", name) for a in args]
            result = cli(prog, argv, daemon, tmp_path)

            def plain(data: bytes) -> bytes:
                data = data.replace(name.encode(), b"NAME").replace(prog.encode(), b"PROG")
                return re.sub(rb"[0-9a-f]{64}", b"ID", data)

            found.append((result.returncode, plain(result.stdout), plain(result.stderr)))
            for kind, ref in (("containers", name), ("containers", name + "x"), ("volumes", name), ("networks", name)):
                api.delete(f"/{kind}/{ref}", **({"force": 1} if kind == "containers" else {}))
            for tag in ("1", "2"):
                api.delete(f"/images/{name}:{tag}")
        return found

    return run


def test_system_df_verbose_as_docker_prints_it(both, labelled):
    """`system df -v`: the four tables, in the docker CLI's columns and words (durations
    aside: the two commands may straddle a second)."""
    import re

    ages = re.compile(rb"(Less than a second|About an? \w+|\d+ \w+)( ago)?")
    for _ in range(5):  # the shared daemon's state may move between the two (a kept build context replaced)
        docker, berth = both("system", "df", "-v")
        assert docker.returncode == berth.returncode == 0, berth.stderr
        shown = [[ages.sub(b"T", line) for line in out.stdout.splitlines()] for out in (berth, docker)]
        if shown[0] == shown[1]:
            break
        time.sleep(0.5)
    assert b"Build cache usage:" in berth.stdout and b"Images space usage:" in berth.stdout
    assert shown[0] == shown[1]
