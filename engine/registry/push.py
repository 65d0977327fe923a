"""`docker push`: the layers a registry lacks, the config, then the manifest.

Per layer, top first as Docker shows them: its gzip blob (made once and kept by the
store, so a second push compresses nothing), a `HEAD` to skip what the registry has,
else a monolithic upload (`POST …/blobs/uploads/`, then `PUT <location>?digest=…`).
The config blob goes the same way, the manifest last: the registry never holds a
manifest whose blobs it lacks. A layer blob berth pulled from or pushed to another
repository of the same registry (`sources`, kept by the registries service for the
daemon's life) is first offered as a cross-repository mount (`POST …/blobs/uploads/
?mount=<digest>&from=<repo>`): 201 is "Mounted from <repo>", 202 an upload as usual. Each pushed tag is reported as Docker prints it
(`tag: digest: sha256:… size: N`, and the `aux` record) and remembered as a RepoDigest.
"""

from __future__ import annotations

import trio

from ..errors import EngineError
from ..images.store import Image, ImageStore
from . import manifests
from .client import Client, collapse
from .progress import Reporter

CHUNK = 1 << 20


async def has_blob(client: Client, digest: str) -> bool:
    async with client.request("HEAD", f"blobs/{digest}", actions="pull,push") as response:
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise await client.refused(response, f"blob {digest}")


async def mount(client: Client, digest: str, source: str) -> str | None:
    """Offer the blob `digest` of the repository `source` for a mount: None if mounted
    (201), else the upload the registry opened instead (202) to send the blob into."""
    async with client.request("POST", f"blobs/uploads/?mount={digest}&from={source}", actions="pull,push",
                              also=f"repository:{source}:pull", headers={"Content-Length": "0"}) as response:
        if response.status_code == 201:
            return None
        if response.status_code != 202 or "location" not in response.headers:
            raise await client.refused(response, f"mount of {digest} from {source}")
        return response.headers["location"]


async def upload(client: Client, digest: str, size: int, content, what: str, location: str | None = None) -> None:
    """POST an upload (unless `location` is one already open), PUT the blob into it
    (`content`: bytes or a body factory)."""
    if location is None:
        async with client.request("POST", "blobs/uploads/", actions="pull,push",
                                  headers={"Content-Length": "0"}) as response:
            if response.status_code != 202 or "location" not in response.headers:
                raise await client.refused(response, f"upload of {what}")
            location = response.headers["location"]
    if location.startswith("/"):
        location = client.base + location
    location += ("&" if "?" in location else "?") + f"digest={digest}"
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    async with client.request("PUT", location, actions="pull,push", headers=headers, content=content) as response:
        if response.status_code != 201:
            raise await client.refused(response, f"upload of {what}")


def _file_body(path, size: int, reporter: Reporter, short: str):
    """A factory of the blob's body from its file, reporting bytes as they go."""

    async def body():
        sent = 0
        async with await trio.open_file(path, "rb") as f:
            while chunk := await f.read(CHUNK):
                sent += len(chunk)
                await reporter.bytes("Pushing", short, sent, size)
                yield chunk
        await reporter.bytes("Pushing", short, sent, size, final=True)

    return body


async def push_layer(client: Client, store: ImageStore, lock: trio.Lock, chain: str, reporter: Reporter,
                     results: dict[str, manifests.Descriptor], sources: dict[tuple[str, str], str]) -> None:
    meta = store.layer_meta(chain)
    short = meta.diff_id[7:19]
    if meta.blob_digest and await has_blob(client, meta.blob_digest):
        await reporter.say("Layer already exists", short, detail=True)
        results[chain] = manifests.Descriptor(manifests.DOCKER_LAYER, meta.blob_digest, meta.blob_size)
        return
    location = None  # an upload the registry opened when it declined a mount
    source = sources.get((client.host, meta.blob_digest)) if meta.blob_digest else None
    if source and source != client.path:
        location = await mount(client, meta.blob_digest, source)
        if location is None:
            await reporter.say(f"Mounted from {source}", short, detail=True)
            results[chain] = manifests.Descriptor(manifests.DOCKER_LAYER, meta.blob_digest, meta.blob_size)
            return
    if store.blob_path(chain) is None:
        async with lock:
            meta = await trio.to_thread.run_sync(store.compress_layer, chain)
        if await has_blob(client, meta.blob_digest):
            await reporter.say("Layer already exists", short, detail=True)
            results[chain] = manifests.Descriptor(manifests.DOCKER_LAYER, meta.blob_digest, meta.blob_size)
            return
    path = store.blob_path(chain)
    await upload(client, meta.blob_digest, meta.blob_size, _file_body(path, meta.blob_size, reporter, short),
                 f"layer {meta.blob_digest}", location)
    await reporter.say("Pushed", short, detail=True)
    results[chain] = manifests.Descriptor(manifests.DOCKER_LAYER, meta.blob_digest, meta.blob_size)


async def push(client: Client, store: ImageStore, lock: trio.Lock, image: Image, tag: str,
               reporter: Reporter, sources: dict[tuple[str, str], str] | None = None) -> tuple[str, int]:
    """Push `image` as `tag`; return (manifest digest, manifest size). `sources`: (host,
    blob digest) → the repository known to hold it there; the pushed layers are added."""
    sources = {} if sources is None else sources
    chains = store.layer_chain(image)
    for chain in reversed(chains):
        await reporter.say("Preparing", store.layer_meta(chain).diff_id[7:19], detail=True)
    results: dict[str, manifests.Descriptor] = {}
    try:
        async with trio.open_nursery() as nursery:
            for chain in reversed(chains):
                nursery.start_soon(push_layer, client, store, lock, chain, reporter, results, sources,
                                   name=f"push {chain[:19]}")
    except BaseExceptionGroup as group:
        raise collapse(group) from None
    for layer in results.values():
        sources[(client.host, layer.digest)] = client.path
    config = store.config_bytes(image)
    config_digest = manifests.digest_of(config)
    if not await has_blob(client, config_digest):
        await upload(client, config_digest, len(config), config, f"config {config_digest}")
    document = manifests.schema2(manifests.Descriptor(manifests.DOCKER_CONFIG, config_digest, len(config)),
                                 [results[c] for c in chains])
    async with client.request("PUT", f"manifests/{tag}", actions="pull,push", content=document,
                              headers={"Content-Type": manifests.DOCKER_MANIFEST}) as response:
        if response.status_code != 201:
            raise await client.refused(response, f"manifest of {client.host}/{client.path}:{tag}")
    digest = manifests.digest_of(document)
    if response.headers.get("docker-content-digest", digest) != digest:
        raise EngineError(f"the registry stored the manifest as {response.headers['docker-content-digest']}, "
                          f"not {digest}")
    return digest, len(document)
