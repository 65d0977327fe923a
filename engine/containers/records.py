"""The daemon's containers, by ID and by name: looked up, persisted, and moved.

Every change of a container's state goes through `advance`: the lifecycle table applies
the step, the record is saved, and exactly the events the table lists are published.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import msgspec
import trio

from .. import lifecycle
from ..errors import BadRequest, Conflict, no_such_container
from ..events import constructors
from ..events.bus import Bus
from ..fs.store import atomic_write
from ..lifecycle import Step
from . import names
from .container import Container

# The suffix a removed container's directory is renamed with while its files are deleted
# in the background; a daemon that finds one at start deletes it.
REMOVING = ".removing"


class Claim(NamedTuple):
    """What a container being created uses before its record is added: its image and its
    named volumes, which must not be deleted under it."""

    image_id: str
    volumes: frozenset[str]


class Containers:
    def __init__(self, root: Path, netns_dir: Path, bus: Bus):
        self.root = root  # one directory per container
        self.netns_dir = netns_dir
        self.bus = bus
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self.reserved: dict[str, str] = {}  # name → ID of a container being created
        self.creating: dict[str, Claim] = {}  # ID of a container being created → what it uses

    def __iter__(self):
        return iter(list(self.by_id.values()))

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without `/`) or unique ID prefix."""
        if ref in self.by_id:
            return self.by_id[ref]
        cid = self.names.get(ref.lstrip("/"))
        if cid:
            return self.by_id[cid]
        if ref and re.fullmatch(r"[0-9a-f]+", ref):
            found = [c for c in self.by_id.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise BadRequest(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def check_name_free(self, name: str) -> None:
        """Docker's conflict when `name` is taken, or held by a create under way."""
        holder = self.names.get(name) or self.reserved.get(name)
        if holder:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                           f'"{holder}". You have to remove (or rename) that container to be able to reuse that name.')

    def reserve(self, name: str | None, cid: str) -> str:
        """Hold `name` (a generated one when None) for container `cid` until it is added
        (or `release`d), and return it: a create awaits its files and its record between
        the check and `add`, and two creates of one name at once both passed the check."""
        if name is None:
            name = names.generate({*self.names, *self.reserved})
        else:
            self.check_name_free(name)
        self.reserved[name] = cid
        return name

    def release(self, name: str, cid: str) -> None:
        """Let go of what a create held for `cid`: its name (`reserve`) and its `Claim`
        on an image and volumes; done when it is added, or when it failed."""
        if self.reserved.get(name) == cid:
            del self.reserved[name]
        self.creating.pop(cid, None)

    def add(self, c: Container) -> None:
        self.by_id[c.id] = c
        self.names[c.name] = c.id
        self.release(c.name, c.id)

    def forget(self, c: Container) -> None:
        self.by_id.pop(c.id, None)
        if self.names.get(c.name) == c.id:
            del self.names[c.name]

    def rename(self, c: Container, new_name: str) -> None:
        del self.names[c.name]
        self.names[new_name] = c.id
        c.record.name = new_name

    def using_image(self, image_id: str) -> list[Container]:
        return [c for c in self.by_id.values() if c.record.image_id == image_id]

    def using_volume(self, name: str) -> list[str]:
        """IDs of the containers (running or not, or being created) that mount volume `name`."""
        return [*(c.id for c in self.by_id.values() if any(m.type == "volume" and m.name == name for m in c.record.mounts)),
                *(cid for cid, claim in self.creating.items() if name in claim.volumes)]

    def creating_from(self, image_id: str) -> list[str]:
        """The IDs of the containers being created from `image_id`: an image must not be
        deleted between a create's finding it and its record being added."""
        return [cid for cid, claim in self.creating.items() if claim.image_id == image_id]

    async def save(self, c: Container, *, durable: bool = True) -> None:
        """Persist a container's record and wake those waiting on it; not `durable`: safe
        from the daemon's death but not the machine's (see atomic_write). An AutoRemove
        container's states after its first are never durable: after the machine's crash
        the next daemon removes it whatever its record says (4 fsyncs less per `run --rm`)."""
        if durable and c.record.host_config.auto_remove and c.record_path.exists():
            durable = False
        data = msgspec.json.encode(c.record)  # the record as this save found it
        # One write of a record at a time, in the order of the saves (the lock is FIFO): a
        # save made while an earlier one is still writing in its thread (an exit recorded
        # during a `rm --link` of the container) lands after it, whole.
        async with c.saving:
            if durable:
                await trio.to_thread.run_sync(atomic_write, c.record_path, data)
            else:  # a few KB into the page cache: less than a thread hop
                atomic_write(c.record_path, data, durable=False)
        c.notify()

    @staticmethod
    def write(c: Container) -> None:
        """Write a new container's first record, durably, blocking: for the worker thread
        that makes its other files in the same hop (each hop from the event loop to a thread
        and back costs ~0.1 ms of CPU and a turn of the GIL). Only before the container is
        added to the table, where no save can run beside it."""
        atomic_write(c.record_path, msgspec.json.encode(c.record))

    def publish(self, c: Container, action: str, **attrs: str) -> None:
        self.bus.publish(constructors.container(c.id, action, image=c.record.image_ref, name=c.name,
                                                labels=c.record.config.labels, **attrs))

    async def advance(self, c: Container, step: Step, attrs: dict[str, str] | None = None, *, persist: bool = True,
                      durable: bool = True, **fields) -> None:
        """Take a lifecycle step: set the state (and `fields`), save it if it changed
        (unless not `persist`; not `durable`: see save), publish the events the table
        lists for the step (each with `attrs`)."""
        before = c.record.state
        c.record.state, events = lifecycle.apply(before, step, **fields)
        if c.record.state != before:
            if persist:
                await self.save(c, durable=durable)
            else:
                c.notify()
        for action in events:
            self.publish(c, action, **(attrs or {}))
