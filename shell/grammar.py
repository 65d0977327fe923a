"""berth's command grammar as data, and a parser for docker-style command lines.

One table of commands serves the one-shot CLI and the REPL (and, later, the REPL's
completion). The parser follows docker's (cobra's) rules: `--opt value`, `--opt=value`,
bundled short flags (`-aq`, `-it`, `-e X`), options between positionals, `--` ends the
options, and for `run`/`create` everything after the image is the container's command.
It is small and imports nothing, because a one-shot command's start-up is most of a
`berth run`'s time (argparse and `re` alone cost ~10 ms).
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad command-line input; the CLI prints it and exits 125 (run) or 1."""


# Plain classes rather than NamedTuples or dataclasses: building the command table is on
# every command's start-up path, and those cost milliseconds to define and import.
class Opt:
    """An option: its spellings ("-e", "--env"), where its value goes, and its kind:
    flag (bool), value (the last one given) or list (every one given)."""

    __slots__ = ("names", "dest", "kind", "help", "convert")

    def __init__(self, names: tuple[str, ...], dest: str, kind: str = "flag", help: str = "", convert=None):
        self.names, self.dest, self.kind, self.help, self.convert = names, dest, kind, help, convert


class Arg:
    """A positional argument: one, optional, many (one or more), any (zero or more), or
    rest (the rest of the line, verbatim)."""

    __slots__ = ("dest", "kind", "choices")

    def __init__(self, dest: str, kind: str = "one", choices: tuple[str, ...] = ()):
        self.dest, self.kind, self.choices = dest, kind, choices


class Command:
    """A command: its name, the function in shell.commands that runs it, help, grammar."""

    __slots__ = ("name", "handler", "help", "opts", "args")

    def __init__(self, name: str, handler: str, help: str, opts: tuple[Opt, ...] = (), args: tuple[Arg, ...] = ()):
        self.name, self.handler, self.help, self.opts, self.args = name, handler, help, opts, args


class Namespace(dict):
    """Parsed values, readable as attributes (`args.detach`)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def parse(commands: dict[str, Command], argv: list[str]) -> tuple[Command, Namespace]:
    """Parse `argv` (command name first) against `commands`."""
    if not argv:
        raise UsageError("no command given (see `berth --help`)")
    cmd = commands.get(argv[0])
    if cmd is None:
        raise UsageError(f"unknown command {argv[0]!r} (see `berth --help`)")
    by_name = {name: opt for opt in cmd.opts for name in opt.names}
    ns = Namespace({opt.dest: [] if opt.kind == "list" else (False if opt.kind == "flag" else None) for opt in cmd.opts})
    positionals: list[str] = []
    rest_after = next((i for i, a in enumerate(cmd.args) if a.kind == "rest"), None)
    words = argv[1:]
    i = 0

    def take_value(opt: Opt, inline: str | None) -> None:
        nonlocal i
        if inline is None:
            if i >= len(words):
                raise UsageError(f"flag needs an argument: {opt.names[-1]}")
            inline = words[i]
            i += 1
        value = opt.convert(inline) if opt.convert else inline
        if opt.kind == "list":
            ns[opt.dest].append(value)
        else:
            ns[opt.dest] = value

    while i < len(words):
        word = words[i]
        i += 1
        if rest_after is not None and len(positionals) == rest_after:
            positionals.append(words[i - 1:])  # `run IMAGE cmd args…`: the rest is the command
            break
        if word == "--":
            positionals.extend(words[i:])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, inline = word.partition("=")
            opt = by_name.get(name)
            if opt is None:
                raise UsageError(f"unknown flag: {name}")
            if opt.kind == "flag":
                ns[opt.dest] = inline.lower() not in ("false", "0") if eq else True
            else:
                take_value(opt, inline if eq else None)
        elif word.startswith("-") and len(word) > 1:
            for j, letter in enumerate(word[1:], start=1):
                opt = by_name.get("-" + letter)
                if opt is None:
                    raise UsageError(f"unknown shorthand flag: {letter!r} in {word}")
                if opt.kind == "flag":
                    ns[opt.dest] = True
                    continue
                take_value(opt, word[j + 1:] or None)
                break
        else:
            positionals.append(word)
    _bind(cmd, positionals, ns)
    return cmd, ns


def _bind(cmd: Command, values: list, ns: Namespace) -> None:
    for index, arg in enumerate(cmd.args):
        if arg.kind == "rest":
            ns[arg.dest] = values[index] if index < len(values) and isinstance(values[index], list) else []
            return
        if arg.kind in ("many", "any"):
            if index >= len(values) and arg.kind == "many":
                raise UsageError(f"`berth {cmd.name}` requires at least one {arg.dest.rstrip('s')}")
            ns[arg.dest] = values[index:]
            return
        if index < len(values):
            if arg.choices and values[index] not in arg.choices:
                raise UsageError(f"{arg.dest} must be one of {', '.join(arg.choices)}, not {values[index]!r}")
            ns[arg.dest] = values[index]
        elif arg.kind == "optional":
            ns[arg.dest] = None
        else:
            raise UsageError(f"`berth {cmd.name}` requires {arg.dest.upper()}")
    if len(values) > len(cmd.args):
        raise UsageError(f"`berth {cmd.name}`: unexpected argument {values[len(cmd.args)]!r}")


def usage(commands: dict[str, Command], name: str | None = None) -> str:
    """Help text: every command, or one command's options."""
    if name is None or name not in commands:
        width = max(len(n) for n in commands)
        lines = ["Usage: berth [-H unix:///path.sock] COMMAND [OPTIONS]", "", "Commands:"]
        lines += [f"  {c.name.ljust(width)}  {c.help}" for c in commands.values()]
        lines += ["", "`berth` alone (or `berth shell`) opens the interactive shell."]
        return "\n".join(lines)
    cmd = commands[name]
    args = " ".join(a.dest.upper() + ("..." if a.kind in ("many", "any", "rest") else "") for a in cmd.args)
    lines = [f"Usage: berth {name} [OPTIONS] {args}".rstrip(), "", cmd.help]
    if cmd.opts:
        lines += ["", "Options:"]
        lines += [f"  {', '.join(o.names):<22} {o.help}" for o in cmd.opts]
    return "\n".join(lines)
