"""shell/gotemplate.py: Go's text/template as `--format` uses it. Properties of the
tokenizer and parser (any input parses or fails with TemplateError; generated templates
render what a direct evaluation gives) and docker's functions by example."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell import gotemplate
from shell.render import go_quote

NAMES = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,6}", fullmatch=True)
PLAIN = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(lambda t: "{{" not in t and not t.endswith("{"))


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_with_a_template_error(text):
    try:
        gotemplate.parse(text)
    except gotemplate.ParseError as exc:
        assert str(exc).startswith("template: :")


@given(st.lists(st.sampled_from(["{{", "}}", "{{-", "-}}", " ", ".A", "$x", ":=", "|", "(", ")", "if", "else", "end",
                                 "range", "with", '"s"', "1", "len", "printf", "index", "/*", "*/", "`", "'", ","]),
                max_size=16))
def test_template_like_token_soup_parses_or_fails_cleanly(words):
    text = "".join(words)
    try:
        template = gotemplate.parse(text)
    except gotemplate.ParseError:
        return
    try:
        template.execute({"A": [1, 2]})
    except gotemplate.TemplateError:
        pass


@given(PLAIN)
def test_text_without_actions_is_itself(text):
    assert gotemplate.render(text, {}) == text


@given(st.text(max_size=20))
def test_a_quoted_string_literal_is_its_text(text):
    assert gotemplate.render("{{" + go_quote(text) + "}}", {}) == text
    if "`" not in text:
        assert gotemplate.render("{{`" + text + "`}}", {}) == text


@given(st.lists(st.tuples(PLAIN, NAMES, st.text(max_size=10)), max_size=6))
def test_fields_between_text(parts):
    value = {name: field for _, name, field in parts}
    template = "".join(f"{text}{{{{.{name}}}}}" for text, name, _ in parts)
    assert gotemplate.render(template, value) == "".join(text + value[name] for text, name, _ in parts)


@given(st.text(max_size=10), st.text(" \t\n", max_size=3), st.text(" \t\n", max_size=3))
def test_trim_markers_remove_the_spaces_beside_them(x, left, right):
    assert gotemplate.render(f"a{left}{{{{- .X -}}}}{right}b", {"X": x}) == f"a{x}b"
    assert gotemplate.render(f"a{left}{{{{.X}}}}{right}b", {"X": x}) == f"a{left}{x}{right}b"


CONDITIONS = st.recursive(st.sampled_from(["T", "F"]),
                          lambda inner: st.tuples(st.sampled_from(["and", "or", "not"]), inner, inner), max_leaves=6)


def _source(cond) -> str:
    if isinstance(cond, str):
        return "." + cond
    op, a, b = cond
    return f"(not {_source(a)})" if op == "not" else f"({op} {_source(a)} {_source(b)})"


def _truth(cond) -> bool:
    if isinstance(cond, str):
        return cond == "T"
    op, a, b = cond
    return not _truth(a) if op == "not" else (_truth(a) and _truth(b)) if op == "and" else (_truth(a) or _truth(b))


@given(CONDITIONS, CONDITIONS)
def test_if_else_if_else_chooses_as_go(first, second):
    template = f"{{{{if {_source(first)}}}}}1{{{{else if {_source(second)}}}}}2{{{{else}}}}3{{{{end}}}}"
    expected = "1" if _truth(first) else "2" if _truth(second) else "3"
    assert gotemplate.render(template, {"T": True, "F": False}) == expected


@given(st.lists(st.text(max_size=5), max_size=5), st.text(max_size=3))
def test_range_join_and_len(items, sep):
    value = {"L": items, "S": sep}
    assert gotemplate.render("{{range $i, $e := .L}}{{$i}}={{$e}};{{else}}none{{end}}", value) == (
        "".join(f"{i}={e};" for i, e in enumerate(items)) or "none")
    assert gotemplate.render("{{join .L .S}}", value) == sep.join(items)
    assert gotemplate.render("{{len .L}}", value) == str(len(items))


@given(st.text(max_size=12))
def test_pipelines_pass_the_value_last(text):
    assert gotemplate.render('{{.X | printf "<%s>" | upper}}', {"X": text}) == f"<{text}>".upper()
    assert gotemplate.render("{{len .X}}", {"X": text}) == str(len(text.encode()))  # Go counts bytes


@pytest.mark.parametrize("template,expected", [
    ("{{json .}}", '{"A":[1,"<x>"],"B":null,"M":{"k":"v","z":1}}'),
    ("{{.A}} {{.B}}", "[1 <x>] <no value>"),
    ('{{index .M "k"}} {{index .A 1}}', "v <x>"),
    ('{{printf "%-4s|%3d|%q|%v|%x" "ab" 7 "q" .A 255}}', 'ab  |  7|"q"|[1 <x>]|ff'),
    ('{{printf "%d %s"}}', "%!d(MISSING) %!s(MISSING)"),
    ("{{println 1 2}}{{print 1 2 \"a\"}}", "1 2\n1 2a"),
    ('{{title "hello wide-world"}} {{lower "AB"}} {{upper "cd"}}', "Hello Wide-World ab CD"),
    ('{{split "a,b,,c" ","}} {{len (split "a,b" ",")}}', "[a b  c] 2"),
    ('{{pad "x" 1 2}}| {{truncate "abcdef" 3}}', " x  | abc"),
    ("{{.M}}", "map[k:v z:1]"),
    ("{{range $k, $v := .M}}{{$k}}{{$v}}{{end}}", "kvz1"),
    ("{{with .M}}{{.k}}{{end}}{{with .B}}x{{else}}y{{end}}", "vy"),
    ("{{$n := len .A}}{{$n = 5}}{{$n}}", "5"),
    ('{{range .M}}{{if eq (print .) "v"}}{{continue}}{{end}}{{.}}{{end}}', "1"),
    ("{{(index .A 1).Nope}}", None),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{eq 1 2 1}} {{ne \"a\" \"b\"}} {{lt 1 2}} {{ge 2.5 3}}", "true true true false"),
    ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
    ("{{(index .A 1) | len}}", "3"),
    ("{{slice .A 1}}", "[<x>]"),
])
def test_functions_and_actions(template, expected):
    value = {"A": [1, "<x>"], "B": None, "M": {"k": "v", "z": 1}}
    if expected is None:
        with pytest.raises(gotemplate.TemplateError, match="can't evaluate field Nope in type string"):
            gotemplate.render(template, value)
    else:
        assert gotemplate.render(template, value) == expected


@pytest.mark.parametrize("template,message", [
    ("{{.A", "template: :1: unclosed action"),
    ("{{nope}}", 'template: :1: function "nope" not defined'),
    ("{{if .A}}", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{$y}}", 'template: :1: undefined variable "$y"'),
    ("x\n{{.Nope}}", 'template: :2:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.A.B.C}}", 'template: :1:4: executing "" at <.A.B.C>: map has no entry for key "B"'),
    ("{{index .L 3}}", 'template: :1:2: executing "" at <index .L 3>: error calling index: index out of range: 3'),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
])
def test_errors_in_gos_words(template, message):
    with pytest.raises(gotemplate.TemplateError) as caught:
        gotemplate.render(template, {"A": {}, "L": [1]})
    assert str(caught.value) == message


def test_tabwriter_aligns_column_blocks_as_go():
    # a line without tabs ends a column block: the lines after it are aligned anew
    assert gotemplate.tabwrite("A\tBB\tC\nlonger-cell\tx\ty\nsingle\nz\tw").splitlines() == [
        "A             BB        C", "longer-cell   x         y", "single", "z         w"]


def test_go_maps_read_as_the_docker_cli_reads_its_typed_values():
    """A key that a Go map of Docker's types lacks (labels, an event's attributes) is
    `<no value>`, `index` of it the map's zero value ""; elsewhere a missing key stays the
    raw JSON's error, as the docker CLI's fallback reports it."""
    run = lambda fmt, value: gotemplate.compiled(fmt).execute(value)  # noqa: E731
    container = {"Config": {"Labels": {"app": "web"}}, "State": {"Running": True}}
    assert run('[{{index .Config.Labels "nope"}}] [{{index .Config.Labels "app"}}]', container) == "[] [web]"
    assert run("{{.Config.Labels.nope}} {{.Config.Labels.app}}", container) == "<no value> web"
    image = {"Config": {"Labels": None}}
    assert run('[{{index .Config.Labels "nope"}}] {{.Config.Labels.nope}}', image) == "[] <no value>"
    event = {"Actor": {"ID": "x", "Attributes": {"name": "n"}}}
    assert run("{{.Actor.Attributes.exitCode}}", event) == "<no value>"
    with pytest.raises(gotemplate.TemplateError, match='map has no entry for key "Nope"'):
        run("{{.State.Nope}}", container)
