"""The Dockerfile parser, substitution and .dockerignore patterns, without a daemon."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from engine.build import steps
from engine.build.dockerfile import parse
from dockerignore import Ignore
from engine.build.plan import plan
from engine.build.words import expand, expand_words
from engine.errors import BadRequest


def test_continuations_comments_and_json_forms():
    df = parse('# escape=`\nFROM busybox\nRUN echo a `\n# a comment inside\n    b\nCMD ["sh", "-c", "x"]\n')
    assert df.escape == "`"
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN", "CMD"]
    assert df.instructions[1].rest == "echo a     b" and df.instructions[1].line == 3
    assert df.instructions[2].json == ["sh", "-c", "x"]


@pytest.mark.parametrize("text, message", [
    ("FROM busybox\nFOO x\n", "Dockerfile parse error line 2: unknown instruction: FOO"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", "Dockerfile parse error line 2: unknown flag: bogus"),
    ("FROM busybox\nRUN cat <<EOF\nhi\nEOF\n", "Dockerfile parse error line 2: RUN: heredocs"),
    ("FROM busybox\nENV\n", "Dockerfile parse error line 2: ENV requires at least one argument"),
])
def test_errors_name_the_line(text, message):
    with pytest.raises(BadRequest) as caught:
        parse(text)
    assert caught.value.message.startswith(message)


def test_substitution_forms():
    env = {"A": "x", "E": ""}
    assert expand("$A ${A} ${B:-d} ${A:+alt} ${E:-e} ${E-e} '$A' \"$A\" \\$A", env) == "x x d alt e  $A x $A"
    assert expand_words('a "b c" $A', env) == ["a", "b c", "x"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_words_never_crash_unexpectedly(text):
    try:
        expand_words(text, {"A": "1"})
    except BadRequest:
        pass


@given(st.lists(st.sampled_from(["FROM busybox", "RUN echo hi", "ENV A=1", "# c", "", "LABEL a=b \\", "  x=y",
                                 "CMD [\"a\"]", "ARG X=1", "COPY a b"]), max_size=12))
def test_parse_is_total(lines):
    try:
        df = parse("\n".join(lines))
    except BadRequest as exc:
        assert exc.message.startswith("Dockerfile parse error line ")
        return
    assert all(i.keyword.isupper() for i in df.instructions)


def test_env_label_and_healthcheck_history():
    df = parse('FROM b\nENV A="hello world" B=$A\nHEALTHCHECK --interval=1m30s --retries=3 CMD ["true"]\n')
    from engine.models import ImageRuntimeConfig
    config, created = steps.apply(df.instructions[1], ImageRuntimeConfig(), {"A": "old"}, "\\", False)
    assert config.env == ["A=hello world", "B=old"] and created == "/bin/sh -c #(nop)  ENV A=hello world B=old"
    config, created = steps.apply(df.instructions[2], config, {}, "\\", False)
    assert created == '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD" "true"] "1m30s" "0s" "0s" \'\\x03\'}'


def test_stages_needed_by_the_target():
    df = parse("ARG V=1\nFROM busybox AS a\nFROM busybox AS b\nFROM b AS c\nCOPY --from=a /x /y\nFROM busybox\n")
    global_args, stages, needed = plan(df, "c")
    assert [g.rest for g in global_args] == ["V=1"] and needed == [0, 1, 2]
    assert plan(df)[2] == [3]
    with pytest.raises(BadRequest, match="failed to reach build target nope"):
        plan(df, "nope")


def test_dockerignore_rules():
    ignore = Ignore("# comment\n*.log\n**/tmp\ndocs\n!docs/keep.md\n/build/\n")
    assert ignore.excluded("a.log") and not ignore.excluded("sub/a.log")
    assert ignore.excluded("x/y/tmp/z") and ignore.excluded("tmp")
    assert ignore.excluded("docs/other.md") and not ignore.excluded("docs/keep.md")
    assert ignore.excluded("build/out") and not ignore.excluded("src/main.c")
