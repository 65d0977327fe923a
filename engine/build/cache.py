"""The build cache: which image a step made, by what it was made from.

A step's key is the sha256 of its parent image's ID, its CreatedBy (which holds the
command, the build args in scope, and for COPY/ADD the checksum of what they copy), the
config the step leaves, and whatever else changes its result (COPY's --chown). The index
(`<root>/build/cache.json`, key → the image IDs it made, newest first) is written atomically after each new step,
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
    """key → the images that step made, newest first (a few: `--cache-from` may want an
    older one than the last, e.g. after a `--no-cache` or another base's build)."""

    KEEP = 8

    def __init__(self, path: Path):
        self.path = path
        try:
            raw = msgspec.json.decode(path.read_bytes(), type=dict[str, str | list[str]])
        except (FileNotFoundError, msgspec.DecodeError):
            raw = {}
        self.entries: dict[str, list[str]] = {k: [v] if isinstance(v, str) else v for k, v in raw.items()}

    def get(self, step: str, exists) -> str | None:
        """The newest image made by the step `step` that still `exists(image_id)`."""
        return next((i for i in self.entries.get(step, ()) if exists(i)), None)

    def put(self, step: str, image_id: str) -> None:
        found = [image_id, *(i for i in self.entries.get(step, ()) if i != image_id)]
        self.entries[step] = found[:self.KEEP]
        atomic_write(self.path, msgspec.json.encode(self.entries))
