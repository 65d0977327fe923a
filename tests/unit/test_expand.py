"""The shell's expansion of `~` and `$VAR` before a line is split, as bash does it."""

from __future__ import annotations

import os
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell import expand

ENV = {"HOME": "/home/u", "A": "x y", "Q": 'a"b\\c', "EMPTY": ""}


@pytest.mark.parametrize("line, words", [
    ("save -o ~/b.tar busybox", ["save", "-o", os.path.expanduser("~") + "/b.tar", "busybox"]),
    ("run -e H=$HOME -e B=${A}z busybox", ["run", "-e", "H=/home/u", "-e", "B=x yz", "busybox"]),
    ("echo '$HOME' \"$A\" $Q", ["echo", "$HOME", "x y", 'a"b\\c']),
    ('echo "$Q"', ["echo", 'a"b\\c']),
    ("echo \\$HOME $NOPE end", ["echo", "$HOME", "end"]),  # escaped; unset is empty (and no word)
    ("echo x$EMPTY", ["echo", "x"]),
    ("echo ~nosuchuser-berth/a a~b '~' $1 $", ["echo", "~nosuchuser-berth/a", "a~b", "~", "$1", "$"]),
    ("sh -c 'echo $A'", ["sh", "-c", "echo $A"]),
    ("sh -c \"echo $A\"", ["sh", "-c", "echo x y"]),
])
def test_expands_as_bash(line, words):
    assert expand.split(line, ENV) == words


@given(st.text(alphabet=st.characters(blacklist_characters="$~", blacklist_categories=("Cs",)), max_size=60))
def test_a_line_without_dollar_or_tilde_splits_as_shlex(line):
    try:
        expected = shlex.split(line)
    except ValueError:
        with pytest.raises(ValueError):
            expand.split(line, ENV)
        return
    assert expand.split(line, ENV) == expected


@given(st.text(max_size=40))
def test_any_value_stays_one_word(value):
    assert expand.split("cmd $V end", {"V": value}) == (["cmd", value, "end"] if value else ["cmd", "end"])
    assert expand.split('cmd "$V" end', {"V": value}) == ["cmd", value, "end"]
