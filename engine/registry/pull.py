"""`docker pull`: a manifest, its config and the layers berth lacks, verified and stored.

The steps, and what each failure leaves (nothing, in every case):

1. The manifest by tag or digest (a list: the host platform's entry, fetched by its
   digest). Bytes fetched by digest must hash to it. Missing: 404 before any progress.
2. The config blob, verified against its digest: its sha256 is the image ID, as Docker's.
3. The layers whose chain berth lacks, downloaded at once into scratch files, each
   hashed as it streams and refused (named by its digest) if its digest or size differ.
   Layers berth has already are not fetched ("Already exists").
4. Under the image store's lock, bottom first: each layer through `ImageStore.add_layer`
   (the one unpacker; its DiffID checked against the config), then the config, the tag
   and the RepoDigest. A failure here deletes the layers this pull added and no image
   uses; the scratch files go in every case.
"""

from __future__ import annotations

import hashlib
import secrets

import msgspec
import trio

from ..errors import BadRequest, EngineError, NotFound
from ..images.reference import Reference
from ..images.store import ImageStore, chain_id
from ..models import ImageConfig
from . import manifests
from .client import Client, collapse
from .progress import Reporter

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20


class Pulled(msgspec.Struct):
    image_id: str
    digest: str
    fresh: bool  # False: "Image is up to date"


async def fetch_manifest(client: Client, target: str, name: str) -> tuple[bytes, str, manifests.Manifest]:
    """(bytes, digest, parsed) of the manifest `target` (a tag or a digest) names."""
    async with client.request("GET", f"manifests/{target}", headers={"Accept": manifests.ACCEPT},
                              stream=True) as response:
        if response.status_code != 200:
            error = await client.refused(response, f"manifest for {name}")
            if isinstance(error, NotFound):
                raise NotFound(f"manifest for {name} not found: {error.message.partition(': ')[2]}")
            if error.status in (401, 403):
                raise NotFound(f"pull access denied for {name.partition('@')[0].rpartition(':')[0] or name}, "
                               f"repository does not exist or may require 'docker login': "
                               f"{error.message.partition(': ')[2]}")
            raise error
        data = await _read_limited(response, MAX_MANIFEST, f"manifest of {name}")
        content_type = response.headers.get("content-type", "")
    digest = manifests.digest_of(data)
    if target.startswith("sha256:") and digest != target:
        raise EngineError(f"manifest verification failed for digest {target}")
    return data, digest, manifests.parse(data, content_type, name)


async def _read_limited(response, limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > limit:
            raise BadRequest(f"{what} is larger than {limit} bytes")
    return bytes(data)


async def fetch_config(client: Client, blob: manifests.Descriptor, name: str) -> bytes:
    async with client.request("GET", f"blobs/{blob.digest}", stream=True) as response:
        if response.status_code != 200:
            raise await client.refused(response, f"config {blob.digest} of {name}")
        data = await _read_limited(response, MAX_CONFIG, f"config of {name}")
    if manifests.digest_of(data) != blob.digest:
        raise EngineError(f"image config verification failed for digest {blob.digest}")
    return data


async def download(client: Client, layer: manifests.Descriptor, path, reporter: Reporter) -> None:
    """Fetch one layer blob into `path`, hashing as it streams; refuse it (by digest) if
    it is not the blob the manifest names."""
    short = layer.digest[7:19]
    digest, got = hashlib.sha256(), 0
    refused = EngineError(f"filesystem layer verification failed for digest {layer.digest}")
    async with client.request("GET", f"blobs/{layer.digest}", stream=True) as response:
        if response.status_code != 200:
            raise await client.refused(response, f"layer {layer.digest}")
        async with await trio.open_file(path, "wb") as out:
            async for chunk in response.aiter_raw(1 << 20):
                got += len(chunk)
                if layer.size and got > layer.size:
                    raise refused  # more than the manifest said: stop reading at once
                digest.update(chunk)
                await out.write(chunk)
                await reporter.bytes("Downloading", short, got, layer.size)
    await reporter.bytes("Downloading", short, got, layer.size, final=True)
    await reporter.say("Verifying Checksum", short, detail=True)
    if got != layer.size or "sha256:" + digest.hexdigest() != layer.digest:
        raise refused
    await reporter.say("Download complete", short, detail=True)


async def pull(client: Client, store: ImageStore, lock: trio.Lock, ref: Reference, reporter: Reporter, *,
               os: str, architecture: str, sources: dict[tuple[str, str], str] | None = None) -> Pulled:
    """Pull `ref` through `client`; `sources` ((host, blob digest) → repository), if
    given, learns where each layer blob came from, for cross-repository mounts on push."""
    name = str(ref)
    target = ref.digest or ref.tag
    _, digest, manifest = await fetch_manifest(client, target, name)
    if manifest.is_list:
        entry = manifests.for_platform(manifest, os, architecture, name)
        _, _, manifest = await fetch_manifest(client, entry.digest, name)
        if manifest.is_list:
            raise BadRequest(f"manifest list of {name} names another list")
    await reporter.say(f"Pulling from {client.path}", target)
    config_bytes = await fetch_config(client, manifest.config, name)
    try:
        config = msgspec.json.decode(config_bytes, type=ImageConfig)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid image config of {name}: {exc}") from None
    diff_ids = config.rootfs.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise BadRequest(f"image {name} has {len(manifest.layers)} layers but its config names {len(diff_ids)}")
    parents, chains, parent = [], [], ""
    for diff_id in diff_ids:
        parents.append(parent)
        parent = chain_id(parent, diff_id)
        chains.append(parent)
    missing = [i for i, chain in enumerate(chains) if not store.has_layer(chain)]
    for i, layer in enumerate(manifest.layers):
        await reporter.say("Already exists" if i not in missing else "Pulling fs layer", layer.digest[7:19],
                           detail=True)
    token = secrets.token_hex(6)
    files = {i: store.tmp / f"pull-{token}-{i}" for i in missing}
    added: list[str] = []
    try:
        try:
            async with trio.open_nursery() as nursery:
                for i in missing:
                    nursery.start_soon(download, client, manifest.layers[i], files[i], reporter,
                                       name=f"pull {manifest.layers[i].digest[:19]}")
        except BaseExceptionGroup as group:
            raise collapse(group) from None
        async with lock:
            for i in missing:
                layer, short = manifest.layers[i], manifest.layers[i].digest[7:19]
                await reporter.bytes("Extracting", short, 0, layer.size, final=True)
                new = not store.has_layer(chains[i])
                chain, _ = await trio.to_thread.run_sync(
                    lambda i=i: store.add_layer(lambda: open(files[i], "rb"), parents[i], diff_ids[i]))
                if new:
                    added.append(chain)
                await trio.to_thread.run_sync(store.set_blob, chain, layer.digest, layer.size)
                await reporter.bytes("Extracting", short, layer.size, layer.size, final=True)
                await reporter.say("Pull complete", short, detail=True)
            known = store.digests.get(f"{ref.repo}@{digest}") if ref.digest else store.tags.get(name)
            image = await trio.to_thread.run_sync(store.add_config, config_bytes)
            if not ref.digest:
                await trio.to_thread.run_sync(store.tag, image, ref)
            await trio.to_thread.run_sync(store.add_digest, image, ref.repo, digest)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store.drop_unused_layers, added)
        raise
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
    if sources is not None:
        for layer in manifest.layers:
            sources[(client.host, layer.digest)] = client.path
    await reporter.say(f"Digest: {digest}")
    fresh = known != image.id
    await reporter.say(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for {name}")
    return Pulled(image.id, digest, fresh)
