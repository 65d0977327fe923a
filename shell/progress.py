"""Docker's JSON progress streams (pull, push) shown as the docker CLI shows them.

On a terminal each layer keeps one line, redrawn in place as its bar moves; a message
without a layer (`Pulling from …`, `Digest: …`) is printed below and starts a new
block, as the docker CLI does. Elsewhere every status is one plain line and the byte
counts are left out. `Tally` sums a stream's byte counts for the shell's toolbar.
"""

from __future__ import annotations

from io import TextIOBase as TextIO  # not typing: ~3 ms of start-up; io is loaded anyway

UP, DOWN, ERASE = "\x1b[{}A", "\x1b[{}B", "\r\x1b[2K"


def text(message: dict) -> str:
    """`id: status progress`, as one line."""
    said = " ".join(part for part in (message.get("status", ""), message.get("progress", "")) if part)
    return f"{message['id']}: {said}" if message.get("id") else said


class Board:
    """A progress stream drawn on a terminal: a line per layer, redrawn in place."""

    def __init__(self, out: TextIO):
        self.out = out
        self.rows: dict[str, int] = {}  # layer → its line, counted from the block's first

    def show(self, message: dict) -> None:
        layer = message.get("id")
        if layer and "progressDetail" in message:
            if layer not in self.rows:
                self.rows[layer] = len(self.rows)
                self.out.write("\n")
            up = len(self.rows) - self.rows[layer]
            self.out.write(UP.format(up) + ERASE + text(message) + DOWN.format(up) + "\r")
        else:
            self.rows.clear()  # what follows must not redraw the lines above this one
            self.out.write(text(message) + "\n")
        self.out.flush()


class Lines:
    """A progress stream as plain lines (not a terminal): statuses only."""

    def __init__(self, out: TextIO):
        self.out = out

    def show(self, message: dict) -> None:
        if message.get("progress") or not message.get("status"):
            return  # byte counts (a terminal would redraw them), aux records
        self.out.write(text(message) + "\n")
        self.out.flush()


def display(out: TextIO) -> Board | Lines:
    """The display for `out`: bars on a terminal, plain lines elsewhere."""
    return Board(out) if out.isatty() else Lines(out)


class Tally:
    """Bytes moved and to move over a stream's layers (what the toolbar shows of a
    background pull or push), and the stream's last status."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}
        self.last = ""

    def add(self, message: dict) -> None:
        detail = message.get("progressDetail") or {}
        if message.get("id") and detail.get("total") and message.get("status") in ("Downloading", "Pushing"):
            self.layers[message["id"]] = (detail.get("current", 0), detail["total"])
        elif message.get("status"):
            self.last = text(message)

    @property
    def done(self) -> int:
        return sum(current for current, _ in self.layers.values())

    @property
    def total(self) -> int | None:
        return sum(total for _, total in self.layers.values()) or None
