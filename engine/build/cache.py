"""The build cache: which image a step made, by what it was made from.

A step's key is the sha256 of its parent image's ID, its CreatedBy (which holds the
command, the build args in scope, and for COPY/ADD the checksum of what they copy), the
config the step leaves, and whatever else changes its result (COPY's --chown). The index
(`<root>/build/cache.json`, key → image ID) is written atomically after each new step,
so it outlives the daemon; an entry whose image was deleted is a miss.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from ..fs.store import atomic_write
from ..models import ImageRuntimeConfig


def key(parent_id: str, created_by: str, config: ImageRuntimeConfig, extra: str = "") -> str:
    return hashlib.sha256(msgspec.json.encode([parent_id, created_by, config, extra])).hexdigest()


class Cache:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, str] = msgspec.json.decode(path.read_bytes(), type=dict[str, str])
        except (FileNotFoundError, msgspec.DecodeError):
            self.entries = {}

    def get(self, step: str, exists) -> str | None:
        """The image made by the step `step`, if it still `exists(image_id)`."""
        found = self.entries.get(step)
        return found if found is not None and exists(found) else None

    def put(self, step: str, image_id: str) -> None:
        self.entries[step] = image_id
        atomic_write(self.path, msgspec.json.encode(self.entries))
