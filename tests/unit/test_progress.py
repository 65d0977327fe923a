"""The progress display: on a terminal, each layer's line redrawn in place as the docker
CLI draws it; elsewhere plain status lines; and the toolbar's tally of bytes."""

from __future__ import annotations

import io
import re

from hypothesis import given
from hypothesis import strategies as st

from shell import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows after `written` (newlines, CR, cursor up/down, erase line)."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[\d*[ABK]|\r|\n|[^\x1b\r\n]+", written):
        if token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            col = 0
        elif token.endswith("A"):
            row -= int(token[2:-1])
            assert row >= 0, "the cursor left the screen"
        elif token.endswith("B"):
            row += int(token[2:-1])
            assert row < len(lines), "the cursor went below the text"
        elif token.endswith("K"):
            lines[row] = lines[row][:col]
        else:
            lines[row] = lines[row][:col] + token + lines[row][col + len(token):]
            col += len(token)
    return lines


def layer(i: int, status: str, current: int | None = None, total: int = 100) -> dict:
    message = {"status": status, "id": f"layer{i}", "progressDetail": {}}
    if current is not None:
        message |= {"progressDetail": {"current": current, "total": total}, "progress": f"[{current}/{total}]"}
    return message


def test_a_pull_draws_a_line_per_layer_and_redraws_it():
    out = Terminal()
    board = progress.display(out)
    for message in [{"status": "Pulling from app", "id": "v1"}, layer(1, "Pulling fs layer"),
                    layer(2, "Pulling fs layer"), layer(2, "Downloading", 50), layer(1, "Downloading", 10),
                    layer(1, "Download complete"), layer(2, "Pull complete"), layer(1, "Pull complete"),
                    {"status": "Digest: sha256:abc"}]:
        board.show(message)
    assert screen(out.getvalue()) == ["v1: Pulling from app", "layer1: Pull complete", "layer2: Pull complete",
                                      "Digest: sha256:abc", ""]


@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["Waiting", "Downloading", "Pull complete"]),
                          st.integers(0, 100)), max_size=40))
def test_every_layer_keeps_one_line_showing_its_last_status(events):
    out = Terminal()
    board = progress.Board(out)
    board.show({"status": "Pulling from app", "id": "latest"})
    last: dict[int, str] = {}
    for i, status, current in events:
        message = layer(i, status, current if status == "Downloading" else None)
        board.show(message)
        last[i] = progress.text(message)
    order = list(dict.fromkeys(i for i, _, _ in events))
    assert screen(out.getvalue()) == ["latest: Pulling from app", *(last[i] for i in order), ""]


def test_plain_lines_leave_the_byte_counts_out():
    out = io.StringIO()
    shown = progress.display(out)
    for message in [layer(1, "Pulling fs layer"), layer(1, "Downloading", 5), layer(1, "Pull complete"),
                    {"aux": {"Tag": "v1"}}, {"status": "Digest: sha256:abc"}]:
        shown.show(message)
    assert out.getvalue() == "layer1: Pulling fs layer\nlayer1: Pull complete\nDigest: sha256:abc\n"


def test_the_tally_sums_the_layers_bytes():
    tally = progress.Tally()
    for message in [layer(1, "Downloading", 30, 100), layer(2, "Downloading", 5, 50), layer(1, "Downloading", 100),
                    {"status": "Status: Downloaded newer image for app:v1"}]:
        tally.add(message)
    assert (tally.done, tally.total, tally.last) == (105, 150, "Status: Downloaded newer image for app:v1")
