"""Variable substitution in Dockerfile words, as Docker's shell lexer does it.

`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}` and
`${VAR:?message}` are expanded; single quotes keep their text as is, double quotes allow
expansion, and the escape character (`\\` or the `# escape=` directive's) takes the next
character literally. Quotes are removed from the result, as Docker removes them. Which
instructions expand their words is the dispatcher's business (`steps.EXPANDED`).
"""

from __future__ import annotations

import re

from ..errors import BadRequest

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]|[*#$@!?-]")


def expand(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """One word, expanded and unquoted (spaces kept)."""
    return "".join(_Lexer(word, env, escape).run(split=False)[0])


def expand_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """`text` expanded and split into words at whitespace outside quotes."""
    return [w for w in _Lexer(text, env, escape).run(split=True) if w]


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str):
        self.text, self.env, self.escape, self.pos = text, env, escape, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def run(self, split: bool, stop: str = "") -> list[str]:
        """Words up to the end (or an unquoted `stop` character, for `${…}` words)."""
        words, current, started = [], [], False
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                break
            if split and ch.isspace():
                self.pos += 1
                if started:
                    words.append("".join(current))
                    current, started = [], False
                continue
            started = True
            if ch == "'":
                self.pos += 1
                end = self.text.find("'", self.pos)
                if end < 0:
                    raise BadRequest(f"unexpected end of statement while looking for matching single-quote in {self.text!r}")
                current.append(self.text[self.pos:end])
                self.pos = end + 1
            elif ch == '"':
                self.pos += 1
                current.append(self.double_quoted())
            elif ch == self.escape:
                self.pos += 1
                if self.pos < len(self.text):
                    current.append(self.take())
            elif ch == "$":
                self.pos += 1
                current.append(self.variable())
            else:
                current.append(self.take())
        if started or not split:
            words.append("".join(current))
        return words

    def double_quoted(self) -> str:
        out = []
        while True:
            ch = self.take()
            if ch == "":
                raise BadRequest(f"unexpected end of statement while looking for matching double-quote in {self.text!r}")
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.take())
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)

    def variable(self) -> str:
        """After a `$`: the variable's value (or `$` itself when no name follows)."""
        if self.peek() == "{":
            self.pos += 1
            match = _NAME.match(self.text, self.pos)
            if not match:
                raise BadRequest(f"bad substitution in {self.text!r}: missing name after ${{")
            name = match.group()
            self.pos = match.end()
            ch = self.take()
            if ch == "}":
                return self.env.get(name, "")
            colon = ch == ":"
            if colon:
                ch = self.take()
            if ch not in ("-", "+", "?"):
                raise BadRequest(f"unsupported modifier ({ch or 'end of text'}) in substitution of {name} in {self.text!r}")
            word = "".join(self.run(split=False, stop="}"))
            if self.take() != "}":
                raise BadRequest(f"missing '}}' in substitution of {name} in {self.text!r}")
            value = self.env.get(name)
            unset = value is None or (colon and value == "")
            if ch == "-":
                return word if unset else value
            if ch == "+":
                return "" if unset else word
            if unset:
                raise BadRequest(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        match = _NAME.match(self.text, self.pos)
        if not match or not (match.group()[0].isalpha() or match.group()[0] == "_"):
            return "$"
        self.pos = match.end()
        return self.env.get(match.group(), "")
