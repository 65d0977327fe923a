"""The registries service: pull, push and login for the Engine.

Handed the image store, the images service's lock (one writer of the store at a time)
and the event bus; never the Engine. One `Client` per repository and credentials, kept
between operations until it sits unused for `IDLE` seconds (its connections, scheme and
tokens with it). Which registries may be reached without verified TLS: loopback
addresses, `localhost`, and the `--insecure-registry` hosts or CIDRs.

Mirrors (`--registry-mirror URL`): a pull of a docker.io image tries each in turn (same
path: `library/NAME` for official images), without the caller's Hub credentials, and
falls back to docker.io when every mirror fails or lacks it. Pushes never use them.
Cross-repository mounts: where each layer blob was pulled from or pushed to
((host, digest) → repository) is kept in memory for the daemon's life.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import msgspec
import trio

from ..errors import BadRequest, EngineError, NotFound, Unauthorized
from ..events import constructors
from ..events.bus import Bus
from ..images import reference
from ..images.store import ImageStore, host_arch
from ..models import (AuthConfig, DistributionDescriptor, DistributionInspect, DistributionPlatform,
                      SearchResult)
from . import auth as authn
from . import search as searching
from .claims import Claims
from .progress import Emit, Reporter

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
IDLE = 60.0  # seconds a repository's client is kept unused before it is closed
HUB_ADDRESSES = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


class _Pooled:
    """A client kept between operations on one repository (its connections, scheme and
    tokens), so a pull of an image berth has costs one manifest request."""

    def __init__(self, client: Client):
        self.client = client
        self.users = 0
        self.last_used = 0.0


class Registries:
    def __init__(self, store: ImageStore, lock: trio.Lock, bus: Bus, *, insecure: list[str] = (),
                 mirrors: list[str] = (), timeout: float = DEFAULT_TIMEOUT):
        self.store = store
        self.lock = lock
        self.bus = bus
        self.timeout = timeout
        self._insecure_hosts = {i for i in insecure if "/" not in i}
        self._insecure_nets = [ipaddress.ip_network(i, strict=False) for i in insecure if "/" in i]
        self.mirrors = list(mirrors)  # URLs, as given
        self._sources: dict[tuple[str, str], str] = {}  # (host, blob digest) → a repository holding it
        self._claims = Claims()  # layers the pulls in flight fetch and rely on
        self._clients: dict[tuple, _Pooled] = {}  # (host, repository, plain HTTP, credentials)
        self._schemes: dict[str, str] = {}  # insecure host → the scheme it answered on (tried first next time)

    @staticmethod
    def mirror_host(url: str) -> tuple[str, bool]:
        """(host[:port], plain HTTP asked for) of a mirror URL."""
        plain = url.startswith("http://")
        return url.removeprefix("https://").removeprefix("http://").split("/")[0], plain

    def insecure(self, host: str) -> bool:
        """Whether `host[:port]` may be reached over plain HTTP or unverified TLS."""
        if host in self._insecure_hosts:
            return True
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") else host
        name = name.strip("[]")
        if name == "localhost" or name in self._insecure_hosts:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or any(address in net for net in self._insecure_nets)

    def _new_client(self, host: str, path: str, credentials: AuthConfig | None, *, plain: bool = False) -> Client:
        # Imported at the first registry call, not at start-up: httpx costs berthd ~155 ms
        # and memory that a daemon which never pulls would carry for nothing.
        from .client import Client

        return Client(host, path, credentials, insecure=plain or self.insecure(host), timeout=self.timeout,
                      ssl_context=self._ssl_context, schemes=self._schemes)

    @functools.cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """The system's CA store, loaded at the first registry call: ~1.1 MB of berthd's
        memory (and 30 ms of its start) that a daemon which never pulls would carry."""
        return ssl.create_default_context()

    @asynccontextmanager
    async def _client(self, repo: str, credentials: AuthConfig | None, *, mirror: str = "") -> AsyncIterator[Client]:
        host, path = reference.remote(repo)
        plain = False
        if mirror:
            host, plain = self.mirror_host(mirror)
        elif host == reference.DEFAULT_REGISTRY:
            host = "registry-1.docker.io"
        key = (host, path, plain, msgspec.json.encode(credentials) if credentials else b"")
        await self._close_idle()
        pooled = self._clients.get(key)
        if pooled is None:
            pooled = self._clients[key] = _Pooled(self._new_client(host, path, credentials, plain=plain))
        pooled.users += 1
        try:
            yield pooled.client
        finally:
            pooled.users -= 1
            pooled.last_used = trio.current_time()

    async def _close_idle(self) -> None:
        now = trio.current_time()
        for key, pooled in list(self._clients.items()):
            if not pooled.users and now - pooled.last_used > IDLE:
                del self._clients[key]
                with trio.CancelScope(shield=True):
                    await pooled.client.aclose()

    async def pull(self, name: str, tag: str, credentials: AuthConfig | None, platform: str, emit: Emit) -> str:
        """Pull `name[:tag][@digest]` (`tag` may be a `sha256:` digest, as the docker CLI and
        docker-py send one; with neither, every tag of the repository, as dockerd); return
        the image ID (the last tag's). Errors before the first message (a bad reference,
        a missing manifest) come before anything is sent to `emit`."""
        if tag.startswith("sha256:"):
            ref = reference.parse(f"{name}@{tag}")
        else:
            ref = reference.parse(name, "" if "@" in name else tag)
        every_tag = not tag and "@" not in name and ":" not in name.rpartition("/")[2]
        arch = host_arch()
        if not _is_host_platform(platform, arch):
            raise BadRequest(f'berth runs linux/{arch} images only: cannot pull {ref} for platform "{platform}"')
        checked = authn.credentials(credentials) if credentials else None
        reporter = Reporter(emit)
        with _refused_as_500():
            if not every_tag:
                return await self._pull_one(ref, checked, reporter, arch)
            async with self._client(ref.repo, checked) as client:
                tags = await client.tags()
            if not tags:
                raise NotFound(f"repository {ref.repo} has no tags")
            image_id = ""
            for each in tags:
                image_id = await self._pull_one(reference.parse(ref.repo, each), checked, reporter, arch)
            return image_id

    async def _pull_one(self, ref: reference.Reference, checked: AuthConfig | None, reporter: Reporter,
                        arch: str) -> str:
        from .pull import pull as pull_image

        pulled = None
        if reference.remote(ref.repo)[0] == reference.DEFAULT_REGISTRY:
            for mirror in self.mirrors:
                try:
                    async with self._client(ref.repo, None, mirror=mirror) as client:
                        pulled = await pull_image(client, self.store, self.lock, ref, reporter, os="linux",
                                                  architecture=arch, claims=self._claims, sources=self._sources)
                    break
                except EngineError as exc:  # unreachable, refusing, or lacking the image: the next
                    log.info("mirror %s: %s", mirror, exc)
        if pulled is None:
            async with self._client(ref.repo, checked) as client:
                pulled = await pull_image(client, self.store, self.lock, ref, reporter, os="linux",
                                          architecture=arch, claims=self._claims, sources=self._sources)
        self.bus.publish(constructors.transfer(str(ref), "pull", ref.repo))
        return pulled.image_id

    async def distribution(self, name: str, credentials: AuthConfig | None) -> DistributionInspect:
        """What the registry has under `name` (dockerd's distribution inspect): the
        manifest's descriptor, and the platforms of a list's entries or of the image."""
        from .pull import fetch_config, fetch_manifest

        ref = reference.parse(name)
        checked = authn.credentials(credentials) if credentials else None
        try:
            with _refused_as_500():
                async with self._client(ref.repo, checked) as client:
                    data, digest, manifest = await fetch_manifest(client, ref.digest or ref.tag, str(ref))
                    if manifest.is_list:
                        platforms = [DistributionPlatform(e.platform.architecture, e.platform.os, e.platform.variant)
                                     for e in manifest.manifests if e.platform is not None]
                    else:
                        config = msgspec.json.decode(await fetch_config(client, manifest.config, str(ref)),
                                                     type=DistributionPlatform)
                        platforms = [config]
        except msgspec.DecodeError as exc:
            raise BadRequest(f"invalid image config of {ref}: {exc}") from None
        return DistributionInspect(DistributionDescriptor(manifest.media_type, digest, len(data)), platforms)

    async def push(self, name: str, tag: str, credentials: AuthConfig | None, emit: Emit) -> None:
        """Push the image `name` (with `tag`: that tag, else every tag of the repository)."""
        ref = reference.parse(name, tag)
        local = sorted(t.rpartition(":")[2] for t in self.store.tags if t.rpartition(":")[0] == ref.repo)
        tags = [ref.tag] if tag or ":" in name.rpartition("/")[2] else local
        from .push import push as push_image

        reporter = Reporter(emit)
        # as dockerd: a missing image is the stream's error, after this line (docker-py returns it)
        await reporter.say(f"The push refers to repository [{reference.full_name(ref.repo)}]")
        if not local:
            raise NotFound(f"An image does not exist locally with the tag: {ref.repo}")
        if missing := [t for t in tags if t not in local]:
            raise NotFound(f"tag does not exist: {ref.repo}:{missing[0]}")
        images = {t: self.store.resolve(f"{ref.repo}:{t}") for t in tags}
        async with self._client(ref.repo, authn.credentials(credentials) if credentials else None) as client:
            for t, image in images.items():
                digest, size = await push_image(client, self.store, self._claims, image, t, reporter,
                                                self._sources)
                await reporter.say(f"{t}: digest: {digest} size: {size}")
                await reporter.say("", detail=True, aux={"Tag": t, "Digest": digest, "Size": size})
                async with self.lock:
                    await trio.to_thread.run_sync(self.store.add_digest, image, ref.repo, digest)
                self.bus.publish(constructors.transfer(f"{ref.repo}:{t}", "push", ref.repo))

    async def search(self, term: str, limit: int, filters: dict[str, list[str]],
                     credentials: AuthConfig | None) -> list[SearchResult]:
        """`docker search TERM`: the registry TERM names (Docker Hub by default) asked with
        its v1 search, dockerd's filters applied; bad filters or limit are 400s before any
        request."""
        if not term:
            raise BadRequest("a search term is required")
        searching.check_limit(limit)
        match = searching.matcher(filters)
        host, query = searching.split_term(term)
        checked = authn.credentials(credentials) if credentials else None
        client = self._new_client(host, "", checked)
        try:
            found = await client.search(query, limit)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
        return [r for r in found if match(r)][:limit]

    async def login(self, credentials: AuthConfig) -> str:
        """Check credentials against a registry (`docker login`); the status to show."""
        address = credentials.serveraddress or HUB_ADDRESSES[0]
        host = address.removeprefix("https://").removeprefix("http://").split("/")[0]
        if host in HUB_ADDRESSES or address in HUB_ADDRESSES:
            host = "registry-1.docker.io"
        checked = authn.credentials(credentials)
        client = self._new_client(host, "", checked)
        try:
            await client.login()
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
        return "Login Succeeded"


@contextmanager
def _refused_as_500() -> Iterator[None]:
    """Credentials a registry refused, before a pull's stream, as dockerd answers them: a
    500 (a 401 makes the docker CLI prompt for a login, and hang without a terminal);
    `docker login` keeps its 401."""
    try:
        yield
    except Unauthorized as exc:
        raise EngineError(exc.message) from None


def _is_host_platform(platform: str, arch: str) -> bool:
    """Whether `--platform` names this host's (`linux/amd64`, and as containerd reads
    them, `linux` or `amd64` alone, any case); empty is the host's."""
    parts = platform.lower().split("/") if platform else ["linux", arch]
    aliases = {arch, {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)}
    if len(parts) == 1:
        return parts[0] == "linux" or parts[0] in aliases
    return parts[0] == "linux" and parts[1] in aliases
