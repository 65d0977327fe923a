"""The interactive shell: completion, colouring, the live toolbar and the prompt itself,
headless (prompt-toolkit on a pipe), and once end to end in tmux."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from shell import repl
from shell.cli import COMMANDS
from shell.completion import Names, ShellCompleter, tab_bindings
from shell.live import LiveState
from shell.transport import Client
from tests.daemon import REPO


@pytest.fixture
def completer(daemon):
    return ShellCompleter(COMMANDS, Names(Client(daemon.host)))


def complete(completer, text: str) -> list[str]:
    return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]


def test_completes_commands_flags_values_and_live_names(completer, api, tmp_path):
    assert complete(completer, "log") == ["logs", "login", "logout"]
    assert "--restart" in complete(completer, "run --re")
    assert complete(completer, "run --runtime ") == ["crun", "runc"]
    assert complete(completer, "plugin e") == ["enable"]
    name = f"complete-{uuid.uuid4().hex[:8]}"
    assert complete(completer, f"logs -f {name[:12]}") == []
    cid = api.create(["true"], name=name)
    assert complete(completer, f"logs -f {name[:12]}") == [name]  # live: no stale cache
    assert complete(completer, f"rm {cid[:6]}") == [cid[:12]]
    assert complete(completer, f"inspect {name[:12]}") == [name]
    assert complete(completer, f"cp {name[:12]}") == [name + ":"]  # cp: CONTAINER:PATH or a local path
    assert "busybox:latest" in complete(completer, "rmi busy")
    assert complete(completer, "network inspect brid") == ["bridge"]
    assert complete(completer, "container p") == ["pause", "port", "prune", "ps"]  # a noun's verbs, aliases too
    assert complete(completer, f"container logs {name[:12]}") == [name]  # docker's nouns over the same verbs
    assert complete(completer, "volume ls --f") == ["--filter", "--format"]
    assert complete(completer, f"network connect bridge {name[:12]}") == [name]
    assert complete(completer, "plugin enable jan") == ["janitor"]
    assert complete(completer, "inspect --type ") == ["container", "image", "network", "volume", "plugin"]
    assert complete(completer, "run busybox ec") == []  # the container's own command line
    (tmp_path / "rootfs.tar").write_bytes(b"")
    assert complete(completer, f"import {tmp_path}/ro") == ["otfs.tar"]
    api.remove(cid)
    assert complete(completer, f"logs -f {name[:12]}") == []


def test_lexer_colours_the_line():
    line = repl.CommandLexer().lex_document(Document('run -d --name "x y" busybox'))(0)
    styles = {text: style for style, text in line if text.strip()}
    assert styles == {"run": "class:command", "-d": "class:option", "--name": "class:option",
                      '"x y"': "class:string", "busybox": ""}
    assert repl.CommandLexer().lex_document(Document("nope ps"))(0)[0] == ("class:unknown", "nope")


def test_errors_are_red_on_a_terminal_and_container_bytes_untouched():
    class Tty(io.StringIO):
        buffer = io.BytesIO()

        def isatty(self):
            return True

    raw = Tty()
    red = repl.RedErrors(raw)
    red.write("berth: unknown command 'x'\n")
    assert raw.getvalue() == "\x1b[31mberth: unknown command 'x'\x1b[0m\n"
    assert red.buffer is raw.buffer


def test_prompt_runs_lines_as_the_cli_does(daemon, capfd):
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        session = repl.make_session(Client(daemon.host), None)
        pipe.send_text("run --rm busybox echo from-the-shell\n")
        line = session.prompt("berth> ")
    assert repl.run_line(line, daemon.host) == 0
    assert capfd.readouterr().out.endswith("from-the-shell\n")
    assert repl.run_line("nosuch", daemon.host) == 125
    assert repl.run_line("run --rm busybox sh -c 'exit 3'", daemon.host) == 3
    assert repl.run_line("exit", daemon.host) == -1
    assert repl.run_line("   ", daemon.host) is None


def test_toolbar_follows_the_bus(daemon, api):
    live = LiveState(Client(daemon.host))
    live.start()
    try:
        deadline = time.monotonic() + 10
        while not live.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        before = dict(live.counts)
        cid = api.run(["sleep", "60"], name=f"toolbar-{uuid.uuid4().hex[:8]}")
        while live.counts["running"] != before["running"] + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.counts["running"] == before["running"] + 1
        api.post(f"/containers/{cid}/pause")
        while live.counts["paused"] != before["paused"] + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.counts["paused"] == before["paused"] + 1
        assert any("pause toolbar-" in e for e in live.recent)
        text = "".join(t for _, t in live.toolbar())
        assert "paused" in text and "running" in text
        assert text.index("container pause toolbar-") < text.index("container start toolbar-")  # newest first
        image = api.get_json("/images/busybox/json")["Id"]
        live._seen({"Type": "image", "Action": "tag", "time": 0, "Actor": {"ID": image, "Attributes": {}}})
        assert live.recent[-1].endswith(f"image tag {image[7:19]}")  # an ID in its short form
        api.remove(cid)
    finally:
        live.stop()


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_shell_in_tmux_completes_tails_and_leaves(daemon, api, tmp_path):
    """A user's session: start a container, Tab-complete its name, follow its logs,
    Ctrl-C back to the prompt, exit."""
    session = f"berth-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    name = f"tmux-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HOME": str(tmp_path)}  # the shell's history goes to a scratch home

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", *args], env=env, capture_output=True, text=True, check=True).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session)

    def wait_for(text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while text not in (shown := screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed:\n{shown}")
            time.sleep(0.1)
        return shown

    tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "40",
         f"cd {REPO} && exec {sys.executable} -m shell.cli -H {daemon.host}")
    tmux("set-option", "-t", session, "remain-on-exit", "on")  # a crash stays on screen for the report
    try:
        wait_for("berth>")
        tmux("send-keys", "-t", session, f"run -d --name {name} busybox sh -c 'while true; do echo tick-$$; sleep 0.2; done'",
             "Enter")
        wait_for("running")
        tmux("send-keys", "-t", session, f"logs -f {name[:7]}")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "Tab")
        wait_for(f"logs -f {name}")
        tmux("send-keys", "-t", session, "Escape", "Enter")
        wait_for("tick-1")  # output: the typed command line shows `tick-$$`
        tmux("send-keys", "-t", session, "C-c")
        deadline = time.monotonic() + 10
        while True:  # the prompt is back below the last tick: the stream has ended
            lines = screen().splitlines()
            last_tick = max(i for i, line in enumerate(lines) if "tick-1" in line)
            if any("berth>" in line for line in lines[last_tick:]):
                break
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.1)
        tmux("send-keys", "-t", session, "rm -f " + name, "Enter")
        wait_for("berth> rm -f " + name)
        lines = [line.rstrip() for line in wait_for(f"rm -f {name}\n{name}").splitlines()]
        assert lines[lines.index(f"berth> rm -f {name}") + 1] == name  # the prompt came back after Ctrl-C
        # output without a final newline stays on screen, marked, and the prompt goes below it
        tmux("send-keys", "-t", session, "run --rm busybox printf partial-out", "Enter")
        lines = [line.rstrip() for line in wait_for("partial-out%").splitlines()]
        at = lines.index("partial-out%")
        assert lines[at + 1].startswith("berth>"), lines
        tmux("send-keys", "-t", session, "exit", "Enter")
        deadline = time.monotonic() + 10
        while tmux("display-message", "-p", "-t", session, "#{pane_dead}").strip() != "1":
            assert time.monotonic() < deadline, screen()  # the shell ended
            time.sleep(0.1)
        assert "Traceback" not in screen()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], env=env, capture_output=True)
        api.remove(name)


def test_transfers_run_in_the_background(daemon, api, tmp_path):
    """`export -o` and `load -i`/`import FILE` in the shell hand their bytes to a job
    (aiofiles on our side) and the prompt is back at once; the outcome is reported."""
    import threading

    from shell.jobs import Jobs

    ended = threading.Event()
    reports: list[tuple[str, bool]] = []
    jobs = Jobs(Client(daemon.host), lambda: None, lambda line, failed: (reports.append((line, failed)), ended.set()))
    cid = api.run(["sh", "-c", "head -c 3000000 /dev/urandom > /blob; sleep 60"])
    time.sleep(0.5)
    target = tmp_path / "fs.tar"
    assert repl.background(["export", "-o", str(target), cid], jobs)
    assert ended.wait(30) and reports[-1][1] is False and "done" in reports[-1][0]
    assert target.stat().st_size > 3_000_000
    ended.clear()
    assert repl.background(["import", str(target), "bg-import:1"], jobs)
    assert ended.wait(30) and reports[-1] == (f"[2] import ← {target}: {reports[-1][0].split(': ', 1)[1]}", False)
    assert api.get("/images/bg-import:1/json").status == 200
    ended.clear()
    assert repl.background(["load", "-i", str(tmp_path / "missing.tar")], jobs)
    assert ended.wait(30) and reports[-1][1] is True
    assert not repl.background(["export", cid], jobs)  # to stdout: a foreground command
    assert not jobs.running
    api.remove(cid)
    api.delete("/images/bg-import:1")


def test_tab_completes_a_unique_match_in_place():
    """Tab on a unique match completes it (and a space) as bash does; several complete
    their common part; only then does Tab step through the menu."""
    def typed(*keys: str) -> str:
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            session = PromptSession(completer=ShellCompleter(COMMANDS, Names(Client("unix:///nonexistent"))),
                                    key_bindings=tab_bindings())

            def feed():
                for key in (*keys, "\r"):
                    time.sleep(0.3)  # after the completions typing started have arrived
                    pipe.send_text(key)

            threading.Thread(target=feed, daemon=True).start()
            return session.prompt()

    assert typed("netw", "\t") == "network "
    assert typed("network ins", "\t") == "network inspect "
    assert typed("image re", "\t") == "image remove "


def test_abandoned_transfers_leave_no_file(daemon, api, tmp_path):
    """A background export abandoned (a second `exit`) leaves neither a truncated archive
    nor its temp file; one that ends is renamed into place whole."""
    from shell.jobs import Jobs

    jobs = Jobs(Client(daemon.host), lambda: None, lambda line, failed: None)
    cid = api.run(["sh", "-c", "head -c 300000000 /dev/zero > /big; sleep 60"])
    try:
        until = time.monotonic() + 30
        while b"/big" not in b"".join(api.get(f"/containers/{cid}/changes").body.split()) and time.monotonic() < until:
            time.sleep(0.2)
        time.sleep(1)  # the file written whole
        target = tmp_path / "big.tar"
        assert repl.background(["export", "-o", str(target), cid], jobs)
        time.sleep(0.05)
        assert jobs.running
        jobs.abandon()
        assert list(tmp_path.iterdir()) == []  # no truncated big.tar, no .berth_temp_ file
    finally:
        api.remove(cid)
