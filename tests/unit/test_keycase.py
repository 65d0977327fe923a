"""Go's case-insensitive JSON keys in request bodies (engine/api/keycase.py, nulls.py)."""

from __future__ import annotations

import msgspec

from engine.api import keycase, nulls
from engine.models import CreateRequest, ExecConfig


def go_decode(body: bytes, type_):
    """What the API's slow path makes of a body."""
    return msgspec.convert(nulls.without_nulls(msgspec.json.decode(body), msgspec.inspect.type_info(type_)), type_)


def test_exact_keys_keep_the_fast_path():
    body = b'{"Image": "busybox", "Cmd": ["a"], "Labels": {"app": "x"}, "HostConfig": {"Binds": []}}'
    assert not keycase.miscased(body, CreateRequest)
    assert not keycase.miscased(b'{"Image": "x", "Env": ["CMD=1"], "Cmd": ["echo", "\\"Cmd\\": 1"]}', CreateRequest)


def test_keys_in_another_case_are_their_fields():
    assert keycase.miscased(b'{"Cmd": ["x"], "detachKeys": "ctrl-p"}', ExecConfig)
    assert go_decode(b'{"Cmd": ["x"], "detachKeys": "ctrl-p"}', ExecConfig).detach_keys == "ctrl-p"
    body = b'{"image": "busybox", "CMD": ["a"], "hostConfig": {"binds": ["/a:/b"], "Tmpfs": {"/t": ""}}}'
    assert keycase.miscased(body, CreateRequest)
    decoded = go_decode(body, CreateRequest)
    assert (decoded.image, decoded.cmd, decoded.host_config.binds) == ("busybox", ["a"], ["/a:/b"])
    assert decoded.host_config.tmpfs == {"/t": ""}


def test_an_exact_key_wins_and_dict_keys_stay_as_sent():
    decoded = go_decode(b'{"Image": "busybox", "Labels": {"Image": "kept", "cmd": "kept"}}', CreateRequest)
    assert decoded.labels == {"Image": "kept", "cmd": "kept"}
