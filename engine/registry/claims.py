"""The layers concurrent pulls share, so that each is fetched once and none is deleted
under a pull that counts on it."""

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

    def unpin(self, chains: list[str]) -> None:
        self.pins.subtract(chains)
        for chain in chains:
            if self.pins[chain] <= 0:
                self.pins.pop(chain, None)
