"""Image archives (`docker save`): Docker's layout and the OCI image layout at once.

Save writes what Docker 25+ writes, so both `docker load` (any version: it reads
`manifest.json`) and OCI tools (they read `index.json`) can use the archive:

    blobs/sha256/<hex>   configs (raw bytes, as stored), layer tars, OCI manifests
    index.json           OCI index: one manifest per tag, annotated with
                         `org.opencontainers.image.ref.name` (the tag) and
                         `io.containerd.image.name` (the full name)
    manifest.json        [{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers": [...]}]
    oci-layout           {"imageLayoutVersion": "1.0.0"}
    repositories         {"repo": {"tag": "<top layer DiffID hex>"}}, Docker's legacy index

A layer blob is named by its DiffID and is the layer tar exactly as it was imported
(`ImageStore.layer_tar`, rebuilt from the unpacked directory with `tarsplit`), so its
sha256 is the DiffID the config records; a layer shared by several images is written
once. The archive is deterministic (sorted members, mtime 0): saving the same images
twice gives the same bytes. It is streamed as it is made; each layer's digest is checked
while it streams, and a mismatch (a layer changed on disk) aborts the transfer.

This module also holds the formats' JSON documents, which `archive_load` reads.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator

import msgspec

from ..errors import BadRequest, EngineError
from . import reference
from .reference import Reference
from .store import Image, ImageStore


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
ANNOTATION_NAME = "io.containerd.image.name"
CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


# --- wire formats -------------------------------------------------------------------


class Platform(msgspec.Struct, omit_defaults=True):
    architecture: str = ""
    os: str = ""
    variant: str = ""


class Descriptor(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """An OCI content descriptor (field order as the Go encoder writes it)."""

    media_type: str = ""
    digest: str
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None


class OciIndex(msgspec.Struct, rename="camel", kw_only=True):
    schema_version: int = 2
    media_type: str = OCI_INDEX
    manifests: list[Descriptor]


class OciManifest(msgspec.Struct, rename="camel", kw_only=True):
    schema_version: int = 2
    media_type: str = OCI_MANIFEST
    config: Descriptor
    layers: list[Descriptor] = []


class ManifestItem(msgspec.Struct, rename="pascal", omit_defaults=True, kw_only=True):
    """One image in a docker-save `manifest.json`."""

    config: str
    repo_tags: list[str] | None = None
    layers: list[str]
    parent: str = ""
    layer_sources: dict[str, Descriptor] | None = None


class ProgressDetail(msgspec.Struct, omit_defaults=True):
    current: int = 0
    total: int = 0


class JSONMessage(msgspec.Struct, omit_defaults=True):
    """One message of Docker's JSON progress stream (what `docker load` prints)."""

    stream: str = ""
    status: str = ""
    progress_detail: ProgressDetail | None = msgspec.field(default=None, name="progressDetail")
    progress: str = ""
    id: str = ""


# --- save ---------------------------------------------------------------------------


class _Entry(msgspec.Struct):
    """A member of the archive to write: bytes, or a layer streamed with its digest checked."""

    name: str
    size: int
    data: bytes | None = None
    chunks: Iterator[bytes] | None = None
    digest: str = ""


class SavePlan(msgspec.Struct):
    images: list[Image]
    entries: list[_Entry]


def _is_name_only(name: str) -> bool:
    """`busybox` (every tag of the repository), as opposed to `busybox:1`, an ID or a digest."""
    return "@" not in name and name.rfind(":") <= name.rfind("/")


def _select(store: ImageStore, names: list[str]) -> dict[str, list[Reference]]:
    """Image ID → the tags to save with it, in the order asked (Docker's name rules:
    a bare repository name means all of its tags, an ID means the image untagged)."""
    chosen: dict[str, list[Reference]] = {}
    for name in names:
        try:
            ref = reference.parse(name)
        except BadRequest:
            ref = None
        if ref and _is_name_only(name):
            matching = [tag for tag in map(reference.parse, sorted(store.tags)) if tag.repo == ref.repo]
            for tag in matching:
                refs = chosen.setdefault(store.tags[str(tag)], [])
                if tag not in refs:
                    refs.append(tag)
            if matching:
                continue
        image = store.resolve(name)
        refs = chosen.setdefault(image.id, [])
        if ref and not ref.digest and store.tags.get(str(ref)) == image.id and ref not in refs:
            refs.append(ref)
    return chosen


def full_name(ref: Reference) -> str:
    """`busybox:latest` → `docker.io/library/busybox:latest`, as containerd names images."""
    first = ref.repo.split("/", 1)[0]
    if "/" in ref.repo and ("." in first or ":" in first or first == "localhost"):
        return str(ref)
    return f"docker.io/{'' if '/' in ref.repo else 'library/'}{ref}"


def blob_path(digest: str) -> str:
    """Where the blob `sha256:<hex>` lives in an OCI layout."""
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def plan_save(store: ImageStore, names: list[str]) -> SavePlan:
    """Resolve `names` and lay out the archive; raises (404, or a layer that cannot be
    exported) before anything is sent."""
    if not names:
        raise BadRequest("no image names given to save")
    blobs: dict[str, _Entry] = {}
    manifest: list[ManifestItem] = []
    index: list[Descriptor] = []
    repositories: dict[str, dict[str, str]] = {}
    images = []
    for image_id, refs in _select(store, names).items():
        image = store.images[image_id]
        images.append(image)
        config = store.config_bytes(image)
        blobs.setdefault(image.id, _Entry(blob_path(image.id), len(config), config))
        layers = []
        for chain, diff_id in zip(store.layer_chain(image), image.config.rootfs.diff_ids):
            if diff_id not in blobs:
                size, chunks = store.layer_tar(chain)
                blobs[diff_id] = _Entry(blob_path(diff_id), size, chunks=chunks, digest=diff_id)
            layers.append(Descriptor(media_type=OCI_LAYER, digest=diff_id, size=blobs[diff_id].size))
        oci = msgspec.json.encode(OciManifest(
            config=Descriptor(media_type=OCI_CONFIG, digest=image.id, size=len(config)), layers=layers))
        oci_digest = "sha256:" + hashlib.sha256(oci).hexdigest()
        blobs.setdefault(oci_digest, _Entry(blob_path(oci_digest), len(oci), oci))
        here = Platform(architecture=image.config.architecture, os=image.config.os)
        for ref in refs or [None]:
            annotations = {ANNOTATION_NAME: full_name(ref), ANNOTATION_REF: ref.tag} if ref else None
            index.append(Descriptor(media_type=OCI_MANIFEST, digest=oci_digest, size=len(oci),
                                    annotations=annotations, platform=here))
        for ref in refs:
            repositories.setdefault(ref.repo, {})[ref.tag] = layers[-1].digest[7:]
        manifest.append(ManifestItem(config=blob_path(image.id), repo_tags=[str(r) for r in refs] or None,
                                     layers=[blob_path(layer.digest) for layer in layers]))
    files = {
        "index.json": msgspec.json.encode(OciIndex(manifests=index)),
        "manifest.json": msgspec.json.encode(manifest) + b"\n",
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
    }
    if repositories:
        files["repositories"] = msgspec.json.encode(repositories) + b"\n"
    entries = [_Entry("blobs", 0), _Entry("blobs/sha256", 0)]
    entries += sorted(blobs.values(), key=lambda e: e.name)
    entries += [_Entry(name, len(data), data) for name, data in files.items()]
    return SavePlan(images, entries)


def _header(entry: _Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    is_dir = entry.data is None and entry.chunks is None
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = entry.size
    info.mtime = 0  # deterministic: the same images give the same archive
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def save_chunks(plan: SavePlan) -> Iterator[bytes]:
    """The archive in chunks of about 1 MiB. Blocking (file reads, hashing): iterate it
    in a worker thread."""
    out = bytearray()
    for entry in plan.entries:
        out += _header(entry)
        if entry.data is not None:
            out += entry.data
        elif entry.chunks is not None:
            sha, sent = hashlib.sha256(), 0
            for chunk in entry.chunks:
                sha.update(chunk)
                sent += len(chunk)
                out += chunk
                if len(out) >= CHUNK:
                    yield bytes(out)
                    out.clear()
            if sent != entry.size or "sha256:" + sha.hexdigest() != entry.digest:
                raise EngineError(f"layer {entry.digest} no longer matches its DiffID on disk: the archive is incomplete")
        out += _padding(entry.size)
        if len(out) >= CHUNK:
            yield bytes(out)
            out.clear()
    out += b"\0" * (2 * _BLOCK)  # end of archive
    yield bytes(out)
