"""The image store: content-addressed configs, shared unpacked layers, and tags.

On disk, under `<root>/images`:

* `blobs/sha256/<hex>` — image config blobs; an image ID is the sha256 of its config.
* `layers/<chain-id hex>/diff` — one unpacked layer, shared read-only by every image
  (and every container's overlay) whose chain contains it; `layer.json` beside it holds
  its DiffID, parent chain, unpacked size and tar size. A layer is unpacked once: a
  second import of the same content finds the chain ID present and drops its copy.
* `layers/<chain-id hex>/tar-split.gz` — the layer tar's headers and padding
  (`tarsplit`), so `layer_tar` can give back the exact tar whose sha256 is the DiffID.
  The record reproduces the tar unless a later member displaced a file the record
  names (a tar that writes the same path twice) or a file went below a symlink of the
  tar's: the unpacker says when that happened (`Unpacked.in_place`), and only then is
  the record checked by rebuilding the tar (one more read of the layer's files). When
  it does not reproduce it, the original uncompressed tar is kept as `layer.tar`
  instead: exact, at the cost of a second copy, and only for such layers.
* `layers/<chain-id hex>/layer.tar.gz` — the layer as berth pushed it (gzip, made once
  at the first push); its digest and size are in `layer.json` (`blob_digest`,
  `blob_size`), which a pull fills too, with the digest of the blob it fetched, so a push
  to a registry that has the blob already sends nothing and compresses nothing.
* `repositories.json` — `{"repo:tag": "sha256:<id>"}`, rewritten atomically.
* `repodigests.json` — `{"repo@sha256:<manifest digest>": "sha256:<id>"}`: where an image
  was pulled from or pushed to (inspect's RepoDigests; `run repo@sha256:…`).

A layer directory appears by one rename once complete; configs are written after their
layers, tags last. Layers that no image refers to (a load or import cut short by a
crash) are removed when the store opens.

All methods are synchronous and may do bulk I/O; the Engine calls them through
`trio.to_thread.run_sync`, one thread at a time (the store is not re-entrant).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgspec

from .. import timefmt
from ..errors import BadRequest, Conflict, EngineError, no_such_image
from ..models import HistoryEntry, ImageConfig, ImageRuntimeConfig, RootFS
from ..fs import tree
from ..fs.store import atomic_write, fsync_dir, tree_size
from . import layers, reference, tarsplit
from .reference import Reference

# ISA-L's level 2 (of 0-3): about zlib level 1's ratio at several times its speed; a
# layer is compressed once and its blob kept, so the choice is made once per layer
COMPRESSION = 2


class LayerMeta(msgspec.Struct):
    diff_id: str
    parent: str
    size: int
    tar_size: int = 0  # 0: stored by a berth that did not keep layer tars
    blob_digest: str = ""  # the compressed blob a registry knows this layer by ("": none yet)
    blob_size: int = 0


SPLIT = "tar-split.gz"
ORIGINAL = "layer.tar"
BLOB = "layer.tar.gz"


class Image(msgspec.Struct):
    """An image held in memory: its ID, parsed config and the config's byte size."""

    id: str
    config: ImageConfig
    config_size: int


class UnpackedLayer(NamedTuple):
    """A layer unpacked into a scratch directory, not yet in the store."""

    scratch: Path
    diff_id: str
    tar_size: int
    size: int

    def discard(self) -> None:
        """Remove the scratch directory (nothing, once the layer was renamed into place)."""
        tree.remove(self.scratch, ignore_errors=True)


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
        self._digests_file = root / "repodigests.json"
        self.tags: dict[str, str] = {}
        self.digests: dict[str, str] = {}  # "repo@sha256:…" → image ID
        self.images: dict[str, Image] = {}
        self._load()

    # --- loading and lookup -------------------------------------------------

    def _load(self) -> None:
        for tmp in self.tmp.iterdir():  # half-done imports from before a crash
            tree.remove(tmp, ignore_errors=True)
        for blob in self.blobs.iterdir():
            data = blob.read_bytes()
            image_id = "sha256:" + blob.name
            self.images[image_id] = Image(image_id, msgspec.json.decode(data, type=ImageConfig), len(data))
        if self._tags_file.exists():
            tags = msgspec.json.decode(self._tags_file.read_bytes(), type=dict[str, str])
            self.tags = {t: i for t, i in tags.items() if i in self.images}
        if self._digests_file.exists():
            digests = msgspec.json.decode(self._digests_file.read_bytes(), type=dict[str, str])
            self.digests = {d: i for d, i in digests.items() if i in self.images}
        in_use = {c.removeprefix("sha256:") for image in self.images.values() for c in self.layer_chain(image)}
        for layer in self.layers.iterdir():
            if layer.name not in in_use:  # unpacked, but its image never got written
                tree.remove(layer, ignore_errors=True)

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
        if parsed and parsed.digest and str(parsed) in self.digests:
            return self.images[self.digests[str(parsed)]]
        if all(c in "0123456789abcdef" for c in bare) and bare:
            found = [i for i in self.images if i[7:].startswith(bare)]
            if len(found) == 1:
                return self.images[found[0]]
        raise no_such_image(str(parsed) if parsed else ref)

    def tags_of(self, image_id: str) -> list[str]:
        return sorted(t for t, i in self.tags.items() if i == image_id)

    def digests_of(self, image_id: str) -> list[str]:
        """The image's RepoDigests (`repo@sha256:…`)."""
        return sorted(d for d, i in self.digests.items() if i == image_id)

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

    def has_layer(self, chain: str) -> bool:
        """Whether the layer with this chain ID is unpacked here already."""
        return (self.layers / chain.removeprefix("sha256:")).exists()

    def add_layer(self, open_tar: Callable[[], BinaryIO], parent: str, expected: str = "") -> tuple[str, str]:
        """Unpack a layer tar on top of chain `parent`; return (chain ID, DiffID).

        `open_tar` opens the tar (plain or gzip) from its start; it is called a second
        time only if the original bytes must be kept. With `expected`, a tar whose
        digest is not that DiffID is refused. The tar is unpacked into a scratch
        directory first and renamed into place, so a crash or a bad tar never leaves a
        half layer under a real chain ID.
        """
        unpacked = self.unpack_layer(open_tar, expected)
        try:
            return self.commit_layer(unpacked, parent)
        finally:
            unpacked.discard()

    def unpack_layer(self, open_tar: Callable[[], BinaryIO], expected: str = "") -> UnpackedLayer:
        """The first half of `add_layer`, which touches nothing of the store: the layer
        unpacked into a scratch directory with the record to rebuild its tar. Layers of
        one image may be unpacked at once, in any order (the caller discards them)."""
        scratch = Path(tempfile.mkdtemp(dir=self.tmp))
        try:
            diff = scratch / "diff"
            diff.mkdir()
            from isal import igzip  # at the first image operation (see fs.unpack.read_errors)

            with open_tar() as raw, igzip.IGzipFile(scratch / SPLIT, "wb", mtime=0, compresslevel=1) as split:
                done = layers.apply_tar(raw, str(diff), tarsplit.Recorder(split))
            diff_id = done.digest
            if expected and diff_id != expected:
                raise BadRequest(f"layer digest {diff_id} does not match its DiffID {expected}")
            if not done.in_place and not tarsplit.reproduces(scratch / SPLIT, diff, diff_id):
                (scratch / SPLIT).unlink()
                with open_tar() as raw, open(scratch / ORIGINAL, "wb") as out:
                    shutil.copyfileobj(layers.uncompressed(raw), out, 1 << 20)
            return UnpackedLayer(scratch, diff_id, done.size, tree_size(diff))
        except BaseException:
            tree.remove(scratch, ignore_errors=True)
            raise

    def commit_layer(self, unpacked: UnpackedLayer, parent: str) -> tuple[str, str]:
        """The second half of `add_layer` (the caller holds the store's lock): the
        unpacked layer renamed into place on top of chain `parent`; (chain ID, DiffID)."""
        diff_id, scratch = unpacked.diff_id, unpacked.scratch
        chain = chain_id(parent, diff_id)
        final = self.layers / chain.removeprefix("sha256:")
        if final.exists() and self.has_tar_record(chain):
            return chain, diff_id
        meta = LayerMeta(diff_id, parent, unpacked.size, unpacked.tar_size)
        if final.exists():
            # Stored by an older berth without the tar's record: this import brings
            # the same content, so its record completes the layer (save works again).
            record = scratch / (SPLIT if (scratch / SPLIT).exists() else ORIGINAL)
            os.rename(record, final / record.name)
            atomic_write(final / "layer.json", msgspec.json.encode(meta))
            return chain, diff_id
        (scratch / "layer.json").write_bytes(msgspec.json.encode(meta))
        os.rename(scratch, final)
        fsync_dir(self.layers)
        return chain, diff_id

    def has_tar_record(self, chain: str) -> bool:
        """Whether `layer_tar` can give this layer's tar back (berth before save could not)."""
        home = self.layers / chain.removeprefix("sha256:")
        return (home / ORIGINAL).exists() or ((home / SPLIT).exists() and self.layer_meta(chain).tar_size > 0)

    def layer_tar(self, chain: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the layer's tar exactly as it was stored: its sha256 is the DiffID."""
        home = self.layers / chain.removeprefix("sha256:")
        if (home / ORIGINAL).exists():
            return (home / ORIGINAL).stat().st_size, _file_chunks(home / ORIGINAL)
        meta = self.layer_meta(chain)
        if (home / SPLIT).exists() and meta.tar_size:
            return meta.tar_size, tarsplit.rebuild(home / SPLIT, home / "diff")
        raise EngineError(f"layer {meta.diff_id} was stored by an older berth that did not keep layer tars: "
                          "remove the image and import or load it again to save it")

    def add_config(self, data: bytes) -> Image:
        """Store a config blob as given (a loaded image keeps its ID: the sha256 of these
        bytes); a config that is not a valid image config is a 400."""
        try:
            config = msgspec.json.decode(data, type=ImageConfig)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            raise BadRequest(f"invalid image config: {exc}") from None
        return self._store_config(data, config)

    def config_bytes(self, image: Image) -> bytes:
        """The image's config blob as stored (its sha256 is the image ID)."""
        return (self.blobs / image.id[7:]).read_bytes()

    def add_image(self, config: ImageConfig) -> Image:
        """Store a config blob (its sha256 is the image ID) and return the image."""
        return self._store_config(msgspec.json.encode(config), config)

    def _store_config(self, data: bytes, config: ImageConfig) -> Image:
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        blob = self.blobs / image_id[7:]
        if not blob.exists():
            atomic_write(blob, data)
        return self.images.setdefault(image_id, Image(image_id, config, len(data)))

    def import_rootfs(self, tar: Path | Callable[[], BinaryIO], *, runtime: ImageRuntimeConfig, message: str) -> Image:
        """`docker import`: one layer from a rootfs tar (a path, or an `open_tar` as
        `add_layer` takes), with the runtime config given (its `--change`s applied)."""
        _, diff_id = self.add_layer(tar if callable(tar) else lambda: open(tar, "rb"), "")
        created = timefmt.now()
        history = [HistoryEntry(created=created, comment=message, created_by="")]
        config = ImageConfig(
            architecture=host_arch(), os="linux", created=created, config=runtime,
            rootfs=RootFS(diff_ids=[diff_id]), history=history, comment=message,
        )
        return self.add_image(config)

    def tag(self, image: Image, ref: Reference) -> str | None:
        """Point `ref` at `image`; return the image it pointed at before, if another."""
        key = str(ref)
        previous = self.tags.get(key)
        if previous != image.id:  # unchanged: no write (a pull of an image berth has)
            self._save_tags({**self.tags, key: image.id})
        return previous if previous != image.id else None

    def untag(self, key: str) -> None:
        if key in self.digests:
            self._save_digests({k: v for k, v in self.digests.items() if k != key})
        else:
            self._save_tags({k: v for k, v in self.tags.items() if k != key})

    def add_digest(self, image: Image, repo: str, digest: str) -> None:
        """Remember that `image` is `repo@digest` in a registry: every such digest, as
        dockerd (a manifest list's and its entry's, a Docker and an OCI manifest's)."""
        if self.digests.get(f"{repo}@{digest}") != image.id:
            self._save_digests({**self.digests, f"{repo}@{digest}": image.id})

    def _save_digests(self, digests: dict[str, str]) -> None:
        atomic_write(self._digests_file, msgspec.json.encode(dict(sorted(digests.items()))))
        self.digests = digests

    # --- registry blobs -------------------------------------------------------

    def set_blob(self, chain: str, digest: str, size: int) -> None:
        """Record the compressed blob a registry knows the layer by (a pull's)."""
        meta = self.layer_meta(chain)
        if (meta.blob_digest, meta.blob_size) != (digest, size):
            self._drop_blob(chain)
            meta.blob_digest, meta.blob_size = digest, size
            atomic_write(self.layers / chain.removeprefix("sha256:") / "layer.json", msgspec.json.encode(meta))

    def _drop_blob(self, chain: str) -> None:
        (self.layers / chain.removeprefix("sha256:") / BLOB).unlink(missing_ok=True)

    def blob_path(self, chain: str) -> Path | None:
        """The layer's gzip blob kept by a push, if there is one (its digest: `blob_digest`)."""
        path = self.layers / chain.removeprefix("sha256:") / BLOB
        return path if path.exists() else None

    def compress_layer(self, chain: str) -> LayerMeta:
        """Make the layer's gzip blob (once: it is kept beside the layer, its digest and
        size in `layer.json`); return the updated meta."""
        from isal import igzip  # at the first image operation (see fs.unpack.read_errors)

        home = self.layers / chain.removeprefix("sha256:")
        meta = self.layer_meta(chain)
        if meta.blob_digest and (home / BLOB).exists():
            return meta
        _, chunks = self.layer_tar(chain)
        fd, scratch = tempfile.mkstemp(dir=self.tmp)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as raw:
                hashing = _HashingWriter(raw, digest)
                with igzip.IGzipFile(fileobj=hashing, mode="wb", mtime=0, compresslevel=COMPRESSION) as gz:
                    for chunk in chunks:
                        gz.write(chunk)
                raw.flush()
                os.fsync(raw.fileno())
                size = hashing.size
            os.rename(scratch, home / BLOB)
        except BaseException:
            Path(scratch).unlink(missing_ok=True)
            raise
        meta.blob_digest, meta.blob_size = "sha256:" + digest.hexdigest(), size
        atomic_write(home / "layer.json", msgspec.json.encode(meta))
        return meta

    def drop_unused_layers(self, chains: list[str]) -> None:
        """Delete those of `chains` that no image refers to (a pull that failed half way)."""
        in_use = {c for image in self.images.values() for c in self.layer_chain(image)}
        for chain in chains:
            if chain not in in_use:
                tree.remove(self.layers / chain.removeprefix("sha256:"), ignore_errors=True)

    def delete(self, image: Image) -> list[str]:
        """Delete the image's config and every layer no other image uses; return the
        chain IDs of those layers, the top one first (what dockerd reports deleted)."""
        if self.tags_of(image.id):
            raise Conflict(f"conflict: image {image.id[7:19]} is still tagged")
        del self.images[image.id]
        if any(i == image.id for i in self.digests.values()):
            self._save_digests({k: v for k, v in self.digests.items() if v != image.id})
        (self.blobs / image.id[7:]).unlink(missing_ok=True)
        in_use = {c for other in self.images.values() for c in self.layer_chain(other)}
        gone = [chain for chain in reversed(self.layer_chain(image)) if chain not in in_use]
        for chain in gone:
            tree.remove(self.layers / chain.removeprefix("sha256:"), ignore_errors=True)
        return gone

    def _save_tags(self, tags: dict[str, str]) -> None:
        """Write `tags`, then take them: a failed write (a full disk) changes nothing."""
        atomic_write(self._tags_file, msgspec.json.encode(dict(sorted(tags.items()))))
        self.tags = tags


def host_arch() -> str:
    """This host's architecture in OCI's words (amd64, arm64, …)."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class _HashingWriter:
    """A file that hashes and counts what is written through it (the compressed bytes)."""

    def __init__(self, raw: BinaryIO, digest):
        self.raw, self.digest, self.size = raw, digest, 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


