"""The shell's line as bash would hand it over: `~` and `$VAR` expanded before the line is
split into words, so `save -o ~/box.tar busybox` and `run -e HOME=$HOME …` mean what
they mean in bash.

Expanded, as bash does: a `~` or `~user` that starts a word (before a `/` or the word's
end), and `$NAME` / `${NAME}` outside single quotes (an unset variable is empty). Left as
typed: anything in single quotes, a backslash-escaped `$` or `~`, and every other `$`
(`$1`, `$?`, a lone `$`), which berth has no use for. An expanded value stays one word,
whatever it holds (bash would split an unquoted one at spaces; a path with a space is
the common case here, and one word is what it means).
"""

from __future__ import annotations

import os
import re
import shlex

_NAME = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_TILDE = re.compile(r"~([A-Za-z0-9_.][A-Za-z0-9_.-]*)?(?=/|\s|$)")


def split(line: str, environ: dict[str, str] | None = None) -> list[str]:
    """`line` expanded as described above, then split into words as shlex (POSIX) does;
    ValueError for an unclosed quote."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    quote = ""  # the quote we are inside, if any
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == "'":
            quote = "" if ch == "'" else quote
            out.append(ch)
        elif ch == "\\" and i + 1 < len(line):
            out.append(line[i:i + 2])
            i += 1
        elif ch in "'\"" and (not quote or ch == quote):
            quote = "" if quote else ch
            out.append(ch)
        elif ch == "$" and (found := _NAME.match(line, i)):
            value = env.get(found.group(1) or found.group(2), "")
            out.append(_escaped(value, quote))
            i = found.end() - 1
        elif ch == "~" and not quote and (i == 0 or line[i - 1].isspace()) and (found := _TILDE.match(line, i)):
            home = os.path.expanduser(found.group(0))
            out.append(_escaped(home, quote) if home != found.group(0) else home)
            i = found.end() - 1
        else:
            out.append(ch)
        i += 1
    return shlex.split("".join(out))


def _escaped(value: str, quote: str) -> str:
    """`value` written so that the split takes it as it is, inside `quote` or none."""
    if quote == '"':
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return shlex.quote(value) if value else ""
