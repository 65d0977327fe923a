"""One registry, one repository: HTTP requests with authentication (httpx on trio).

The scheme: HTTPS with the system's CA store, except for insecure registries (loopback
addresses, `localhost`, and `berthd --insecure-registry` hosts), which are tried over
HTTPS without verification first and then over plain HTTP, as dockerd does. The first
request is `GET /v2/`, whose answer says how to authenticate: nothing, Basic (sent with
every request) or Bearer (a token per scope from the realm, kept until it expires; a 401
with a token asks once for a fresh one). Every request has a timeout; a registry that
cannot be reached at that first request is an error at once, with its address and the
reason. Once it has answered, a failure that may pass (a 429 or 5xx answer, a broken
or timed-out connection) is tried again after a back-off: `RETRIES` times, the waits
doubling from `BACKOFF` (a `Retry-After` is honoured up to `MAX_WAIT`).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import msgspec
import trio

from ..errors import EngineError, NotFound, Unauthorized
from ..models import AuthConfig, SearchResult
from . import auth as authn

USER_AGENT = "berth/0.1 (registry client)"
RETRIES = 3
BACKOFF = 0.25  # seconds before the first retry; doubled for each next one
MAX_WAIT = 5.0
TRANSIENT = frozenset({429, 500, 502, 503, 504})


# httpcore receives 64 KiB at a time; a layer blob read 1 MiB at a time wakes the event
# loop a sixteenth as often (the class attribute is httpcore's own setting for this).
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 1 << 20


class RegistryError(EngineError):
    """A registry's error answer (`{"errors":[{"code","message"}]}`), with its HTTP status."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


class Transient(RegistryError):
    """A registry's answer that may pass when asked again (429, 5xx)."""


class Unreachable(EngineError):
    """The registry could not be reached, broke the connection, or did not answer in time."""


def collapse(group: BaseExceptionGroup) -> BaseException:
    """The one error to report of a nursery's group: the first EngineError, else the first."""
    for exc in group.exceptions:
        inner = collapse(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(inner, EngineError):
            return inner
    first = group.exceptions[0]
    return collapse(first) if isinstance(first, BaseExceptionGroup) else first


class _ErrorItem(msgspec.Struct):
    code: str = ""
    message: str = ""


class _Tags(msgspec.Struct):
    tags: list[str] | None = None


class _SearchAnswer(msgspec.Struct):
    results: list[SearchResult] = []


class _Errors(msgspec.Struct):
    errors: list[_ErrorItem] = []
    details: str = ""  # token servers
    message: str = ""


def error_text(response: httpx.Response) -> str:
    """The registry's own words for a failed request (Docker's `code: message`)."""
    try:
        found = msgspec.json.decode(response.content, type=_Errors)
    except msgspec.DecodeError:
        found = _Errors()
    if found.errors:
        return "; ".join(f"{e.code.lower().replace('_', ' ')}: {e.message}" for e in found.errors)
    return found.details or found.message or f"{response.status_code} {response.reason_phrase}"


class Client:
    def __init__(self, host: str, path: str, credentials: AuthConfig | None, *, insecure: bool,
                 timeout: float, ssl_context: ssl.SSLContext, schemes: dict[str, str] | None = None):
        self.host = host  # registry host[:port]
        self.path = path  # the repository on it
        self.credentials = credentials
        self.insecure = insecure
        self._schemes = {} if schemes is None else schemes  # host → the scheme it answered on, shared
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._verified = httpx.AsyncClient(verify=ssl_context, timeout=self._timeout,
                                           headers={"User-Agent": USER_AGENT})
        self._http = self._verified
        self._unverified: httpx.AsyncClient | None = None
        self.base = ""
        self._challenge: authn.Challenge | None = None
        self._tokens = authn.Tokens()
        self._token_lock = trio.Lock()  # concurrent layer transfers wait for one token
        self._ping_lock = trio.Lock()  # and for one ping

    async def aclose(self) -> None:
        await self._verified.aclose()
        if self._unverified is not None:
            await self._unverified.aclose()

    # --- reaching the registry ------------------------------------------------

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            return await self._http.send(request, stream=stream, follow_redirects=True)
        except httpx.TimeoutException:
            raise Unreachable(f"registry {self.host} did not answer in time ({request.method} {request.url})") from None
        except httpx.TransportError as exc:
            raise Unreachable(f'{request.method.title()} "{request.url}": registry {self.host} is unreachable: '
                              f'{str(exc) or type(exc).__name__}') from None

    async def body(self, response: httpx.Response, size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The response's raw body in pieces; a connection that breaks or stalls midway is
        `Unreachable` (a transfer may then resume where it stood)."""
        try:
            async for chunk in response.aiter_raw(size):
                yield chunk
        except httpx.TimeoutException:
            raise Unreachable(f"registry {self.host} stopped sending ({response.request.url})") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"registry {self.host} broke off {response.request.url}: "
                              f"{str(exc) or type(exc).__name__}") from None

    @staticmethod
    async def back_off(failures: int, response: httpx.Response | None = None) -> None:
        """Wait before try number `failures` + 1: the registry's Retry-After, else the
        doubling back-off."""
        wait = BACKOFF * 2 ** (failures - 1)
        after = response.headers.get("retry-after", "") if response is not None else ""
        if after.isdigit():
            wait = int(after)
        await trio.sleep(min(wait, MAX_WAIT))

    async def ping(self) -> httpx.Response:
        """`GET /v2/` (once): choose the scheme, learn the authentication challenge."""
        async with self._ping_lock:
            return await self._ping()

    async def _ping(self) -> httpx.Response:
        candidates = [("https", self._verified)]
        if self.insecure:
            self._unverified = self._unverified or httpx.AsyncClient(verify=False, timeout=self._timeout,
                                                 headers={"User-Agent": USER_AGENT})
            candidates = [("https", self._unverified), ("http", self._unverified)]
            candidates.sort(key=lambda c: c[0] != self._schemes.get(self.host))  # the one that answered before
        failure: Exception | None = None
        for scheme, http in candidates:
            self._http, base = http, f"{scheme}://{self.host}"
            try:
                response = await self._send(http.build_request("GET", f"{base}/v2/"))
            except EngineError as exc:
                failure = exc
                continue
            self.base = base
            self._schemes[self.host] = scheme
            await response.aread()
            if response.status_code == 401:
                self._challenge = authn.parse_challenge(response.headers.get("www-authenticate", ""))
            elif response.status_code >= 400:
                raise RegistryError(f"registry {self.host} answered GET /v2/ with {error_text(response)}")
            return response
        assert failure is not None
        raise failure

    # --- authentication -------------------------------------------------------

    def scope(self, actions: str) -> str:
        return f"repository:{self.path}:{actions}"

    async def _token(self, scope: str | None, *, fresh: bool = False) -> str:
        key = scope or ""
        if not fresh and (token := self._tokens.get(key)):
            return token
        async with self._token_lock:
            if not fresh and (token := self._tokens.get(key)):
                return token  # fetched by another task meanwhile
            return await self._fetch_token(scope, key)

    async def _fetch_token(self, scope: str | None, key: str) -> str:
        params = self._challenge.params
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} asks for a bearer token but names no realm")
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope.split(" ")  # one `scope=` per repository (a blob mount names two)
        headers = {}
        if self.credentials and self.credentials.registrytoken:
            return self.credentials.registrytoken
        if self.credentials and self.credentials.username:
            query["account"] = self.credentials.username
            headers["Authorization"] = authn.basic(self.credentials)
        response = await self._send(self._http.build_request("GET", realm, params=query, headers=headers))
        await response.aread()
        if response.status_code != 200:
            raise Unauthorized(f"unauthorized: {error_text(response)}")
        return self._tokens.put(key, response.content)

    async def _authorization(self, scope: str | None, fresh: bool) -> dict[str, str]:
        if self._challenge is None:
            return {}
        if self._challenge.scheme == "basic":
            if not self.credentials:
                raise Unauthorized("no basic auth credentials")  # dockerd's words
            return {"Authorization": authn.basic(self.credentials)}
        return {"Authorization": f"Bearer {await self._token(scope, fresh=fresh)}"}

    async def login(self) -> None:
        """Check the credentials as `docker login` does; Unauthorized with the registry's words."""
        first = await self.ping()
        if first.status_code == 200 or self._challenge is None:
            return
        if self._challenge.scheme == "bearer":
            await self._token(None, fresh=True)
            return
        url = f"{self.base}/v2/"
        response = await self._send(self._http.build_request("GET", url, headers=await self._authorization(None, True)))
        await response.aread()
        if response.status_code != 200:
            raise Unauthorized(f"login attempt to {url} failed with status: {response.status_code} "
                               f"{response.reason_phrase}")

    async def search(self, term: str, limit: int) -> list[SearchResult]:
        """The registry's v1 search (`GET /v1/search?q=…&n=…`, as Docker Hub answers it);
        NotFound when the registry has none (Docker Distribution answers 404)."""
        if not self.base:
            await self.ping()
        headers = {}
        if self._challenge is not None and self._challenge.scheme == "basic" and self.credentials:
            headers = {"Authorization": authn.basic(self.credentials)}
        request = self._http.build_request("GET", f"{self.base}/v1/search", params={"q": term, "n": str(limit)},
                                           headers=headers)
        response = await self._send(request)
        await response.aread()
        if response.status_code == 404:
            raise NotFound(f"registry {self.host} offers no search (it has no /v1/search)")
        if response.status_code != 200:
            status = response.status_code if response.status_code in (401, 403) else 500
            raise RegistryError(f"registry {self.host} answered GET /v1/search with {error_text(response)}", status)
        try:
            answer = msgspec.json.decode(response.content)
            # a null is no value, as Go decodes it (a result without a description)
            results = [{k: v for k, v in r.items() if v is not None} for r in answer.get("results") or []
                       if isinstance(r, dict)] if isinstance(answer, dict) else None
            return msgspec.convert({"results": results}, _SearchAnswer).results
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"registry {self.host} answered GET /v1/search with no search results: {exc}") \
                from None

    async def tags(self) -> list[str]:
        """The repository's tags (`GET tags/list`, every page: a registry may page them with `Link`)."""
        found: list[str] = []
        url = "tags/list"
        while url:
            async with self.request("GET", url) as response:
                if response.status_code != 200:
                    raise await self.refused(response, f"tags of {self.path}")
                await response.aread()
                try:
                    found += msgspec.json.decode(response.content, type=_Tags).tags or []
                except msgspec.DecodeError as exc:
                    raise RegistryError(f"tags of {self.path}: not a tag list: {exc}") from None
                link = response.links.get("next", {}).get("url", "")
                following = response.url.join(link) if link else None
            # the next page on the same registry only
            url = str(following) if following is not None and following.host == response.url.host else ""
        return found

    # --- requests ---------------------------------------------------------------

    @asynccontextmanager
    async def request(self, method: str, url: str, *, actions: str = "pull", headers: dict | None = None,
                      content: Callable[[], object] | bytes | None = None,
                      stream: bool = False, also: str = "", retry: bool = True) -> AsyncIterator[httpx.Response]:
        """One request to the repository (`url` relative to /v2/<path>/ or absolute), its
        response open while in the block. Body from `content` (bytes, or a factory of an
        async iterable, called again for each new try). `also`: another repository's
        scope the token must cover too (a blob mount's source). `retry=False`: a transient
        failure is the caller's (an upload that must learn how far it got first)."""
        if not self.base:
            async with self._ping_lock:
                if not self.base:
                    await self._ping()
        if not url.startswith(("http://", "https://")):
            url = f"{self.base}/v2/{self.path}/{url}"
        scope = self.scope(actions) + (f" {also}" if also else "")
        reauthorized, failures = False, 0
        while True:
            body = content() if callable(content) else content
            request = self._http.build_request(method, url, headers={**(headers or {}),
                                               **await self._authorization(scope, reauthorized)}, content=body)
            try:
                response = await self._send(request, stream=stream)
            except Unreachable:
                if not retry or failures == RETRIES:
                    raise
                failures += 1
                await self.back_off(failures)
                continue
            if response.status_code == 401 and not reauthorized and self._challenge is not None:
                await response.aclose()
                challenge = authn.parse_challenge(response.headers.get("www-authenticate", ""))
                self._challenge = challenge or self._challenge
                self._tokens.forget(scope)
                reauthorized = True
                continue
            if response.status_code in TRANSIENT and retry and failures < RETRIES:
                await response.aclose()
                failures += 1
                await self.back_off(failures, response)
                continue
            try:
                yield response
            finally:
                await response.aclose()
            return

    async def refused(self, response: httpx.Response, what: str) -> EngineError:
        """The error for a failed request about `what`, with the registry's words."""
        await response.aread()
        text = error_text(response)
        if response.status_code == 404:
            return NotFound(f"{what}: {text}")
        if response.status_code in (401, 403):
            return RegistryError(f"{what}: {text}", 401 if response.status_code == 401 else 403)
        if response.status_code in TRANSIENT:
            return Transient(f"{what}: {text}")
        return RegistryError(f"{what}: {text}")
