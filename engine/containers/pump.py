"""Container output into its log: one task per output stream of a run.

A pipe is read in a worker thread of its own with blocking reads. A container writing
in bulk delivers 4-8 KiB per write, and each read through the event loop (a read that
finds the pipe empty, epoll, the scheduler, the read again) cost the daemon 15-20 µs of
CPU, more than logging the chunk; a blocking read costs ~6 µs and leaves the event loop
alone. The log writer is thread-safe, and followers are woken only when one waits
(Container.output_logged). Each pump thread reads from its own duplicate of the pipe, so
the run's streams can be closed whenever the supervisor likes, and a thread that is
abandoned (cancelled while the container still holds the pipe open) ends at the pipe's
end without touching a descriptor that was reused, or at `stop_reading` (the daemon
leaves its containers running for the next one).

Bulk output is gathered before it is read: when the reads since the pipe was last found
empty brought at least BULK bytes, the pipe is given 256 KiB of room (PIPE_SIZE; 64 KiB
by default) and the thread sleeps GATHER seconds before it reads again, the writer
filling that room meanwhile. A container writing in bulk then costs a read, an encoding
and a log write per ~64 KiB instead of per ~5 KB: berthd's CPU for 100 MB of 40-byte
lines went from ~450 to ~250 ms, left to the container's own processes on a busy
machine. Output that comes a line at a time is read as it comes, in a pipe of the
default size; bulk output reaches the log at most GATHER later. Only pipes that carry
bulk output are widened, and not beyond what gathering needs: the kernel counts every
pipe's size against its user's `fs.pipe-user-pages-soft` (16,384 pages by default), and
the containers' own processes, root too, get tiny pipes once root's pipes pass it.

Each stream goes through a `Lines` (logs.py), which keeps a line that a read cut in two
whole: what follows the last newline of a read waits for the next one, or for FLUSH
seconds of quiet (a prompt must reach `attach`), or for the end of the stream; a daemon
that stops reading (live restore) writes it first.

A terminal is read through the event loop: its output is interactive, and a pty master
reads EIO instead of EOF once the container side is gone. Only a character a read cut in
two waits there, never a line: what is typed is echoed at once.
"""

from __future__ import annotations

import _thread
import fcntl
import math
import os
import select
import time

import trio

from ..runtime import syscalls
from .logs import Lines

_READ = 64 * 1024  # a read of more costs an allocation of its own (~13 µs), however little it returns
PIPE_SIZE = 256 * 1024  # what a pipe carrying bulk output holds: GATHER at ~500 MB/s
BULK, GATHER = 16 * 1024, 0.0005
FLUSH = 0.01  # seconds a stream may stay quiet in the middle of a line before that part is logged


# Readable once `stop_reading` was called: every pump thread then ends before its next
# read, so what the pipes still hold stays there for the next daemon (the keeper holds
# them open), never read by a daemon that is leaving and then lost.
_STOP_R, _STOP_W = os.pipe2(os.O_CLOEXEC)


def _widen(fd: int) -> bool:
    """Give the pipe behind `fd` PIPE_SIZE of room; False where the kernel refuses (a
    smaller `fs.pipe-max-size`, or root's pipes past `fs.pipe-user-pages-hard`)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        return False
    return True


def stop_reading() -> None:
    """Make every pump stop reading: the daemon leaves its containers running (live
    restore). Each pump finishes the chunk it is logging, if any."""
    os.write(_STOP_W, b"\0")


def _drain(fd: int, lines: Lines, thread_name: str = "") -> None:
    try:
        if thread_name:
            syscalls.name_thread(thread_name)
        os.set_blocking(fd, True)
        ready = select.poll()
        ready.register(fd, select.POLLIN)
        ready.register(_STOP_R, select.POLLIN)
        burst = 0  # bytes read since the pipe was last found empty
        wide = False
        while True:
            found = ready.poll(FLUSH * 1000 if lines.held else None)
            if not found:  # quiet, in the middle of a line: what came of it goes now
                lines.flush()
                continue
            if any(fd_ == _STOP_R for fd_, _ in found):
                lines.flush(end=True)  # read from the pipe: the next daemon would not see it
                return
            chunk = os.read(fd, _READ)
            if not chunk:
                lines.flush(end=True)
                return
            lines.write(chunk)
            burst += len(chunk)
            if len(chunk) < _READ:  # the pipe is empty now
                # gathered only where there is room for it: else the writer would wait
                if burst >= BULK and (wide or (wide := _widen(fd))):
                    time.sleep(GATHER)
                burst = 0
    finally:
        os.close(fd)


async def pump_pipe(stream: trio.lowlevel.FdStream, lines: Lines) -> None:
    """Hand everything read from the pipe behind `stream` to `lines`, up to its end.
    Cancelled, it returns at once and the thread ends by itself (see the module's doc)."""
    await trio.lowlevel.checkpoint_if_cancelled()  # no thread for a run already cut short
    fd = os.dup(stream.fileno())
    token = trio.lowlevel.current_trio_token()
    ended = trio.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _drain(fd, lines, "berth output pump")
        except BaseException as exc:
            failure.append(exc)
        finally:
            try:
                token.run_sync_soon(ended.set)
            except trio.RunFinishedError:
                pass

    # A thread of its own for the run, not one of trio's cache: the cache's `Thread.start`
    # waits in the event loop until the new thread runs, which a busy machine delays
    # (12% of the event loop's time in a burst of `run -d`); `start_new_thread` does not.
    try:
        _thread.start_new_thread(run, ())
    except BaseException:
        os.close(fd)  # no thread to close it
        raise
    await ended.wait()
    if failure:
        raise failure[0]


async def pump_terminal(stream: trio.abc.ReceiveStream, lines: Lines) -> None:
    """Hand everything read from a terminal's master to `lines`, until the container side closes."""
    while True:
        while lines.taps.full:  # an attached client is behind: the container waits for it
            await trio.sleep(0.005)
        chunk = None
        with trio.move_on_after(FLUSH if lines.held else math.inf):
            try:
                chunk = await stream.receive_some(_READ)
            except trio.BrokenResourceError:
                chunk = b""  # EIO: the container side is gone
        if chunk is None:
            lines.flush()
        elif not chunk:
            lines.flush(end=True)
            return
        else:
            lines.write(chunk, wait=False)  # the event loop never waits on a tap
