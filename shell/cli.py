"""`berth`: the one-shot command line, with docker's syntax. The same table of commands
serves the REPL (`berth` with no arguments, or `berth shell`).

Start-up matters (a `run --rm` is dominated by it): only a few standard modules are
imported here, prompt-toolkit only when the REPL opens.
"""

from __future__ import annotations

import sys

from . import commands
from .grammar import Arg, Command, Opt, UsageError, parse, usage
from .transport import Client, ConnectError, DaemonError, resolve_host

_DETACH_KEYS = Opt(("--detach-keys",), "detach_keys", "value", "keys that detach (default ctrl-p,ctrl-q)")
_CONTAINER_OPTS = (
    Opt(("--name",), "name", "value", "container name"),
    Opt(("-e", "--env"), "env", "list", "set an environment variable (KEY=VALUE)"),
    Opt(("-l", "--label"), "label", "list", "set a label (KEY=VALUE)"),
    Opt(("-w", "--workdir"), "workdir", "value", "working directory inside the container"),
    Opt(("-u", "--user"), "user", "value", "user[:group], by name or number"),
    Opt(("-h", "--hostname"), "hostname", "value", "container host name"),
    Opt(("--entrypoint",), "entrypoint", "value", "override the image's entrypoint"),
    Opt(("-m", "--memory"), "memory", "value", "memory limit (e.g. 64m)"),
    Opt(("--cpus",), "cpus", "value", "number of CPUs (e.g. 0.5)"),
    Opt(("-c", "--cpu-shares"), "cpu_shares", "value", "CPU shares (relative weight)", int),
    Opt(("--pids-limit",), "pids_limit", "value", "maximum number of processes", int),
    Opt(("--restart",), "restart", "value", "restart policy: no, on-failure[:N], always, unless-stopped"),
    Opt(("--init",), "init", "flag", "run tini as PID 1 (forwards signals, reaps zombies)"),
    Opt(("--runtime",), "runtime", "value", "OCI runtime: crun or runc"),
    Opt(("-v", "--volume"), "volume", "list", "NAME:/path[:ro], /host/dir:/path[:ro|rw], or /path (anonymous)"),
    Opt(("--mount",), "mount", "list", "type=volume|bind|tmpfs,source=…,target=…[,readonly][,volume-opt=…][,tmpfs-size=…]"),
    Opt(("--log-opt",), "log_opt", "list", "log driver option (max-size=10m, max-file=3)"),
    Opt(("--health-cmd",), "health_cmd", "value", "command to run to check health"),
    Opt(("--health-interval",), "health_interval", "value", "time between checks (e.g. 30s)"),
    Opt(("--health-timeout",), "health_timeout", "value", "maximum time a check may take"),
    Opt(("--health-retries",), "health_retries", "value", "failures in a row before unhealthy", int),
    Opt(("--health-start-period",), "health_start_period", "value", "grace period after start"),
    Opt(("--no-healthcheck",), "no_healthcheck", "flag", "disable the image's health check"),
    Opt(("--network", "--net"), "network", "value", "bridge (default), none, host, or a network's name"),
    Opt(("--network-alias",), "network_alias", "list", "another name for the container on its network"),
    Opt(("-p", "--publish"), "publish", "list", "publish a port: [ip:]hostPort:containerPort[/udp]"),
    Opt(("-P", "--publish-all"), "publish_all", "flag", "publish every exposed port on a random host port"),
    Opt(("--expose",), "expose", "list", "expose a port (or a range) without publishing it"),
    Opt(("-i", "--interactive"), "interactive", "flag", "keep stdin open (and attached, unless -d)"),
    Opt(("-t", "--tty"), "tty", "flag", "give the container a terminal"),
    _DETACH_KEYS,
)
_IMAGE_AND_COMMAND = (Arg("image"), Arg("command", "rest"))
_CONTAINERS = (Arg("containers", "many"),)
_FILTER = Opt(("-f", "--filter"), "filter", "list", "filter (key=value)")
# `network ACTION …`, parsed by the `network` handler against its action's own grammar
NETWORK_ACTIONS = {c.name: c for c in (
    Command("create", "network", "create a bridge network", (
        Opt(("-d", "--driver"), "driver", "value", "bridge (the only driver)"),
        Opt(("--subnet",), "subnet", "value", "e.g. 10.90.0.0/24 (else a free /24)"),
        Opt(("--gateway",), "gateway", "value", "the bridge's address (else the subnet's first)"),
        Opt(("--internal",), "internal", "flag", "no default route for its containers"),
        Opt(("-o", "--opt"), "opt", "list", "driver option (com.docker.network.bridge.name=…)"),
        Opt(("--label",), "label", "list", "set a label (KEY=VALUE)")), (Arg("name"),)),
    Command("ls", "network", "list networks", (
        Opt(("-q", "--quiet"), "quiet", "flag", "IDs only"), _FILTER, Opt(("--no-trunc",), "no_trunc", "flag", "full IDs"),
        Opt(("--format",), "format", "value", "json, or a template like '{{.Name}}'"))),
    Command("inspect", "network", "networks in detail", (
        Opt(("-f", "--format"), "format", "value", "template like '{{.IPAM.Config}}'"),), (Arg("names", "many"),)),
    Command("rm", "network", "remove networks", (), (Arg("names", "many"),)),
    Command("connect", "network", "connect a container to a network", (
        Opt(("--alias",), "alias", "list", "another name on this network"),), (Arg("network"), Arg("container"))),
    Command("disconnect", "network", "disconnect a container from a network", (), (Arg("network"), Arg("container"))),
    Command("prune", "network", "remove unused networks", (
        Opt(("-f", "--force"), "force", "flag", "do not ask (berth never asks)"),)),
)}
# `volume ACTION …`: each action's own grammar; the `volume` handler parses the words after
# the action against it (the same parser), so `volume rm -f` and `volume ls -f` differ as in docker.
VOLUME_ACTIONS = {c.name: c for c in (
    Command("create", "volume", "create a volume (a generated name without NAME)", (
        Opt(("-d", "--driver"), "driver", "value", "volume driver (local)"),
        Opt(("-o", "--opt"), "opt", "list", "driver option: type=tmpfs|none, device=…, o=size=64m|bind"),
        Opt(("--label",), "label", "list", "set a label (KEY=VALUE)")), (Arg("name", "optional"),)),
    Command("ls", "volume", "list volumes", (
        Opt(("-q", "--quiet"), "quiet", "flag", "names only"), _FILTER,
        Opt(("--format",), "format", "value", "json, or a template like '{{.Name}}'"))),
    Command("inspect", "volume", "volumes in detail", (
        Opt(("-f", "--format"), "format", "value", "template like '{{.Mountpoint}}'"),), (Arg("names", "many"),)),
    Command("rm", "volume", "remove volumes", (
        Opt(("-f", "--force"), "force", "flag", "no error for a missing volume"),), (Arg("names", "many"),)),
    Command("prune", "volume", "remove unused volumes", (
        Opt(("-a", "--all"), "all", "flag", "named ones too (what API 1.41 does anyway)"),
        Opt(("-f", "--force"), "force", "flag", "do not ask (berth never asks)"),
        Opt(("--filter",), "filter", "list", "filter (label=…)"))),
)}

COMMANDS = {c.name: c for c in (
    Command("run", "run", "create and start a container", (
        Opt(("-d", "--detach"), "detach", "flag", "run in the background, print the ID"),
        Opt(("--rm",), "rm", "flag", "remove the container when it exits"), *_CONTAINER_OPTS), _IMAGE_AND_COMMAND),
    Command("create", "create", "create a container", _CONTAINER_OPTS, _IMAGE_AND_COMMAND),
    Command("start", "start", "start containers", (
        Opt(("-a", "--attach"), "attach", "flag", "attach output, exit with its status"),
        Opt(("-i", "--interactive"), "interactive", "flag", "attach stdin too"), _DETACH_KEYS), _CONTAINERS),
    Command("attach", "attach", "attach to a running container's output and stdin", (
        Opt(("--no-stdin",), "no_stdin", "flag", "do not attach stdin"), _DETACH_KEYS), (Arg("container"),)),
    Command("exec", "exec_", "run a command in a running container", (
        Opt(("-d", "--detach"), "detach", "flag", "run in the background"),
        Opt(("-i", "--interactive"), "interactive", "flag", "keep stdin open"),
        Opt(("-t", "--tty"), "tty", "flag", "give the command a terminal"),
        Opt(("-e", "--env"), "env", "list", "set an environment variable (KEY=VALUE)"),
        Opt(("-w", "--workdir"), "workdir", "value", "working directory inside the container"),
        Opt(("-u", "--user"), "user", "value", "user[:group], by name or number"), _DETACH_KEYS),
        (Arg("container"), Arg("command", "rest"))),
    Command("top", "top", "the processes of a running container", (), (Arg("container"), Arg("ps_args", "rest"))),
    Command("stats", "stats", "live resource use of containers (Ctrl-C ends it)", (
        Opt(("--no-stream",), "no_stream", "flag", "one reading, then exit"),), (Arg("containers", "any"),)),
    Command("rename", "rename", "rename a container", (), (Arg("container"), Arg("name"))),
    Command("update", "update", "change a container's limits or restart policy", (
        Opt(("-m", "--memory"), "memory", "value", "memory limit (e.g. 64m)"),
        Opt(("--cpus",), "cpus", "value", "number of CPUs (e.g. 0.5)"),
        Opt(("-c", "--cpu-shares"), "cpu_shares", "value", "CPU shares (relative weight)", int),
        Opt(("--pids-limit",), "pids_limit", "value", "maximum number of processes", int),
        Opt(("--restart",), "restart", "value", "restart policy")), _CONTAINERS),
    Command("port", "port", "a container's published ports", (), (Arg("container"), Arg("port", "optional"))),
    Command("container", "container", "container prune [-f] [--filter label=…]", (
        Opt(("-f", "--force"), "force", "flag", "do not ask (berth never asks)"),
        Opt(("--filter",), "filter", "list", "filter (label=…, until=…)")), (Arg("action", choices=("prune",)),)),
    Command("system", "system", "system df", (), (Arg("action", choices=("df",)),)),
    Command("cp", "cp", "copy files between a container and here (CONTAINER:PATH, - for a tar)", (
        Opt(("-a", "--archive"), "archive", "flag", "keep the files' owners (as the container's user)"),),
        (Arg("source"), Arg("dest"))),
    Command("diff", "diff", "what a container changed in its filesystem (A, C, D)", (), (Arg("container"),)),
    Command("commit", "commit", "a new image from a container's changes", (
        Opt(("-a", "--author"), "author", "value", "author"), Opt(("-m", "--message"), "message", "value", "commit message"),
        Opt(("-c", "--change"), "change", "list", "Dockerfile instruction (CMD, ENV, …)"),
        Opt(("-p", "--pause"), "pause", "value", "pause the container meanwhile (default true)")),
        (Arg("container"), Arg("reference", "optional"))),
    Command("export", "export", "a container's filesystem as a tar", (
        Opt(("-o", "--output"), "output", "value", "write to this file, not stdout"),), (Arg("container"),)),
    Command("save", "save", "images as a tar (docker's and OCI's layout)", (
        Opt(("-o", "--output"), "output", "value", "write to this file, not stdout"),), (Arg("images", "many"),)),
    Command("load", "load", "images from a tar", (
        Opt(("-i", "--input"), "input", "value", "read this file, not stdin"),
        Opt(("-q", "--quiet"), "quiet", "flag", "no progress")), ()),
    Command("image", "image", "image prune [-a] [-f]", (
        Opt(("-a", "--all"), "all", "flag", "every unused image, not only dangling ones"),
        Opt(("-f", "--force"), "force", "flag", "do not ask (berth never asks)"),
        Opt(("--filter",), "filter", "list", "filter (label=…)")), (Arg("action", choices=("prune",)),)),
    Command("stop", "stop", "stop containers (SIGTERM, then SIGKILL)", (Opt(("-t", "--time"), "time", "value", "seconds before SIGKILL", int),), _CONTAINERS),
    Command("restart", "restart", "restart containers", (Opt(("-t", "--time"), "time", "value", "seconds before SIGKILL", int),), _CONTAINERS),
    Command("pause", "pause", "freeze every process of containers", (), _CONTAINERS),
    Command("unpause", "unpause", "thaw paused containers", (), _CONTAINERS),
    Command("kill", "kill", "send a signal to containers", (Opt(("-s", "--signal"), "signal", "value", "signal (default KILL)"),), _CONTAINERS),
    Command("rm", "rm", "remove containers", (Opt(("-f", "--force"), "force", "flag", "kill a running container first"),
                                              Opt(("-v", "--volumes"), "volumes", "flag", "remove anonymous volumes")), _CONTAINERS),
    Command("wait", "wait", "wait for containers to stop; print their exit codes", (), _CONTAINERS),
    Command("ps", "ps", "list containers", (
        Opt(("-a", "--all"), "all", "flag", "include stopped containers"), Opt(("-q", "--quiet"), "quiet", "flag", "IDs only"),
        Opt(("--no-trunc",), "no_trunc", "flag", "do not truncate"), _FILTER,
        Opt(("--format",), "format", "value", "json, or a template like '{{.Names}} {{.Status}}'"))),
    Command("inspect", "inspect", "low-level information on containers or images", (
        Opt(("-f", "--format"), "format", "value", "template like '{{.State.Status}}'"),
        Opt(("--type",), "type", "value", "container or image")), (Arg("names", "many"),)),
    Command("logs", "logs", "fetch a container's logs", (
        Opt(("-f", "--follow"), "follow", "flag", "follow new output"), Opt(("-t", "--timestamps"), "timestamps", "flag", "show timestamps"),
        Opt(("-n", "--tail"), "tail", "value", "lines from the end (default all)"),
        Opt(("--since",), "since", "value", "10m, RFC 3339 or unix time"), Opt(("--until",), "until", "value", "10m, RFC 3339 or unix time")),
        (Arg("container"),)),
    Command("images", "images", "list images", (
        Opt(("-a", "--all"), "all", "flag", "all images"), Opt(("-q", "--quiet"), "quiet", "flag", "IDs only"),
        Opt(("--no-trunc",), "no_trunc", "flag", "do not truncate"), _FILTER), (Arg("reference", "optional"),)),
    Command("tag", "tag", "tag an image", (), (Arg("source"), Arg("target"))),
    Command("rmi", "rmi", "remove images", (Opt(("-f", "--force"), "force", "flag", "remove even if used"),), (Arg("images", "many"),)),
    Command("import", "import_", "import a rootfs tar (file or -) as an image", (
        Opt(("-c", "--change"), "change", "list", "Dockerfile instruction (CMD, ENV, …)"),
        Opt(("-m", "--message"), "message", "value", "commit message")), (Arg("file"), Arg("reference", "optional"))),
    Command("history", "history", "show an image's history", (
        Opt(("-q", "--quiet"), "quiet", "flag", "IDs only"), Opt(("--no-trunc",), "no_trunc", "flag", "do not truncate")), (Arg("image"),)),
    Command("events", "events", "stream events from the bus", (
        Opt(("--since",), "since", "value", "replay from (10m, RFC 3339, unix time)"),
        Opt(("--until",), "until", "value", "stop at"), _FILTER,
        Opt(("--format",), "format", "value", "json, or a template like '{{.Action}}'"))),
    Command("version", "version", "client and daemon versions"),
    Command("info", "info", "daemon information"),
    Command("volume", "volume", "volumes: create [NAME], ls, inspect NAME…, rm NAME…, prune", (),
            (Arg("action", choices=tuple(VOLUME_ACTIONS)), Arg("volumes", "rest"))),
    Command("network", "network", "networks: create NAME, ls, inspect NAME…, rm NAME…, connect NET CTR, disconnect NET CTR, prune",
            (), (Arg("action", choices=("create", "ls", "inspect", "rm", "connect", "disconnect", "prune")),
                 Arg("words", "rest"))),
    Command("plugin", "plugin", "plugins: ls, enable NAME, disable NAME, reload NAME", (),
            (Arg("action", choices=("ls", "enable", "disable", "reload")), Arg("names", "rest"))),
)}


def split_host(argv: list[str]) -> tuple[str | None, list[str]]:
    """The global `-H/--host ADDRESS` (also `--host=ADDRESS`), if given first, and the rest."""
    if argv[:1] in (["-H"], ["--host"]) and len(argv) > 1:
        return argv[1], argv[2:]
    if argv[:1] and argv[0].startswith("--host="):
        return argv[0].partition("=")[2], argv[1:]
    return None, argv


def execute(argv: list[str], host: str | None = None) -> int:
    """Run one command line (global options first, then the command); return its status."""
    flag, argv = split_host(argv)
    host = flag or host
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(COMMANDS, argv[1] if len(argv) > 1 else None))
        return 0
    if "--help" in argv[1:] and (argv[0] not in ("run", "create") or argv.index("--help") < 3):
        print(usage(COMMANDS, argv[0]))
        return 0
    try:
        cmd, args = parse(COMMANDS, argv)
    except UsageError as exc:  # as docker's cobra: 125 for flag and argument errors
        sys.stderr.write(f"berth: {exc}\n")
        return 125
    try:
        client = Client(resolve_host(host))
        return getattr(commands, cmd.handler)(client, args)
    except (UsageError, ConnectError) as exc:  # a command refusing its input: 1, as docker's RunE errors
        sys.stderr.write(f"berth: {exc}\n")
        return 125 if argv[0] in ("run", "create") else 1
    except DaemonError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
        return 1
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a local file (`import FILE`) that cannot be read
        sys.stderr.write(f"berth: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ") + "\n")
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> None:
    """The `berth` entry point: a command, or the interactive shell when there is none."""
    argv = sys.argv[1:] if argv is None else argv
    host, rest = split_host(argv)
    if not rest or rest == ["shell"]:
        from .repl import repl

        sys.exit(repl(host))
    sys.exit(execute(argv))


if __name__ == "__main__":
    main()
