"""berth's command grammar as data, and a parser for docker-style command lines.

One table of commands serves the one-shot CLI, the REPL and its completion. A command
is a verb (`ps`) or a noun grouping verbs (`volume ls`, `network create`); each verb names
the function that runs it. The parser follows docker's (cobra's) rules: `--opt value`,
`--opt=value`, bundled short flags (`-aq`, `-it`, `-e X`), options between positionals,
`--` ends the options, and for `run`/`create` everything after the image is the
container's command.
It is small and imports nothing, because a one-shot command's start-up is most of a
`berth run`'s time (argparse and `re` alone cost ~10 ms).
"""


class UsageError(Exception):
    """Bad command-line input; the CLI prints it and exits 125 (run) or 1. `called` is
    the command it was given to (`image rm`), once known."""

    called: str | None = None


class ArgumentError(UsageError):
    """Too few or too many positional arguments: docker (cobra) exits 1 for these, and
    125 only for flag errors. `hint` is the verb of docker's last line ("See" or "Run")."""

    def __init__(self, message: str, hint: str = "Run"):
        super().__init__(message)
        self.hint = hint


# Plain classes rather than NamedTuples or dataclasses: building the command table is on
# every command's start-up path, and those cost milliseconds to define and import.
class Opt:
    """An option: its spellings ("-e", "--env"), where its value goes, and its kind:
    flag (bool), value (the last one given) or list (every one given); `default`, when
    given, is its value when absent (a flag that is on unless `--flag=false`)."""

    __slots__ = ("names", "dest", "kind", "help", "convert", "default")

    def __init__(self, names: tuple[str, ...], dest: str, kind: str = "flag", help: str = "", convert=None,
                 default=None):
        self.names, self.dest, self.kind, self.help, self.convert = names, dest, kind, help, convert
        self.default = default


class Arg:
    """A positional argument: one, optional, many (one or more), any (zero or more), or
    rest (the rest of the line, verbatim)."""

    __slots__ = ("dest", "kind", "shown")

    def __init__(self, dest: str, kind: str = "one", shown: str = ""):
        self.dest, self.kind = dest, kind
        # how the usage line names it, when docker's words are not DEST or DEST...
        self.shown = shown or dest.upper() + ("..." if kind in ("many", "any", "rest") else "")


class Command:
    """A verb: its name, the function that runs it (`handler(client, args)` → exit
    status), help, grammar. `opts` may be given as a function returning them, called
    when they are first needed: a command's long option list (run's) then costs the
    other commands' start-up nothing."""

    __slots__ = ("name", "handler", "help", "_opts", "args")

    def __init__(self, name: str, handler, help: str, opts=(), args: tuple[Arg, ...] = ()):
        self.name, self.handler, self.help, self._opts, self.args = name, handler, help, opts, args

    @property
    def opts(self) -> tuple[Opt, ...]:
        if callable(self._opts):
            self._opts = self._opts()
        return self._opts


class Group:
    """A noun whose next word picks one of its verbs (`volume ls`, `network create`), each
    a Command with its own grammar, so `volume rm -f` and `volume ls -f` differ as in docker.

    A verb is a Command, or (word, Command) where the noun names a top-level command
    otherwise (`container ls` is `ps`); `aliases` are docker's other words for a verb
    (`list` for `ls`, `remove` for `rm`)."""

    __slots__ = ("name", "help", "verbs", "aliases")

    def __init__(self, name: str, help: str, verbs: tuple[Command | tuple[str, Command], ...],
                 aliases: dict[str, str] | None = None):
        self.name, self.help = name, help
        self.verbs = dict(verb if isinstance(verb, tuple) else (verb.name, verb) for verb in verbs)
        self.aliases = aliases or {}

    def word(self, given: str) -> str:
        """The verb's own word for `given` (itself, or what it is an alias of)."""
        return self.aliases.get(given, given)

    def verb(self, given: str) -> Command | None:
        """The verb `given` (or an alias of it) names, if any."""
        return self.verbs.get(self.word(given))


class Namespace(dict):
    """Parsed values, readable as attributes (`args.detach`)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _resolve(commands: dict[str, Command | Group], argv: list[str]) -> tuple[Command, str, list[str]]:
    """The verb `argv` names (through its noun, if any), how it was called (`volume rm`),
    and the words after it."""
    if not argv:
        raise UsageError("no command given (see `berth --help`)")
    entry = commands.get(argv[0])
    if entry is None:
        raise UsageError(f"unknown command {argv[0]!r} (see `berth --help`)")
    if not isinstance(entry, Group):
        return entry, argv[0], argv[1:]
    verb = entry.verb(argv[1]) if len(argv) > 1 else None
    if verb is None:
        given = f", not {argv[1]!r}" if len(argv) > 1 else ""
        raise UsageError(f"`berth {entry.name}`: the command must be one of {', '.join(entry.verbs)}{given}")
    return verb, f"{entry.name} {entry.word(argv[1])}", argv[2:]


def parse(commands: dict[str, Command | Group], argv: list[str]) -> tuple[Command, Namespace]:
    """Parse `argv` (command name first) against `commands`: the verb it names, and its values."""
    cmd, called, words = _resolve(commands, argv)
    try:
        return cmd, _values(cmd, called, words)
    except UsageError as exc:
        exc.called = called
        raise


def _values(cmd: Command, called: str, words: list[str]) -> Namespace:
    by_name = {name: opt for opt in cmd.opts for name in opt.names}
    ns = Namespace({opt.dest: opt.default if opt.default is not None else
                    [] if opt.kind == "list" else (False if opt.kind == "flag" else None) for opt in cmd.opts})
    positionals: list[str] = []
    rest_after = next((i for i, a in enumerate(cmd.args) if a.kind == "rest"), None)
    i = 0

    def take_value(opt: Opt, inline: str | None) -> None:
        nonlocal i
        if inline is None:
            if i >= len(words):
                raise UsageError(f"flag needs an argument: {opt.names[-1]}")
            inline = words[i]
            i += 1
        try:
            value = opt.convert(inline) if opt.convert else inline
        except (UsageError, ValueError) as exc:  # docker's words for a value its flag refuses
            raise UsageError(f'invalid argument "{inline}" for "{", ".join(opt.names)}" flag: {exc}') from None
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
    _bind(cmd, called, positionals, ns)
    return ns


def _bind(cmd: Command, called: str, values: list, ns: Namespace) -> None:
    _count(cmd, called, values)
    for index, arg in enumerate(cmd.args):
        if arg.kind == "rest":
            ns[arg.dest] = values[index] if index < len(values) and isinstance(values[index], list) else []
            return
        if arg.kind in ("many", "any"):
            ns[arg.dest] = values[index:]
            return
        ns[arg.dest] = values[index] if index < len(values) else None


def _count(cmd: Command, called: str, values: list) -> None:
    """docker's check of the number of positional arguments, in its words."""
    least = sum(arg.kind in ("one", "many") for arg in cmd.args)
    unbounded = any(arg.kind in ("many", "any", "rest") for arg in cmd.args)
    most = None if unbounded else len(cmd.args)
    given = sum(1 for value in values if not isinstance(value, list)) + any(isinstance(v, list) for v in values)
    if least <= given and (most is None or given <= most):
        return

    def plural(n: int) -> str:
        return f"{n} argument" + ("" if n == 1 else "s")

    if most == 0:
        raise ArgumentError(f"'berth {called}' accepts no arguments")
    if most is None:
        raise ArgumentError(f"'berth {called}' requires at least {plural(least)}", "See")
    if least == most:
        raise ArgumentError(f"'berth {called}' requires {plural(least)}")
    raise ArgumentError(f"'berth {called}' requires at least {least} and at most {plural(most)}")


def usage(commands: dict[str, Command | Group], words: list[str] = ()) -> str:
    """Help text: every command, a noun's verbs, or one verb's options, for the command
    `words` start with (`[]`, `["volume"]`, `["volume", "ls", "-q"]`)."""
    entry = commands.get(words[0]) if words else None
    if entry is None:
        return _listing("Usage: berth [-H unix:///path.sock] [-v|--version] COMMAND [OPTIONS]", "Commands:", commands) + \
            "\n\n`berth` alone (or `berth shell`) opens the interactive shell."
    if isinstance(entry, Group):
        if len(words) < 2 or entry.verb(words[1]) is None:
            return _listing(f"Usage: berth {entry.name} COMMAND [OPTIONS]\n\n{entry.help}", "Commands:", entry.verbs)
        entry, words = entry.verb(words[1]), [f"{entry.name} {entry.word(words[1])}"]
    args = " ".join(a.shown for a in entry.args)
    lines = [f"Usage: berth {words[0]} [OPTIONS] {args}".rstrip(), "", entry.help]
    if entry.opts:
        lines += ["", "Options:"]
        lines += [f"  {', '.join(o.names):<22} {o.help}" for o in entry.opts]
    return "\n".join(lines)


def _listing(head: str, title: str, entries: dict[str, Command | Group]) -> str:
    """`head`, then a line a command: its name and help (a noun's with its verbs)."""
    entries = {name: entry for name, entry in entries.items() if not name.startswith("-")}  # root flags
    width = max(len(name) for name in entries)
    lines = [head, "", title]
    for name, entry in entries.items():
        verbs = f" ({', '.join(entry.verbs)})" if isinstance(entry, Group) else ""
        lines.append(f"  {name.ljust(width)}  {entry.help}{verbs}")
    return "\n".join(lines)
