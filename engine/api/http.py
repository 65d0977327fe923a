"""HTTP/1.1 over trio streams with h11: requests in, responses, streams and hijacks out.

A connection serves requests one after another (the docker CLI keeps connections
alive). A handler answers in one of three ways:

* return a `Response` (JSON or empty body, with Content-Length);
* `await req.stream(...)` and send chunks (events, logs, wait, progress): while a stream
  is open the connection is watched, and a client that goes away cancels the handler;
* `await req.hijack()` (attach): the raw socket after `101 UPGRADED`, as the docker CLI
  expects; a client half-close is not a disconnect there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import trio

from ..errors import BadRequest, EngineError, NotModified

log = logging.getLogger("berth.api")

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
SERVER = "berth/0.1.0 (linux)"
_FALSE = {"", "0", "no", "false", "none"}


class Response(msgspec.Struct):
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = []


def json_response(value, status: int = 200) -> Response:
    return Response(status, msgspec.json.encode(value) + b"\n")


def common_headers() -> list[tuple[str, str]]:
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"), ("Ostype", "linux"),
            ("Server", SERVER), ("Date", formatdate(usegmt=True))]


class Request:
    """One HTTP request as a handler sees it."""

    def __init__(self, conn: Connection, event: h11.Request):
        self._conn = conn
        self.method = event.method.decode()
        target = urlsplit(event.target.decode("latin-1"))
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
        while not self._body_done:
            event = await self._conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            elif event is h11.PAUSED:
                self._body_done = True

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self.body_chunks()])

    async def json(self, type_):
        """Decode the JSON body as `type_`; a bad body is a 400 naming the field."""
        data = await self.body()
        if not data.strip():
            data = b"{}"
        try:
            return msgspec.json.decode(data, type=type_)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"invalid request body: {exc}") from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"invalid JSON in request body: {exc}") from None

    async def stream(self, content_type: str = "application/json", status: int = 200,
                     headers: list[tuple[str, str]] = ()) -> Stream:
        """Send the status line and headers (`headers` added) now; return a writer for the chunked body."""
        await self.body()
        return await self._conn.open_stream(status, content_type, headers)

    async def hijack(self) -> tuple[trio.abc.Stream, bytes]:
        """Switch to a raw stream (101 with `Upgrade: tcp`, else a 200 raw stream)."""
        await self.body()
        return await self._conn.hijack("upgrade" in self.headers.get("connection", "").lower())


class Stream:
    def __init__(self, conn: Connection):
        self._conn = conn

    async def send(self, data: bytes) -> None:
        if data:
            await self._conn.send(h11.Data(data=data))


Handler = Callable[[Request], Awaitable[Response | None]]


class Connection:
    def __init__(self, stream: trio.abc.Stream, dispatch: Handler):
        self.sock = stream
        self.h11 = h11.Connection(h11.SERVER)
        self._dispatch = dispatch
        self._streaming = False
        self._hijacked = False
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.sock.receive_some(65536)
            self.h11.receive_data(data)

    async def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            await self.sock.send_all(data)

    async def open_stream(self, status: int, content_type: str, extra: list[tuple[str, str]] = ()) -> Stream:
        headers = [*common_headers(), *extra, ("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
        await self.send(h11.Response(status_code=status, headers=headers))
        self._streaming = True
        self._nursery.start_soon(self._watch_client)
        return Stream(self)

    async def _watch_client(self) -> None:
        """While a stream is open, a client EOF means it left: cancel the handler."""
        try:
            while await self.sock.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._scope.cancel()

    async def hijack(self, upgrade: bool) -> tuple[trio.abc.Stream, bytes]:
        status = b"HTTP/1.1 101 UPGRADED\r\n" if upgrade else b"HTTP/1.1 200 OK\r\n"
        head = status + b"Content-Type: application/vnd.docker.raw-stream\r\n"
        if upgrade:
            head += b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
        head += b"".join(f"{k}: {v}\r\n".encode() for k, v in common_headers()) + b"\r\n"
        await self.sock.send_all(head)
        self._hijacked = True
        trailing, _ = self.h11.trailing_data
        return self.sock, bytes(trailing)

    async def serve(self) -> None:
        try:
            while True:
                event = await self.next_event()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                await self._serve_one(Request(self, event))
                if self._hijacked or self.h11.our_state is h11.MUST_CLOSE:
                    return
                while self.h11.their_state is h11.SEND_BODY:
                    await self.next_event()  # drain an unread body
                if self.h11.their_state is h11.MUST_CLOSE or self.h11.our_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await self.sock.aclose()

    async def _serve_one(self, req: Request) -> None:
        response: Response | None = None
        self._streaming = False
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            with trio.CancelScope() as scope:
                self._scope = scope
                try:
                    response = await self._dispatch(req)
                except NotModified:
                    response = Response(304)
                except EngineError as exc:
                    response = _error(exc.status, exc.message)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._hijacked = True  # the client is gone; close the connection
                except Exception as exc:  # a bug must not take the daemon down
                    log.exception("handler failed: %s %s", req.method, req.path)
                    response = _error(500, f"internal error: {exc}")
            nursery.cancel_scope.cancel()
        if self._hijacked:
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
        await self.send(h11.Response(status_code=response.status, headers=headers))
        if response.body and response.status not in (204, 304) and req.method != "HEAD":
            await self.send(h11.Data(data=response.body))
        await self.send(h11.EndOfMessage())


def _error(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


async def serve_unix(listener: trio.SocketListener, dispatch: Handler, nursery: trio.Nursery) -> None:
    """Accept connections forever, one task per connection."""

    async def handle(stream: trio.SocketStream) -> None:
        await Connection(stream, dispatch).serve()

    await trio.serve_listeners(handle, [listener], handler_nursery=nursery)
