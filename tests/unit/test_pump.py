"""The output pump: every byte in order, whether it comes in bulk (gathered) or a line at
a time; only a pipe that carries bulk output is widened."""

from __future__ import annotations

import fcntl
import os
import threading
import time

from engine.containers import logs, pump

F_GETPIPE_SZ = 1032


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pump(pieces, pause_every: int = 0) -> tuple[list[bytes], int]:
    """(what the pump handed on, the pipe's size at its end) for `pieces` written in turn."""
    r, w = os.pipe()
    size = []

    def produce():
        for i, piece in enumerate(pieces):
            _write_all(w, piece)
            if pause_every and i % pause_every == 0:
                time.sleep(0.002)  # the pipe found empty now and then
        size.append(fcntl.fcntl(w, F_GETPIPE_SZ))
        os.close(w)

    got: list[bytes] = []

    class Log:  # the log writer's part: what it was handed
        def write(self, stream: str, data: bytes) -> None:
            got.append(data)

    writer = threading.Thread(target=produce)
    writer.start()
    pump._drain(r, logs.Lines(Log(), "stdout"))  # closes r at the pipe's end
    writer.join()
    return got, size[0]


def test_bulk_and_lines_keep_every_byte_in_order_and_bulk_widens_the_pipe():
    pieces = [(b"bulk %d " % i) * 5000 if i % 3 == 0 else b"line %d\n" % i for i in range(200)]
    got, size = _pump(pieces, pause_every=50)
    assert b"".join(got) == b"".join(pieces)
    assert max(map(len, got)) <= 64 * 1024 + logs.MAX_LINE  # a read, and the line the last one cut
    assert size >= pump.PIPE_SIZE


def test_lines_alone_leave_the_pipe_as_it_is():
    pieces = [b"line %d\n" % i for i in range(300)]
    got, size = _pump(pieces, pause_every=1)
    assert b"".join(got) == b"".join(pieces)
    assert size == 64 * 1024
