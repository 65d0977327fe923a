"""The Dockerfile language: text in, instructions out, before anything runs.

Parsing follows Docker's parser: parser directives (`# escape=`, `# syntax=`) only at the
very top; comment lines (also inside a continued instruction) and blank lines skipped; a
line ending in the escape character continues on the next; each instruction is a
keyword (any case), then `--name=value` flags, then its arguments, which RUN, CMD,
ENTRYPOINT, SHELL, COPY, ADD and VOLUME also take as a JSON array. Heredocs (`<<EOF`) are
BuildKit's and refused here. Errors name the line: `Dockerfile parse error line 3:
unknown instruction: FOO`. Variables are expanded later, per instruction, when their
values are known (`words.py`).
"""

from __future__ import annotations

import json
import re

import msgspec

from ..errors import BadRequest

KEYWORDS = frozenset({"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                      "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"})
JSON_FORMS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
# The flags each instruction takes; any other is an error naming it.
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod"}, "ADD": {"chown", "chmod"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "retries"}}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_COMMENT = re.compile(r"^\s*#")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*")
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?:=(\S*))?$")


class Instruction(msgspec.Struct, frozen=True):
    """One instruction: its keyword (upper case), flags, arguments and where it stands."""

    keyword: str
    rest: str  # the arguments' text, flags removed
    flags: dict[str, str]
    json: list[str] | None  # the arguments in JSON form, when given so
    original: str  # the line as `Step N/M : …` shows it (continuations joined)
    line: int  # where it starts in the Dockerfile, from 1


class Dockerfile(msgspec.Struct, frozen=True):
    escape: str
    instructions: list[Instruction]


def error(line: int, message: str) -> BadRequest:
    return BadRequest(f"Dockerfile parse error line {line}: {message}")


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; BadRequest naming the line for anything it cannot read."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")  # a BOM (Notepad's) is no text
    escape, start = "\\", 0
    seen: set[str] = set()
    for index, raw in enumerate(lines):
        match = _DIRECTIVE.match(raw)
        if not match:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name not in ("escape", "syntax"):
            break  # an ordinary comment ends the directives
        if name in seen:
            raise error(index + 1, f"only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise error(index + 1, f"invalid escape token '{value}' does not match ` or \\")
            escape = value
        start = index + 1
    instructions = []
    index = start
    while index < len(lines):
        raw = lines[index]
        if not raw.strip() or _COMMENT.match(raw):
            index += 1
            continue
        first = index
        parts = []
        line = raw.rstrip()
        while line.endswith(escape) and index + 1 < len(lines):
            parts.append(line[:-1])
            index += 1
            while index < len(lines) and (_COMMENT.match(lines[index]) or not lines[index].strip()):
                index += 1  # comment and blank lines inside a continued instruction
            line = lines[index].rstrip() if index < len(lines) else ""
        if line.endswith(escape):
            line = line[:-1]
        parts.append(line)
        index += 1
        instructions.append(instruction("".join(parts).strip(), first + 1))
    return Dockerfile(escape, instructions)


def first_word(text: str) -> tuple[str, str]:
    """(the first word, the rest) of `text`, split at its first space or tab, as dockerd splits them."""
    word, *rest = re.split(r"\s", text, maxsplit=1)
    return word, rest[0] if rest else ""


def instruction(text: str, line: int) -> Instruction:
    """One (joined) instruction line."""
    keyword, rest = first_word(text)
    upper = keyword.upper()
    if upper not in KEYWORDS:
        raise error(line, f"unknown instruction: {keyword}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    if upper != "ONBUILD":
        while rest.startswith("--"):
            word, _, remainder = rest.partition(" ")
            match = _FLAG.match(word)
            if not match:
                raise error(line, f"{upper}: bad flag {word!r}")
            name = match.group(1)
            if name not in FLAGS.get(upper, ()):
                raise error(line, f"unknown flag: {name}")
            if match.group(2) is None:
                raise error(line, f"Missing a value on flag: {name}")
            flags[name] = match.group(2)
            rest = remainder.strip()
    if upper in ("RUN", "COPY", "ADD") and _HEREDOC.search(rest) and not rest.startswith("["):
        raise error(line, f"{upper}: heredocs (<<) need BuildKit; berth's builder does not support them")
    as_json = None
    if upper in JSON_FORMS and rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            as_json = value
    if not rest and upper not in ("CMD", "ENTRYPOINT"):  # those two may be bare: dockerd takes them so
        raise error(line, f"{upper} requires at least one argument")
    return Instruction(upper, rest, flags, as_json, text, line)
