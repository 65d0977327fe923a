"""Image archives in (`docker load`): untrusted tars in Docker's layout or the OCI layout.

An archive in Docker's layout (any version: `manifest.json` with layers at
`<id>/layer.tar` or `blobs/sha256/…`) or an OCI layout alone (`index.json`, nested
indexes resolved to this host's platform), plain or gzip/bzip2/xz-compressed, is loaded
into the image store.

The archive is untrusted. It is never extracted: its index is read by `fs.unpack`'s
strict reader (a corrupt or cut-off archive is refused, not read up to the damage),
members are read in place through that index of checked names, so nothing in it is
written anywhere except layer contents, through `layers.apply_tar` (`fs.unpack` under
the layer rules), into a scratch layer. Absolute names, `..`, links that leave
the archive, device nodes and other special members, duplicate names, references to
missing members, descriptor sizes or digests that do not match, malformed JSON, and
layers that do not hash to their DiffID are 400s naming the problem. All but the layers'
contents is checked before the first layer is unpacked; a layer refused while unpacking
removes the layers this load created; configs and tags are written only once every layer
is in place. A failed load leaves the store as it was (and a crash mid-load leaves
unreferenced layers, which the store removes when it opens).
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import shutil
import tarfile
from pathlib import Path
from typing import BinaryIO

import msgspec

import gounits
from ..errors import BadRequest
from ..fs import tree, unpack
from ..models import ImageConfig
from . import reference
from .archive import (
    ANNOTATION_NAME,
    ANNOTATION_REF,
    CHUNK,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    JSONMessage,
    ManifestItem,
    OciIndex,
    OciManifest,
    ProgressDetail,
    blob_path,
)
from .reference import Reference
from .store import Image, ImageStore, chain_id, host_arch


# Layer media types load understands; apply_tar detects gzip by its magic bytes.
_LAYER_TYPES = {
    OCI_LAYER, OCI_LAYER + "+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_JSON_LIMIT = 16 << 20  # manifests, indexes and configs are small: refuse memory bombs


# --- reading the archive -----------------------------------------------------------------


def _bad(what: str) -> BadRequest:
    return BadRequest(f"invalid image archive: {what}")


def _clean(name: str) -> str:
    """A member or manifest path made relative and normal; refuses absolute and `..`."""
    if name.startswith("/"):
        raise _bad(f"{name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _bad(f"{name!r} points outside the archive")
    return "/".join(parts)


def decompress(src: Path, dst: Path) -> Path:
    """The plain tar: `src` itself, or `dst` written from a gzip/bzip2/xz `src`."""
    with open(src, "rb") as f:
        try:
            plain = unpack.uncompressed(f)
        except BadRequest as exc:
            raise _bad(exc.message) from None
        if plain is f:
            return src
        try:
            with plain, open(dst, "wb") as out:
                shutil.copyfileobj(plain, out, CHUNK)
        except (OSError, *unpack.read_errors()) as exc:
            raise _bad(f"cannot decompress: {exc}") from None
    return dst


class Archive:
    """A tar read in place: its members indexed by checked, normalised names.

    The index is read by `unpack.members`, the strict reader every untrusted tar goes
    through (a bad header, a cut-off member or a missing end-of-archive block is a 400,
    never an early end); member data is then read in place (`unpack.Section`)."""

    def __init__(self, path: Path):
        self.file = open(path, "rb")
        try:
            members = list(unpack.members(self.file))
        except BaseException:
            self.file.close()
            raise
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            name = _clean(member.name)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                kind = "device node" if member.ischr() or member.isblk() else "special file"
                raise _bad(f"member {member.name!r} is a {kind}")
            if member.sparse is not None:
                raise _bad(f"member {member.name!r} is a sparse file")
            if not name:
                if member.isdir():
                    continue  # `./`, as `tar -C dir -c .` writes
                raise _bad(f"member {member.name!r} has no name")
            if name in self.members and not (member.isdir() and self.members[name].isdir()):
                raise _bad(f"member {name!r} appears twice")
            self.members[name] = member

    def close(self) -> None:
        self.file.close()

    def has(self, name: str) -> bool:
        return _clean(name) in self.members

    def member(self, name: str, what: str) -> tarfile.TarInfo:
        """The regular file `name` names, links followed inside the archive only."""
        path = _clean(name)
        for _ in range(40):
            member = self.members.get(path)
            if member is None:
                raise _bad(f"{what} {name!r} is not in the archive")
            if member.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), member.linkname))
                if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                    raise _bad(f"symlink {member.name!r} points outside the archive")
                path = target
            elif member.islnk():
                path = _clean(member.linkname)
            elif member.isfile():
                return member
            else:
                raise _bad(f"{what} {name!r} is not a regular file")
        raise _bad(f"{what} {name!r}: too many levels of links")

    def open(self, member: tarfile.TarInfo) -> BinaryIO:
        return io.BufferedReader(unpack.Section(self.file.fileno(), member.offset_data, member.size), CHUNK)

    def read(self, name: str, what: str) -> bytes:
        member = self.member(name, what)
        if member.size > _JSON_LIMIT:
            raise _bad(f"{what} {name!r} is too large ({member.size} bytes)")
        try:
            return self.open(member).read()
        except (EOFError, OSError) as exc:
            raise _bad(f"{what} {name!r} cannot be read: {exc}") from None

    def decode(self, name: str, what: str, type_):
        return _decode(self.read(name, what), f"{what} {name!r}", type_)

    def blob(self, desc: Descriptor, what: str) -> tarfile.TarInfo:
        """The member holding `desc`'s blob, its size and digest checked."""
        if not _DIGEST.match(desc.digest):
            raise _bad(f"{what} has an invalid digest {desc.digest!r}")
        member = self.member(blob_path(desc.digest), what)
        if member.size != desc.size:
            raise _bad(f"{what} {desc.digest}: size {desc.size} in its descriptor, {member.size} in the archive")
        sha = hashlib.sha256()
        try:
            with self.open(member) as f:
                while chunk := f.read(CHUNK):
                    sha.update(chunk)
        except (EOFError, OSError) as exc:
            raise _bad(f"{what} {desc.digest} cannot be read: {exc}") from None
        if "sha256:" + sha.hexdigest() != desc.digest:
            raise _bad(f"{what} {desc.digest}: content does not match its digest")
        return member

    def decode_blob(self, desc: Descriptor, what: str, type_):
        """A small JSON blob (index, manifest) decoded as `type_`."""
        if desc.size > _JSON_LIMIT:
            raise _bad(f"{what} {desc.digest} is too large ({desc.size} bytes)")
        return _decode(self.open(self.blob(desc, what)).read(), f"{what} {desc.digest}", type_)


def _decode(data: bytes, what: str, type_):
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.DecodeError as exc:
        raise _bad(f"malformed {what}: {exc}") from None


class _Layer(msgspec.Struct):
    member: tarfile.TarInfo
    diff_id: str


class _Load(msgspec.Struct):
    """One image to load, fully checked except for its layers' contents."""

    config: bytes
    image_id: str
    layers: list[_Layer]
    tags: list[Reference]


def _config(data: bytes, source: str, layer_count: int) -> tuple[str, ImageConfig]:
    config = _decode(data, f"image config {source!r}", ImageConfig)
    if config.os and config.os != "linux":
        raise _bad(f"cannot load {config.os} image {source!r} on linux")
    if config.rootfs.type != "layers":
        raise _bad(f"image config {source!r}: rootfs type {config.rootfs.type!r}, expected 'layers'")
    for diff_id in config.rootfs.diff_ids:
        if not _DIGEST.match(diff_id):
            raise _bad(f"image config {source!r}: invalid DiffID {diff_id!r}")
    if not config.rootfs.diff_ids:
        raise _bad(f"image config {source!r} has no layers")
    if layer_count != len(config.rootfs.diff_ids):
        raise _bad(f"invalid manifest, layers length mismatch: expected {len(config.rootfs.diff_ids)}, got {layer_count}")
    return "sha256:" + hashlib.sha256(data).hexdigest(), config


def _tag(value: str, source: str) -> Reference:
    try:
        return reference.new_name(value)
    except BadRequest as exc:
        raise _bad(f"{source}: {exc.message}") from None


def _from_manifest(archive: Archive) -> list[_Load]:
    items = archive.decode("manifest.json", "manifest", list[ManifestItem] | None)
    if items is None:
        raise _bad("manifest.json is null")
    loads = []
    for item in items:
        config = archive.read(item.config, "config")
        image_id, parsed = _config(config, item.config, len(item.layers))
        layers = [_Layer(archive.member(path, "layer"), diff_id)
                  for path, diff_id in zip(item.layers, parsed.rootfs.diff_ids)]
        tags = [_tag(t, "manifest.json RepoTags") for t in item.repo_tags or []]
        loads.append(_Load(config, image_id, layers, tags))
    return loads


def _from_oci(archive: Archive) -> list[_Load]:
    index = archive.decode("index.json", "index", OciIndex)
    loads = []
    for desc in index.manifests:
        annotations = desc.annotations or {}
        name = annotations.get(ANNOTATION_NAME) or annotations.get(ANNOTATION_REF, "")
        # A bare `ref.name` is only a tag ("latest"): without a repository it names nothing.
        tags = [_tag(name, "index.json annotation")] if ":" in name.rpartition("/")[2] else []
        loads.append(_oci_image(archive, desc, tags, depth=0))
    return loads


def _oci_image(archive: Archive, desc: Descriptor, tags: list[Reference], depth: int) -> _Load:
    if depth > 4:
        raise _bad("index.json: indexes nested too deep")
    if desc.media_type in (OCI_INDEX, DOCKER_LIST):
        nested = archive.decode_blob(desc, "index", OciIndex)
        arch = host_arch()
        for child in nested.manifests:
            if child.platform is None or (child.platform.os, child.platform.architecture) == ("linux", arch):
                return _oci_image(archive, child, tags, depth + 1)
        raise _bad(f"index {desc.digest} has no image for linux/{arch}")
    if desc.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise _bad(f"unsupported manifest media type {desc.media_type!r}")
    manifest = archive.decode_blob(desc, "manifest", OciManifest)
    if manifest.config.size > _JSON_LIMIT:
        raise _bad(f"config {manifest.config.digest} is too large ({manifest.config.size} bytes)")
    config = archive.open(archive.blob(manifest.config, "config")).read()
    image_id, parsed = _config(config, manifest.config.digest, len(manifest.layers))
    layers = []
    for layer, diff_id in zip(manifest.layers, parsed.rootfs.diff_ids):
        if layer.media_type not in _LAYER_TYPES:
            raise _bad(f"layer {layer.digest}: media type {layer.media_type!r} is not supported")
        layers.append(_Layer(archive.blob(layer, "layer"), diff_id))
    return _Load(config, image_id, layers, tags)


def read_archive(archive: Archive) -> list[_Load]:
    """What the archive holds, checked (all but the layers' contents); an image listed
    more than once (the OCI index lists one manifest per tag) appears once, with all its tags."""
    if archive.has("manifest.json"):
        loads = _from_manifest(archive)
    elif archive.has("index.json"):
        loads = _from_oci(archive)
    elif archive.has("repositories"):
        raise _bad("legacy (pre-1.10) archives without manifest.json are not supported")
    else:
        raise _bad("no manifest.json or index.json: this is not a docker save or OCI archive")
    merged: dict[str, _Load] = {}
    for item in loads:
        first = merged.setdefault(item.image_id, item)
        if first is not item:
            first.tags += [t for t in item.tags if t not in first.tags]
    return list(merged.values())


# --- load: into the store -------------------------------------------------------------


class LoadResult(msgspec.Struct):
    images: list[Image]
    messages: list[JSONMessage]


def _progress(size: int) -> str:
    done = gounits.size(size, 4)
    return f"[{'=' * 49}>]  {done}/{done}"


def _unpack(store: ImageStore, archive: Archive, loads: list[_Load], quiet: bool) -> list[JSONMessage]:
    """Unpack every layer the store does not hold yet; on any failure remove the ones
    unpacked here (nothing half-loaded) and raise."""
    messages, created = [], []
    try:
        for item in loads:
            parent = ""
            for layer in item.layers:
                chain = chain_id(parent, layer.diff_id)
                if not store.has_layer(chain):
                    try:
                        store.add_layer(lambda m=layer.member: archive.open(m), parent, expected=layer.diff_id)
                    except (EOFError, OSError) as exc:
                        raise _bad(f"layer {layer.member.name!r}: {exc}") from None
                    except BadRequest as exc:
                        raise _bad(f"layer {layer.member.name!r}: {exc.message}") from None
                    created.append(chain)
                    if not quiet:
                        size = layer.member.size
                        messages.append(JSONMessage(status="Loading layer", id=layer.diff_id[7:19],
                                                    progress=_progress(size), progress_detail=ProgressDetail(size, size)))
                parent = chain
    except BaseException:
        for chain in created:
            tree.remove(store.layers / chain.removeprefix("sha256:"), ignore_errors=True)
        raise
    return messages


def load(store: ImageStore, path: Path, quiet: bool = True) -> LoadResult:
    """Load the (plain) tar at `path` into `store`: layers, then configs, then tags.

    Blocking: run it in a worker thread, with the store to itself."""
    archive = Archive(path)
    try:
        loads = read_archive(archive)
        messages = _unpack(store, archive, loads, quiet)
    finally:
        archive.close()
    images = [store.add_config(item.config) for item in loads]
    for item, image in zip(loads, images):
        for ref in item.tags:
            previous = store.tag(image, ref)
            if previous:
                messages.append(JSONMessage(stream=f"The image {ref} already exists, renaming the old one "
                                                   f"with ID {previous} to empty string\n"))
            messages.append(JSONMessage(stream=f"Loaded image: {ref}\n"))
        if not item.tags:
            messages.append(JSONMessage(stream=f"Loaded image ID: {image.id}\n"))
    return LoadResult(images, messages)
