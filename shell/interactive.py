"""Interactive sessions: `run -i/-t`, `start -ai`, `attach`, `exec -i/-t`.

The hijacked stream goes to our stdout (raw with a terminal, else demultiplexed) while
our stdin goes into it; at our stdin's end the socket is half-closed, so the container
sees EOF and its output still arrives. With a terminal, ours is in raw mode for the
session (keys, Ctrl-C and the detach keys go to the container as they are) and its size
is sent to the daemon at the start and on every SIGWINCH. Imported only by these
commands: one-shot start-up stays light.
"""

from __future__ import annotations

import os
import select
import sys
from _collections_abc import Callable  # collections.abc's own source: loaded with os, unlike collections

from .transport import Demuxer, Response


def relay(stream: Response, *, tty: bool, stdin: bool, resize: Callable[[int, int], None] | None = None) -> None:
    """Run the session until the daemon closes the stream."""
    out = sys.stdout.buffer
    demux = None if tty else Demuxer()

    def show(data: bytes) -> None:
        if demux is None:
            out.write(data)
            out.flush()
        else:
            demux.feed(data)

    if tty:  # only a terminal needs these: `signal` alone (enum below it) is ~4 ms of an exec's start-up
        import signal
        import termios
        import tty as tty_mode
    in_fd = sys.stdin.fileno() if stdin else None
    raw = tty and in_fd is not None and os.isatty(in_fd)
    saved = termios.tcgetattr(in_fd) if raw else None
    previous_handler = None

    def send_size(*_) -> None:
        if resize is not None and os.isatty(out.fileno()):
            size = os.get_terminal_size(out.fileno())
            try:
                resize(size.lines, size.columns)
            except OSError:
                pass  # the session is ending

    try:
        if raw:
            tty_mode.setraw(in_fd, termios.TCSANOW)  # not TCSAFLUSH: keys typed already must reach the container
        if tty and resize is not None:
            send_size()
            previous_handler = signal.signal(signal.SIGWINCH, send_size)
        if stream.buffered:
            show(stream.read1())
        watch = [stream.fileno()] + ([in_fd] if in_fd is not None else [])
        while True:
            ready, _, _ = select.select(watch, [], [])
            if stream.fileno() in ready:
                data = stream.read1()
                if not data:
                    return
                show(data)
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, 65536)
                if data:
                    stream.send(data)
                else:
                    stream.shutdown_write()
                    watch.remove(in_fd)
                    in_fd = None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGWINCH, previous_handler)
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
