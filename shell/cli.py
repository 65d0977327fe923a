"""`berth`: the one-shot command line, with docker's syntax. The same table of commands
serves the REPL (`berth` with no arguments, or `berth shell`).

Start-up matters (a `run --rm` is dominated by it): only a few standard modules are
imported here, prompt-toolkit only when the REPL opens. The modules on a one-shot
command's way do without `from __future__ import annotations`, whose import of
`__future__` costs 0.2 ms of every command (their annotations are valid at run time).
"""

import posix  # not os: see main()
import sys

from .commands import containers
from .commands.printers import CommandFailed
from .grammar import ArgumentError, Command, Group, UsageError, parse, usage
from .transport import Client, ConnectError, DaemonError, resolve_host

# The container commands, looked up without importing any other noun's module: `run` is one,
# and its start-up is most of a `berth run --rm`.
_CONTAINER_COMMANDS = {c.name: c for c in containers.COMMANDS}
_every: dict[str, Command | Group] = {}


def commands() -> dict[str, Command | Group]:
    """Every command, in `--help`'s order; each noun's module holds its verbs' grammar and
    handlers. The other nouns' modules are imported on the first call."""
    if not _every:
        from .commands import build, files, images, networks, plugins, registry, system, volumes

        for noun in (containers, files, images, build, registry, volumes, networks, plugins, system):
            _every.update((c.name, c) for c in noun.COMMANDS)
    return _every


def __getattr__(name: str):
    """`COMMANDS`, every command (for the REPL, its completion, tests), built when first read."""
    if name == "COMMANDS":
        return commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        print(usage(commands(), argv[1:]))
        return 0
    table = _CONTAINER_COMMANDS if argv[0] in _CONTAINER_COMMANDS else commands()
    if "--help" in argv[1:] and (argv[0] not in ("run", "create") or argv.index("--help") < 3):
        print(usage(table, argv[:argv.index("--help")]))
        return 0
    try:
        cmd, args = parse(table, argv)
    except UsageError as exc:  # as docker's cobra: 1 for missing or extra arguments, 125 for flags
        sys.stderr.write(_usage_error(table, exc))
        return 1 if isinstance(exc, ArgumentError) else 125
    try:
        client = Client(resolve_host(host))
        return cmd.handler(client, args)
    except (UsageError, ConnectError) as exc:  # a command refusing its input: 1, as docker's RunE errors
        sys.stderr.write(f"berth: {exc}\n")
        return 125 if argv[0] in ("run", "create") else 1
    except DaemonError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
        return 1
    except CommandFailed as exc:
        sys.stderr.write(exc.message + "\n")
        return exc.status
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a local file (`import FILE`) that cannot be read
        sys.stderr.write(f"berth: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ") + "\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _usage_error(table: dict[str, Command | Group], exc: UsageError) -> str:
    """A command-line error as docker prints it: the error, the command's usage line and
    where its help is (only the error when no command was made out)."""
    if exc.called is None:
        return f"berth: {exc}\n"
    line = usage(table, exc.called.split()).splitlines()[0].replace("Usage: ", "Usage:  ", 1)
    hint = exc.hint if isinstance(exc, ArgumentError) else "Run"
    prefix = "berth: " if isinstance(exc, ArgumentError) else ""
    return f"{prefix}{exc}\n\n{line}\n\n{hint} 'berth {exc.called} --help' for more information\n"


def main(argv: list[str] | None = None) -> None:
    """The `berth` entry point: a command, or the interactive shell when there is none."""
    argv = sys.argv[1:] if argv is None else argv
    host, rest = split_host(argv)
    if not rest or rest == ["shell"]:
        from .repl import repl

        sys.exit(repl(host))
    try:
        status = execute(argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `berth --help | head`: the reader has gone, which is no error
        import os

        # what is still buffered goes nowhere, or the flush at exit would report the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    try:
        sys.stderr.flush()
    except OSError:  # nobody reads our errors any more: nothing to say them to
        pass
    # The command is done and its output flushed: leave without the interpreter's teardown
    # (every module and object freed one by one: ~2 ms of a 13 ms `berth ps`). Its threads
    # are daemon threads, its files closed by the commands' own `with` blocks.
    posix._exit(status)


if __name__ == "__main__":
    main()
