"""Output as Docker prints it: aligned tables, `--format` templates, times and sizes."""

from __future__ import annotations

import json
import time

from engine import humanize


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, as the docker CLI does."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [headers, *rows]:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def lookup(value, path: str):
    """`State.Status` inside a decoded JSON object; "" when absent."""
    for part in filter(None, path.split(".")):
        if isinstance(value, dict):
            value = value.get(part, "")
        else:
            return ""
    return value


def template(fmt: str, value: dict) -> str:
    """A small subset of Go templates: `{{.Field}}`, `{{.A.B}}`, `{{json .X}}`, `\\t`."""
    import re  # only templates need it; start-up of other commands does not pay for it

    def sub(found: re.Match) -> str:
        item = lookup(value, found.group(2))
        if found.group(1) or isinstance(item, (dict, list)):
            return json.dumps(item, separators=(",", ":"))
        if isinstance(item, bool):
            return str(item).lower()
        return str(item)

    field = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")
    return field.sub(sub, fmt.replace("\\t", "\t").removeprefix("table "))


def since(unix_seconds: float) -> str:
    """`5 seconds ago` from a unix time."""
    return humanize.duration(time.time() - unix_seconds) + " ago"


size = humanize.size


def short_id(value: str) -> str:
    return value.removeprefix("sha256:")[:12]


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def local_time(ns: int) -> str:
    """Event timestamps: RFC 3339 with nanoseconds in local time, like `docker events`."""
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ns // 10**9, timezone.utc).astimezone()
    offset = moment.strftime("%z")
    offset = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}" + offset
