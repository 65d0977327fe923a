"""Go's text/template, as far as `--format` needs it: a tokenizer, a parser to a small
tree, and an evaluator over decoded JSON, with the docker CLI's functions.

Actions: `{{.A.B}}`, `{{.}}`, `{{$}}`, variables (`{{$x := …}}`, `{{$x = …}}`), pipelines
(`{{.Names | upper}}`), parentheses with fields after them (`{{(index .X 0).Name}}`),
`if`/`else if`/`else`, `range` (with `$i, $v :=`, an `else`, `break`, `continue`),
`with`, comments, and the `{{-`/`-}}` trim markers. Functions: Go's `and or not len
index slice print printf println eq ne lt le gt ge`, and docker's `json join split
title lower upper pad truncate`.

Safe by construction: a template can only read the value it is given and call the
functions above; nothing is imported, looked up by name or called outside this module.
Errors carry Go's words (`template: :1: unexpected "}" in operand`).
"""

from __future__ import annotations

import functools
import json as _json

__all__ = ["TemplateError", "ParseError", "Template", "parse", "compiled", "render", "go_string", "tabwrite"]


class TemplateError(Exception):
    """A template that does not parse, or fails while it runs."""


class ParseError(TemplateError):
    """A template that does not parse."""


# --- tokenizer ---------------------------------------------------------------------------

_SPACE = " \t\r\n"
_IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


class Token:
    """A token of an action: its kind (field, var, ident, string, number, char, bool,
    nil, dot, `(`, `)`, `|`, `:=`, `=`, `,`, end), its value, the line it is on, and
    where it starts and ends in the template."""

    __slots__ = ("kind", "value", "line", "pos", "end")

    def __init__(self, kind: str, value, line: int):
        self.kind, self.value, self.line = kind, value, line
        self.pos = self.end = 0  # offsets in the whole template, for errors

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.value!r})"


def _unquote(text: str, line: int) -> str:
    """A Go interpreted string literal's body (between the quotes), its escapes decoded."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        code = text[i + 1:i + 2]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in ("x", "u", "U"):
            digits = {"x": 2, "u": 4, "U": 8}[code]
            hexa = text[i + 2:i + 2 + digits]
            if len(hexa) != digits or any(c not in "0123456789abcdefABCDEF" for c in hexa):
                raise ParseError(f"template: :{line}: invalid syntax")
            out.append(chr(int(hexa, 16)))
            i += 2 + digits
        elif code.isdigit():
            octal = text[i + 1:i + 4]
            if len(octal) != 3 or any(c not in "01234567" for c in octal):
                raise ParseError(f"template: :{line}: invalid syntax")
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            raise ParseError(f"template: :{line}: invalid syntax")
    return "".join(out)


def _number(word: str, line: int):
    """A Go number literal: int (decimal, hex, octal, binary, with `_`) or float."""
    text = word.replace("_", "")
    try:
        if text[:2].lower() in ("0x", "0o", "0b") or text.lstrip("+-")[:2].lower() in ("0x", "0o", "0b"):
            return int(text, 0)
        if text.lstrip("+-").isdigit():
            return int(text, 8) if len(text.lstrip("+-")) > 1 and text.lstrip("+-")[0] == "0" else int(text)
        return float(text)
    except ValueError:
        raise ParseError(f"template: :{line}: bad number syntax: {word!r}") from None


def _action_tokens(src: str, line: int, base: int) -> list[Token]:
    """The tokens of one action's text (what is between `{{` and `}}`, trim markers off,
    starting at offset `base` of the template)."""
    tokens: list[Token] = []
    i, n = 0, len(src)
    start = count = 0
    while i < n:
        if len(tokens) > count:
            tokens[-1].pos, tokens[-1].end = base + start, base + i
        start, count = i, len(tokens)
        ch = src[i]
        if ch in _SPACE:
            line += ch == "\n"
            i += 1
        elif ch in "()|,":
            tokens.append(Token(ch, ch, line))
            i += 1
        elif src.startswith(":=", i):
            tokens.append(Token(":=", ":=", line))
            i += 2
        elif ch == "=":
            tokens.append(Token("=", "=", line))
            i += 1
        elif ch == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\n":
                    break
                j += 2 if src[j] == "\\" else 1
            if j >= n or src[j] != '"':
                raise ParseError(f"template: :{line}: unterminated quoted string")
            tokens.append(Token("string", _unquote(src[i + 1:j], line), line))
            i = j + 1
        elif ch == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise ParseError(f"template: :{line}: unterminated raw quoted string")
            tokens.append(Token("string", src[i + 1:j], line))
            line += src.count("\n", i, j)
            i = j + 1
        elif ch == "'":
            j = src.find("'", i + 1)
            while j > 0 and src[j - 1] == "\\" and src[i + 1:j] != "\\":
                j = src.find("'", j + 1)
            body = _unquote(src[i + 1:j], line) if j > 0 else ""
            if j < 0 or len(body) != 1:
                raise ParseError(f"template: :{line}: unterminated character constant")
            tokens.append(Token("number", ord(body), line))
            i = j + 1
        elif ch == "." and (i + 1 >= n or not src[i + 1].isdigit()):
            j = i + 1
            while j < n and (src[j] in _IDENT or (src[j] == "." and j + 1 < n and src[j + 1] in _IDENT)):
                j += 1
            path = src[i + 1:j]
            if not path:
                tokens.append(Token("dot", ".", line))
            else:
                if any(not part for part in path.split(".")):
                    raise ParseError(f"template: :{line}: unexpected . after term")
                tokens.append(Token("field", tuple(path.split(".")), line))
            i = j
        elif ch == "$":
            j = i + 1
            while j < n and src[j] in _IDENT:
                j += 1
            name = src[i:j]
            fields: tuple = ()
            if j < n and src[j] == "." and j + 1 < n and src[j + 1] in _IDENT:
                k = j + 1
                while k < n and (src[k] in _IDENT or (src[k] == "." and k + 1 < n and src[k + 1] in _IDENT)):
                    k += 1
                fields = tuple(src[j + 1:k].split("."))
                j = k
            tokens.append(Token("var", (name, fields), line))
            i = j
        elif ch.isdigit() or (ch in "+-." and i + 1 < n and src[i + 1].isdigit()):
            j = i + 1
            while j < n and (src[j] in _IDENT or src[j] == "." or (src[j] in "+-" and src[j - 1] in "eEpP")):
                j += 1
            tokens.append(Token("number", _number(src[i:j], line), line))
            i = j
        elif ch in _IDENT:
            j = i
            while j < n and src[j] in _IDENT:
                j += 1
            word = src[i:j]
            if word in ("true", "false"):
                tokens.append(Token("bool", word == "true", line))
            elif word == "nil":
                tokens.append(Token("nil", None, line))
            else:
                tokens.append(Token("ident", word, line))
            i = j
        else:
            raise ParseError(f"template: :{line}: unexpected {ch!r} in command")
    if len(tokens) > count:
        tokens[-1].pos, tokens[-1].end = base + start, base + i
    tokens.append(Token("end", None, line))
    tokens[-1].pos = tokens[-1].end = base + n
    return tokens


def lex(text: str) -> list[tuple[str, object, int]]:
    """`text` as pieces: ("text", str, line) and ("action", [Token], line), the trim
    markers applied and comments dropped."""
    pieces: list[tuple[str, object, int]] = []
    i, line = 0, 1
    while True:
        start = text.find("{{", i)
        if start < 0:
            if i < len(text):
                pieces.append(("text", text[i:], line))
            return pieces
        body = text[i:start]
        trim_left = text.startswith("{{- ", start) or text.startswith("{{-\t", start) or text.startswith("{{-\n", start)
        if trim_left:
            body = body.rstrip(_SPACE)
        if body:
            pieces.append(("text", body, line))
        line += text.count("\n", i, start)
        inner = start + (3 if trim_left else 2)
        close = _action_end(text, inner, line)
        trim_right = close - 2 >= inner and text[close - 2] in _SPACE and text[close - 1] == "-"
        src = text[inner:close - 1 if trim_right else close]
        i = close + 2
        if trim_right:
            while i < len(text) and text[i] in _SPACE:
                i += 1
        stripped = src.strip(_SPACE)
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise ParseError(f"template: :{line}: unclosed comment")
        else:
            pieces.append(("action", _action_tokens(src, line, inner), line))
        line += text.count("\n", start, i)


def _action_end(text: str, i: int, line: int) -> int:
    """Where the action starting at `i` ends (the index of its `}}`), skipping quoted text."""
    n = len(text)
    # a comment opens the action, or follows the space of a `{{- ` (not a quote: `{{"/*"}}`)
    if text.startswith("/*", i) or (text[i:i + 1] in _SPACE and text.startswith("/*", i + 1)):
        end = text.find("*/", i)
        close = text.find("}}", end + 2) if end >= 0 else -1
        if end < 0 or close < 0:
            raise ParseError(f"template: :{line}: unclosed comment")
        return close
    while i < n:
        if text.startswith("}}", i):
            return i
        ch = text[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and text[j] != ch:
                if ch != "`" and text[j] == "\n":
                    raise ParseError(f"template: :{line}: unterminated quoted string")
                j += 2 if text[j] == "\\" and ch != "`" else 1
            if j >= n:
                raise ParseError(f"template: :{line}: unterminated quoted string")
            i = j + 1
        else:
            i += 1
    raise ParseError(f"template: :{line}: unclosed action")


# --- parser ------------------------------------------------------------------------------
# Nodes are tuples, their first item the kind:
#   ("text", str)                        ("action", pipe)
#   ("if"|"with", pipe, nodes, else)      ("range", pipe, nodes, else)
#   ("break",) ("continue",)
# A pipe is (declared names, "decl"|"assign"|None, [command]); a command a list of
# operands; an operand one of ("field", path) ("var", name, path) ("dot",) ("ident", name)
# ("const", value) ("pipe", pipe, path).

_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
FUNCTIONS: dict = {}  # filled below the evaluator


class _Parser:
    def __init__(self, pieces, text: str):
        self.pieces, self.at, self.text = pieces, 0, text
        self.tokens: list[Token] = []
        self.pos = 0
        self.vars: list[list[str]] = [["$"]]
        self.loops = 0

    # token access within the current action
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += self.pos < len(self.tokens) - 1
        return token

    def error(self, message: str, token: Token | None = None) -> TemplateError:
        line = (token or self.peek()).line
        return ParseError(f"template: :{line}: {message}")

    def parse_list(self, stops: tuple[str, ...]) -> tuple[list, str | None]:
        """Nodes up to one of the `stops` keywords (`end`, `else`); the one met (the
        current action then holds its remaining tokens)."""
        nodes: list = []
        while self.at < len(self.pieces):
            kind, value, line = self.pieces[self.at]
            self.at += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            self.tokens, self.pos = value, 0
            first = self.peek()
            if first.kind == "ident" and first.value in _KEYWORDS:
                word = first.value
                if word in ("end", "else"):
                    if word not in stops:
                        raise self.error(f"unexpected {{{{{word}}}}}", first)
                    self.next()
                    return nodes, word
                self.next()
                nodes.append(self.parse_keyword(word, first))
            else:
                nodes.append(("action", self.parse_pipe("command", decl_ok=True)))
        if stops:
            raise ParseError(f"template: :{self.pieces[-1][2] if self.pieces else 1}: unexpected EOF")
        return nodes, None

    def expect_end(self, context: str) -> None:
        token = self.peek()
        if token.kind != "end":
            raise self.error(f"unexpected {_show(token)} in {context}", token)

    def parse_keyword(self, word: str, token: Token):
        if word in ("break", "continue"):
            if not self.loops:
                raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", token)
            self.expect_end(word)
            return (word,)
        if word in ("define", "template", "block"):
            raise self.error(f"{{{{{word}}}}} is not supported in --format", token)
        return self.parse_control(word)

    def parse_control(self, word: str):
        self.vars.append(list(self.vars[-1]))
        pipe = self.parse_pipe(word, decl_ok=True, range_decl=word == "range")
        self.loops += word == "range"
        body, stop = self.parse_list(("end", "else"))
        self.loops -= word == "range"
        otherwise: list = []
        if stop == "else":
            token = self.peek()
            if token.kind == "ident" and token.value in ("if", "with") and word == token.value:
                self.next()  # `{{else if …}}`: an `if` nested in the else, sharing its end
                otherwise = [self.parse_control(token.value)]
            else:
                self.expect_end("else")
                otherwise, stop = self.parse_list(("end",))
        else:
            self.expect_end("end")
        self.vars.pop()
        return (word, pipe, body, otherwise)

    def parse_pipe(self, context: str, decl_ok: bool = False, range_decl: bool = False):
        names: list[str] = []
        mode = None
        if decl_ok and self.peek().kind == "var" and not self.peek().value[1]:
            mark = self.pos
            first = self.next()
            if self.peek().kind in (":=", "="):
                names, mode = [first.value[0]], "decl" if self.next().kind == ":=" else "assign"
            elif range_decl and self.peek().kind == ",":
                self.next()
                second = self.next()
                if second.kind != "var" or self.peek().kind not in (":=", "="):
                    raise self.error("range can only initialize variables", second)
                names, mode = [first.value[0], second.value[0]], "decl" if self.next().kind == ":=" else "assign"
            else:
                self.pos = mark
        if mode == "decl":
            self.vars[-1].extend(names)
        elif mode == "assign":
            for name in names:
                self._check_var(name, self.peek())
        commands = []
        while True:
            token = self.peek()
            if token.kind in ("end", ")"):
                break
            commands.append(self.parse_command(context))
            if self.peek().kind == "|":
                self.next()
                if self.peek().kind in ("end", ")"):
                    raise self.error("missing command after |")
        if context != "parenthesized pipeline" and self.peek().kind == ")":
            raise self.error(f"unexpected {_show(self.peek())} in {context}")
        if not commands:
            raise self.error(f"missing value for {context}")
        for command in commands[1:]:
            if command[0][0] in ("const", "dot", "nil"):
                raise self.error(f"non executable command in pipeline stage {commands.index(command) + 1}")
        return (names, mode, commands)

    def parse_command(self, context: str) -> list:
        """A command's operands, then where it is: ("at", "1:2", its text)."""
        operands = []
        first = self.peek()
        while True:
            token = self.peek()
            if token.kind in ("end", ")", "|"):
                break
            if token.kind in (":=", "=", ","):
                raise self.error(f"unexpected {_show(token)} in operand", token)
            operands.append(self.parse_operand())
        if not operands:
            raise self.error(f"missing value for {context}")
        last = self.tokens[self.pos - 1]
        return operands + [("at", _where(self.text, first.pos), self.text[first.pos:last.end])]

    def parse_operand(self):
        token = self.next()
        if token.kind == "field":
            # Go places a field chain at its second name (`.State.Foo` at `.Foo`)
            pos = token.pos + (len(token.value[0]) + 1 if len(token.value) > 1 else 0)
            return ("field", token.value, _where(self.text, pos), "." + ".".join(token.value))
        if token.kind == "var":
            name, path = token.value
            self._check_var(name, token)
            return ("var", name, path)
        if token.kind == "dot":
            return ("dot",)
        if token.kind in ("string", "number", "bool"):
            return ("const", token.value)
        if token.kind == "nil":
            return ("nil",)
        if token.kind == "ident":
            if token.value in _KEYWORDS:
                raise self.error(f"unexpected <{token.value}> in command", token)
            if token.value not in FUNCTIONS:
                raise self.error(f'function "{token.value}" not defined', token)
            return ("ident", token.value)
        if token.kind == "(":
            pipe = self.parse_pipe("parenthesized pipeline", decl_ok=False)
            close = self.next()
            if close.kind != ")":
                raise self.error("unclosed left paren", token)
            path: tuple = ()
            if self.peek().kind == "field" and self.peek().pos == close.end:  # `(…).Name`, no space between
                path = self.next().value
            return ("pipe", pipe, path)
        raise self.error(f"unexpected {_show(token)} in operand", token)

    def _check_var(self, name: str, token: Token) -> None:
        if name not in self.vars[-1]:
            raise self.error(f"undefined variable \"{name}\"", token)


def _where(text: str, pos: int) -> str:
    """`line:column` of offset `pos`, as Go's execution errors give it (column from 0)."""
    return f"{text.count(chr(10), 0, pos) + 1}:{pos - (text.rfind(chr(10), 0, pos) + 1)}"


def _show(token: Token) -> str:
    """A token as Go's parse errors quote it."""
    if token.kind == "end":
        return "<end>" if token.value is None else str(token.value)
    if token.kind == "field":
        return "<." + ".".join(token.value) + ">"
    if token.kind in ("string",):
        return _json.dumps(token.value)
    return f'"{token.value}"' if token.kind in "()|,:==" else f"<{token.value}>"


class Template:
    """A parsed template; `execute(value)` renders it."""

    def __init__(self, text: str):
        self.text = text
        parser = _Parser(lex(text), text)
        self.nodes, _ = parser.parse_list(())

    def execute(self, value, functions: dict | None = None) -> str:
        out: list[str] = []
        _Run(functions or FUNCTIONS, out).nodes(self.nodes, value, {"$": value})
        return "".join(out)


def parse(text: str) -> Template:
    """`text` parsed; TemplateError when it is not a template Go would accept."""
    return Template(text)


@functools.lru_cache(maxsize=32)
def compiled(text: str) -> Template:
    """`text` parsed once (a listing runs its template for every row)."""
    return Template(text)


def render(text: str, value) -> str:
    """`text` parsed and executed on `value`."""
    return Template(text).execute(value)


# --- evaluator ---------------------------------------------------------------------------

class _Unplaced(TemplateError):
    """An error while a template runs, not yet told where: the command or field it
    happened in adds that (`template: :1:2: executing "" at <.Foo>: …`)."""


def _placed(exc: Exception, where: str, text: str) -> TemplateError:
    return TemplateError(f'template: :{where}: executing "" at <{text}>: {exc}')


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


MISSING = object()  # a map key that is not there: prints as `<no value>`
NIL = object()  # a nil pointer of Docker's types that its JSON omits (`.State.Health`): prints as `<nil>`


def truth(value) -> bool:
    """Go's template truth: false, 0, nil and empty strings, lists and maps are false."""
    if value is MISSING or value is None or value is NIL:
        return False
    if isinstance(value, (bool, int, float, str, list, dict, tuple)):
        return bool(value)
    return True


def go_string(value) -> str:
    """A value as Go's fmt prints it with %v: `true`, `[a b]`, `map[k:v]`, `<no value>`."""
    if value is NIL:
        return "<nil>"
    if value is MISSING or value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_nested(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{_nested(k)}:{_nested(value[k])}" for k in sorted(value, key=str)) + "]"
    return str(value)


def _nested(value) -> str:
    """A value inside a list or map: fmt prints a nil there as `<nil>`."""
    return "<nil>" if value is None or value is MISSING or value is NIL else go_string(value)


def _go_float(value: float) -> str:
    """Go's %v for a float64: the shortest repr, with an exponent below 1e-4 or from 1e21."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').rjust(2, '0')}"
    return text


# Fields that are Go maps in Docker's types (labels, options, an event's attributes…):
# the docker CLI runs a template on its typed values first, where a key such a map lacks
# is `<no value>`, not the raw JSON's `map has no entry` error.
GO_MAPS = frozenset({"Labels", "Attributes", "Options", "DriverOpts", "Annotations", "Sysctls", "StorageOpt",
                     "Tmpfs", "Networks", "Ports", "ExposedPorts", "Volumes", "Containers"})
# Pointer fields of Docker's types that its JSON leaves out when nil: `<nil>` when missing.
GO_POINTERS = frozenset({"Health", "Healthcheck"})


def field(value, name: str, within: str | None = None):
    """`value.name`: a map's key (exactly, else in any case, since Go's field names and
    the JSON keys may differ in case: `TimeNano` is `timeNano`); `within` names the field
    `value` was read from (a Go map's missing key is `<no value>`, see GO_MAPS)."""
    if isinstance(value, dict):
        if name in value:
            return value[name]
        folded = name.lower()
        found = next((item for key, item in value.items() if str(key).lower() == folded), MISSING)
        if found is MISSING:
            if within in GO_MAPS:
                return MISSING
            if name in GO_POINTERS:
                return NIL
            raise _Unplaced(f'map has no entry for key "{name}"')
        return found
    if value is None and within in GO_MAPS:  # a nil map: every key is missing
        return MISSING
    if value is NIL:  # the typed pass fails on it, and the docker CLI says what its raw JSON pass says
        raise _Unplaced(f'map has no entry for key "{within}"')
    if value is None or value is MISSING:
        raise _Unplaced(f"nil pointer evaluating interface {{}}.{name}")
    raise _Unplaced(f"can't evaluate field {name} in type {_go_type(value)}")


def _go_type(value) -> str:
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
            tuple: "[]interface {}", dict: "map[string]interface {}"}.get(type(value), "interface {}")


class _Run:
    def __init__(self, functions: dict, out: list[str]):
        self.functions, self.out = functions, out

    def nodes(self, nodes: list, dot, scope: dict) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                self.out.append(node[1])
            elif kind == "action":
                value = self.pipe(node[1], dot, scope)
                if not node[1][1]:  # a declaration prints nothing
                    self.out.append(go_string(value))
            elif kind in ("if", "with"):
                inner = dict(scope)
                value = self.pipe(node[1], dot, inner)
                if truth(value):
                    self.nodes(node[2], value if kind == "with" else dot, inner)
                else:
                    self.nodes(node[3], dot, inner)
            elif kind == "range":
                self.range(node, dot, dict(scope))
            elif kind == "break":
                raise _Break
            else:
                raise _Continue

    def range(self, node, dot, scope: dict) -> None:
        names, mode, commands = node[1]
        value = self.pipe(([], None, commands), dot, scope)
        if isinstance(value, dict):
            items = [(key, value[key]) for key in sorted(value, key=str)]  # Go ranges a map in key order
        elif isinstance(value, (list, tuple, str)) and not isinstance(value, str):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING or value is NIL:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {go_string(value)}")
        if not items:
            self.nodes(node[3], dot, scope)
            return
        for key, item in items:
            if len(names) == 1:
                scope[names[0]] = item
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, item
            try:
                self.nodes(node[2], item, scope)
            except _Break:
                break
            except _Continue:
                continue

    def pipe(self, pipe, dot, scope: dict):
        names, mode, commands = pipe
        value = MISSING
        for i, command in enumerate(commands):
            value = self.command(command, dot, scope, value if i else MISSING, piped=i > 0)
        for name in names:
            scope[name] = value
        return value

    def command(self, operands: list, dot, scope: dict, last, piped: bool):
        *operands, (_, where, text) = operands
        try:
            return self._command(operands, dot, scope, last, piped)
        except _Unplaced as exc:
            raise _placed(exc, where, text) from None

    def _command(self, operands: list, dot, scope: dict, last, piped: bool):
        head = operands[0]
        if head[0] == "ident":
            args = [self.operand(op, dot, scope) for op in operands[1:]]
            if piped:
                args.append(last)
            return self.call(head[1], args)
        if head[0] == "field" and head[1][-1] in METHODS and (len(operands) > 1 or piped):
            args = [self.operand(op, dot, scope) for op in operands[1:]] + ([last] if piped else [])
            return METHODS[head[1][-1]](self.path(dot, head[1][:-1]), *args)
        if len(operands) > 1 or piped:
            raise _Unplaced(f"can't give argument to non-function {_describe(head)}")
        return self.operand(head, dot, scope)

    def call(self, name: str, args: list):
        try:
            return self.functions[name](*args)
        except TypeError as exc:
            if "argument" in str(exc):
                raise _Unplaced(f"wrong number of args for {name}: got {len(args)}") from None
            raise _Unplaced(f"error calling {name}: {exc}") from None
        except (ValueError, IndexError, KeyError) as exc:
            raise _Unplaced(f"error calling {name}: {exc.args[0] if exc.args else exc}") from None

    def operand(self, op, dot, scope: dict):
        kind = op[0]
        if kind == "field":
            try:
                return self.path(dot, op[1])
            except _Unplaced as exc:
                raise _placed(exc, op[2], op[3]) from None
        if kind == "var":
            return self.path(scope[op[1]], op[2])
        if kind == "dot":
            return dot
        if kind == "const":
            return op[1]
        if kind == "nil":
            raise _Unplaced("nil is not a command")
        if kind == "ident":
            return self.call(op[1], [])
        return self.path(self.pipe(op[1], dot, dict(scope)), op[2])

    @staticmethod
    def path(value, names) -> object:
        within = None
        for name in names:
            value, within = field(value, name, within), name
        return value


def _label(row, name) -> str:
    """docker's `.Label "key"` on a listing's row: the value of that label, "" if none.
    The row holds its labels as docker's `k=v,k=v` (what `.Labels` prints)."""
    labels = _plain(row)
    labels = labels.get("Labels") if isinstance(labels, dict) else None
    if isinstance(labels, dict):
        return labels.get(name, "")
    found = dict(pair.partition("=")[::2] for pair in (labels or "").split(",") if pair)
    return found.get(_text(name, "Label"), "")


# The methods with arguments that docker's listing rows have (containerContext.Label and
# the like): `.Label "app"`.
METHODS = {"Label": _label}


def _describe(op) -> str:
    if op[0] == "field":
        return "." + ".".join(op[1])
    if op[0] == "var":
        return op[1] + "".join("." + n for n in op[2])
    return "."


# --- functions ---------------------------------------------------------------------------

def _plain(value):
    """A value as a function argument: a missing key is Go's nil."""
    return None if value is MISSING or value is NIL else value


def _text(value, name: str) -> str:
    value = _plain(value)
    if not isinstance(value, str):
        raise _Unplaced(f"error calling {name}: wrong type for value; expected string; got {_go_type(value)}")
    return value


def _index(item, *keys):
    item = _plain(item)
    for key in keys:
        if isinstance(item, dict):
            # a key the map lacks gives its values' zero value, as Go's index: "" for a
            # map of strings (labels, options), else nil
            item = item.get(key, "" if all(isinstance(v, str) for v in item.values()) else None)
        elif item is None and isinstance(key, str):
            item = ""  # a nil map (null labels), taken as Docker's map of strings
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise _Unplaced(f"error calling index: cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise _Unplaced(f"error calling index: index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None:
            raise _Unplaced("error calling index: index of untyped nil")
        else:
            raise _Unplaced(f"error calling index: can't index item of type {_go_type(item)}")
    return item


def _slice(item, *bounds):
    item = _plain(item)
    if not isinstance(item, (list, str)):
        raise _Unplaced(f"error calling slice: can't slice item of type {_go_type(item)}")
    if len(bounds) > 2:
        raise _Unplaced("error calling slice: too many slice indexes")
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= start <= stop <= len(item):
        raise _Unplaced(f"error calling slice: index out of range: {stop}")
    return item[start:stop]


def _length(item) -> int:
    item = _plain(item)
    if isinstance(item, str):
        return len(item.encode())  # Go's len counts bytes
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise _Unplaced(f"error calling len: len of type {_go_type(item)}")


def _sprint(*args) -> str:
    """Go's fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(args[i - 1], str) and not isinstance(arg, str):
            out.append(" ")
        out.append(_nested(arg) if not isinstance(arg, str) else arg)
    return "".join(out)


def _sprintln(*args) -> str:
    return " ".join(_nested(arg) if not isinstance(arg, str) else arg for arg in args) + "\n"


def _sprintf(fmt, *args) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %v %s %d %q %x %X %o %b %c %t %e %f
    %g %%, with flags, width and precision; Go's `%!v(MISSING)` for a missing argument."""
    fmt = _text(fmt, "printf")
    out, i, used = [], 0, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "+-# 0":
            j += 1
        while j < len(fmt) and (fmt[j].isdigit() or fmt[j] == "."):
            j += 1
        if j >= len(fmt):
            out.append("%!(NOVERB)")
            break
        spec, verb = fmt[i + 1:j], fmt[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(spec, verb, _plain(args[used])))
        used += 1
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={_nested(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(spec: str, verb: str, value) -> str:
    from .render import go_quote

    flags = "".join(c for c in spec if c in "+-# 0")
    width_prec = spec[len(flags):]
    if verb in "vs":
        text = _nested(value) if verb == "v" or not isinstance(value, str) else value
        if "." in width_prec and verb == "s":
            width, _, prec = width_prec.partition(".")
            text, width_prec = text[:int(prec or 0)], width
        return _pad(text, flags, width_prec)
    if verb == "q":
        return _pad(go_quote(value if isinstance(value, str) else _nested(value)), flags, width_prec)
    if verb == "t":
        return _pad(go_string(value) if isinstance(value, bool) else f"%!t({_go_type(value)}={_nested(value)})", flags, width_prec)
    if verb in "dxXobc" and isinstance(value, int) and not isinstance(value, bool):
        if verb == "c":
            return _pad(chr(value), flags, width_prec)
        if verb == "b":
            return ("%" + flags + width_prec + "s") % format(value, "b")
        return ("%" + flags + width_prec + verb) % value
    if verb in "xX" and isinstance(value, str):
        return _pad(value.encode().hex() if verb == "x" else value.encode().hex().upper(), flags, width_prec)
    if verb in "eEfFgG" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("%" + flags + width_prec + verb) % value
    return f"%!{verb}({_go_type(value)}={_nested(value)})"


def _pad(text: str, flags: str, width: str) -> str:
    width_n = int(width.partition(".")[0] or 0)
    return text.ljust(width_n) if "-" in flags else text.rjust(width_n)


_ORDER = {"ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
          "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}


def _compare(name: str):
    """Go's ne/lt/le/gt/ge: two numbers or two strings (ne also two of any other one type)."""
    def check(a, b):
        a, b = _plain(a), _plain(b)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        strings = isinstance(a, str) and isinstance(b, str)
        if not (numbers or strings or (name == "ne" and type(a) is type(b) and not isinstance(a, (list, dict)))):
            raise _Unplaced(f"error calling {name}: incompatible types for comparison")
        return _ORDER[name](a, b)
    return check


def _eq(first, *others) -> bool:
    if not others:
        raise _Unplaced("error calling eq: missing argument for comparison")
    first = _plain(first)
    for other in map(_plain, others):
        if isinstance(first, (list, dict)) or isinstance(other, (list, dict)):
            raise _Unplaced("error calling eq: non-comparable type")
        if (isinstance(first, bool) != isinstance(other, bool)) or (
                not (isinstance(first, (int, float)) and isinstance(other, (int, float))) and type(first) is not type(other)
                and first is not None and other is not None):
            raise _Unplaced("error calling eq: incompatible types for comparison")
        if first == other:
            return True
    return False


def _and(first, *rest):
    for value in (first, *rest):
        if not truth(value):
            return value
    return (first, *rest)[-1]


def _or(first, *rest):
    for value in (first, *rest):
        if truth(value):
            return value
    return (first, *rest)[-1]


def _title(text) -> str:
    """Go's strings.Title: the first letter of each word upper-cased, the rest kept."""
    out, prev = [], " "
    for ch in _text(text, "title"):
        out.append(ch.upper() if _separator(prev) else ch)
        prev = ch
    return "".join(out)


def _separator(ch: str) -> bool:
    if ord(ch) < 0x80:
        return not (ch.isalnum() or ch == "_")
    return not (ch.isalpha() or ch.isdigit()) and ch.isspace()


def json_value(value) -> str:
    """docker's `json`: encoding/json's compact form, HTML characters unescaped."""
    return _json.dumps(_go_order(_plain(value)), ensure_ascii=False, separators=(",", ":"))


def _go_order(value):
    """`value` with its maps' keys in the order encoding/json writes them: a Go map's
    sorted, a struct's as declared (kept as the API sent them). A struct's keys are
    exported field names (`Status`); anything else (`tier`, `80/tcp`) is a map's."""
    if isinstance(value, list):
        return [_go_order(item) for item in value]
    if not isinstance(value, dict):
        return value
    struct = all(key[:1].isupper() and key.isidentifier() for key in value)
    keys = value if struct and value else sorted(value)
    return {key: _go_order(value[key]) for key in keys}


def _join(items, sep) -> str:
    items = _plain(items)
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise _Unplaced(f"error calling join: wrong type for value; expected []string; got {_go_type(items)}")
    return _text(sep, "join").join(items)


def _split(text, sep) -> list[str]:
    text, sep = _text(text, "split"), _text(sep, "split")
    if not sep:  # Go splits into UTF-8 sequences
        return list(text)
    return text.split(sep)


def _pad_with_space(text, prefix, suffix) -> str:
    """docker's `pad`: spaces before and after, unless the text is empty."""
    text = _text(text, "pad")
    return f"{' ' * prefix}{text}{' ' * suffix}" if text else text


def _truncate(text, length) -> str:
    text = _text(text, "truncate")
    return text if len(text) < length else text[:length]


FUNCTIONS.update({
    "and": _and, "or": _or, "not": lambda value: not truth(value), "len": _length, "index": _index, "slice": _slice,
    "print": _sprint, "printf": _sprintf, "println": _sprintln,
    "eq": _eq, "ne": _compare("ne"), "lt": _compare("lt"), "le": _compare("le"), "gt": _compare("gt"),
    "ge": _compare("ge"),
    "json": json_value, "join": _join, "split": _split, "title": _title,
    "lower": lambda text: _text(text, "lower").lower(), "upper": lambda text: _text(text, "upper").upper(),
    "pad": _pad_with_space, "truncate": _truncate,
})

# A `table` header is the template run over the field → title map, with docker's
# formatting functions passing the title through unchanged.
HEADER_FUNCTIONS = {**FUNCTIONS, "json": lambda v: v, "split": lambda v, _: v, "join": lambda v, _: v,
                    "title": lambda v: v, "lower": lambda v: v, "upper": lambda v: v, "pad": lambda v, *_: v,
                    "truncate": lambda v, _: v}


# --- tabwriter ---------------------------------------------------------------------------

def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter (padchar ' ', no flags) over `text`: tab-terminated cells
    aligned in column blocks of consecutive lines, the last cell of a line left as it is."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write(line0: int, line1: int) -> None:
        for index in range(line0, line1):
            cells = lines[index]
            row = [cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(cells[:-1])]
            out.append("".join(row) + cells[-1])

    def format_block(line0: int, line1: int) -> int:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write(line0, line1)
        return line1

    format_block(0, len(lines))
    return "\n".join(out)
