"""`docker push`: the layers a registry lacks, the config, then the manifest.

Per layer, top first as Docker shows them: its gzip blob (made once and kept by the
store, so a second push compresses nothing), a `HEAD` to skip what the registry has,
else an upload: `POST …/blobs/uploads/`, then for a blob up to `CHUNK` bytes one
`PUT <location>?digest=…` with the blob (monolithic); for a larger one, `PATCH`es of
`CHUNK` bytes with their `Content-Range`, each answered with the next location, and an
empty `PUT …?digest=…` to close it (chunked). A chunk that fails (a broken connection, a
5xx) is followed by `GET <location>`, whose `Range` says how much the registry holds,
and the upload resumes from there, so a failure costs one chunk, not the layer (a
registry that dropped the upload instead, as Distribution does when a chunk broke off
midway, gets a new one from the start).
The config blob goes the same way, beside the layers; the manifest last: the registry
never holds a manifest whose blobs it lacks. A layer blob berth pulled from or pushed to another
repository of the same registry (`sources`, kept by the registries service for the
daemon's life) is first offered as a cross-repository mount (`POST …/blobs/uploads/
?mount=<digest>&from=<repo>`): 201 is "Mounted from <repo>", 202 an upload as usual. Each pushed tag is reported as Docker prints it
(`tag: digest: sha256:… size: N`, and the `aux` record) and remembered as a RepoDigest.
"""

from __future__ import annotations

import itertools

import trio

from ..errors import EngineError
from ..images.store import Image, ImageStore
from . import manifests
from .claims import Claims
from .client import RETRIES, Client, Transient, Unreachable, collapse
from .progress import Reporter

READ = 1 << 20
CHUNK = 32 << 20


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


async def _open_upload(client: Client, what: str) -> str:
    async with client.request("POST", "blobs/uploads/", actions="pull,push",
                              headers={"Content-Length": "0"}) as response:
        if response.status_code != 202 or "location" not in response.headers:
            raise await client.refused(response, f"upload of {what}")
        return response.headers["location"]


def _absolute(client: Client, location: str) -> str:
    return client.base + location if location.startswith("/") else location


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


async def _close_upload(client: Client, location: str, digest: str, size: int, content, what: str) -> None:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    async with client.request("PUT", _with_digest(location, digest), actions="pull,push", headers=headers,
                              content=content, retry=False) as response:
        if response.status_code != 201:
            raise await client.refused(response, f"upload of {what}")


async def _held(client: Client, location: str) -> int:
    """How many bytes of the upload at `location` the registry holds (its `Range: 0-N`)."""
    async with client.request("GET", location, actions="pull,push") as response:
        if response.status_code != 204:
            raise await client.refused(response, "upload status")
        end = response.headers.get("range", "").rpartition("-")[2]
        return int(end) + 1 if end.isdigit() else 0


async def _send_chunks(client: Client, location: str, body, size: int, what: str) -> str:
    """PATCH the blob in chunks of `CHUNK` bytes into the upload at `location`, resuming
    after a transient failure; return the location to close it at."""
    sent = failures = 0
    while sent < size:
        length = min(CHUNK, size - sent)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
                   "Content-Range": f"{sent}-{sent + length - 1}"}
        try:
            async with client.request("PATCH", location, actions="pull,push", headers=headers, retry=False,
                                      content=lambda start=sent, n=length: body(start, n)) as response:
                if response.status_code != 202 or "location" not in response.headers:
                    raise await client.refused(response, f"upload of {what}")
                location = _absolute(client, response.headers["location"])
            sent += length
            failures = 0
            continue
        except (Unreachable, Transient):
            pass
        failures += 1
        if failures > RETRIES:
            raise Unreachable(f"registry {client.host} kept failing the upload of {what}")
        await client.back_off(failures)
        try:
            sent = await _held(client, location)
        except (Unreachable, Transient):
            raise
        except EngineError:  # the registry dropped the upload (a chunk cut off midway): anew
            location, sent = _absolute(client, await _open_upload(client, what)), 0
    return location


async def upload(client: Client, digest: str, size: int, content, what: str, location: str | None = None) -> None:
    """Upload a blob into a new upload (or `location`, one the registry opened already):
    `content` is bytes (sent whole) or `body(start, length)`, a factory of the blob's
    bytes from `start` (sent whole up to `CHUNK` bytes, else in chunks)."""
    location = _absolute(client, location or await _open_upload(client, what))
    if not isinstance(content, bytes) and size > CHUNK:
        location = await _send_chunks(client, location, content, size, what)
        await _close_upload(client, location, digest, 0, b"", what)
        return
    whole = content if isinstance(content, bytes) else lambda: content(0, size)
    for failures in itertools.count(1):
        try:
            await _close_upload(client, location, digest, size, whole, what)
            return
        except (Unreachable, Transient):
            if failures > RETRIES:
                raise
        # what reached the registry of the failed PUT is unknown: a new upload starts clean
        await client.back_off(failures)
        location = _absolute(client, await _open_upload(client, what))


def _file_body(path, size: int, reporter: Reporter, short: str):
    """`body(start, length)`: the blob's bytes from its file, reporting the bytes pushed."""

    def body(start: int, length: int):
        async def chunks():
            sent = start
            async with await trio.open_file(path, "rb") as f:
                await f.seek(start)
                while sent < start + length and (chunk := await f.read(min(READ, start + length - sent))):
                    sent += len(chunk)
                    await reporter.bytes("Pushing", short, sent, size, final=sent == size)
                    yield chunk

        return chunks()

    return body


async def push_layer(client: Client, store: ImageStore, claims: Claims, chain: str, reporter: Reporter,
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
        async with claims.compressing(chain):
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


async def push(client: Client, store: ImageStore, claims: Claims, image: Image, tag: str,
               reporter: Reporter, sources: dict[tuple[str, str], str] | None = None) -> tuple[str, int]:
    """Push `image` as `tag`; return (manifest digest, manifest size). `sources`: (host,
    blob digest) → the repository known to hold it there; the pushed layers are added."""
    sources = {} if sources is None else sources
    chains = store.layer_chain(image)
    for chain in reversed(chains):
        await reporter.say("Preparing", store.layer_meta(chain).diff_id[7:19], detail=True)
    results: dict[str, manifests.Descriptor] = {}
    config = store.config_bytes(image)
    config_digest = manifests.digest_of(config)

    async def push_config() -> None:
        if not await has_blob(client, config_digest):
            await upload(client, config_digest, len(config), config, f"config {config_digest}")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push_config, name="push config")  # beside the layers: only the manifest waits
            for chain in reversed(chains):
                nursery.start_soon(push_layer, client, store, claims, chain, reporter, results, sources,
                                   name=f"push {chain[:19]}")
    except BaseExceptionGroup as group:
        raise collapse(group) from None
    for layer in results.values():
        sources[(client.host, layer.digest)] = client.path
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
