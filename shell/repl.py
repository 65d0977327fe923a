"""The interactive shell: a prompt-toolkit session over the very same command grammar.

Each line is split like a shell would split it and run by `cli.execute`, so a command
behaves in the REPL exactly as `berth <command>` does. Errors are one line; a traceback
never reaches the prompt. (The full shell — completion, live toolbar, tty — is a later
issue.)
"""

from __future__ import annotations

import os
import shlex
import sys

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory

from .cli import execute
from .transport import Client, ConnectError, DaemonError, resolve_host

HISTORY = os.path.expanduser("~/.berth_history")


def repl(host: str | None = None) -> int:
    """Read lines until `exit` or Ctrl-D, run each as a `berth` command; 1 if there is no daemon."""
    try:
        address = resolve_host(host)
        Client(address).stream("GET", "/_ping").read()
    except (ConnectError, DaemonError) as exc:
        sys.stderr.write(f"berth: {exc}\n")
        return 1
    session = PromptSession(history=FileHistory(HISTORY))
    print("berth shell — docker's commands (run, ps, logs, images, …); `help`, `exit` or Ctrl-D to leave")
    while True:
        try:
            line = session.prompt("berth> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("exit", "quit"):
            return 0
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"berth: {exc}", file=sys.stderr)
            continue
        if words[0] == "help":
            words = ["--help"]
        try:
            status = execute(words, address)
        except Exception as exc:  # the prompt must survive anything a command does
            print(f"berth: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if status:
            print(f"(exit status {status})", file=sys.stderr)
