"""The images service: every change to the image store, one at a time, with its events.

The store (`store.py`) keeps images, layers and tags on disk; this service is what the
Engine calls for `import`, `tag`, `rmi`, `prune`, `save`, `load`, `commit`'s new image and
`system df`. It holds the store's one lock (one writer at a time; `save` holds it until
its archive is complete, as the store keeps no per-layer references) and publishes the
image events. Which containers use an image is asked of `users`, handed in by the
Engine: images know nothing of containers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgspec
import trio

from .. import timefmt
from ..errors import NO_SPACE, BadRequest, Conflict, NotFound, no_space
from ..events import constructors
from ..events import filters as flt
from ..events.bus import Bus
from ..fs.store import write_all
from ..models import HistoryEntry, ImageRuntimeConfig
from . import archive, archive_load, busybox, reference
from .commit import store_image
from .store import Image, ImageStore

LIST_FILTERS = ("dangling", "reference", "label", "before", "since")
PRUNE_FILTERS = ("dangling", *flt.PRUNE_FILTERS)


class User(NamedTuple):
    """A container that uses an image: its ID, and whether it is live (running, paused
    or restarting)."""

    id: str
    live: bool


class PruneReport(msgspec.Struct, rename="pascal"):
    images_deleted: list[dict[str, str]] | None
    space_reclaimed: int


class ImageFacts(NamedTuple):
    """What inspect, history and listings show of an image beyond its config."""

    tags: list[str]
    layer_dirs: list[Path]  # its unpacked layers, bottom first
    layer_sizes: list[int]  # their sizes in bytes, in the same order
    digests: list[str] = []  # RepoDigests: `repo@sha256:…` where it was pulled from or pushed to

    @property
    def size(self) -> int:
        return sum(self.layer_sizes)


class ImageUsage(NamedTuple):
    """One image in `system df`."""

    image: Image
    containers: int  # how many containers use it
    shared_size: int  # bytes of its layers that other images use too


class LayerUsage(NamedTuple):
    """What `system df` reports of the store."""

    total: int  # bytes of all layers
    images: list[ImageUsage]


class Images:
    def __init__(self, store: ImageStore, bus: Bus, users: Callable[[str], list[User]]):
        self.store = store
        self.bus = bus
        self.users = users
        self.lock = trio.Lock()

    def publish(self, image_id: str, action: str, name: str | None = None) -> None:
        self.bus.publish(constructors.image(image_id, action, name))

    def resolve(self, ref: str) -> Image:
        return self.store.resolve(ref)

    def facts(self, image: Image) -> ImageFacts:
        """The image's tags and layers."""
        chain = self.store.layer_chain(image)
        return ImageFacts(self.store.tags_of(image.id), [self.store.layer_dir(c) for c in chain],
                          [self.store.layer_meta(c).size for c in chain], self.store.digests_of(image.id))

    @asynccontextmanager
    async def spooled(self, chunks: AsyncIterator[bytes], kind: str) -> AsyncIterator[Path]:
        """An uploaded tar (`import`, `load`), written whole to a scratch file in the store
        and deleted afterwards: the readers seek in it, and may need it uncompressed."""
        path = self.store.tmp / f"{kind}-{secrets.token_hex(8)}.tar"
        try:
            async with await trio.open_file(path, "wb") as out:
                async for chunk in chunks:
                    await out.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def import_stream(self, chunks: AsyncIterator[bytes], *, repo: str = "",
                            runtime: ImageRuntimeConfig, message: str = "") -> Image:
        """`docker import` of an upload, unpacked and hashed as it arrives: each chunk is
        written to a scratch file, then through a pipe to the unpacking thread; the scratch
        file is read again only if the layer's tar must be kept as uploaded (tar-split
        cannot rebuild it). The scratch file's writes are the event loop's, beside the
        unpack, which no longer copies what it reads (an import's time did not change
        measurably); before that, the upload was spooled whole and then unpacked
        (docs/performance.md)."""
        ref = reference.new_name(repo) if repo else None
        spool = self.store.tmp / f"import-{secrets.token_hex(8)}.tar"
        r, w = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # fewer wake-ups per MB; the default 64 KiB otherwise
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        try:
            spool_fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except BaseException:
            os.close(r)
            os.close(w)
            raise
        first, shut = True, False

        def open_tar() -> BinaryIO:
            nonlocal first
            if first:  # the upload as it arrives (closing it leaves the pipe to `close_reader`)
                first = False
                return open(r, "rb", buffering=1 << 20, closefd=False)
            # the rest of the upload: once the pipe ends, the feeder has written all of it
            while os.read(r, 1 << 20):
                pass
            return open(spool, "rb")

        def close_reader() -> None:
            nonlocal shut
            if not shut:
                shut = True
                os.close(r)

        box: dict[str, object] = {}

        async def unpack() -> None:
            try:
                box["image"] = await trio.to_thread.run_sync(
                    lambda: self.store.import_rootfs(open_tar, runtime=runtime, message=message))
            except Exception as exc:
                box["error"] = exc
            finally:
                close_reader()  # a feeder still sending then stops

        async def feed() -> None:
            try:
                async with trio.lowlevel.FdStream(w) as pipe:  # closed on the way out: the reader's EOF
                    try:
                        async for chunk in chunks:
                            try:
                                write_all(spool_fd, chunk)
                            except OSError as exc:
                                raise (no_space(exc, "the import's scratch file") if exc.errno in NO_SPACE
                                       else exc) from None
                            await pipe.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):  # the unpack stopped early
                        async for _ in chunks:  # the rest of the request, unread
                            pass
            except Exception as exc:  # the upload failed (the client went away, no room for the scratch
                box["upload"] = exc  # file): the unpack sees a truncated tar

        try:
            async with self.lock:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(unpack)
                    await feed()
        finally:
            close_reader()
            os.close(spool_fd)
            spool.unlink(missing_ok=True)
        if "upload" in box or "error" in box:
            raise box.get("upload") or box["error"]
        image = box["image"]
        if ref:
            await self.tag(image.id, ref.repo, ref.tag)
        self.publish(image.id, "import")
        return image

    async def import_rootfs(self, tar_path: Path, *, repo: str = "", runtime: ImageRuntimeConfig,
                            message: str = "") -> Image:
        """`docker import`: a one-layer image from a rootfs tar, tagged `repo` if given."""
        ref = reference.new_name(repo) if repo else None
        async with self.lock:
            image = await trio.to_thread.run_sync(
                lambda: self.store.import_rootfs(tar_path, runtime=runtime, message=message))
        if ref:
            await self.tag(image.id, ref.repo, ref.tag)
        self.publish(image.id, "import")
        return image

    async def ensure_busybox(self) -> None:
        """Make the built-in image at first start, and again over one an older berth made
        without its layer's tar record (the same bytes: `save` can then give them back)."""
        current = self.store.tags.get(busybox.REPO_TAG)
        if current is not None and all(self.store.has_tar_record(chain)
                                       for chain in self.store.layer_chain(self.store.images[current])):
            return
        binary = busybox.find_busybox()
        if binary is None:
            raise NotFound("no static busybox on this host: the built-in busybox image is not available")
        tmp = self.store.tmp / "busybox-rootfs.tar"
        await trio.to_thread.run_sync(busybox.write_rootfs_tar, binary, tmp)
        try:
            await self.import_rootfs(tmp, repo=busybox.REPO_TAG, runtime=busybox.RUNTIME, message=busybox.MESSAGE)
        finally:
            tmp.unlink(missing_ok=True)
        if current is not None and not self.users(current):
            await self.remove(current)  # the old built-in image, untagged now and unused

    async def tag(self, source: str, repo: str, tag: str = "") -> None:
        image = self.store.resolve(source)
        ref = reference.new_name(repo, tag)
        async with self.lock:
            await trio.to_thread.run_sync(self.store.tag, image, ref)
        self.publish(image.id, "tag", str(ref))

    async def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """`rmi`: untag, and delete once no tag, no container and no image built on it
        refers to the image; with `prune`, its untagged parents go too (`--no-prune`: not).

        Removing one of several tags only untags. The last reference (or the image by ID)
        is refused while a container uses the image, unless forced; forced, the tags go
        but the image stays until its containers are gone (their rootfs needs its layers).
        An image others were built on is refused by ID, forced or not, and by its last
        name only untagged, as dockerd: their layers start with its own.
        """
        image = self.store.resolve(ref)
        tags = self.store.tags_of(image.id)
        users = self.users(image.id)
        short = image.id[7:19]
        by_name = not image.id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
        if by_name:
            to_untag = [str(reference.parse(ref))]
            last = len(tags) == 1
            if last and users and not force:
                raise Conflict(f'conflict: unable to remove repository reference "{to_untag[0]}" (must force) - '
                               f"container {users[0].id[:12]} is using its referenced image {short}")
        else:
            to_untag = tags
            running = [u for u in users if u.live]
            if image.id in self.parents():
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has dependent child images")
            if running:
                raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image is being used by running container {running[0].id[:12]}")
            if not force and len(tags) > 1:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
            if not force and users:
                raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is being used by stopped container {users[0].id[:12]}")
        report: list[dict[str, str]] = []
        async with self.lock:
            for key in to_untag:
                await trio.to_thread.run_sync(self.store.untag, key)
                report.append({"Untagged": key})
                self.publish(image.id, "untag")
            # as dockerd: a repository's digests go with its last tag (by ID: all of them);
            # a digest of another repository still names the image, which then stays
            repos = {k.rpartition(":")[0] for k in to_untag if "@" not in k}
            left = {t.rpartition(":")[0] for t in self.store.tags_of(image.id)}
            for key in self.store.digests_of(image.id):
                if not by_name or (key.partition("@")[0] in repos - left):
                    await trio.to_thread.run_sync(self.store.untag, key)
                    report.append({"Untagged": key})
            # asked again: a container may have been created from it during the untagging
            if not self.store.tags_of(image.id) and not self.store.digests_of(image.id) \
                    and not self.users(image.id) and image.id not in self.parents():
                layers = await trio.to_thread.run_sync(self.store.delete, image)
                report += [{"Deleted": image.id}, *({"Deleted": chain} for chain in layers)]  # as dockerd's answer
                self.publish(image.id, "delete")
                # as dockerd: the build steps below it go too, up to one still tagged, used or shared
                parent = self.store.images.get(image.config.parent) if prune else None
                while parent is not None and not self.store.tags_of(parent.id) and not self.users(parent.id) \
                        and parent.id not in self.parents():
                    layers = await trio.to_thread.run_sync(self.store.delete, parent)
                    report += [{"Deleted": parent.id}, *({"Deleted": chain} for chain in layers)]
                    self.publish(parent.id, "delete")
                    parent = self.store.images.get(parent.config.parent)
        return report

    def parents(self) -> set[str]:
        """The images other images were built on (a build's steps): untagged, they are
        not listed (as `docker images` without `-a`) nor pruned while their children live."""
        return {image.config.parent for image in self.store.images.values() if image.config.parent}

    async def prune(self, filters: flt.Filters | None = None, until_ns: int | None = None) -> PruneReport:
        """Remove every unused image the filters select (dangling ones unless
        `dangling=false`), tag by tag as `rmi` would; report what went and the bytes of the
        layers deleted with them. Publishes `prune`.

        The docker CLI sends `filters={"dangling":{"true":true}}` for `image prune` and
        `{"dangling":{"false":true}}` for `image prune -a`, plus any `--filter label=…`
        (and `until`, which the API hands over as `until_ns`)."""
        filters = flt.check(filters, PRUNE_FILTERS)
        wanted: flt.Filters = {"dangling": ["true"]} if _dangling_only(filters, pruning=True) else {}
        store = self.store
        sizes = {chain: store.layer_meta(chain).size for image in store.images.values() for chain in store.layer_chain(image)}
        deleted: list[dict[str, str]] = []
        for image in self.list(wanted):
            if until_ns is not None and _created_ns(image) >= until_ns:
                continue
            if not flt.prune_match(filters, image.config.config.labels or {}, "", ""):  # label, label!
                continue
            if not self.users(image.id) and image.id in store.images:
                for ref in store.tags_of(image.id) or [image.id]:
                    deleted += await self.remove(ref)
        reclaimed = sum(size for chain, size in sizes.items() if not store.has_layer(chain))
        self.bus.publish(constructors.pruned("image", reclaimed))
        return PruneReport(deleted or None, reclaimed)

    def list(self, filters: flt.Filters | None = None) -> list[Image]:
        """Images newest first, filtered as `docker images --filter` does."""
        f = flt.check(filters, LIST_FILTERS)
        dangling = _dangling_only(f) if "dangling" in f else None
        # as dockerd: the last image named of each bound counts (a missing one is a 404)
        before = [_created_ns(self.store.resolve(ref)) for ref in f.get("before", [])][-1:]
        since = [_created_ns(self.store.resolve(ref)) for ref in f.get("since", [])][-1:]
        found = sorted(self.store.images.values(), key=lambda i: i.config.created or "", reverse=True)
        parents = self.parents()
        out = []
        for image in found:
            tags = self.store.tags_of(image.id)
            if not tags and image.id in parents:
                continue
            if dangling is not None and dangling != (not tags):
                continue
            if (before and _created_ns(image) >= before[0]) or (since and _created_ns(image) <= since[0]):
                continue
            if "reference" in f and not any(_glob_match(p, t) for p in f["reference"] for t in tags):
                continue
            if "label" in f and not flt.label_match(f["label"], image.config.config.labels or {}):
                continue
            out.append(image)
        return out

    async def save(self, names: list[str], open_stream: Callable[[], Awaitable]) -> None:
        """`GET /images/get`: plan the archive, then `open_stream()` and send it chunk by chunk.

        Planning (resolving names, checking every layer can be exported) happens before the
        stream opens, so its errors are plain HTTP errors. The lock is held until the
        archive is complete: no layer is deleted under the stream. Publishes `save` per
        image once the archive is complete."""
        async with self.lock:
            plan = await trio.to_thread.run_sync(archive.plan_save, self.store, names)
            stream = await open_stream()
            chunks = archive.save_chunks(plan)
            try:
                while (chunk := await trio.to_thread.run_sync(next, chunks, None)) is not None:
                    await stream.send(chunk)
            finally:
                chunks.close()
        for image in plan.images:
            self.publish(image.id, "save")

    async def load(self, upload: Path, quiet: bool) -> archive_load.LoadResult:
        """`POST /images/load`: load the archive spooled at `upload`; publish `load` per image."""
        plain = upload.with_suffix(".plain")
        try:
            async with self.lock:
                result = await trio.to_thread.run_sync(
                    lambda: archive_load.load(self.store, archive_load.decompress(upload, plain), quiet))
        finally:
            plain.unlink(missing_ok=True)
        for image in result.images:
            self.publish(image.id, "load")
        return result

    async def add_committed(self, parent_id: str, layer: Path | None, config: ImageRuntimeConfig,
                            history: HistoryEntry, author: str) -> Image:
        """Store a committed container's image: its layer (if it changed anything) on the
        parent's chain, and its config, naming the container's image as its `Parent` (as dockerd does)."""
        parent = self.store.images[parent_id]
        async with self.lock:
            return await trio.to_thread.run_sync(store_image, self.store, parent, layer, config, history, author,
                                                 parent.id)

    def layer_usage(self) -> LayerUsage:
        """Layer bytes in all, and each image with its users and the bytes of its layers
        other images share."""
        images = list(self.store.images.values())
        chains = {image.id: self.store.layer_chain(image) for image in images}
        holders: dict[str, int] = {}
        for chain in chains.values():
            for layer in chain:
                holders[layer] = holders.get(layer, 0) + 1
        sizes = {layer: self.store.layer_meta(layer).size for layer in holders}
        return LayerUsage(sum(sizes.values()), [
            ImageUsage(image, len(self.users(image.id)),
                       sum(sizes[layer] for layer in chains[image.id] if holders[layer] > 1))
            for image in images])


def _dangling_only(filters: flt.Filters, *, pruning: bool = False) -> bool:
    """Whether `dangling` asks for dangling images only. Of several values (the docker
    CLI adds its own to a prune's `--filter dangling=…`), as dockerd reads them: a prune
    takes every unused image if one says false, a listing only dangling ones if one says true."""
    values = {v.lower() for v in filters.get("dangling", ["true"])}
    yes, no = bool(values & {"true", "1"}), bool(values & {"false", "0"})
    if not (yes or no):
        raise BadRequest(f"invalid filter 'dangling={','.join(sorted(values))}'")
    return not no if pruning else yes


def _glob_match(pattern: str, tag: str) -> bool:
    """`reference` filter: a glob against `repo:tag`, or against the repo alone."""
    repo = tag.rpartition(":")[0]
    return fnmatchcase(tag, pattern) or fnmatchcase(repo, pattern)


def _created_ns(image: Image) -> int:
    """When the image was created (its config's time; the epoch when it has none)."""
    return timefmt.parse(image.config.created or "") or 0
