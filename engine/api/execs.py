"""`/containers/{id}/exec` and `/exec/...` handlers."""

from __future__ import annotations

import struct

import trio

from ..core import Engine
from ..models import ExecConfig, ExecStart
from . import detach_keys, query
from .http import Request, Response, json_response


class ClientStdin(trio.abc.ReceiveStream):
    """An attached client's input for an exec: what came with the request head first, then
    the socket; with a terminal, the detach keys end it (the client is let go, its
    connection closed; the process runs on, unattached, to its end)."""

    def __init__(self, sock: trio.abc.Stream, head: bytes, matcher: detach_keys.Matcher | None):
        self._sock = sock
        self._head = head
        self._matcher = matcher
        self._detached = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._detached:
            return b""
        while True:
            data, self._head = self._head or await self._sock.receive_some(max_bytes), b""
            if self._matcher is None or not data:
                return data
            data, self._detached = self._matcher.feed(data)
            if self._detached:
                await self._sock.aclose()
                # what came before the keys is still the process's; the next read ends the input
                return data
            if data:  # else all of it is held as the keys' start: b"" would read as the end of input
                return data

    async def aclose(self) -> None:
        await self._sock.aclose()


async def create(req: Request, engine: Engine) -> Response:
    config = await req.json(ExecConfig)
    detach_keys.parse(config.detach_keys)  # a bad spelling is refused now, not after the hijack
    session = engine.create_exec(req.params["id"], config)
    return json_response({"Id": session.id}, 201)


async def start(req: Request, engine: Engine) -> Response | None:
    """Detached: start and answer 200 at once. Attached: hijack the connection, then
    multiplexed frames (raw bytes with a terminal) until the process ended and its
    output is drained, stdin from the client meanwhile; then close."""
    body = await req.json(ExecStart)
    session = engine.claim_exec(req.params["id"], body.console_size)
    if body.detach:
        engine.run_exec_detached(session)
        return Response(200)
    sock, head = await req.hijack()
    tty = session.config.tty
    raw = body.tty  # as dockerd: the start request's Tty decides the framing, the exec's the terminal
    sending = trio.Lock()  # stdout and stderr are pumped by two tasks

    async def send(stream_id: int, data: bytes) -> None:
        try:
            async with sending:
                await sock.send_all(data if raw else struct.pack(">BxxxL", stream_id, len(data)) + data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client left; the process runs on to its end, as in dockerd

    stdin = None
    if session.config.attach_stdin:
        matcher = detach_keys.Matcher(detach_keys.parse(session.config.detach_keys)) if tty else None
        stdin = ClientStdin(sock, head, matcher)
    await engine.run_exec(session, output=send, stdin=stdin)
    return None


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(engine.inspect_exec(req.params["id"]))


async def resize(req: Request, engine: Engine) -> Response:
    height, width = query.terminal_size(req)
    engine.resize_exec(req.params["id"], height, width)
    return Response(200)
