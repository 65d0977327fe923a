"""The interactive shell: a prompt-toolkit session over the very same command grammar.

Each line is split like a shell would split it and run by `cli.execute`, so a command
behaves in the shell exactly as `berth <command>` does, streams (`events`, `logs -f`,
`attach`) run in place until Ctrl-C, and `run -it`/`exec -it` take the terminal and give
it back. Around that: completion from the command table and the daemon's live names,
colouring of the line, history across sessions, a bottom toolbar kept current from the
event bus, berth's own errors as one red line, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from . import expand, sigproxy
from .cli import COMMANDS, execute
from .completion import Names, ShellCompleter, tab_bindings
from .grammar import UsageError, parse
from .jobs import Jobs
from .live import LiveState
from .transport import DEFAULT_HOST, Client, ConnectError, DaemonError, resolve_host

HISTORY = Path(os.path.expanduser("~/.berth_history"))
STYLE = Style.from_dict({
    "command": "bold ansigreen", "unknown": "bold ansired", "option": "ansicyan", "string": "ansiyellow",
    "bottom-toolbar": "noreverse bg:#1c1c1c #bcbcbc", "toolbar.running": "bg:ansigreen ansiblack",
    "toolbar.paused": "bg:ansiyellow ansiblack", "toolbar.exited": "bg:#585858 ansiwhite",
    "toolbar.events": "#8a8a8a", "toolbar.warn": "bg:ansired ansiwhite", "toolbar.jobs": "bg:ansiblue ansiwhite",
})


class CommandLexer(Lexer):
    """Colours a command line: the command (red if unknown), options, quoted strings."""

    def lex_document(self, document: Document):
        def line(number: int):
            text = document.lines[number]
            out, first = [], True
            for word, space in _words_and_spaces(text):
                if first and word:
                    out.append(("class:command" if word in COMMANDS or word in ("help", "exit", "quit")
                                else "class:unknown", word))
                    first = False
                elif word.startswith("-"):
                    out.append(("class:option", word))
                elif word[:1] in ("'", '"'):
                    out.append(("class:string", word))
                else:
                    out.append(("", word))
                out.append(("", space))
            return out

        return line


def _words_and_spaces(text: str) -> list[tuple[str, str]]:
    """The line cut into (word, following spaces), quotes kept inside their word."""
    parts, word, quote, i = [], "", "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            word += ch
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            word += ch
            quote = ch
        elif ch.isspace():
            spaces = ch
            while i + 1 < len(text) and text[i + 1].isspace():
                i += 1
                spaces += text[i]
            parts.append((word, spaces))
            word = ""
        else:
            word += ch
        i += 1
    parts.append((word, ""))
    return parts


class RedErrors:
    """stderr for berth's own messages, in red on a terminal. Containers' stderr is
    written to `.buffer` (bytes) and passes untouched."""

    def __init__(self, stream):
        self._stream = stream
        self.buffer = stream.buffer

    def write(self, text: str) -> int:
        if self._stream.isatty() and text.strip():
            return self._stream.write(f"\x1b[31m{text.rstrip(chr(10))}\x1b[0m" + "\n" * text.endswith("\n"))
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def ensure_daemon(address: str) -> str | None:
    """Ping the daemon; if the default one does not answer and we are root, start it in
    the background. Returns a message to show once, or raises ConnectError."""
    client = Client(address)
    try:
        client.stream("GET", "/_ping").read()
        return None
    except ConnectError:
        if address != DEFAULT_HOST or os.geteuid() != 0:
            raise
    berthd = Path(sys.executable).with_name("berthd")
    log_path = Path(resolve_host(None).removeprefix("unix://")).parent / "berthd.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(berthd) if berthd.exists() else sys.executable, *([] if berthd.exists() else
                                 ["-m", "engine.daemon"])], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConnectError(f"berthd exited with {proc.returncode} at start; see {log_path}")
        try:
            client.stream("GET", "/_ping").read()
            return f"started berthd in the background (pid {proc.pid}, log {log_path})"
        except ConnectError:
            time.sleep(0.1)
    raise ConnectError(f"berthd did not answer within a minute; see {log_path}")


def make_session(client: Client, live: LiveState | None, jobs: Jobs | None = None, **kwargs) -> PromptSession:
    """The prompt with completion, colouring, history and (given `live`) the toolbar,
    which also shows background transfers (given `jobs`)."""

    def toolbar():
        running = jobs is not None and jobs.running
        return live.toolbar([("", "  "), ("class:toolbar.jobs", f" {jobs.toolbar()} ")] if running else [])

    return PromptSession(
        history=FileHistory(str(HISTORY)), completer=ShellCompleter(COMMANDS, Names(client)), key_bindings=tab_bindings(),
        complete_in_thread=True, lexer=CommandLexer(), style=STYLE,
        bottom_toolbar=toolbar if live else None, **kwargs)


def background(words: list[str], jobs: Jobs) -> bool:
    """Hand a transfer to a local file, or a `pull`/`push` ending in `&`, to `jobs` (the
    prompt stays usable); False for any other command line, which runs in the foreground."""
    asked = words[-1] == "&"
    words = words[:-1] if asked else words
    if asked and words[:1] not in (["pull"], ["push"], ["save"], ["export"], ["load"], ["import"]):
        print("berth: only pull, push, save -o, export -o, load -i and import FILE run in the background",
              file=sys.stderr)
        return True
    if not words or words[0] not in ("save", "export", "load", "import", "pull", "push"):
        return False
    try:
        _, args = parse(COMMANDS, words)
    except UsageError:
        return False  # the foreground run reports it
    if words[0] == "pull" and asked:
        job = jobs.pull(args.name)
    elif words[0] == "push" and asked:
        job = jobs.push(args.name)
    elif words[0] == "save" and args.output:
        job = jobs.save(args.images, args.output)
    elif words[0] == "export" and args.output:
        job = jobs.export(args.container, args.output)
    elif words[0] == "load" and args.input:
        job = jobs.load(args.input, args.quiet)
    elif words[0] == "import" and args.file != "-":
        job = jobs.import_(args.file, {"fromSrc": "-", "repo": args.reference, "changes": args.change or None,
                                       "message": args.message})
    else:
        return False
    print(f"[{job.number}] {job.label}: in the background (the toolbar shows its progress)")
    return True


def run_line(line: str, address: str, jobs: Jobs | None = None) -> int | None:
    """Run one line typed at the prompt; None for an empty line, -1 to leave."""
    line = line.strip()
    if not line:
        return None
    if line in ("exit", "quit"):
        return -1
    try:
        words = expand.split(line)
    except ValueError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 1
    if words[0] == "help":
        words = ["--help", *words[1:]]
    if jobs is not None and background(words, jobs):
        return 0
    try:
        # Ctrl-C must reach the command as KeyboardInterrupt (ending a stream), whatever
        # handler the prompt left installed; one pressed as the line was entered lands here.
        signal.signal(signal.SIGINT, _interrupt)
        return execute(words, address)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the prompt must survive anything a command does
        print(f"berth: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def end_partial_line(*, mark: bool = True) -> None:
    """Make sure the prompt starts on a line of its own without knowing what the last
    command wrote (a container's `printf` leaves the cursor mid-line, and the prompt,
    which redraws its line from column 0, would erase that output). As zsh's PROMPT_SP:
    a dim `%` and enough spaces to fill the line; from column 0 they fit and the `\r`
    plus erase take them back, from anywhere else they wrap, so the `%` stays after the
    output as a mark that it had no newline and the prompt goes below. Not `mark`ed
    after a Ctrl-C, whose `^C` the terminal echoed where the cursor was (a new line, as
    bash gives)."""
    out = sys.stdout
    if not out.isatty():
        return
    columns = shutil.get_terminal_size().columns
    out.flush()
    out.write(f"\x1b[2m{'%' if mark else ' '}\x1b[0m{' ' * (columns - 1)}\r\x1b[K")
    out.flush()


def _interrupt(_signum, _frame) -> None:
    """SIGINT during a command: counted (see end_partial_line), then KeyboardInterrupt."""
    sigproxy.interrupts += 1
    raise KeyboardInterrupt


def repl(host: str | None = None) -> int:
    """Read lines until `exit` or Ctrl-D and run each as a `berth` command; 1 if there
    is no daemon and none could be started."""
    sys.stderr = RedErrors(sys.stderr)
    try:
        address = resolve_host(host)
        started = ensure_daemon(address)
    except (ConnectError, DaemonError) as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 1
    client = Client(address)
    live = LiveState(client)
    finished: list[tuple[str, bool]] = []
    jobs = Jobs(client, lambda: session.app.invalidate(), lambda line, failed: finished.append((line, failed)))
    session = make_session(client, live, jobs)
    live.on_change = lambda: session.app.invalidate()
    live.start()
    if started:
        print(started)
    print("berth shell — docker's commands (run, ps, logs, images, …); Tab completes; "
          "`help`, `exit` or Ctrl-D to leave")
    interrupts = sigproxy.interrupts
    warned = False  # about transfers still running, at the last `exit`
    try:
        while True:
            try:
                while finished:  # transfers that ended since the last prompt
                    text, failed = finished.pop(0)
                    print(text, file=sys.stderr if failed else sys.stdout)
                end_partial_line(mark=sigproxy.interrupts == interrupts)
                line = session.prompt("berth> ", refresh_interval=0.5)
            except KeyboardInterrupt:  # at the prompt, or a late Ctrl-C meant for a command
                continue
            except EOFError:
                line = "exit"
            interrupts = sigproxy.interrupts
            if run_line(line, address, jobs) != -1:
                warned = False
                continue
            if not jobs.running or warned:
                jobs.abandon()
                return 0
            warned = True  # as bash's "There are stopped jobs": a second exit leaves
            print(f"berth: {len(jobs.running)} transfer{'s' * (len(jobs.running) > 1)} still running "
                  f"({'; '.join(job.label for job in jobs.running.values())}); `exit` again abandons "
                  "them (an unfinished save or export leaves no file)", file=sys.stderr)
    finally:
        live.stop()
