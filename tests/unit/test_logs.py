"""The json-file log driver: exact bytes back, tail from the end, followers miss nothing."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
import trio

from engine.containers import logs
from engine.models import LogEntry


class Notifier:
    """Stands in for a container's change event (the writer's on_write hook)."""

    def __init__(self):
        self.event = trio.Event()
        self.done = False

    def __call__(self):
        self.event.set()
        self.event = trio.Event()


async def collect(it) -> list[LogEntry]:
    return [e async for batch in it for e in batch]


def lines(entries: list[LogEntry]) -> list[str]:
    """The lines the entries hold, however they are split into entries."""
    return "".join(e.log for e in entries).splitlines(keepends=True)


@pytest.mark.trio
async def test_round_trip_keeps_bytes_and_streams(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(logs.LogFiles(path), Notifier())
    w.write("stdout", b"one\ntwo\npart")
    w.write("stderr", "é\n".encode())
    w.write("stdout", b"ial\n")
    w.close()
    entries = await collect(logs.read(logs.LogFiles(path)))
    assert [(e.stream, e.log) for e in entries] == [
        ("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "part"), ("stderr", "é\n"), ("stdout", "ial\n")]
    assert "".join(e.log for e in entries if e.stream == "stdout") == "one\ntwo\npartial\n"


@pytest.mark.trio
async def test_without_times_the_same_text_and_streams(tmp_path):
    """`logs` without -t reads entries without their time; filters still get times."""
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(logs.LogFiles(path), Notifier())
    w.write("stdout", b"one\ntwo\n")
    w.write("stderr", b"err\n")
    w.close()
    timed = await collect(logs.read(logs.LogFiles(path)))
    plain = await collect(logs.read(logs.LogFiles(path), times=False))
    assert [(e.stream, e.log) for e in plain] == [(e.stream, e.log) for e in timed]
    assert not any(isinstance(e, LogEntry) for e in plain)
    filtered = await collect(logs.read(logs.LogFiles(path), times=False, since=timed[0].time))
    assert filtered == timed


@pytest.mark.trio
async def test_tail_reads_from_the_end(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(logs.LogFiles(path), Notifier())
    for i in range(5000):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert lines(await collect(logs.read(logs.LogFiles(path), tail=3))) == ["line 4997\n", "line 4998\n", "line 4999\n"]
    assert await collect(logs.read(logs.LogFiles(path), tail=0)) == []
    assert len(lines(await collect(logs.read(logs.LogFiles(path), tail=10**6)))) == 5000


@pytest.mark.trio
async def test_since_until(tmp_path):
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(logs.LogFiles(path), Notifier())
    w.write("stdout", b"a\n")
    entries = await collect(logs.read(logs.LogFiles(path)))
    stamp = entries[0].time
    assert await collect(logs.read(logs.LogFiles(path), since=stamp)) == entries
    assert await collect(logs.read(logs.LogFiles(path), until="2000-01-01T00:00:00.000000000Z")) == []
    w.close()


async def write_while_following(files: logs.LogFiles, count: int, yield_every: int) -> list[str]:
    """Write `count` numbered lines while a follower reads; return what it saw."""
    note = Notifier()
    w = logs.LogWriter(files, note)
    got: list[str] = []

    async def follow():
        async for batch in logs.read(files, follow=True, grown=lambda: note.event, done=lambda: note.done):
            got.extend(e.log for e in batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        for i in range(count):
            w.write("stdout", f"{i}\n".encode())
            if i % yield_every == 0:
                await trio.sleep(0)
        note.done = True
        note()
    w.close()
    return got


@pytest.mark.trio
async def test_follower_sees_every_line_once(tmp_path):
    got = await write_while_following(logs.LogFiles(tmp_path / "c-json.log"), 200, 17)
    assert got == [f"{i}\n" for i in range(200)]


@pytest.mark.trio
async def test_long_lines_are_split_at_16k_and_rejoin(tmp_path):
    files = logs.LogFiles(tmp_path / "c-json.log")
    w = logs.LogWriter(files, Notifier())
    line = ("x" * 40_000 + "\n").encode()
    w.write("stdout", line)
    w.close()
    entries = await collect(logs.read(files))
    assert [len(e.log) for e in entries] == [16384, 16384, 40_001 - 2 * 16384]
    assert "".join(e.log for e in entries).encode() == line


@pytest.mark.trio
async def test_rotation_keeps_max_file_and_reads_across_files(tmp_path):
    files = logs.LogFiles(tmp_path / "c-json.log", max_size=2000, max_file=3)
    w = logs.LogWriter(files, Notifier())
    for i in range(100):
        w.write("stdout", f"line {i:03d}\n".encode())
    w.close()
    assert [p.name for p in files.oldest_first()] == ["c-json.log.2", "c-json.log.1", "c-json.log"]
    assert not files.rotated(3).exists()
    assert all(p.stat().st_size <= 2000 for p in files.oldest_first())
    kept = lines(await collect(logs.read(files)))
    assert kept == [f"line {i:03d}\n" for i in range(100 - len(kept), 100)] and len(kept) > 20
    assert lines(await collect(logs.read(files, tail=30))) == kept[-30:]


@pytest.mark.trio
async def test_one_big_write_still_rotates(tmp_path):
    files = logs.LogFiles(tmp_path / "c-json.log", max_size=1000, max_file=2)
    w = logs.LogWriter(files, Notifier())
    w.write("stdout", b"".join(b"line %03d\n" % i for i in range(200)))
    w.close()
    assert [p.stat().st_size <= 1000 for p in files.oldest_first()] == [True, True]
    assert lines(await collect(logs.read(files)))[-1] == "line 199\n"


@pytest.mark.trio
async def test_follower_misses_nothing_across_rotation(tmp_path):
    files = logs.LogFiles(tmp_path / "c-json.log", max_size=4000, max_file=50)
    got = await write_while_following(files, 2000, 7)
    assert len(list(tmp_path.iterdir())) > 10  # it really rotated, many times
    assert got == [f"{i}\n" for i in range(2000)]


@pytest.mark.trio
async def test_two_writer_threads_rotating_under_a_follower_lose_nothing(tmp_path):
    """As in the daemon: stdout and stderr are written from threads of their own, which
    rotate while a follower in the event loop lists, opens and reads the files."""
    files = logs.LogFiles(tmp_path / "c-json.log", max_size=8000, max_file=200)
    token = trio.lowlevel.current_trio_token()
    note = Notifier()
    w = logs.LogWriter(files, lambda: token.run_sync_soon(note))
    got: list[tuple[str, str]] = []

    async def follow():
        async for batch in logs.read(files, follow=True, grown=lambda: note.event, done=lambda: note.done):
            got.extend((e.stream, e.log) for e in batch)

    def produce(stream: str) -> None:
        for i in range(1500):
            w.write(stream, f"{stream} {i}\n".encode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow)
        async with trio.open_nursery() as writers:
            for stream in ("stdout", "stderr"):
                writers.start_soon(trio.to_thread.run_sync, produce, stream)
        note.done = True
        note()
    w.close()
    assert len(list(tmp_path.iterdir())) > 20  # it rotated, many times
    for stream in ("stdout", "stderr"):
        assert [log for s, log in got if s == stream] == [f"{stream} {i}\n" for i in range(1500)]


def test_log_options():
    assert logs.log_options({"max-size": "10m", "max-file": "3"}) == (10 * 1024 * 1024, 3)
    assert logs.log_options({}) == (0, 1)
    assert logs.log_options({"max-file": "100"}) == (0, 100)  # no effect without max-size, as in dockerd
    for bad in ({"max-size": "ten"}, {"max-file": "0", "max-size": "1k"}, {"colour": "x"}):
        with pytest.raises(Exception, match="max|unknown"):
            logs.log_options(bad)


_CHUNKS = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300).map(str.encode),
    st.text(alphabet="ab \n", max_size=300).map(str.encode),  # plain: the replace-only path
    st.binary(max_size=300),  # invalid UTF-8 and control bytes too
)


class _WithAttrs(msgspec.Struct):  # a json-file entry as dockerd writes it with attributes
    log: str
    stream: str
    attrs: dict[str, str]
    time: str


@given(_CHUNKS, st.sampled_from(["stdout", "stderr"]), st.booleans())
def test_bulk_encoding_matches_entry_by_entry(data, stream, with_attrs):
    attrs = {"app": "web", "tag": 'a"b'} if with_attrs else {}
    fragment = b',"attrs":' + msgspec.json.encode(attrs) if attrs else b""
    bulk = logs._encode_bulk(data, logs._tail(stream, "T", fragment))
    kind = _WithAttrs if attrs else LogEntry
    entries = [msgspec.json.decode(line, type=kind) for line in bulk.splitlines()]
    assert "".join(e.log for e in entries) == data.decode(errors="replace")
    assert all(e.stream == stream and e.time == "T" and getattr(e, "attrs", {}) == attrs for e in entries)
    assert all(e.log.endswith("\n") and "\n" not in e.log[:-1] for e in entries[:-1])
    assert bulk == b"".join(msgspec.json.encode(e) + b"\n" for e in entries)  # byte for byte as msgspec writes


def test_bulk_encoding_leaves_long_lines_to_the_splitter():
    tail = logs._tail("stdout", "T", b"")
    assert logs._encode_bulk(b"x" * logs.MAX_LINE + b"\n", tail) is None
    assert logs._encode_bulk(b"x\n" * logs.MAX_LINE, tail) is not None


def test_log_attrs_as_dockerd_gives_them():
    config = {"labels": "app,missing", "labels-regex": "^com\\.", "env": "STAGE", "env-regex": "^X_",
              "tag": "{{.Name}}/{{.ID}}"}
    attrs = logs.log_attrs(config, labels={"app": "web", "com.x": "1", "other": "no"},
                           env=["STAGE=prod", "X_A=1", "PATH=/bin"], names={"Name": "c1", "ID": "abc"})
    assert attrs == {"app": "web", "com.x": "1", "STAGE": "prod", "X_A": "1", "tag": "c1/abc"}
    assert logs.details_prefix(attrs) == "STAGE=prod,X_A=1,app=web,com.x=1,tag=c1%2Fabc "  # query-escaped, as dockerd
    assert logs.details_prefix({}) == " "
    assert logs.log_options({"compress": "false", **config}) == (0, 1)
    for bad in ({"compress": "true"}, {"tag": "{{.Bogus}}"}, {"env-regex": "("}):
        with pytest.raises(Exception, match="compress|tag|env-regex"):
            logs.log_options(bad)


@given(st.lists(st.integers(0, 3 * logs.MAX_LINE), max_size=6), st.booleans())
def test_long_line_check(lengths, final_newline):
    data = b"\n".join(b"x" * n for n in lengths) + (b"\n" if final_newline else b"")
    assert logs._has_long_line(data) == any(n >= logs.MAX_LINE for n in lengths)



@pytest.mark.trio
async def test_lines_cut_by_reads_stay_whole(tmp_path):
    """A read that ends inside a line (or inside a character) does not make two entries of
    it: the rest waits for the next read; a quiet stream's unfinished line is flushed as a
    partial entry, up to its last whole character; the stream's end writes everything."""
    path = tmp_path / "c-json.log"
    w = logs.LogWriter(logs.LogFiles(path), Notifier())
    out = logs.Lines(w, "stdout")
    text = ("é" * 33 + "\n").encode() * 3
    for at in range(0, len(text), 7):  # 7-byte reads: every line and most characters cut
        out.write(text[at:at + 7])
    out.write(b"prompt: \xc3")
    out.flush()  # quiet: the prompt goes, the half character waits
    out.write(b"\xa9\n")
    long = b"x" * (logs.MAX_LINE * 2 + 10)
    out.write(long[:100])
    out.write(long[100:])
    out.flush(end=True)
    w.close()
    entries = await collect(logs.read(logs.LogFiles(path)))
    assert [e.log for e in entries] == ["é" * 33 + "\n"] * 3 + ["prompt: ", "é\n"] + \
        ["x" * logs.MAX_LINE] * 2 + ["x" * 10]


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=30), st.booleans())
def test_lines_keep_every_byte_in_order(chunks, terminal):
    """Whatever the reads, the entries give back the valid UTF-8 stream exactly."""
    import tempfile
    from pathlib import Path

    data = b"".join(chunks).decode("utf-8", "replace").encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c-json.log"
        w = logs.LogWriter(logs.LogFiles(path), lambda: None)
        out = logs.Lines(w, "stdout", whole_lines=not terminal)
        at = 0
        for chunk in chunks:
            out.write(data[at:at + len(chunk)])
            at += len(chunk)
        out.write(data[at:])
        out.flush(end=True)
        w.close()
        logged = "".join(msgspec.json.decode(line)["log"] for line in path.read_bytes().splitlines())
    assert logged == data.decode()
