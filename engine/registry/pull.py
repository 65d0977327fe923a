"""`docker pull`: a manifest, its config and the layers berth lacks, verified and stored.

The steps, and what each failure leaves (nothing, in every case):

1. The manifest by tag or digest (a list: the host platform's entry, fetched by its
   digest). Bytes fetched by digest must hash to it. Missing: 404 before any progress.
2. The config blob, verified against its digest: its sha256 is the image ID, as Docker's.
3. The layers whose chain berth lacks, `CONCURRENT` at a time bottom first, each into a
   scratch file, hashed as it streams and refused (named by its digest) if its digest
   or size differ. A connection that breaks midway resumes where it stood (`Range`).
   Layers berth has already are not fetched ("Already exists"); one another pull is
   fetching now is waited for, not fetched twice ("Waiting").
4. Each layer, as soon as it is downloaded, unpacked in a thread into a scratch
   directory (`ImageStore.unpack_layer`: the one unpacker; its DiffID checked against
   the config), beside the downloads and the other layers' unpacking.
5. Bottom first, each layer as soon as it and those below it are unpacked, moved into
   the store under the image store's lock (`ImageStore.commit_layer`, a rename); then
   the config, the tag and the RepoDigest. A failure deletes the layers this pull added
   that no image and no other pull in flight relies on; the scratch files and
   directories go in every case.
"""

from __future__ import annotations

import hashlib
import secrets

import msgspec
import trio

from ..errors import BadRequest, EngineError, NotFound
from ..images.reference import Reference
from ..images.store import ImageStore, UnpackedLayer, chain_id
from ..models import ImageConfig
from . import manifests
from .claims import Claims
from .client import RETRIES, Client, Unreachable, collapse
from .progress import Reporter

MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20
CONCURRENT = 3  # layers downloaded at once, as dockerd's max-concurrent-downloads


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
        data = await _read_limited(client, response, MAX_MANIFEST, f"manifest of {name}")
        content_type = response.headers.get("content-type", "")
    digest = manifests.digest_of(data)
    if target.startswith("sha256:") and digest != target:
        raise EngineError(f"manifest verification failed for digest {target}")
    return data, digest, manifests.parse(data, content_type, name)


async def _read_limited(client: Client, response, limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in client.body(response):
        data += chunk
        if len(data) > limit:
            raise BadRequest(f"{what} is larger than {limit} bytes")
    return bytes(data)


async def fetch_config(client: Client, blob: manifests.Descriptor, name: str) -> bytes:
    async with client.request("GET", f"blobs/{blob.digest}", stream=True) as response:
        if response.status_code != 200:
            raise await client.refused(response, f"config {blob.digest} of {name}")
        data = await _read_limited(client, response, MAX_CONFIG, f"config of {name}")
    if manifests.digest_of(data) != blob.digest:
        raise EngineError(f"image config verification failed for digest {blob.digest}")
    return data


async def download(client: Client, layer: manifests.Descriptor, path, reporter: Reporter) -> None:
    """Fetch one layer blob into `path`, hashing as it streams; resume a broken transfer
    where it stood; refuse the blob (by digest) if it is not the one the manifest names."""
    short = layer.digest[7:19]
    digest, got, failures = hashlib.sha256(), 0, 0
    refused = EngineError(f"filesystem layer verification failed for digest {layer.digest}")
    async with await trio.open_file(path, "wb") as out:
        while True:
            try:
                async with client.request("GET", f"blobs/{layer.digest}", stream=True,
                                          headers={"Range": f"bytes={got}-"} if got else None) as response:
                    if response.status_code == 200 and got:  # the whole blob again, not the rest
                        digest, got = hashlib.sha256(), 0
                        await out.seek(0)
                        await out.truncate()
                    elif response.status_code not in (200, 206):
                        raise await client.refused(response, f"layer {layer.digest}")
                    async for chunk in client.body(response):
                        got += len(chunk)
                        if layer.size and got > layer.size:
                            raise refused  # more than the manifest said: stop reading at once
                        digest.update(chunk)
                        await out.write(chunk)
                        await reporter.bytes("Downloading", short, got, layer.size)
                break
            except Unreachable:
                failures += 1
                if failures > RETRIES:
                    raise
                await client.back_off(failures)
    await reporter.bytes("Downloading", short, got, layer.size, final=True)
    await reporter.say("Verifying Checksum", short, detail=True)
    if got != layer.size or "sha256:" + digest.hexdigest() != layer.digest:
        raise refused
    await reporter.say("Download complete", short, detail=True)


class _Layers:
    """One pull's layers: which it fetches, which it waits for, and its scratch files."""

    def __init__(self, store: ImageStore, claims: Claims, manifest: manifests.Manifest, chains: list[str]):
        self.claims = claims
        self.chains = chains
        self.descriptors = manifest.layers
        token = secrets.token_hex(6)
        self.mine: dict[int, trio.Event] = {}  # fetched by this pull: set when its file is complete
        self.theirs: dict[int, trio.Event] = {}  # being fetched by another pull
        for i, chain in enumerate(chains):
            if store.has_layer(chain):
                continue
            if chain in claims.fetching:
                self.theirs[i] = claims.fetching[chain]
            else:
                self.mine[i] = claims.fetching[chain] = trio.Event()
        self.files = {i: store.tmp / f"pull-{token}-{i}" for i in range(len(chains))}
        self.ready = {i: trio.Event() for i in self.mine}  # set when unpacked
        self.unpacked: dict[int, UnpackedLayer] = {}
        self.added: list[str] = []

    def status(self, i: int) -> str:
        return "Pulling fs layer" if i in self.mine else "Waiting" if i in self.theirs else "Already exists"

    def release(self, i: int) -> None:
        """Tell pulls waiting for layer `i` that this pull is done with it."""
        if self.claims.fetching.get(self.chains[i]) is self.mine[i]:
            del self.claims.fetching[self.chains[i]]
        self.mine[i].set()


async def _fetch_and_unpack(client: Client, store: ImageStore, layers: _Layers, i: int, diff_id: str,
                            reporter: Reporter, downloads: trio.CapacityLimiter | None = None) -> None:
    """Download layer `i` and unpack it into a scratch directory (not yet in the store)."""
    descriptor, short = layers.descriptors[i], layers.descriptors[i].digest[7:19]
    async with downloads or trio.CapacityLimiter(1):
        await download(client, descriptor, layers.files[i], reporter)
    await reporter.bytes("Extracting", short, 0, descriptor.size, final=True)
    # Unpacking is mostly inflating and writing files, which release the GIL: the
    # layers of a pull unpack side by side in threads, beside the downloads.
    layers.unpacked[i] = await trio.to_thread.run_sync(
        lambda: store.unpack_layer(lambda: open(layers.files[i], "rb"), diff_id))
    layers.files[i].unlink(missing_ok=True)
    await reporter.bytes("Extracting", short, descriptor.size, descriptor.size, final=True)


async def _fetch_all(client: Client, store: ImageStore, layers: _Layers, diff_ids: list[str],
                     reporter: Reporter) -> None:
    downloads = trio.CapacityLimiter(CONCURRENT)

    async def fetch(i: int) -> None:
        await _fetch_and_unpack(client, store, layers, i, diff_ids[i], reporter, downloads)
        layers.ready[i].set()

    async with trio.open_nursery() as nursery:
        for i in sorted(layers.mine):  # bottom first: the bottom layer is the first one stored
            nursery.start_soon(fetch, i, name=f"pull {layers.descriptors[i].digest[:19]}")


async def _store_all(client: Client, store: ImageStore, lock: trio.Lock, layers: _Layers, parents: list[str],
                     diff_ids: list[str], reporter: Reporter) -> None:
    """Put the unpacked layers in the store bottom first, each as soon as it and those
    below it are ready (fetching one itself if the pull that was fetching it gave up)."""
    for i, chain in enumerate(layers.chains):
        descriptor, short = layers.descriptors[i], layers.descriptors[i].digest[7:19]
        if i in layers.theirs:
            await layers.theirs[i].wait()
            if store.has_layer(chain):
                await reporter.say("Pull complete", short, detail=True)
                continue
            await _fetch_and_unpack(client, store, layers, i, diff_ids[i], reporter)
        elif i in layers.mine:
            await layers.ready[i].wait()
        else:
            continue
        async with lock:
            new = not store.has_layer(chain)
            await trio.to_thread.run_sync(store.commit_layer, layers.unpacked[i], parents[i])
            if new:
                layers.added.append(chain)
            await trio.to_thread.run_sync(store.set_blob, chain, descriptor.digest, descriptor.size)
        if i in layers.mine:
            layers.release(i)
        await reporter.say("Pull complete", short, detail=True)


async def pull(client: Client, store: ImageStore, lock: trio.Lock, ref: Reference, reporter: Reporter, *,
               os: str, architecture: str, claims: Claims | None = None,
               sources: dict[tuple[str, str], str] | None = None) -> Pulled:
    """Pull `ref` through `client`. `claims`: shared with the pulls running beside this
    one. `sources` ((host, blob digest) → repository), if given, learns where each layer
    blob came from, for cross-repository mounts on push."""
    claims = claims or Claims()
    name = str(ref)
    target = ref.digest or ref.tag
    _, digest, manifest = await fetch_manifest(client, target, name)
    if manifest.is_list:
        entry = manifests.for_platform(manifest, os, architecture, name)
        _, _, manifest = await fetch_manifest(client, entry.digest, name)
        if manifest.is_list:
            raise BadRequest(f"manifest list of {name} names another list")
    await reporter.say(f"Pulling from {client.path}", target)
    local = store.images.get(manifest.config.digest)  # the config's digest is the image ID
    config_bytes = store.config_bytes(local) if local else await fetch_config(client, manifest.config, name)
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
    async with lock:  # a failed pull's clean-up holds it: what is present stays present
        claims.pins.update(chains)
        layers = _Layers(store, claims, manifest, chains)
    try:
        for i, layer in enumerate(manifest.layers):
            await reporter.say(layers.status(i), layer.digest[7:19], detail=True)
        if layers.mine or layers.theirs:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_fetch_all, client, store, layers, diff_ids, reporter)
                    nursery.start_soon(_store_all, client, store, lock, layers, parents, diff_ids, reporter)
            except BaseExceptionGroup as group:
                raise collapse(group) from None
        async with lock:
            known = store.digests.get(f"{ref.repo}@{digest}") if ref.digest else store.tags.get(name)
            image = local or await trio.to_thread.run_sync(store.add_config, config_bytes)
            if not ref.digest and known != image.id:
                await trio.to_thread.run_sync(store.tag, image, ref)
            if store.digests.get(f"{ref.repo}@{digest}") != image.id:
                await trio.to_thread.run_sync(store.add_digest, image, ref.repo, digest)
    except BaseException:
        with trio.CancelScope(shield=True):
            async with lock:
                claims.unpin(chains)
                unused = [c for c in layers.added if c not in claims.pins]
                await trio.to_thread.run_sync(store.drop_unused_layers, unused)
        raise
    else:
        claims.unpin(chains)
    finally:
        for i in layers.mine:
            layers.release(i)
        for path in layers.files.values():
            path.unlink(missing_ok=True)
        for unpacked in layers.unpacked.values():
            unpacked.discard()  # nothing, for those in the store now
    if sources is not None:
        for layer in manifest.layers:
            sources[(client.host, layer.digest)] = client.path
    await reporter.say(f"Digest: {digest}")
    fresh = known != image.id
    await reporter.say(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for {name}")
    return Pulled(image.id, digest, fresh)
