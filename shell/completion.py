"""Tab completion for the shell, from the one command table (shell/cli.py).

Commands, a noun's verbs, their flags, flag values with a fixed set (runtimes, restart policies),
container names and IDs, image references and local paths. Names come from the daemon
at the moment of the Tab (one small API call), so they are never stale after a change.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.completion.base import get_common_complete_suffix
from prompt_toolkit.document import Document
from prompt_toolkit.key_binding import KeyBindings

from .commands.printers import INSPECTED
from .grammar import Command, Group
from .transport import Client, ConnectError, DaemonError

# what a positional argument names, by its `dest` in the command table
_KINDS = {"container": "containers", "containers": "containers", "image": "images", "images": "images",
          "source": "images", "names": "objects", "file": "paths", "volumes": "volumes", "network": "networks",
          "networks": "networks", "plugins": "plugins"}
_CP_KINDS = {"source": "copy", "dest": "copy"}  # `cp`: a local path, or CONTAINER: then its path
_VALUES = {"--runtime": ["crun", "runc"], "--restart": ["no", "on-failure", "always", "unless-stopped"],
           "--type": list(INSPECTED), "--format": ["json"]}


class Names:
    """Live lists of what the daemon holds."""

    def __init__(self, client: Client):
        self.client = client

    def _get(self, endpoint: str, **query) -> list[dict]:
        try:
            return self.client.get(endpoint, **query) or []
        except (ConnectError, DaemonError, OSError):
            return []  # no daemon: nothing to offer, and no traceback in the prompt

    def containers(self) -> list[tuple[str, str]]:
        """(word, what it is) for every container: its name and its short ID."""
        found = []
        for c in self._get("/containers/json", all=1):
            found += [(n.lstrip("/"), f"{c['Image']} · {c['State']}") for n in c.get("Names", [])]
            found.append((c["Id"][:12], c["Names"][0].lstrip("/") if c.get("Names") else ""))
        return found

    def images(self) -> list[tuple[str, str]]:
        found = []
        for image in self._get("/images/json"):
            found += [(tag, image["Id"].removeprefix("sha256:")[:12]) for tag in image.get("RepoTags") or []
                      if tag != "<none>:<none>"]
        return found

    def volumes(self) -> list[tuple[str, str]]:
        """(name, driver) for every volume."""
        return [(v["Name"], v["Driver"]) for v in (self._get("/volumes") or {}).get("Volumes") or []]

    def networks(self) -> list[tuple[str, str]]:
        """(name, driver) for every network."""
        return [(n["Name"], n["Driver"]) for n in self._get("/networks")]

    def plugins(self) -> list[tuple[str, str]]:
        """(name, status) for every plugin."""
        return [(p["Name"], p["BerthStatus"]["Status"]) for p in self._get("/plugins")]


class ShellCompleter(Completer):
    """Completes a berth command line as typed in the shell."""

    def __init__(self, commands: dict[str, Command | Group], names: Names):
        self.commands = commands
        self.names = names
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = _split(text)
        current = "" if not words or text[-1:].isspace() else words.pop()
        if not words:
            yield from _matching(current, [(name, cmd.help) for name, cmd in self.commands.items()])
            return
        cmd = self.commands.get(words[0])
        if isinstance(cmd, Group):  # its verb, then that verb's words as a command's
            if len(words) == 1:
                yield from _matching(current, [(name, verb.help) for name, verb in cmd.verbs.items()]
                                     + [(alias, cmd.verbs[name].help) for alias, name in cmd.aliases.items()])
                return
            cmd, words = cmd.verb(words[1]), words[1:]
        if cmd is None:
            return
        options = {name: opt for opt in cmd.opts for name in opt.names}
        if current.startswith("-"):
            yield from _matching(current, [(name, opt.help) for opt in cmd.opts for name in opt.names
                                           if name.startswith("--") or len(current) < 3])
            return
        previous = words[-1] if len(words) > 1 else ""
        if previous in options and options[previous].kind != "flag":
            yield from _matching(current, [(v, "") for v in _VALUES.get(options[previous].names[-1], [])])
            return
        arg = _positional(cmd, words[1:], options)
        kind = ((_CP_KINDS if cmd.name == "cp" else _KINDS).get(arg.dest)) if arg is not None else None
        if kind == "paths":
            yield from self._paths.get_completions(Document(current, len(current)), complete_event)
        elif kind == "copy":
            if ":" not in current:
                yield from _matching(current, [(name + ":", meta) for name, meta in self.names.containers()])
                yield from self._paths.get_completions(Document(current, len(current)), complete_event)
        elif kind:
            yield from _matching(current, self._source(kind)())

    def _source(self, kind: str) -> Callable[[], list[tuple[str, str]]]:
        if kind == "objects":  # plain `inspect`: whatever it may name
            return lambda: (self.names.containers() + self.names.images() + self.names.networks() + self.names.volumes()
                            + self.names.plugins())
        return getattr(self.names, kind)


def _split(text: str) -> list[str]:
    """Words of a line being typed (an open quote is closed for the purpose)."""
    for closing in ("", '"', "'"):
        try:
            return shlex.split(text + closing)
        except ValueError:
            continue
    return text.split()


def _positional(cmd: Command, words: list[str], options: dict) -> object | None:
    """The positional argument the next word fills (None once past the last, or inside
    a command line given to the container)."""
    count, skip = 0, False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-") and len(word) > 1:
            opt = options.get(word.partition("=")[0])
            skip = opt is not None and opt.kind != "flag" and "=" not in word
        else:
            count += 1
    for index, arg in enumerate(cmd.args):
        if arg.kind == "rest" and count >= index:
            return None if count > index else arg
        if arg.kind in ("many", "any") and count >= index:
            return arg
        if index == count:
            return arg
    return None


def _matching(prefix: str, candidates: list[tuple[str, str]]) -> Iterable[Completion]:
    seen = set()
    for word, meta in candidates:
        if word.startswith(prefix) and word not in seen:
            seen.add(word)
            yield Completion(word, start_position=-len(prefix), display_meta=meta)


def tab_bindings() -> KeyBindings:
    """Tab as bash's (and docker's completion) does it: a unique match is completed in
    place, several complete their common part, and only then does Tab step through the
    menu. prompt_toolkit's own Tab steps into the menu that typing already opened, so a
    unique match was shown but never taken."""
    bindings = KeyBindings()

    @bindings.add("tab")
    def _(event) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is None:
            buffer.start_completion(insert_common_part=True)
            return
        if state.complete_index is None:  # the menu typing opened; nothing chosen yet
            if len(state.completions) == 1:
                buffer.apply_completion(state.completions[0])
                if not buffer.text.endswith(("/", ":")):  # bash: a space after a whole word
                    buffer.insert_text(" ")
                return
            common = get_common_complete_suffix(buffer.document, state.completions)
            if common:
                buffer.cancel_completion()
                buffer.insert_text(common)
                return
        buffer.complete_next()

    return bindings
