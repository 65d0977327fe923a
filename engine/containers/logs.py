"""The json-file log driver: one JSON object per line, as Docker writes it.

`{"log":"hi\\n","stream":"stdout","time":"2026-11-22T12:28:23.139675649Z"}`. Output is
split at newlines, and lines longer than 16 KiB into 16 KiB pieces (Docker's partial
messages); a chunk that ends without a newline is written as a partial entry too, so the
concatenated `log` fields give back the output as text (which is what `logs` prints;
`attach` gets the bytes themselves, taps.py). Times are fixed-width RFC 3339, so they compare as strings.

Rotation (`--log-opt max-size=10m --log-opt max-file=3`): when the current file would
pass max-size it becomes `<id>-json.log.1`, older ones shift up, the oldest beyond
max-file goes. Readers walk the files oldest first; `--tail` reads backwards from the end.

Writers run in the threads that pump a container's pipes (pump.py), readers in
the event loop; a lock keeps a rotation from falling between a reader's listing the files
and opening them. Followers (`logs -f`) hold a file open and read it by offset,
sleeping on the container's change event (set and replaced after a write when a follower
is waiting, see Container.output_logged, and after every state change): taking the event
before reading and waiting on it after means no write is missed and none is seen twice.
At the end of a file that was rotated away, a follower moves on to the next newer file,
so rotation loses nothing.

A write that fails (a full disk) loses nothing and kills nothing: what it wrote in part
is cut off (the file ends with a whole entry), and the pump that was writing tries again,
after 50 ms doubling to a second, until it can. Meanwhile it reads no more, so the
output waits in the container's pipe (which the keeper holds open): a container that
fills it blocks in its next write, as it would behind a slow reader, and goes on when
the disk has room again. The daemon's log says why once, and the container's events
`log_blocked` (with the error) and `log_resumed` mark the stretch.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple
from urllib.parse import quote_plus

import msgspec
import trio

from ..errors import BadRequest
from ..fs.store import append_whole
from ..models import LogEntry, LogText
from ..timefmt import rfc3339
from .taps import Taps

log = logging.getLogger("berth.logs")

_CHUNK = 1 << 20
MAX_LINE = 16 * 1024
_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LogEntry)
_text_decoder = msgspec.json.Decoder(LogText)


class LogFiles(NamedTuple):
    """Where a container's log lives, how it rotates (max_size 0: never), and the extra
    attributes each entry carries (`attrs`, from the labels, env and tag log options)."""

    path: Path
    max_size: int = 0
    max_file: int = 1
    attrs: dict[str, str] | None = None

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def oldest_first(self) -> list[Path]:
        rotated = [self.rotated(n) for n in range(self.max_file - 1, 0, -1)]
        return [p for p in rotated if p.exists()] + [self.path]


# What a `tag` template may name, as dockerd's log tag templates (loggerutils.ParseLogTag).
_TAG_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_TAG_FIELDS = ("ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName", "DaemonName")


def log_options(config: dict[str, str] | None) -> tuple[int, int]:
    """`--log-opt` for json-file → (max-size in bytes, max-file); raises BadRequest on a
    bad value, an option json-file has not got, and `compress=true` (berth keeps rotated
    files as they are). labels, labels-regex, env, env-regex and tag are `log_attrs`'."""
    config = config or {}
    unknown = set(config) - {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
    if unknown:
        raise BadRequest(f"unknown log opt '{sorted(unknown)[0]}' for json-file log driver")
    if config.get("compress", "false").lower() not in ("false", "0", ""):
        raise BadRequest("compress: berth keeps rotated json-file logs uncompressed; leave compress out or false")
    for key in ("labels-regex", "env-regex"):
        try:
            re.compile(config.get(key, ""))
        except re.error as exc:
            raise BadRequest(f"invalid {key} {config[key]!r}: {exc}") from None
    if unknown_fields := [f for f in _TAG_FIELD.findall(config.get("tag", "")) if f not in _TAG_FIELDS]:
        raise BadRequest(f"tag: unknown template field .{unknown_fields[0]} (known: {', '.join(_TAG_FIELDS)})")
    max_size = 0
    if config.get("max-size"):
        found = _SIZE.match(config["max-size"].strip())
        if not found or int(found.group(1)) <= 0:
            raise BadRequest(f"invalid max-size: {config['max-size']!r}")
        max_size = int(found.group(1)) * 1024 ** " kmg".index(found.group(2).lower() or " ")
    max_file = 1
    if config.get("max-file"):
        if not config["max-file"].isdigit() or int(config["max-file"]) < 1:
            raise BadRequest(f"invalid max-file: {config['max-file']!r}: must be a number greater than 0")
        max_file = int(config["max-file"])  # without max-size it has no effect, as in dockerd
    return max_size, max_file


def log_attrs(config: dict[str, str] | None, *, labels: dict[str, str], env: list[str], names: dict[str, str]) -> dict[str, str]:
    """The attributes each log entry carries, as dockerd's json-file gives them: the
    container's labels named by `labels` (comma-separated) or matching `labels-regex`, its
    variables named by `env` or matching `env-regex`, and `tag` (a template over `names`:
    ID, FullID, Name, ImageID, ImageFullID, ImageName, DaemonName) when given."""
    config = config or {}
    attrs: dict[str, str] = {}
    wanted = {k for k in config.get("labels", "").split(",") if k}
    pattern = config.get("labels-regex")
    for key, value in labels.items():
        if key in wanted or (pattern and re.search(pattern, key)):
            attrs[key] = value
    variables = dict(e.partition("=")[::2] for e in env)
    wanted = {k for k in config.get("env", "").split(",") if k}
    pattern = config.get("env-regex")
    for key, value in variables.items():
        if key in wanted or (pattern and re.search(pattern, key)):
            attrs[key] = value
    if config.get("tag"):
        attrs["tag"] = _TAG_FIELD.sub(lambda m: names.get(m.group(1), ""), config["tag"])
    return attrs


def details_prefix(attrs: dict[str, str]) -> str:
    """What `logs --details` puts before each line: the attributes as `k=v` pairs joined by
    commas, keys sorted, each side query-escaped (a `,` or `=` of a value cannot pass for
    a separator), and a space (only the space without any), as dockerd."""
    return ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(attrs.items())) + " "


def _tail(stream: str, stamp: str, attrs: bytes) -> bytes:
    """What follows an entry's log string: its stream, attributes and time, and the newline."""
    return b',"stream":"%s"%s,"time":"%s"}\n' % (stream.encode(), attrs, stamp.encode())


# Bytes a JSON string must escape, apart from the newline the fast path handles itself.
_NEEDS_ESCAPE = bytes([*range(0x0A), *range(0x0B, 0x20), ord('"'), ord("\\")])
_PLAIN = bytes(b for b in range(256) if b not in _NEEDS_ESCAPE)


def _encode_bulk(data: bytes, tail: bytes) -> bytes | bytearray | None:
    """All entries of a chunk with no Python work per line (each ending with `tail`), or
    None when a line reaches 16 KiB and the chunk must be split entry by entry."""
    if not data:
        return b""
    if _has_long_line(data):
        return None
    end = b'"' + tail
    if data.translate(None, _PLAIN) or not (data.isascii() or _valid_utf8(data)):
        return _encode_escaped(data.decode("utf-8", errors="replace"), end[1:])
    # The usual case: the only byte needing an escape is the newline, so each newline
    # becomes `\\n` + the entry's end + the next entry's head, in one C-level replace.
    # One newline put first gives the first entry its head, and the replace's result is
    # trimmed in place: a second buffer of that size (a join) cost 5x the replace itself,
    # as two live blocks of ~180 KiB make malloc give pages back and fault them in again.
    head = b'{"log":"'
    sep = b"\\n" + end + head
    lines = bytearray(b"\n")
    lines += data
    out = lines.replace(b"\n", sep)
    if data.endswith(b"\n"):
        del out[-len(head):]
    else:
        out += end
    del out[:len(sep) - len(head)]  # bytearray drops a prefix without moving the rest
    return out


def _has_long_line(data: bytes) -> bool:
    """Whether a line of `data` reaches MAX_LINE bytes. Such a line covers a whole aligned
    window of MAX_LINE/2 bytes, so only a window without a newline calls for a closer look
    (a few C-level searches per MiB instead of splitting every line)."""
    half = MAX_LINE // 2
    for start in range(0, len(data) - half + 1, half):
        if data.find(b"\n", start, start + half) < 0:
            return max(map(len, data.split(b"\n"))) >= MAX_LINE
    return False


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _encode_escaped(text: str, tail: bytes) -> bytes:
    """Entries whose text needs JSON escapes: every line (with its newline) is encoded by
    one `encode_lines` call; encoded strings hold no raw newline, so splitting its output
    on b"\\n" gives them back, and one join puts each between the head and `tail` (what
    follows the string: `,"stream":…,"time":…}` and the newline)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    encoded = _encoder.encode_lines(lines).split(b"\n")[:-1]
    head = b'{"log":'
    return head + (tail + head).join(encoded) + tail if encoded else b""


# Held while a writer rotates and while a reader lists and opens the files, so that names
# cannot shift between the two (writers run in the pump threads, readers in the event loop;
# a rotation is a few renames, so one lock for every container costs nothing).
_ROTATION = threading.Lock()


RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between tries of a write that failed


class LogWriter:
    """Appends a container's output to its json-file log, rotating by size. Safe to call
    from several threads (a container's stdout and stderr pumps); `on_write` is called
    after every write, in the writing thread."""

    def __init__(self, files: LogFiles, on_write: Callable[[], None],
                 on_blocked: Callable[[str], None] = lambda reason: None, on_resumed: Callable[[], None] = lambda: None):
        self.files = files
        self._on_write = on_write
        self._on_blocked, self._on_resumed = on_blocked, on_resumed  # in the writing thread
        self._lock = threading.Lock()
        self._closed = False
        self.lost_bytes = 0  # output given up on: only what a closing writer still held
        self._failing: OSError | None = None
        self._attrs = b',"attrs":' + _encoder.encode(files.attrs) if files.attrs else b""
        self._fd = -1
        try:
            self._open()
        except OSError:
            pass  # the first write tries again

    def _open(self) -> None:
        self._fd = os.open(self.files.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Record `data` from `stream` ("stdout" or "stderr") and wake followers; while it
        cannot be written, try again and again (see the module's doc)."""
        stamp = rfc3339(time.time_ns())
        tail = _tail(stream, stamp, self._attrs)
        out = _encode_bulk(data, tail)
        wait = RETRY_FIRST
        while True:
            with self._lock:
                if self._closed:  # the run ended meanwhile, or the daemon is leaving
                    self.lost_bytes += len(data) if self._failing is not None else 0
                    return
                try:
                    if self._fd < 0:
                        self._open()  # a rotation could not make the new file
                    limit = self.files.max_size
                    if out is not None and (not limit or self._size + len(out) <= limit):
                        self._append(out)
                    else:
                        self._write_entries(data.decode("utf-8", errors="replace"), tail)
                except OSError as exc:
                    if self._failing is None:
                        self._failing = exc
                        log.error("%s: could not write the container's log: %s; its output waits in its pipe "
                                  "until it can", self.files.path, exc)
                        self._on_blocked(exc.strerror or str(exc))
                else:
                    if self._failing is not None:
                        log.warning("%s: the log is written again", self.files.path)
                        self._failing = None
                        self._on_resumed()
                    break
            time.sleep(wait)  # outside the lock: `close` must not wait for the disk
            wait = min(wait * 2, RETRY_MAX)
        self._on_write()

    def wake(self) -> None:
        """Wake whoever follows the output, as a write does."""
        self._on_write()

    def _write_entries(self, text: str, tail: bytes) -> None:
        """Entry by entry: lines over 16 KiB are split, and rotation falls between entries."""
        limit = self.files.max_size
        out = bytearray()
        start = 0
        while start < len(text):
            end = text.find("\n", start, start + MAX_LINE)
            end = min(len(text), start + MAX_LINE) if end < 0 else end + 1
            line = b'{"log":' + _encoder.encode(text[start:end]) + tail
            if limit and self._size + len(out) and self._size + len(out) + len(line) > limit:
                self._append(out)  # rotate between entries, so no file passes max-size
                out.clear()
                self._rotate()
            out += line
            start = end
        self._append(out)

    def _append(self, data: bytes | bytearray) -> None:
        # An append to the page cache does not block in practice; a thread hop per chunk
        # would cost more than the write itself.
        if data:
            append_whole(self._fd, data, self._size)
            self._size += len(data)

    def _rotate(self) -> None:
        files = self.files
        with _ROTATION:
            os.close(self._fd)
            self._fd = -1  # until the new file is open: if that fails, the next write tries again
            if files.max_file > 1:
                for n in range(files.max_file - 1, 1, -1):
                    if files.rotated(n - 1).exists():
                        os.replace(files.rotated(n - 1), files.rotated(n))
                os.replace(files.path, files.rotated(1))
            else:
                os.truncate(files.path, 0)  # max-file=1: start over, as Docker does
            self._open()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._failing is not None:
                log.error("%s: closed while it could not be written (%s): the chunk being retried is lost",
                          self.files.path, self._failing)


class Lines:
    """One stream of a run on its way to the log, cut where its lines end: what a read
    brings after the last newline waits for the rest of its line (a line split between
    two reads would be two entries, and a character split between them two U+FFFD);
    an unfinished line reaching MAX_LINE goes on as 16 KiB pieces, as dockerd's. What
    waits is written, as a partial entry, when the pump finds the stream quiet (`flush`:
    a prompt must reach `attach`) and at its end."""

    def __init__(self, writer: LogWriter, stream: str, *, whole_lines: bool = True, taps: Taps | None = None):
        self.writer, self.stream = writer, stream
        self.whole_lines = whole_lines  # False (a terminal, read as typed): only characters are kept whole
        self.held = b""
        self.taps = taps or Taps()  # attached clients get each chunk as read, before the log (taps.py)

    def write(self, data: bytes, *, wait: bool = True) -> None:
        """Take a chunk as read (`wait`: see `Tap.put`)."""
        tapped = self.taps.put(self.stream, data, wait=wait)
        if self.held:
            data = self.held + data
        cut = data.rfind(b"\n") + 1 if self.whole_lines else 0
        if len(data) - cut >= MAX_LINE or not self.whole_lines:
            cut = _whole_chars(data)
        self.held = data[cut:]
        if cut:
            self.writer.write(self.stream, data if cut == len(data) else data[:cut])
        elif tapped:
            self.writer.wake()  # the log waits for the line's end; an attached client does not

    def flush(self, *, end: bool = False) -> None:
        """Write what waits: up to its last whole character, or all of it at the stream's `end`."""
        cut = len(self.held) if end else _whole_chars(self.held)
        if cut:
            data, self.held = self.held[:cut], self.held[cut:]
            self.writer.write(self.stream, data)


def _whole_chars(data: bytes) -> int:
    """The length of `data` without a UTF-8 sequence its end cuts short."""
    end = len(data)
    start = end
    while start > 0 and end - start < 3 and data[start - 1] & 0xC0 == 0x80:  # continuation bytes
        start -= 1
    if start > 0 and data[start - 1] >= 0xC0:  # the lead byte: how long its sequence is
        lead = data[start - 1]
        size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if end - (start - 1) < size:
            return start - 1
    return end


def _tail_offset(f: BinaryIO, lines: int) -> tuple[int, int]:
    """(offset where the last `lines` lines of `f` start, lines found) — reads from the end."""
    end = f.seek(0, os.SEEK_END)
    pos, found = end, 0
    if lines <= 0:
        return end, 0
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        # the final newline of the file ends the last line; it does not start one
        idx = len(block) - 1 if pos + step == end else len(block)
        while True:
            idx = block.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            found += 1
            if found == lines:
                return pos + idx + 1, found
    return 0, found + (1 if end else 0)


def _read_from(f: BinaryIO, offset: int) -> tuple[memoryview, int]:
    """Complete lines from `offset` on (at most a chunk's worth); returns (lines, new offset)."""
    fd = f.fileno()
    if offset > os.fstat(fd).st_size:
        offset = 0  # truncated under us (rotation with max-file=1)
    data = os.pread(fd, _CHUNK, offset)
    cut = data.rfind(b"\n") + 1
    return memoryview(data)[:cut], offset + cut


def _start(files: LogFiles, tail: int | None) -> tuple[list[BinaryIO], int]:
    """Open the files to read, oldest first, and the offset in the first one."""
    opened: list[BinaryIO] = []
    with _ROTATION:
        for path in files.oldest_first():
            try:
                opened.append(open(path, "rb"))
            except FileNotFoundError:
                pass
    if tail is None:
        return opened, 0
    remaining = tail
    for i in range(len(opened) - 1, -1, -1):
        offset, found = _tail_offset(opened[i], remaining)
        if found >= remaining or i == 0:
            for f in opened[:i]:
                f.close()
            return opened[i:], offset
        remaining -= found
    return opened, 0


def _next_file(files: LogFiles, current: BinaryIO) -> BinaryIO | None:
    """After `current` was rotated away: the next newer file, if there is one."""
    inode = os.fstat(current.fileno()).st_ino
    with _ROTATION:
        paths = files.oldest_first()
        inodes = []
        for path in paths:
            try:
                inodes.append(path.stat().st_ino)
            except FileNotFoundError:
                inodes.append(None)
        if inodes[-1] == inode:
            return None  # still the current file
        following = paths[inodes.index(inode) + 1:] if inode in inodes else paths
        for path in following:
            try:
                return open(path, "rb")
            except FileNotFoundError:
                continue
    return None


async def read(files: LogFiles, *, tail: int | None = None, since: str = "",
               until: str = "", follow: bool = False, grown: Callable[[], trio.Event] | None = None,
               done: Callable[[], bool] | None = None, times: bool = True) -> AsyncIterator[list[LogText]]:
    """Yield batches of log entries in order (one batch per chunk read, so a consumer
    sends one write per batch, not per line), filtered by time (RFC 3339, inclusive since).
    Without `times` (and filters) the entries are LogText, with them LogEntry.

    With `follow`, keep reading as the log grows until `done()` holds and everything
    written before that has been read. Files are held open: a follower keeps reading
    after the container (and its log) is removed, and gets every last line.
    """
    # In the event loop's thread: opening (under the rotation lock) and a tail scan from
    # the end are cheap, even on a large log.
    opened, offset = _start(files, tail)
    if not opened:
        return
    decoder = _decoder if times or since or until else _text_decoder
    try:
        while opened:
            finished = follow and done is not None and done()
            wake = grown() if follow and grown else None
            # A read of at most 1 MiB from the page cache costs less than a thread hop,
            # and a follower does one per wake-up.
            data, offset = _read_from(opened[0], offset)
            if data:
                entries = decoder.decode_lines(data)
                if since or until:
                    last = len(entries)
                    if until and entries and entries[-1].time > until:
                        last = next(i for i, e in enumerate(entries) if e.time > until)
                    batch = [e for e in entries[:last] if e.time >= since]
                    if batch:
                        yield batch
                    if last < len(entries):
                        return
                else:
                    yield entries
                continue  # there may be more beyond one chunk
            if len(opened) > 1:  # done with an older file: on to the next newer one
                opened.pop(0).close()
                offset = 0
                continue
            if not follow:
                return
            newer = _next_file(files, opened[0])
            if newer is not None:
                opened.append(newer)  # finish the rotated file first: it may have grown
                continue
            if finished or wake is None:
                return
            await wake.wait()
    finally:
        for f in opened:
            f.close()
