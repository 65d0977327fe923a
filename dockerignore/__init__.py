"""`.dockerignore`: which context paths a build leaves out, with Docker's pattern rules.

Read by the daemon (engine/build/context.py, for any client) and by `berth build`, which
leaves ignored files out of the upload (shell/build_context.py): a leaf package of the
standard library only, as gounits, so that the client, which imports nothing of the
engine, reads the patterns with the very same code.

One pattern a line; `#` lines are comments; surrounding spaces go; each pattern is
cleaned as a path (leading `/` and `./` removed). `*` matches within one path
component, `?` one character, `[…]` a class, `**` any number of components. A pattern
that matches a directory leaves out everything under it. `!pattern` brings back what an
earlier pattern left out; the last matching pattern decides.
"""

from __future__ import annotations

import posixpath
import re


class Pattern:
    def __init__(self, text: str):
        self.exclusion = text.startswith("!")
        cleaned = posixpath.normpath(text[1:].strip() if self.exclusion else text).lstrip("/")
        self.regex = re.compile(_regex(cleaned))


def _regex(pattern: str) -> str:
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                out.append("[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]")
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


class Ignore:
    """The patterns of one `.dockerignore`; the paths of `keep` are never left out (the
    Dockerfile and `.dockerignore` itself, which the docker CLI always sends)."""

    def __init__(self, text: str = "", keep: tuple[str, ...] = ()):
        self.patterns = [Pattern(line) for raw in text.splitlines()
                         if (line := raw.strip()) and not line.startswith("#") and line != "!"]
        self.keep = set(keep)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    @property
    def negations(self) -> bool:
        """Whether a `!` pattern may bring back something under a left-out directory."""
        return any(pattern.exclusion for pattern in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether the context path `path` (relative, `/`-separated) is left out: the last
        pattern matching it or one of its parent directories decides."""
        path = posixpath.normpath(path).lstrip("/")
        if path in self.keep:
            return False
        parents = [path]
        while "/" in parents[-1]:
            parents.append(parents[-1].rpartition("/")[0])
        verdict = False
        for pattern in self.patterns:
            if any(pattern.regex.match(p) for p in parents):
                verdict = not pattern.exclusion
        return verdict
