"""`/containers/{id}/exec` and `/exec/...` handlers."""

from __future__ import annotations

import struct

import trio

from ..core import Engine
from ..errors import BadRequest
from ..containers.execs import ExecConfig, ExecStart
from .http import Request, Response, json_response


async def create(req: Request, engine: Engine) -> Response:
    session = engine.execs.create(req.params["id"], await req.json(ExecConfig))
    return json_response({"Id": session.id}, 201)


async def start(req: Request, engine: Engine) -> Response | None:
    """Detached: start and answer 200 at once. Attached: hijack the connection, then
    multiplexed frames (raw bytes with a terminal) until the process ended and its
    output is drained, stdin from the client meanwhile; then close."""
    body = await req.json(ExecStart)
    session = engine.execs.claim(req.params["id"])
    if body.console_size:
        session.config.console_size = body.console_size
    if body.detach:
        engine.nursery.start_soon(engine.execs.run, session)
        return Response(200)
    sock, head = await req.hijack()
    tty = session.config.tty
    sending = trio.Lock()  # stdout and stderr are pumped by two tasks

    async def send(stream_id: int, data: bytes) -> None:
        try:
            async with sending:
                await sock.send_all(data if tty else struct.pack(">BxxxL", stream_id, len(data)) + data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client left; the process runs on to its end, as in dockerd

    attach_stdin = session.config.attach_stdin
    await engine.execs.run(session, output=send, stdin=sock if attach_stdin else None,
                           stdin_head=head if attach_stdin else b"")
    return None


async def inspect(req: Request, engine: Engine) -> Response:
    return json_response(engine.execs.get(req.params["id"]).inspect())


async def resize(req: Request, engine: Engine) -> Response:
    try:
        height, width = int(req.q("h")), int(req.q("w"))
    except ValueError:
        raise BadRequest("h and w must be numbers") from None
    engine.execs.resize(req.params["id"], height, width)
    return Response(200)
