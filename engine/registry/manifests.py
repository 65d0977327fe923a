"""Manifest formats: Docker's v2 schema 2 and OCI, single-platform or lists of them.

`parse` reads a manifest (or a list/index) into a `Manifest`; `for_platform` picks the
host's entry of a list; `schema2` writes the manifest a push sends. Vocabulary: a
*descriptor* is (media type, digest, size) of a blob; a manifest names one config blob
and its layer blobs, bottom first; a list (OCI: index) names manifests by platform.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import msgspec

from ..errors import BadRequest, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
LISTS = (DOCKER_LIST, OCI_INDEX)
LAYER_TYPES = (DOCKER_LAYER, OCI_LAYER_GZIP, OCI_LAYER, DOCKER_FOREIGN)


class Platform(msgspec.Struct, omit_defaults=True):
    architecture: str = ""
    os: str = ""
    variant: str = ""


class Descriptor(msgspec.Struct, omit_defaults=True, rename={"media_type": "mediaType"}):
    media_type: str = ""
    digest: str = ""
    size: int = 0
    platform: Platform | None = None


class _Raw(msgspec.Struct, rename={"media_type": "mediaType", "schema_version": "schemaVersion"}):
    schema_version: int = 0
    media_type: str = ""
    config: Descriptor | None = None
    layers: list[Descriptor] = []
    manifests: list[Descriptor] = []


class Manifest(NamedTuple):
    media_type: str
    config: Descriptor | None  # None for a list
    layers: list[Descriptor]
    manifests: list[Descriptor]  # a list's entries

    @property
    def is_list(self) -> bool:
        return self.media_type in LISTS


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse(data: bytes, content_type: str, name: str) -> Manifest:
    """A manifest or list from its bytes; the media type from the body or the Content-Type."""
    try:
        raw = msgspec.json.decode(data, type=_Raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"manifest of {name} is not valid JSON: {exc}") from None
    media_type = raw.media_type or content_type.split(";")[0].strip()
    if not media_type:
        media_type = OCI_INDEX if raw.manifests else OCI_MANIFEST
    if media_type in LISTS:
        return Manifest(media_type, None, [], raw.manifests)
    if media_type not in (DOCKER_MANIFEST, OCI_MANIFEST) or raw.schema_version != 2 or raw.config is None:
        raise BadRequest(f"manifest of {name} is of an unsupported kind ({media_type or 'unknown'}, schema "
                         f"{raw.schema_version}): berth pulls Docker v2 schema 2 and OCI images")
    for layer in raw.layers:
        if layer.media_type not in LAYER_TYPES:
            raise BadRequest(f"layer {layer.digest} of {name} is {layer.media_type}: berth unpacks "
                             "plain and gzip-compressed layers only")
    return Manifest(media_type, raw.config, raw.layers, [])


def for_platform(manifest: Manifest, os: str, architecture: str, name: str) -> Descriptor:
    """The list's entry for this platform (Docker's message when there is none)."""
    for entry in manifest.manifests:
        p = entry.platform or Platform()
        if p.os == os and p.architecture == architecture:
            return entry
    raise NotFound(f"no matching manifest for {os}/{architecture} in the manifest list entries ({name})")


def schema2(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """The Docker v2 schema 2 manifest of a push (its sha256 is the pushed digest)."""
    document = {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": DOCKER_LAYER, "size": d.size, "digest": d.digest} for d in layers],
    }
    return msgspec.json.format(msgspec.json.encode(document), indent=3)
