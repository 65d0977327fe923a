"""Output as the docker CLI prints it: tabwriter tables, `--format` templates (gotemplate.py), Go's quoting,
go-units durations and sizes, PORTS, event lines.

Pure functions over decoded JSON, stdlib only. The go-units rules (durations, sizes) live
in the tiny `gounits` package, shared with the daemon (which renders `Status` with them);
the shell imports nothing from engine/.
"""

import time

from gounits import binary_size, duration, size  # noqa: F401 (re-exported for callers)


# docker's tables come from text/tabwriter with minwidth 10 and padding 3.
_MIN_WIDTH, _PADDING = 10, 3


def table(headers: list[str], rows: list[list[str]], min_width: int = _MIN_WIDTH) -> str:
    """An aligned table: every column but the last as wide as its widest cell plus three
    spaces, and never narrower than `min_width`, ten by default (so `PORTS` stays wide when
    empty, as docker's; `top`'s tables use twenty)."""
    lines = [headers, *rows]
    widths = [max(min_width, max(len(line[i]) for line in lines) + _PADDING) for i in range(len(headers) - 1)]
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)]
        out.append(("".join(cells) + line[-1]).rstrip())
    return "\n".join(out)


def lookup(value, path: str):
    """`State.Status` inside a decoded JSON object; "" when absent. A template names Go's
    fields, whose JSON keys may differ in case (an event's `TimeNano` is `timeNano`, its
    `ID` is `id`): the exact key first, else any case."""
    for part in filter(None, path.split(".")):
        if not isinstance(value, dict):
            return ""
        if part in value:
            value = value[part]
        else:
            folded = part.lower()
            value = next((item for key, item in value.items() if key.lower() == folded), "")
    return value


def compiled(fmt: str):
    """`fmt` parsed as a Go template (gotemplate.ParseError if it is not one)."""
    from . import gotemplate

    return gotemplate.compiled(fmt)


def template(fmt: str, value) -> str:
    """`fmt`, a Go template (gotemplate.py), run over `value`, as inspect and events run
    theirs: `\\t` in it stays as it is (listings read it as a tab)."""
    from . import gotemplate

    return gotemplate.compiled(fmt).execute(value)


def _escaped(fmt: str) -> str:
    """docker's formatter reads `\\t` and `\\n` in a listing's template as tab and newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def listing(fmt: str, items: list, titles: dict[str, str]) -> str:
    """A listing by a `--format` template, as docker's formatter prints it: a line per
    item; with `table ` before the template, a header first (the template run over the
    `titles` of the fields it names) and the whole aligned by Go's tabwriter."""
    from . import gotemplate

    is_table = fmt.startswith("table")
    tmpl = gotemplate.compiled(_escaped(fmt[5:] if is_table else fmt).strip(" "))
    body = "".join(tmpl.execute(item) + "\n" for item in items)
    if not is_table:
        return body
    return gotemplate.tabwrite(tmpl.execute(titles, gotemplate.HEADER_FUNCTIONS) + "\n" + body)


def since(unix_seconds: float, now: float | None = None) -> str:
    """CREATED as docker shows it: `5 seconds ago`."""
    return duration((time.time() if now is None else now) - unix_seconds) + " ago"


def short_id(value: str) -> str:
    """An image or container id as tables show it: 12 hex digits, no `sha256:`."""
    return value.removeprefix("sha256:")[:12]


def truncate(text: str, width: int) -> str:
    """docker's Ellipsis: at most `width` characters, the last one `…` when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v",
               "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote, which `docker ps` applies to COMMAND: printable characters (`…`
    included) stay, quotes and backslashes are escaped, control characters spelled out."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def host_text(ip: str) -> str:
    """A host address before `:port`, an IPv6 one in brackets (`[::]:8080`), as Go's JoinHostPort."""
    return f"[{ip}]" if ":" in ip else ip


def ports(items: list[dict] | None) -> str:
    """The PORTS column from a container list entry's `Ports`, by docker's DisplayablePorts:
    consecutive unpublished (or same-number) ports grouped into ranges, published ones as
    `IP:PUBLIC->PRIVATE/proto` after them."""
    order = sorted(items or [], key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", "")))
    groups: dict[str, list[int]] = {}  # key "type" or "ip/type" → [first, last], in creation order
    result, mappings = [], []

    def group_text(key: str, first: int, last: int) -> str:
        ip, _, proto = key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{host_text(ip)}:{span}->{span}/{proto}" if ip else f"{span}/{proto}"

    for port in order:
        private, ip, public, proto = port.get("PrivatePort", 0), port.get("IP", ""), port.get("PublicPort", 0), port.get("Type", "")
        key = proto
        if ip:
            if public != private:
                mappings.append(f"{host_text(ip)}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        span = groups.get(key)
        if span is None:
            groups[key] = [private, private]
        elif private == span[1] + 1:
            span[1] = private
        else:
            result.append(group_text(key, *span))
            groups[key] = [private, private]
    result += [group_text(key, *span) for key, span in groups.items()]
    return ", ".join(result + mappings)


def local_time(ns: int) -> str:
    """RFC 3339 with nine fraction digits in local time (`Z` for UTC), Go's RFC3339NanoFixed."""
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ns // 10**9, timezone.utc).astimezone()
    offset = moment.strftime("%z")
    offset = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}" + offset


def go_time(unix_seconds: int) -> str:
    """Go's time.Time String() in local time (`2026-11-22 12:28:23 +0000 UTC`), the
    `CreatedAt` of `docker ps --format json`."""
    from datetime import datetime

    return datetime.fromtimestamp(unix_seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def event_line(event: dict) -> str:
    """`docker events`' default line: time, type, action, actor id, then its attributes
    sorted by key in parentheses (left out when there are none)."""
    stamp = event.get("timeNano") or event.get("time", 0) * 10**9
    actor = event.get("Actor") or {}
    line = f"{local_time(stamp)} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{key}={attributes[key]}" for key in sorted(attributes)) + ")"
    return line
