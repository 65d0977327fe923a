"""The client's JSON (shell/fastjson.py) agrees with the standard json module."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell import fastjson

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@given(_values, st.booleans(), st.booleans())
def test_dumps_matches_json(value, ascii, sort_keys):
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii, sort_keys=sort_keys)
    assert fastjson.dumps(value, ascii=ascii, sort_keys=sort_keys) == expected


@given(_values, st.sampled_from(["", " ", "\n", " \r\n\t"]))
def test_loads_reads_what_json_writes(value, pad):
    text = pad + json.dumps(value, indent=2) + pad
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("bad", ["", "{", '{"a":}', "[1,]", "nul", '{"a":1} x', "[1] [2]"])
def test_loads_rejects_what_json_rejects(bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_dumps_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        fastjson.dumps({"a": {1, 2}})
