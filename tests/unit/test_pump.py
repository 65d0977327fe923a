"""The output pump: every byte in order, whether it comes in bulk (gathered) or a line at a time."""

from __future__ import annotations

import fcntl
import os
import threading
import time

from engine.containers import pump

F_GETPIPE_SZ = 1032


def test_output_pipes_hold_a_mebibyte():
    r, w = os.pipe()
    try:
        pump.widen(r)
        assert fcntl.fcntl(w, F_GETPIPE_SZ) >= pump.PIPE_SIZE
    finally:
        os.close(r)
        os.close(w)


def test_drain_keeps_every_byte_in_order():
    r, w = os.pipe()
    pump.widen(r)
    sent = []

    def produce():
        for i in range(200):
            piece = (b"bulk %d " % i) * 5000 if i % 3 == 0 else b"line %d\n" % i
            sent.append(piece)
            _write_all(w, piece)
            if i % 50 == 0:
                time.sleep(0.002)  # the pipe found empty now and then
        os.close(w)

    got = []
    writer = threading.Thread(target=produce)
    writer.start()
    pump._drain(r, got.append)  # closes r at the pipe's end
    writer.join()
    assert b"".join(got) == b"".join(sent)
    assert max(map(len, got)) <= 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
