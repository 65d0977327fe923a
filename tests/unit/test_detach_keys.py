"""Detach keys: parsing, and a matcher that passes everything but a completed sequence."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.api import detach_keys
from engine.errors import BadRequest


def test_parse():
    assert detach_keys.parse("") == b"\x10\x11"
    assert detach_keys.parse("ctrl-a,x,ctrl-@,ctrl-_") == b"\x01x\x00\x1f"
    for bad in ("ctrl-", "ctrl-1", "abc", "ctrl-p,,"):
        with pytest.raises(BadRequest, match="Invalid detach keys"):
            detach_keys.parse(bad)


@given(st.lists(st.binary(max_size=6).map(lambda b: b.replace(b"\x10\x11", b"")), max_size=8),
       st.sampled_from([b"\x10\x11", b"ab", b"\x10"]))
def test_matcher_passes_everything_until_the_sequence(chunks, keys):
    stream = b"".join(chunks)
    if keys in stream:
        return
    matcher = detach_keys.Matcher(keys)
    out = b""
    for chunk in chunks:
        passed, detached = matcher.feed(chunk)
        assert not detached
        out += passed
    held = len(stream) - len(out)
    assert stream.startswith(out) and keys.startswith(stream[len(out):]) and held < len(keys)
    passed, detached = matcher.feed(keys[held:])
    assert detached and passed == b""


def test_matcher_split_across_reads():
    matcher = detach_keys.Matcher(b"\x10\x11")
    assert matcher.feed(b"ls\x10") == (b"ls", False)
    assert matcher.feed(b"\x10") == (b"\x10", False)  # a broken start is passed on
    assert matcher.feed(b"\x11rest") == (b"", True)
