"""Docker's JSON progress stream for pull and push: one `Reporter` per transfer.

Messages come from concurrent tasks (one per layer); the reporter sends them one at a
time, and sends a transfer's byte counts at most every `INTERVAL` seconds per layer (and
at its end), as dockerd does, so a fast download does not flood the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from gounits import size as human_size

from ..models import ProgressDetail, ProgressMessage

INTERVAL = 0.1
WIDTH = 50

Emit = Callable[[ProgressMessage], Awaitable[None]]


def bar(current: int, total: int) -> str:
    """`[=====>      ]  1.2MB/3.4MB`, as the docker CLI shows it."""
    if total <= 0:
        return f"{human_size(current)}"
    done = min(WIDTH, WIDTH * current // total)
    arrow = "=" * done + (">" if done < WIDTH else "") + " " * max(0, WIDTH - done - 1)
    return f"[{arrow}] {human_size(current):>8}/{human_size(total)}"


class Reporter:
    def __init__(self, emit: Emit):
        self._emit = emit
        self._lock = trio.Lock()
        self._last: dict[str, float] = {}

    async def say(self, status: str, id: str = "", *, detail: bool = False, aux: dict | None = None) -> None:
        await self._send(ProgressMessage(status=status, id=id, progressDetail=ProgressDetail() if detail else None,
                                         aux=aux))

    async def bytes(self, status: str, id: str, current: int, total: int, *, final: bool = False) -> None:
        """A byte count of a transfer, sent if `INTERVAL` passed since the layer's last one."""
        now = trio.current_time()
        if not final and now - self._last.get(id, -INTERVAL) < INTERVAL:
            return
        self._last[id] = now
        await self._send(ProgressMessage(status=status, id=id, progressDetail=ProgressDetail(current, total),
                                         progress=bar(current, total)))

    async def _send(self, message: ProgressMessage) -> None:
        async with self._lock:
            await self._emit(message)
