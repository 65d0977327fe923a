"""HTTP/1.1 over trio streams with h11: requests in, responses, streams and hijacks out.

A connection serves requests one after another (the docker CLI keeps connections
alive). A handler answers in one of three ways:

* return a `Response` (JSON or empty body, with Content-Length);
* `await req.stream(...)` and send chunks (events, logs, wait, progress): while a stream
  is open the connection is watched, and a client that goes away cancels the handler;
* `await req.hijack()` (attach): the raw socket after `101 UPGRADED`, as the docker CLI
  expects; a client half-close is not a disconnect there.

Every request is answered, bad ones too (`models.ApiLimits` holds the numbers, `berthd --api-*` sets
them); a request the server will not read further is a `Refused`, answered with its status
and `Connection: close`, then the connection closes:

* 400 a malformed request line, header, Content-Length, chunked body or request target
  (h11's verdict; 501 for a Transfer-Encoding other than chunked, as RFC 9112 and dockerd);
* 431 request line and headers over `max_header_bytes` (1 MiB, as dockerd);
* 413 a body read whole (`req.body()`/`req.json()`: JSON) over `max_json_body`; bodies read
  as a stream (`req.body_chunks()`: tar uploads) have no limit;
* 408 the request line and headers not all in within `header_timeout` (counted from accept,
  or from the first byte of a request on a kept-alive connection), or a body that stalls
  for `body_timeout`. The timeouts apply only while a request is read: streams and hijacked
  connections are never cut by them;
* 503 beyond `max_connections` open connections (the request head is read, then refused).

A kept-alive connection idle between requests for `idle_timeout` is closed without a word:
no request is in flight, and clients (Go's, urllib3) expect that. Bad input is never a 500:
a 500 is a bug. A full disk is a 507 naming what could not be written (`errors.no_space`).
"""

from __future__ import annotations

import functools
import http
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import msgspec.inspect
import trio

from ..errors import NO_SPACE, BadRequest, EngineError, NotModified, no_space
from ..models import ApiLimits
from ..timefmt import http_date
from . import keycase, nulls
from .hijacked import HijackedStream

log = logging.getLogger("berth.api")

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
SERVER = "berth/0.1.0 (linux)"
_FALSE = {"", "0", "no", "false", "none"}
_READ_SIZE = 65536
# A request body (a build context, an image to load or import, a tar to copy in) is read
# 1 MiB at a time: a sixteenth of the wake-ups and h11 events of 64 KiB reads.
_BODY_READ_SIZE = 1 << 20
_LINGER = 1.0  # seconds a refused connection is drained so the client can read the answer


# How the HTTP layer refuses a request, one class per status. The answer carries
# `Connection: close` and the connection closes after it.
class Refused(EngineError):
    """A request the server will not read any further: malformed framing (400)."""

    status = 400


class RequestTimeout(Refused):
    status = 408


class BodyTooLarge(Refused):
    status = 413


class HeadersTooLarge(Refused):
    status = 431


class UnsupportedTransferCoding(Refused):
    status = 501


class Overloaded(Refused):
    status = 503


@functools.cache
def _reason(status: int) -> bytes:
    """The status line's phrase (`400 Bad Request`), as dockerd's Go server writes it."""
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _protocol_refusal(exc: h11.RemoteProtocolError, reading_head: bool, limits: ApiLimits) -> Refused:
    """h11's verdict on bad input as the `Refused` that answers it."""
    message = str(exc)
    if len(message) > 200:  # h11 quotes the offending bytes; a 1 MiB chunk header is no message
        message = message[:200] + "..."
    if exc.error_status_hint == 431:
        if reading_head:
            return HeadersTooLarge(f"request line and headers are larger than {limits.max_header_bytes} bytes")
        return Refused("malformed chunked body: chunk header too long")
    if exc.error_status_hint == 501:
        return UnsupportedTransferCoding(f"unsupported transfer coding: {message}")
    return Refused(f"malformed request: {message}" if reading_head else f"malformed request body: {message}")


class _IdleExpired(Exception):
    """A kept-alive connection stayed idle past `idle_timeout`: close it quietly."""


class Response(msgspec.Struct):
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = []


def json_response(value, status: int = 200) -> Response:
    return Response(status, msgspec.json.encode(value) + b"\n")


def common_headers() -> list[tuple[str, str]]:
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"), ("Ostype", "linux"),
            ("Server", SERVER), ("Date", http_date())]


def common_headers_lines() -> list[str]:
    return [f"{k}: {v}" for k, v in common_headers()]


class Request:
    """One HTTP request as a handler sees it."""

    def __init__(self, conn: Connection, event: h11.Request):
        self._conn = conn
        self.method = event.method.decode()
        try:
            target = urlsplit(event.target.decode("latin-1"))
        except ValueError as exc:  # e.g. `http://[` (an unclosed IPv6 host)
            raise conn.refuse(Refused(f"malformed request target: {exc}")) from None
        self.path = target.path
        self.query = parse_qs(target.query, keep_blank_values=True)
        self.headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        self.params: dict[str, str] = {}
        self._body_done = False

    def q(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def qlist(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def qbool(self, name: str, default: bool = False) -> bool:
        """Docker's rule: false iff the value is empty, 0, no, false or none."""
        if name not in self.query:
            return default
        return self.q(name).lower() not in _FALSE

    def qint(self, name: str, default: int | None = None) -> int | None:
        value = self.q(name)
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"invalid value for {name}: {value!r}") from None

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, what each read of the socket brought as one chunk: the
        docker CLI sends uploads in chunks of 32 KiB, and a consumer's work per chunk (a
        write, a hand-over to a thread) then comes once per MiB, not 32 times."""
        while not self._body_done:
            event = await self._conn.next_event()
            parts = []
            while isinstance(event, h11.Data):
                parts.append(event.data)
                event = self._conn.buffered_event()
            if parts:
                yield b"".join(parts)
            if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                self._body_done = True

    async def body(self) -> bytes:
        """The whole body, for handlers that decode it: over `ApiLimits.max_json_body` is a 413.
        Tar uploads read `body_chunks()` instead, which has no limit."""
        limit = self._conn.limits.max_json_body
        declared = self.headers.get("content-length")
        if declared is not None and int(declared) > limit:  # h11 checked it is digits
            raise self._conn.refuse(_too_large(limit))
        chunks, size = [], 0
        async for chunk in self.body_chunks():
            size += len(chunk)
            if size > limit:
                raise self._conn.refuse(_too_large(limit))
            chunks.append(chunk)
        return b"".join(chunks)

    async def _discard_body(self) -> None:
        async for _ in self.body_chunks():
            pass

    async def json(self, type_):
        """Decode the JSON body as `type_`; a bad body is a 400 naming the field."""
        data = await self.body()
        if not data.strip():
            data = b"{}"
        try:
            if _LONG_NUMBER.search(data):
                _check_int64(data)
            value = msgspec.json.decode(data, type=type_)
            if not keycase.miscased(data, type_):
                return value
            error = None
        except msgspec.ValidationError as exc:
            error = exc
        except msgspec.DecodeError as exc:
            raise BadRequest(f"invalid JSON in request body: {exc}") from None
        except RecursionError:
            raise BadRequest("invalid JSON in request body: nested too deeply") from None
        # A null where Go would keep the zero value, or a key in another case than its
        # field's: decode again as Go would read the body.
        try:
            return msgspec.convert(nulls.without_nulls(msgspec.json.decode(data), msgspec.inspect.type_info(type_)),
                                   type_)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"invalid request body: {error or exc}") from None
        except msgspec.DecodeError as exc:  # `34c350`: the typed decode stopped at the type, before the rest
            raise BadRequest(f"invalid JSON in request body: {exc}") from None
        except RecursionError:
            raise BadRequest("invalid JSON in request body: nested too deeply") from None

    async def stream(self, content_type: str = "application/json", status: int = 200,
                     headers: list[tuple[str, str]] = ()) -> Stream:
        """Send the status line and headers (`headers` added) now; return a writer for the chunked body."""
        await self._discard_body()
        return await self._conn.open_stream(status, content_type, headers)

    async def hijack(self) -> tuple[HijackedStream, bytes]:
        """Switch to a raw stream (101 with `Upgrade: tcp`, else a 200 raw stream); also
        the bytes of it the client sent along with the request."""
        await self._discard_body()
        return await self._conn.hijack("upgrade" in self.headers.get("connection", "").lower())


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is larger than {limit} bytes, the limit for JSON bodies "
                        "(berthd --api-max-json-body)")


class Stream:
    def __init__(self, conn: Connection):
        self._conn = conn

    async def send(self, data: bytes) -> None:
        if data:
            await self._conn.send(h11.Data(data=data))


Handler = Callable[[Request], Awaitable[Response | None]]


class Connection:
    def __init__(self, stream: trio.abc.Stream, dispatch: Handler, limits: ApiLimits = ApiLimits()):
        self.sock = stream
        self.limits = limits
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self._dispatch = dispatch
        self._streaming = False
        self._hijacked = False
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._idle = False  # kept alive between requests, nothing of the next one received yet
        self._head_deadline = trio.current_time() + limits.header_timeout
        self._refusal: Refused | None = None

    def refuse(self, refusal: Refused) -> Refused:
        """Record that the request is refused (the answer, then the close); returns it to raise."""
        if self._refusal is None:
            self._refusal = refusal
        return self._refusal

    async def next_event(self):
        """The client's next event, reading from the socket as needed."""
        while (event := self.buffered_event()) is h11.NEED_DATA:
            await self._receive()
        return event

    def buffered_event(self):
        """The next event in what was read already, or h11.NEED_DATA."""
        in_body = self.h11.their_state is h11.SEND_BODY
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise self.refuse(_protocol_refusal(exc, not in_body, self.limits)) from None

    async def _receive(self) -> None:
        """Feed h11 the client's next bytes, within the time allowed for what is being read."""
        size = _READ_SIZE
        if self.h11.their_state is h11.SEND_BODY:
            if self.h11.they_are_waiting_for_100_continue:
                await self.send(h11.InformationalResponse(status_code=100, headers=common_headers()))
            deadline = trio.current_time() + self.limits.body_timeout
            size = _BODY_READ_SIZE
        elif self._idle:
            deadline = trio.current_time() + self.limits.idle_timeout
        else:
            deadline = self._head_deadline
        with trio.move_on_at(deadline):
            data = await self.sock.receive_some(size)
            if self._idle and data:
                self._idle = False
                self._head_deadline = trio.current_time() + self.limits.header_timeout
            self.h11.receive_data(data)
            return
        if self._idle:
            raise _IdleExpired
        if self.h11.their_state is h11.SEND_BODY:
            raise self.refuse(RequestTimeout(f"request body stalled for {self.limits.body_timeout:g} s "
                                             "(berthd --api-body-timeout)"))
        raise self.refuse(RequestTimeout(f"request headers not received within {self.limits.header_timeout:g} s "
                                         "(berthd --api-header-timeout)"))

    async def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            await self.sock.send_all(data)

    async def open_stream(self, status: int, content_type: str, extra: list[tuple[str, str]] = ()) -> Stream:
        headers = [*common_headers(), *extra, ("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
        await self.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        self._streaming = True
        self._nursery.start_soon(self._watch_client)
        return Stream(self)

    async def _watch_client(self) -> None:
        """While a stream is open, a client EOF means it left: cancel the handler."""
        try:
            while await self.sock.receive_some(_READ_SIZE):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._scope.cancel()

    async def hijack(self, upgrade: bool) -> tuple[HijackedStream, bytes]:
        status = b"HTTP/1.1 101 UPGRADED\r\n" if upgrade else b"HTTP/1.1 200 OK\r\n"
        head = status + b"Content-Type: application/vnd.docker.raw-stream\r\n"
        if upgrade:
            head += b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
        head += b"".join(f"{k}: {v}\r\n".encode() for k, v in common_headers()) + b"\r\n"
        await self.sock.send_all(head)
        self._hijacked = True
        trailing, _ = self.h11.trailing_data
        return HijackedStream(self.sock), bytes(trailing)

    async def serve(self) -> None:
        try:
            while True:
                method = ""
                try:
                    event = await self.next_event()
                    if not isinstance(event, h11.Request):
                        return  # ConnectionClosed between requests (PAUSED cannot come here)
                    method = event.method.decode()
                    req = Request(self, event)
                except Refused:
                    await self._send_refusal(method)
                    return
                await self._serve_one(req)
                if self._hijacked or self._refusal is not None or self.h11.our_state is h11.MUST_CLOSE:
                    return
                while self.h11.their_state is h11.SEND_BODY:
                    await self.next_event()  # drain an unread body (a Refused now: answered already, close)
                if self.h11.their_state is h11.MUST_CLOSE or self.h11.our_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
                self._idle = not self.h11.trailing_data[0]
        except (trio.BrokenResourceError, trio.ClosedResourceError, Refused, _IdleExpired):
            pass
        finally:
            try:
                if self._refusal is not None and not self._hijacked:
                    await self._linger()
            finally:
                with trio.move_on_after(1) as cleanup:
                    cleanup.shield = True
                    await self.sock.aclose()

    async def _send_refusal(self, method: str) -> None:
        """Answer the refused request outside h11 (whose state may be ERROR) and say the
        connection closes."""
        refusal = self._refusal
        log.debug("refused with %d: %s", refusal.status, refusal.message)
        body = msgspec.json.encode({"message": refusal.message}) + b"\n"
        head = [f"HTTP/1.1 {refusal.status} {http.HTTPStatus(refusal.status).phrase}", *common_headers_lines(),
                "Content-Type: application/json", f"Content-Length: {len(body)}", "Connection: close"]
        await self.sock.send_all("\r\n".join(head).encode() + b"\r\n\r\n" + (b"" if method == "HEAD" else body))

    async def _linger(self) -> None:
        """After a refusal: end our side, then discard what the client still sends (the rest
        of a body) for a moment, so it reads the answer rather than a reset."""
        with trio.move_on_after(_LINGER):
            try:
                await self.sock.send_eof()
                while await self.sock.receive_some(_READ_SIZE):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _serve_one(self, req: Request) -> None:
        response: Response | None = None
        self._streaming = False
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            with trio.CancelScope() as scope:
                self._scope = scope
                try:
                    response = await self._dispatch(req)
                except Refused as exc:
                    self.refuse(exc)
                except NotModified:
                    response = Response(304)
                except EngineError as exc:
                    response = _error(exc.status, exc.message)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._hijacked = True  # the client is gone; close the connection
                except Exception as exc:  # a bug must not take the daemon down
                    response = _unexpected(req, exc)
            nursery.cancel_scope.cancel()
        if self._hijacked:
            return
        if self._refusal is not None:  # whatever the handler made of it, the request is refused
            if not self._streaming:
                await self._send_refusal(req.method)
            return
        if scope.cancelled_caught:
            self._hijacked = True  # client left mid-stream
            return
        if self._streaming:
            if response is not None and response.status >= 400:
                await self.send(h11.Data(data=response.body))
            await self.send(h11.EndOfMessage())
            return
        response = response or Response(204)
        headers = [*common_headers(), *response.headers]
        if response.status not in (204, 304):
            headers += [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))]
        # One write for the whole answer: one syscall and one packet, not three.
        data = self.h11.send(h11.Response(status_code=response.status, headers=headers,
                                          reason=_reason(response.status)))
        if response.body and response.status not in (204, 304) and req.method != "HEAD":
            data += self.h11.send(h11.Data(data=response.body))
        data += self.h11.send(h11.EndOfMessage())
        await self.sock.send_all(data)


# A run of 19 digits: the only way a JSON number can leave a 64-bit integer's range.
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def _check_int64(data: bytes) -> None:
    """Refuse a body with an integer beyond 64 bits, as Go's decoder does for every int
    field dockerd has (stored, it would break `inspect` for every Go client)."""
    todo = [msgspec.json.decode(data)]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
            raise BadRequest(f"invalid request body: the number {value} does not fit in a 64-bit integer")


def unexpected(req: Request, exc: Exception) -> EngineError:
    """An exception no one turned into an EngineError, as one: a full disk is a 507 that
    says so (a write the Engine does not name itself names the request); anything else
    is a bug, a 500 (logged with its traceback)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        error = no_space(exc, exc.filename or f"what {req.method} {req.path} stores")
        log.warning("%s %s: %s", req.method, req.path, error.message)
        return error
    log.exception("handler failed: %s %s", req.method, req.path)
    return EngineError(f"internal error: {exc}")


def _unexpected(req: Request, exc: Exception) -> Response:
    error = unexpected(req, exc)
    return _error(error.status, error.message)


def _error(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


async def serve_api(listeners: Sequence[trio.abc.Listener], dispatch: Handler, nursery: trio.Nursery,
                    limits: ApiLimits = ApiLimits()) -> None:
    """Accept connections on every listener (unix, TCP, TLS) forever, one task per
    connection; beyond `limits.max_connections` open ones (all listeners together), a
    connection's request is answered 503 and the connection closed."""
    open_connections = 0
    warned_at: float | None = None

    async def overloaded(req: Request) -> None:
        raise Overloaded(f"too many open API connections ({limits.max_connections}, "
                         "berthd --api-max-connections); try again later")

    async def handle(stream: trio.abc.Stream) -> None:
        nonlocal open_connections, warned_at
        over = open_connections >= limits.max_connections
        if over and (warned_at is None or trio.current_time() - warned_at >= 60):  # a flood must not flood the log
            warned_at = trio.current_time()
            log.warning("API connections refused with 503: %d open (--api-max-connections %d)",
                        open_connections, limits.max_connections)
        open_connections += 1
        try:
            await Connection(stream, overloaded if over else dispatch, limits).serve()
        except Exception:  # a bug must not take the daemon down (handler_nursery is its nursery)
            log.exception("API connection failed")
        finally:
            open_connections -= 1

    await trio.serve_listeners(handle, list(listeners), handler_nursery=nursery)
