"""The client's rendering and parsing, without a daemon: docker's tables, durations, sizes,
quoting, PORTS and event lines (checked against the docker CLI's recorded output), option
values, and the HTTP/multiplexed stream decoding under arbitrary splits."""

from __future__ import annotations

import io
import json
import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shell import gotemplate, options, render
from shell.cli import split_host
from shell.grammar import UsageError
from shell.transport import Demuxer, Response

# --- durations and sizes (go-units) ------------------------------------------------------

HOUR, DAY = 3600, 86400


@pytest.mark.parametrize("seconds,text", [
    (-5, "Less than a second"), (0.99, "Less than a second"), (1, "1 second"), (1.9, "1 second"),
    (59, "59 seconds"), (60, "About a minute"), (119, "About a minute"), (120, "2 minutes"),
    (HOUR - 1, "59 minutes"), (HOUR, "About an hour"), (1.49 * HOUR, "About an hour"),
    (1.5 * HOUR, "2 hours"),  # Go rounds hours half up
    (47.4 * HOUR, "47 hours"), (47.5 * HOUR, "2 days"), (13 * DAY, "13 days"), (14 * DAY, "2 weeks"),
    (59 * DAY, "8 weeks"), (60 * DAY, "2 months"), (729 * DAY, "24 months"), (730 * DAY, "2 years"),
])
def test_duration_follows_go_units(seconds, text):
    assert render.duration(seconds) == text


def test_since():
    assert render.since(1000, now=1054) == "54 seconds ago"


@pytest.mark.parametrize("n,text", [
    (0, "0B"), (47, "47B"), (999, "999B"), (1000, "1kB"), (1982387, "1.98MB"), (1982340, "1.98MB"),
    (1986000, "1.99MB"), (123456789012, "123GB"),
])
def test_size_three_digits_like_docker_images(n, text):
    assert render.size(n) == text


def test_size_precision_and_binary_units():
    assert render.size(1982387, digits=4) == "1.982MB"
    assert render.binary_size(25276039168) == "23.54GiB"
    assert render.binary_size(512) == "512B"
    assert render.binary_size(1536) == "1.5KiB"


# --- tables, recorded from the docker CLI ------------------------------------------------


def test_ps_table_matches_docker():
    headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    row = ["47f66d22bc0b", "busybox:local", render.go_quote(render.truncate("sh -c 'i=0; while true; do", 20)),
           "54 seconds ago", "Up 53 seconds", "", "trace-d1"]
    assert render.table(headers, [row]).splitlines() == [  # raw/cli/ps.log
        "CONTAINER ID   IMAGE           COMMAND                  CREATED          STATUS          PORTS     NAMES",
        '47f66d22bc0b   busybox:local   "sh -c \'i=0; while t…"   54 seconds ago   Up 53 seconds             trace-d1',
    ]


def test_narrow_columns_are_ten_wide():
    headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = [["trace-committed", "v1", "06830af57390", "7 seconds ago", "1.98MB"],
            ["busybox", "local", "a38bf0134ee8", "22 minutes ago", "1.98MB"]]
    assert render.table(headers, rows).splitlines() == [  # raw/cli/images.log
        "REPOSITORY        TAG       IMAGE ID       CREATED          SIZE",
        "trace-committed   v1        06830af57390   7 seconds ago    1.98MB",
        "busybox           local     a38bf0134ee8   22 minutes ago   1.98MB",
    ]


def test_history_table_matches_docker():
    created_by = "sh -c i=0; while true; do echo line$i; i=$((i+1)); sleep 1; done"
    rows = [["06830af57390", "9 seconds ago", render.truncate(created_by, 45), render.size(47), "trace commit"],
            ["a38bf0134ee8", "22 minutes ago", "", render.size(1982340), "Imported from -"]]
    assert render.table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows).splitlines() == [
        "IMAGE          CREATED          CREATED BY                                      SIZE      COMMENT",
        "06830af57390   9 seconds ago    sh -c i=0; while true; do echo line$i; i=$((…   47B       trace commit",
        "a38bf0134ee8   22 minutes ago                                                   1.98MB    Imported from -",
    ]


def test_empty_table_is_the_header():
    assert render.table(["CONTAINER ID", "NAMES"], []) == "CONTAINER ID   NAMES"


# --- quoting, truncation, ports -----------------------------------------------------------


@pytest.mark.parametrize("text,quoted", [
    ("echo hi", '"echo hi"'), ('sh -c "x"', r'"sh -c \"x\""'), ("a\\b", r'"a\\b"'), ("a\nb\tc", r'"a\nb\tc"'),
    ("\x01\x7f", r'"\x01\x7f"'), ("wait…", '"wait…"'), ("\u00a0", r'"\u00a0"'), ("é", '"é"'),
])
def test_go_quote(text, quoted):
    assert render.go_quote(text) == quoted


def test_truncate_counts_the_ellipsis():
    assert render.truncate("x" * 20, 20) == "x" * 20
    assert render.truncate("x" * 21, 20) == "x" * 19 + "…"


def test_ports_as_docker_shows_them():
    recorded = [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
                {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 18081, "Type": "udp"},
                {"IP": "::", "PrivatePort": 81, "PublicPort": 18081, "Type": "udp"},
                {"PrivatePort": 90, "Type": "tcp"}]
    assert render.ports(recorded) == "90/tcp, 127.0.0.1:18080->80/tcp, 0.0.0.0:18081->81/udp, [::]:18081->81/udp"
    exposed = [{"PrivatePort": p, "Type": "tcp"} for p in (82, 80, 81, 90)]
    assert render.ports(exposed) == "80-82/tcp, 90/tcp"
    same = [{"IP": "0.0.0.0", "PrivatePort": p, "PublicPort": p, "Type": "tcp"} for p in (8080, 8081)]
    assert render.ports(same) == "0.0.0.0:8080-8081->8080-8081/tcp"
    assert render.ports(None) == render.ports([]) == ""


# --- events and times -------------------------------------------------------------------


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_event_line_matches_docker(utc):
    cid = "a8e678034d95f1aeaaec8c24bf0978e729f45b42d2bb024a075e61b00a71f6b2"
    event = {"status": "die", "id": cid, "Type": "container", "Action": "die", "time": 1795350599,
             "timeNano": 1795350599621166002,
             "Actor": {"ID": cid, "Attributes": {"name": "trace-ev1", "image": "busybox:local", "exitCode": "0"}}}
    assert render.event_line(event) == (  # raw/cli/events_since.log
        f"2026-11-22T12:29:59.621166002Z container die {cid} (exitCode=0, image=busybox:local, name=trace-ev1)")
    bare = {"Type": "network", "Action": "prune", "Actor": {"ID": "", "Attributes": {}}, "time": 1795350599, "timeNano": 0}
    assert render.event_line(bare) == "2026-11-22T12:29:59.000000000Z network prune "


def test_local_time_carries_the_offset(monkeypatch):
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    try:
        assert render.local_time(1795350599000000001) == "2026-11-22T07:29:59.000000001-05:00"
        assert render.go_time(1795350599) == "2026-11-22 07:29:59 -0500 EST"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- templates --------------------------------------------------------------------------


def test_templates_as_docker_runs_them():
    value = {"State": {"Status": "running", "Running": True}, "Config": {"Cmd": ["sh", "-c", "x"]}, "Name": "/n"}
    # inspect's templates take `\\t` as it is; listings read it as a tab (docker's formatter)
    assert render.template("{{.State.Status}}\\t{{ .Name }}", value) == "running\\t/n"
    assert render.listing("{{.State.Status}}\\t{{ .Name }}", [value], {}) == "running\t/n\n"
    assert render.template("{{.State.Running}} {{json .Config.Cmd}}", value) == 'true ["sh","-c","x"]'
    with pytest.raises(gotemplate.TemplateError, match='at <.Missing.Field>: map has no entry for key "Missing"'):
        render.template("{{.Missing.Field}}|", value)
    assert json.loads(render.template("{{json .}}", value)) == value


def test_table_templates_have_headers_and_tabwriter_columns():
    rows = [{"ID": "abc", "Names": "a-very-long-name"}, {"ID": "d", "Names": "b"}]
    assert render.listing("table {{.ID}}\\t{{.Names}}", rows, {"ID": "CONTAINER ID", "Names": "NAMES"}) == (
        "CONTAINER ID   NAMES\nabc            a-very-long-name\nd              b\n")
    assert render.listing("table {{upper .Names}}", [], {"Names": "NAMES"}) == "NAMES\n"


# --- option values ----------------------------------------------------------------------

_UNITS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


@given(st.integers(0, 10**6), st.sampled_from(sorted(_UNITS)), st.booleans(), st.booleans())
def test_memory_sizes_in_every_spelling(n, unit, upper, b_suffix):
    text = f"{n}{unit}{'b' if b_suffix and unit not in ('', 'b') else ''}"
    assert options.ram_bytes(text.upper() if upper else text) == n * 1024 ** _UNITS[unit]


@given(st.text(max_size=12))
def test_memory_size_errors_are_usage_errors(text):
    try:
        value = options.ram_bytes(text)
    except UsageError:
        return
    assert isinstance(value, int) and value >= 0


def test_filters_and_timestamps():
    assert json.loads(options.filters(["label=app=x", "status=exited", "status=created"])) == \
        {"label": {"app=x": True}, "status": {"exited": True, "created": True}}
    assert options.filters([]) is None
    with pytest.raises(UsageError, match="bad format of filter"):
        options.filters(["dangling"])
    assert options.timestamp("90s", now=1000.5) == "910.500000000"
    assert options.timestamp("1795350599.5") == "1795350599.5"
    assert options.timestamp("2026-11-22T12:29:59.5Z") == "1795350599.500000000"
    with pytest.raises(UsageError, match="invalid time"):
        options.timestamp("yesterday")


@pytest.mark.parametrize("argv,expected", [
    (["-H", "unix:///s", "ps"], ("unix:///s", ["ps"])), (["--host", "unix:///s"], ("unix:///s", [])),
    (["--host=unix:///s", "ps", "-a"], ("unix:///s", ["ps", "-a"])), (["ps", "-H"], (None, ["ps", "-H"])),
])
def test_global_host_option(argv, expected):
    assert split_host(argv) == expected


# --- streams: chunked HTTP carrying multiplexed frames, split anywhere -------------------


class _PiecesSocket:
    """A socket whose recv() and recv_into() hand out pre-cut pieces (at most what was
    asked for, the rest kept for the next call), then EOF."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces

    def recv(self, n: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > n:
            self.pieces.insert(0, piece[n:])
        return piece[:n]

    def recv_into(self, buffer) -> int:
        piece = self.recv(len(buffer))
        buffer[:len(piece)] = piece
        return len(piece)

    def shutdown(self, how: int) -> None:
        self.pieces = []

    def close(self) -> None:
        self.pieces = []


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@given(frames=st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=200)), max_size=12),
       chunk_sizes=st.lists(st.integers(1, 97), min_size=1, max_size=8),
       cuts=st.lists(st.integers(0, 10**6), max_size=30))
def test_chunked_multiplexed_stream_survives_any_split(frames, chunk_sizes, cuts):
    payload = b"".join(struct.pack(">BxxxL", s, len(p)) + p for s, p in frames)
    body, pos, i = b"", 0, 0
    while pos < len(payload):  # re-chunk the frames at sizes unrelated to frame boundaries
        piece = payload[pos:pos + chunk_sizes[i % len(chunk_sizes)]]
        body += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos, i = pos + len(piece), i + 1
    body += b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
    resp = Response(_PiecesSocket(_cut(body, cuts)), head, b"")
    out, err = io.BytesIO(), io.BytesIO()
    demux = Demuxer(out, err)
    while data := resp.read1():
        demux.feed(data)
    assert out.getvalue() == b"".join(p for s, p in frames if s == 1)
    assert err.getvalue() == b"".join(p for s, p in frames if s in (2, 3))


@given(lines=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=10),
       cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_readline_over_content_length_body(lines, cuts):
    body = b"".join(line + b"\n" for line in lines)
    resp = Response(_PiecesSocket(_cut(body, cuts)), b"HTTP/1.1 200 OK\r\nContent-Length: %d" % len(body), b"")
    got = []
    while line := resp.readline():
        got.append(line)
    assert got == [line + b"\n" for line in lines]


def test_upgraded_response_is_raw_until_close():
    resp = Response(_PiecesSocket([b"\x01\x00\x00\x00\x00\x00\x00\x02hi"]),
                    b"HTTP/1.1 101 UPGRADED\r\nContent-Length: 0\r\nUpgrade: tcp", b"early")
    assert resp.read() == b"early\x01\x00\x00\x00\x00\x00\x00\x02hi"
