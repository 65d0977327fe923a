"""What concurrent transfers share: the layers pulls fetch (each fetched once, none
deleted under a pull that counts on it) and the layers pushes compress (each once)."""

from __future__ import annotations

import collections

import trio


class Claims:
    """What concurrent pulls share: the layers each is fetching (chain → set once that
    pull stored the layer or gave up on it), and how many pulls in flight rely on each
    layer (a failed pull never deletes a layer another one counts on)."""

    def __init__(self) -> None:
        self.fetching: dict[str, trio.Event] = {}
        self.pins: collections.Counter[str] = collections.Counter()
        self._compressing: dict[str, trio.Lock] = {}

    def compressing(self, chain: str) -> trio.Lock:
        """The lock a push holds while it makes the layer's gzip blob: layers compress side
        by side, and two pushes of one layer compress it once."""
        return self._compressing.setdefault(chain, trio.Lock())

    def unpin(self, chains: list[str]) -> None:
        self.pins.subtract(chains)
        for chain in chains:
            if self.pins[chain] <= 0:
                self.pins.pop(chain, None)
