"""The image store: content-addressed configs, shared unpacked layers, and tags.

On disk, under `<root>/images`:

* `blobs/sha256/<hex>` — image config blobs; an image ID is the sha256 of its config.
* `layers/<chain-id hex>/diff` — one unpacked layer, shared read-only by every image
  (and every container's overlay) whose chain contains it; `layer.json` beside it holds
  its DiffID, parent chain and size. A layer is unpacked once: a second import of the
  same content finds the chain ID present and drops its copy.
* `repositories.json` — `{"repo:tag": "sha256:<id>"}`, rewritten atomically.

All methods are synchronous and may do bulk I/O; the Engine calls them through
`trio.to_thread.run_sync`, one thread at a time (the store is not re-entrant).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import msgspec

from ..errors import BadRequest, Conflict, no_such_image
from ..models import HistoryEntry, ImageConfig, ImageRuntimeConfig, RootFS
from .. import timefmt
from ..store import atomic_write, fsync_dir
from . import layers, reference
from .changes import apply as apply_changes
from .reference import Reference


class LayerMeta(msgspec.Struct):
    diff_id: str
    parent: str
    size: int


class Image(msgspec.Struct):
    """An image held in memory: its ID, parsed config and the config's byte size."""

    id: str
    config: ImageConfig
    config_size: int


def chain_id(parent: str, diff_id: str) -> str:
    """The OCI ChainID of a layer on top of the chain `parent` ("" for the base)."""
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


class ImageStore:
    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.layers = root / "layers"
        self.tmp = root / "tmp"
        for d in (self.blobs, self.layers, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._tags_file = root / "repositories.json"
        self.tags: dict[str, str] = {}
        self.images: dict[str, Image] = {}
        self._load()

    # --- loading and lookup -------------------------------------------------

    def _load(self) -> None:
        for tmp in self.tmp.iterdir():  # half-done imports from before a crash
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
        for blob in self.blobs.iterdir():
            data = blob.read_bytes()
            image_id = "sha256:" + blob.name
            self.images[image_id] = Image(image_id, msgspec.json.decode(data, type=ImageConfig), len(data))
        if self._tags_file.exists():
            tags = msgspec.json.decode(self._tags_file.read_bytes(), type=dict[str, str])
            self.tags = {t: i for t, i in tags.items() if i in self.images}

    def resolve(self, ref: str) -> Image:
        """Find an image by `name[:tag]`, full or short ID, or `sha256:` ID."""
        bare = ref.removeprefix("sha256:")
        if len(bare) == 64 and ("sha256:" + bare) in self.images:
            return self.images["sha256:" + bare]
        try:
            parsed = reference.parse(ref)
        except BadRequest:
            parsed = None
        if parsed and not parsed.digest and str(parsed) in self.tags:
            return self.images[self.tags[str(parsed)]]
        if all(c in "0123456789abcdef" for c in bare) and bare:
            found = [i for i in self.images if i[7:].startswith(bare)]
            if len(found) == 1:
                return self.images[found[0]]
        raise no_such_image(str(parsed) if parsed else ref)

    def tags_of(self, image_id: str) -> list[str]:
        return sorted(t for t, i in self.tags.items() if i == image_id)

    def layer_chain(self, image: Image) -> list[str]:
        """Chain IDs of the image's layers, bottom first."""
        chain, parent = [], ""
        for diff_id in image.config.rootfs.diff_ids:
            parent = chain_id(parent, diff_id)
            chain.append(parent)
        return chain

    def layer_dir(self, chain: str) -> Path:
        return self.layers / chain.removeprefix("sha256:") / "diff"

    def layer_meta(self, chain: str) -> LayerMeta:
        path = self.layers / chain.removeprefix("sha256:") / "layer.json"
        return msgspec.json.decode(path.read_bytes(), type=LayerMeta)

    def size(self, image: Image) -> int:
        return sum(self.layer_meta(c).size for c in self.layer_chain(image))

    # --- writing ------------------------------------------------------------

    def add_layer(self, tar_path: Path, parent: str) -> tuple[str, str]:
        """Unpack a layer tar on top of chain `parent`; return (chain ID, DiffID).

        The tar is unpacked into a scratch directory first and renamed into place, so a
        crash or a bad tar never leaves a half layer under a real chain ID.
        """
        scratch = Path(tempfile.mkdtemp(dir=self.tmp))
        try:
            (scratch / "diff").mkdir()
            with open(tar_path, "rb") as raw:
                diff_id, _ = layers.apply_tar(raw, str(scratch / "diff"))
            chain = chain_id(parent, diff_id)
            final = self.layers / chain.removeprefix("sha256:")
            if not final.exists():
                size = _tree_size(scratch / "diff")
                (scratch / "layer.json").write_bytes(msgspec.json.encode(LayerMeta(diff_id, parent, size)))
                os.rename(scratch, final)
                fsync_dir(self.layers)
            return chain, diff_id
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def add_image(self, config: ImageConfig) -> Image:
        """Store a config blob (its sha256 is the image ID) and return the image."""
        data = msgspec.json.encode(config)
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        blob = self.blobs / image_id[7:]
        if not blob.exists():
            atomic_write(blob, data)
        image = self.images.setdefault(image_id, Image(image_id, config, len(data)))
        return image

    def import_rootfs(self, tar_path: Path, *, changes: list[str], message: str) -> Image:
        """`docker import`: one layer from a rootfs tar, config from `changes`."""
        runtime = apply_changes(ImageRuntimeConfig(), changes)
        _, diff_id = self.add_layer(tar_path, "")
        created = timefmt.now()
        history = [HistoryEntry(created=created, comment=message, created_by="")]
        config = ImageConfig(
            architecture=_arch(), os="linux", created=created, config=runtime,
            rootfs=RootFS(diff_ids=[diff_id]), history=history, comment=message,
        )
        return self.add_image(config)

    def tag(self, image: Image, ref: Reference) -> str | None:
        """Point `ref` at `image`; return the image it pointed at before, if another."""
        key = str(ref)
        previous = self.tags.get(key)
        self.tags[key] = image.id
        self._save_tags()
        return previous if previous != image.id else None

    def untag(self, key: str) -> None:
        del self.tags[key]
        self._save_tags()

    def delete(self, image: Image) -> None:
        """Delete the image's config and every layer no other image uses."""
        if self.tags_of(image.id):
            raise Conflict(f"conflict: image {image.id[7:19]} is still tagged")
        del self.images[image.id]
        (self.blobs / image.id[7:]).unlink(missing_ok=True)
        in_use = {c for other in self.images.values() for c in self.layer_chain(other)}
        for chain in self.layer_chain(image):
            if chain not in in_use:
                shutil.rmtree(self.layers / chain.removeprefix("sha256:"), ignore_errors=True)

    def _save_tags(self) -> None:
        atomic_write(self._tags_file, msgspec.json.encode(dict(sorted(self.tags.items()))))


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
