"""What every noun prints the same way, as the docker CLI prints it: a line, an action
applied name by name, a listing (`ls`, `ps`, `images`), inspect output, a prune report;
and the options those take."""

import sys

from ..grammar import Arg, Command, Opt
from ..transport import Client, DaemonError, ref

FILTER = Opt(("-f", "--filter"), "filter", "list", "filter (key=value)")
NO_TRUNC = Opt(("--no-trunc",), "no_trunc", "flag", "do not truncate")
FORCE_NEVER_ASKS = Opt(("-f", "--force"), "force", "flag", "do not ask (berth never asks)")


def format_option(example: str) -> Opt:
    """`--format`: json, or a template such as `example`."""
    return Opt(("--format",), "format", "value", f"json, or a template like '{example}'")


def inspect_format_option(example: str) -> Opt:
    """inspect's `-f/--format`: json, or a template such as `example`."""
    return Opt(("-f", "--format"), "format", "value", f"json, or a template like '{example}'")


def quiet_option(what: str) -> Opt:
    """`-q`: `what` only (IDs, names), one a line."""
    return Opt(("-q", "--quiet"), "quiet", "flag", f"{what} only")


class CommandFailed(Exception):
    """A command that failed for a reason docker words exactly (no `berth:` before it),
    with the status docker exits with."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.message, self.status = message, status


def out(text: str = "") -> None:
    """A line on stdout."""
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    """A line on stderr."""
    sys.stderr.write(text + "\n")


def each_name(names: list[str], act, failed=None) -> int:
    """`act(name)` for each name; an error from the daemon is printed and the next name
    taken, as docker does; then `failed(names that failed)`, docker's closing line for
    some commands (`Error: failed to start containers: a, b`). 1 if any failed."""
    failures = []
    for name in names:
        try:
            act(name)
        except DaemonError as exc:
            err(f"Error response from daemon: {exc.message}")
            failures.append(name)
    if failures and failed is not None:
        err(failed(failures))
    return 1 if failures else 0


def each(client: Client, names: list[str], method: str, endpoint: str, query=None, body=None, failed=None) -> int:
    """One call for each name (`endpoint` has `{}` for it), printing the name when it
    succeeded; 1 if any failed (see each_name for `failed`)."""
    def act(name: str) -> None:
        client.call(method, endpoint.format(ref(name)), query, body)
        out(name)

    return each_name(names, act, failed)


# The headers of a `table` template's columns, by field, as docker's formatters name
# them; a listing gives the ones of its own (`ID` is `CONTAINER ID` in `ps`).
TITLES = {"Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
          "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS",
          "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Repository": "REPOSITORY",
          "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED", "Containers": "CONTAINERS",
          "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Name": "NAME", "Driver": "DRIVER",
          "Scope": "SCOPE", "IPv6": "IPV6", "Internal": "INTERNAL", "Mountpoint": "MOUNTPOINT", "Links": "LINKS",
          "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}


def print_listing(items: list[dict], fmt: str | None, headers: list[str], cells, quiet=None,
                  titles: dict[str, str] | None = None) -> None:
    """A listing as docker prints one: `quiet(item)` per line (`-q`), a JSON object per line
    (`--format json`), a template per line (`table …`: with a header of the fields'
    TITLES, overridden by `titles`, and aligned), or the table of `headers` and
    `cells(item)` (also for `--format table`)."""
    from .. import render  # only where a listing is printed: not on pause's or stop's way

    if fmt == "table":
        fmt = None
    if quiet:
        for item in items:
            out(quiet(item))
    elif fmt == "json":
        from .. import fastjson  # where JSON is written: pause, stop, rm… never load it (~0.5 ms)

        for item in items:
            out(fastjson.dumps(item, ascii=False, sort_keys=True))
    elif fmt:
        from ..gotemplate import ParseError, TemplateError

        try:
            sys.stdout.write(render.listing(fmt, items, {**TITLES, **(titles or {})}))
        except ParseError as exc:
            raise CommandFailed(f"failed to parse template: {exc}") from None
        except TemplateError as exc:
            raise CommandFailed(f"failed to execute template: {exc}") from None
    else:
        out(render.table(headers, [cells(item) for item in items]))


def checked_template(fmt: str, refusal: str) -> None:
    """Refuse a `--format` that does not parse before asking the daemon anything, with
    docker's words (`refusal`: its prefix) and status 64."""
    from .. import render
    from ..gotemplate import ParseError

    try:
        render.compiled(fmt)
    except ParseError as exc:
        raise CommandFailed(f"{refusal}: {exc}", 64) from None


def rendered(fmt: str, value) -> str:
    """`value` through the template `fmt`; one error line (status 1) where it cannot run."""
    from .. import render
    from ..gotemplate import TemplateError

    try:
        return render.template(fmt, value)
    except TemplateError as exc:
        raise CommandFailed(str(exc)) from None


# What `inspect` asks the daemon for, by noun. Plain `inspect` tries them in this order, as docker's does.
INSPECTED = {"container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}",
             "volume": "/volumes/{}", "plugin": "/plugins/{}/json"}


def print_inspect(client: Client, names: list[str], fmt: str | None, nouns: tuple[str, ...],
                  daemon_words: bool = False) -> int:
    """docker's inspect, for every noun: each name asked for as each of `nouns` in turn (the
    first that knows it wins), then all that was found as one indented JSON array, a
    compact one (`--format json`) or a template line each (`-f`). A name none knows is
    `Error: No such <noun>: NAME` on stderr (`object` when several nouns were tried; the
    daemon's own words with `daemon_words`, as `image inspect` says it), after the
    others' output, and the status is 1."""
    from .. import render

    if fmt and fmt != "json":
        checked_template(fmt, "template parsing error")  # before asking the daemon anything, as docker
    found, errors = [], []
    for name in names:
        for noun in nouns:
            try:
                found.append(client.get(INSPECTED[noun].format(ref(name))))
                break
            except DaemonError as exc:
                if exc.status != 404 or daemon_words:  # not "no such", or `image inspect`'s own
                    errors.append(f"Error response from daemon: {exc.message}")
                    break
        else:
            errors.append(f"Error: No such {nouns[0] if len(nouns) == 1 else 'object'}: {name}")
    if fmt == "json":
        from .. import fastjson

        out(fastjson.dumps(found, ascii=False))
    elif fmt:
        from ..gotemplate import TemplateError

        shown = []
        try:
            shown += (render.template(fmt, item) for item in found)
        except TemplateError as exc:
            out("\n".join(shown))  # docker: what was rendered, then the error
            raise CommandFailed(f"template parsing error: {exc}") from None
        out("\n".join(shown))  # docker: an empty line for none
    else:
        import json  # indented output only here; fastjson is compact

        out(json.dumps(found, indent=4, ensure_ascii=False))
    sys.stdout.flush()  # the errors follow the output, as docker's do
    for line in errors:
        err(line)
    return 1 if errors else 0


def inspect_verb(noun: str, example: str) -> Command:
    """A noun's `inspect NAME…` (`volume inspect`), printed by print_inspect."""
    dest = noun + "s"

    def inspect(client: Client, args) -> int:
        return print_inspect(client, args[dest], args.format, (noun,), daemon_words=True)

    return Command("inspect", inspect, f"{noun}s in detail", (inspect_format_option(example),), (Arg(dest, "many"),))


def print_deleted(title: str, deleted: list[str]) -> None:
    """What a prune removed, under `title` and followed by a blank line; nothing if nothing."""
    if deleted:
        out(title)
        for item in deleted:
            out(item)
        out()


def print_pruned(*reports: tuple[str, list[str], int]) -> None:
    """Prune reports, (title, what went, bytes freed) each, as docker prints them: what
    each removed, then the space freed by all."""
    from .. import render

    for title, deleted, _ in reports:
        print_deleted(title, deleted)
    out(f"Total reclaimed space: {render.size(sum(freed for _, _, freed in reports))}")
