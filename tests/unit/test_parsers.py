"""Parsers and decoders at berth's edges, with hypothesis for the input space."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gounits
from engine.events import filters
from engine.errors import BadRequest
from engine.build.changes import compile_changes
from engine.images import reference
from engine.models import ImageRuntimeConfig
from engine.runtime.oci import parse_signal
from engine.api import query
from engine.api.containers import frame, frames
from engine.models import LogEntry
from tests.api import demux

component = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)?", fullmatch=True)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(component, min_size=1, max_size=3), tags)
def test_reference_round_trip(parts, tag):
    repo = "/".join(parts)
    ref = reference.parse(f"{repo}:{tag}")
    assert ref == reference.Reference(repo, tag)
    if "/" not in repo:
        assert reference.parse(f"docker.io/library/{repo}", tag) == ref


def test_reference_forms():
    assert reference.parse("busybox") == ("busybox", "latest", "")
    assert reference.parse("127.0.0.1:5000/x/y:v2") == ("127.0.0.1:5000/x/y", "v2", "")
    assert str(reference.parse("docker.io/library/busybox", "1")) == "busybox:1"
    for bad in ("Busybox", "a b", "x:bad tag", "", "x@sha256:zz"):
        with pytest.raises(BadRequest):
            reference.parse(bad)


@given(st.text())
def test_reference_never_crashes(text):
    try:
        reference.parse(text)
    except BadRequest:
        pass


def apply_changes(config: ImageRuntimeConfig, lines: list[str]) -> ImageRuntimeConfig:
    return compile_changes(lines)(config)


def test_changes():
    cfg = apply_changes(ImageRuntimeConfig(env=["A=0"], working_dir="/srv"), [
        'CMD ["a", "b"]', "ENTRYPOINT run me", "ENV A=1 B=two", "ENV C 3 4", "WORKDIR w", "USER u:g",
        "LABEL x=y", "EXPOSE 80 53/udp 90-91", "VOLUME /data /logs", "ENV P=$A:$C", "HEALTHCHECK CMD true",
        "onbuild RUN echo later"])
    assert cfg.cmd == ["a", "b"] and cfg.entrypoint == ["/bin/sh", "-c", "run me"]
    # as dockerd's commit and import: the builder's reading of each line
    assert cfg.env == ["A=1", "B=two", "C=3 4", "P=1:3 4"] and cfg.working_dir == "/srv/w" and cfg.user == "u:g"
    assert cfg.labels == {"x": "y"} and set(cfg.exposed_ports) == {"80/tcp", "53/udp", "90/tcp", "91/tcp"}
    assert set(cfg.volumes) == {"/data", "/logs"} and cfg.healthcheck.test == ["CMD-SHELL", "true"]
    assert cfg.on_build == ["RUN echo later"]
    for line, words in (("RUN rm -rf /", "run is not a valid change command"),
                        ("STOPSIGNAL SIGINT", "stopsignal is not a valid change command"),
                        ("USER", "USER requires at least one argument"), ("ENV A", "ENV must have two arguments")):
        with pytest.raises(BadRequest, match=words):
            apply_changes(ImageRuntimeConfig(), [line])


@given(st.text(alphabet=string.printable, max_size=40))
def test_changes_never_crash(line):
    try:
        apply_changes(ImageRuntimeConfig(), [line])
    except BadRequest:
        pass


def test_filters_both_shapes():
    assert query.filters('{"label":{"a=b":true,"c":false}}') == {"label": ["a=b"]}
    assert query.filters('{"name":["x","y"]}') == {"name": ["x", "y"]}
    assert query.filters("") == {}
    with pytest.raises(BadRequest):
        query.filters("{not json")
    allowed = ("label", "name")
    assert filters.check({"name": ["x"]}, allowed) == {"name": ["x"]} and filters.check(None, allowed) == {}
    with pytest.raises(BadRequest, match="invalid filter 'nope'"):
        filters.check(query.filters('{"nope":["x"]}'), allowed)
    assert filters.label_match(["a", "b=2"], {"a": "1", "b": "2"})
    assert not filters.label_match(["b=3"], {"b": "2"})


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.text(max_size=200)), max_size=20),
       st.booleans())
def test_frames_round_trip(entries, timestamps):
    data = b"".join(frame(LogEntry(text, stream, "2026-01-01T00:00:00.000000000Z"), timestamps) for stream, text in entries)
    decoded = demux(data)
    assert [s for s, _ in decoded] == [1 if s == "stdout" else 2 for s, _ in entries]
    prefix = b"2026-01-01T00:00:00.000000000Z " if timestamps else b""
    assert [p for _, p in decoded] == [prefix + t.encode() for _, t in entries]


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.text(max_size=50)), max_size=30),
       st.booleans())
def test_whole_frames_hold_the_same_bytes_in_runs(entries, timestamps):
    """A frame per run of one stream's entries (for clients that copy bytes out): the
    same payload bytes, in the same order, as a frame per entry; no two frames in a row
    of the same stream."""
    batch = [LogEntry(text, stream, "2026-01-01T00:00:00.000000000Z") for stream, text in entries]
    wanted = {"stdout", "stderr"}
    per_entry, whole = demux(frames(batch, wanted, timestamps)), demux(frames(batch, wanted, timestamps, whole=True))
    assert b"".join(p for _, p in whole) == b"".join(p for _, p in per_entry)
    for stream in (1, 2):
        assert b"".join(p for s, p in whole if s == stream) == b"".join(p for s, p in per_entry if s == stream)
    assert all(a[0] != b[0] for a, b in zip(whole, whole[1:]))


def test_signals():
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    assert parse_signal(None) == 9 and parse_signal("", 15) == 15
    for bad in ("SIGNOPE", "0", "99", "-1"):
        with pytest.raises(ValueError):
            parse_signal(bad)


@pytest.mark.parametrize("seconds,text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (3 * 3600, "3 hours"), (3 * 86400, "3 days"),
    (15 * 86400, "2 weeks"), (70 * 86400, "2 months"), (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert gounits.duration(seconds) == text


@pytest.mark.parametrize("n,text", [(512, "512B"), (1982387, "1.98MB"), (1000, "1kB"), (2.5e9, "2.5GB")])
def test_human_size(n, text):
    assert gounits.size(n) == text


_YEAR_1 = -62135596800 * 10**9  # 0001-01-01T00:00:00Z
_YEAR_10000 = 253402300800 * 10**9


@given(st.integers(_YEAR_1, _YEAR_10000 - 1), st.integers(_YEAR_1, _YEAR_10000 - 1))
def test_rfc3339_is_fixed_width_and_sorts_as_time(a, b):
    """Log filters compare these strings: every year, 1 to 9999, gives 30 characters."""
    from engine.timefmt import rfc3339

    x, y = rfc3339(a), rfc3339(b)
    assert len(x) == len(y) == 30
    assert (x < y) == (a < b)


@given(st.integers(0, 253402300799))
def test_http_date_as_the_standard_library_writes_it(seconds):
    """The Date header, without importing `email` into the daemon for it."""
    from email.utils import formatdate

    from engine.timefmt import http_date

    assert http_date(seconds) == formatdate(seconds, usegmt=True)
