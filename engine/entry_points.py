"""The entry points installed distributions declare, read as importlib.metadata reads them.

A distribution on `sys.path` declares them in `<name>-<version>.dist-info/entry_points.txt`
(or `<name>.egg-info/…`): INI sections named by group, `name = module[:attribute]` lines
(PyPA's entry points specification). The first distribution of a name found along
`sys.path` is the one that counts. Read here rather than through importlib.metadata,
which would bring `email`, `zipfile` and `csv` into the daemon for its whole life (1.6 MB
of its memory) and ~17 ms to its start, for one look at a few small files.
"""

from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple

_SEPARATORS = re.compile(r"[-_.]+")


class EntryPoint(NamedTuple):
    name: str
    value: str  # `module[:attribute] [extras]`

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].partition("[")[0].strip()


def find(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """The entry points of `group`, in the order of `path` (default: sys.path)."""
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path if path is None else path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip, a directory gone: nothing installed there that berth reads
            continue
        for name in names:
            stem, _, kind = name.rpartition(".")
            if kind not in ("dist-info", "egg-info"):
                continue
            project = _SEPARATORS.sub("_", stem.partition("-")[0]).lower()
            if project in seen:
                continue
            seen.add(project)
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as f:
                    found += _section(f.read(), group)
            except OSError:  # a distribution without entry points
                continue
    return found


def _section(text: str, group: str) -> list[EntryPoint]:
    """The `name = value` lines of section `[group]`; comments and blank lines skipped."""
    current, found = None, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, _, value = line.partition("=")
            found.append(EntryPoint(name.strip(), value.strip()))
    return found
