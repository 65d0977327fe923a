"""`/containers/...` handlers: translate HTTP to Engine calls, nothing more."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from itertools import groupby
from operator import attrgetter, itemgetter

import msgspec
import trio

from ..core import Container, Engine
from ..errors import BadRequest
from ..models import CreateRequest, LogText, UpdateRequest
from . import detach_keys, query, render
from .http import Request, Response, json_response

STREAM_IDS = {"stdout": 1, "stderr": 2}
_HEADER = struct.Struct(">BxxxL")  # a multiplexed-stream frame header


def frame(entry: LogText, timestamps: bool = False) -> bytes:
    """One multiplexed-stream frame: [stream, 0, 0, 0, size (u32 BE)] + payload (with
    `timestamps`, the entry is a LogEntry and its time leads the payload)."""
    payload = _text((entry,), timestamps)
    return _HEADER.pack(STREAM_IDS[entry.stream], len(payload)) + payload


def frames(batch: list[LogText], wanted: set[str], timestamps: bool = False, *, whole: bool = False) -> bytes:
    """The frames of a batch's entries from the `wanted` streams, as one buffer: one frame
    per entry, as dockerd sends them (docker-py's `logs(stream=True)` and
    `containers.run(stream=True)` yield a frame as a line); `whole`: one frame per run of
    entries from the same stream, for clients that only copy the bytes out (see
    `copies_bytes`)."""
    pack = _HEADER.pack
    batch = _chosen(batch, wanted)
    if not whole:
        if timestamps:
            return b"".join([frame(e, True) for e in batch])
        return b"".join([pack(STREAM_IDS[e.stream], len(payload)) + payload
                         for e in batch for payload in (e.log.encode(),)])
    out: list[bytes] = []
    # one join per run: ~3× faster than a frame per entry (25,000 entries per MiB read)
    for stream, run in groupby(batch, key=attrgetter("stream")):
        payload = _text(run, timestamps)
        out += (pack(STREAM_IDS[stream], len(payload)), payload)
    return b"".join(out)


def _chosen(batch: list[LogText], wanted: set[str]) -> list[LogText]:
    """The entries of the `wanted` streams; the batch itself when both are (`logs` and
    `attach` as clients ask for them: a third of the framing's time was this filter)."""
    return batch if wanted.issuperset(STREAM_IDS) else [e for e in batch if e.stream in wanted]


def _text(entries: Iterable[LogText], timestamps: bool) -> bytes:
    """The entries' text, each line after its time with `timestamps`, as one bytes."""
    return "".join([f"{e.time} {e.log}" for e in entries] if timestamps else [e.log for e in entries]).encode()


def copies_bytes(req: Request) -> bool:
    """Whether the client only copies a stream's bytes to its stdout and stderr, whatever
    the frames: the docker CLI and berth's own. Its frames may then each hold many lines:
    the docker CLI writes every frame with a write(2) of its own, which made one frame
    per 40-byte line read back at ~30 MB/s (docs/performance.md). Other clients (the SDKs,
    compose 1.x) may hand frames to their users as lines, and get one per entry."""
    agent = req.headers.get("user-agent", "")
    return agent.startswith(("Docker-Client/", "berth-cli"))


async def create(req: Request, engine: Engine) -> Response:
    body = await req.json(CreateRequest)
    c = await engine.create(body, req.q("name") or None)
    return json_response({"Id": c.id, "Warnings": engine.create_warnings(c)}, 201)


async def list_(req: Request, engine: Engine) -> Response:
    limit = req.qint("limit", -1)
    # `ps -n N` and `ps -l`: the newest N of every state, as dockerd (a limit implies all)
    found = engine.list_containers(req.qbool("all") or limit > 0, query.filters(req.q("filters")))
    if limit > 0:
        found = found[:limit]
    summaries = [render.container_summary(engine, c) for c in found]
    if req.qbool("size"):  # `ps -s`
        await _add_sizes(engine, summaries)
    return json_response(summaries)


async def inspect(req: Request, engine: Engine) -> Response:
    shown = render.container_inspect(engine, engine.get(req.params["id"]))
    if req.qbool("size"):  # `inspect -s`
        await _add_sizes(engine, [shown])
    return json_response(shown)


async def _add_sizes(engine: Engine, shown: list[dict]) -> None:
    """`SizeRw` (the writable layer) and `SizeRootFs` (with the image's) into each container shown."""
    sizes = {u.container.id: u for u in (await engine.disk_usage()).containers}
    for item in shown:
        if (u := sizes.get(item["Id"])) is not None:
            item |= {"SizeRw": u.size_rw, "SizeRootFs": u.size_root_fs}


def output(batch: list[LogText], wanted: set[str], tty: bool, timestamps: bool = False, *,
           whole: bool = False) -> bytes:
    """A batch as the client reads it: frames (`whole`: see `frames`), or with a terminal
    the raw bytes (dockerd sends a tty container's output, logs included, without frame
    headers)."""
    if not tty:
        return frames(batch, wanted, timestamps, whole=whole)
    return _text(_chosen(batch, wanted), timestamps)


async def start(req: Request, engine: Engine) -> Response:
    await engine.start(req.params["id"])
    return Response(204)


def _timeout(req: Request) -> int | None:
    return req.qint("t", None) if "t" in req.query else req.qint("timeout", None)


async def stop(req: Request, engine: Engine) -> Response:
    await engine.stop(req.params["id"], _timeout(req))
    return Response(204)


async def restart(req: Request, engine: Engine) -> Response:
    await engine.restart(req.params["id"], _timeout(req))
    return Response(204)


async def kill(req: Request, engine: Engine) -> Response:
    await engine.kill(req.params["id"], req.q("signal") or None)
    return Response(204)


async def pause(req: Request, engine: Engine) -> Response:
    await engine.pause(req.params["id"])
    return Response(204)


async def unpause(req: Request, engine: Engine) -> Response:
    await engine.unpause(req.params["id"])
    return Response(204)


async def remove(req: Request, engine: Engine) -> Response:
    """`DELETE /containers/{id}`, or with `link=1` (`rm --link`) the link `{id}/{alias}`."""
    name = f"{req.params['id']}/{req.params['alias']}" if req.params.get("alias") else req.params["id"]
    if req.qbool("link"):
        await engine.remove_link(name)
    else:
        await engine.remove(name, force=req.qbool("force"), volumes=req.qbool("v"))
    return Response(204)


async def wait(req: Request, engine: Engine) -> None:
    engine.get(req.params["id"])  # a 404 must come before the 200 headers
    condition = req.q("condition", "not-running")
    if condition not in ("", "not-running", "next-exit", "removed"):
        raise BadRequest(f"invalid condition: {condition!r}")
    stream = await req.stream()
    code = await engine.wait(req.params["id"], condition)
    await stream.send(b'{"Error":null,"StatusCode":%d}\n' % code)


async def logs(req: Request, engine: Engine) -> None:
    wanted = {s for s in ("stdout", "stderr") if req.qbool(s)}
    if not wanted:
        raise BadRequest("Bad parameters: you must choose at least one stream")
    tail = req.q("tail", "all")
    number = tail.removeprefix("-")
    is_number = number.isascii() and number.isdigit()  # not "³": isdigit alone takes it
    if tail not in ("all", "") and not is_number:
        raise BadRequest(f"invalid value for tail: {tail!r}")
    tail_n = int(tail) if is_number and int(tail) >= 0 else None
    timestamps = req.qbool("timestamps")
    # 0 (the epoch) bounds nothing
    since = query.timestamp(req.q("since"), "since") or None
    until = query.timestamp(req.q("until"), "until") or None
    c, entries = engine.logs(req.params["id"], follow=req.qbool("follow"), tail=tail_n, times=timestamps,
                             since=since, until=until)
    # as dockerd: each line after its log attributes (`k=v,…`, from --log-opt labels, env, tag) and a space
    prefix = engine.log_details(c) if req.qbool("details") else ""
    stream = await req.stream("application/vnd.docker.raw-stream")
    whole = copies_bytes(req)
    async for batch in entries:
        if prefix:
            batch = [msgspec.structs.replace(e, log=prefix + e.log) for e in batch]
        await stream.send(output(batch, wanted, c.record.config.tty, timestamps, whole=whole))


async def attach(req: Request, engine: Engine) -> None:
    """The hijacked stream `run`, `start -a` and `attach` use: output (frames, or raw with
    a terminal) until the run ends, stdin into the container meanwhile (`stdin=1` and
    OpenStdin); with a terminal, the detach keys end the session and leave it running."""
    wanted = {s for s in ("stdout", "stderr") if req.qbool(s)}
    keys = detach_keys.parse(req.q("detachKeys"))
    async with engine.attach(req.params["id"], replay=req.qbool("logs"), follow=req.qbool("stream", True)) as (c, chunks):
        whole = copies_bytes(req)
        sock, head = await req.hijack()
        tty = c.record.config.tty
        async with trio.open_nursery() as nursery:
            if req.qbool("stdin") and c.record.config.open_stdin:
                nursery.start_soon(_copy_stdin, engine, c, sock, head, detach_keys.Matcher(keys) if tty else None,
                                   nursery.cancel_scope)
            try:
                async for batch in chunks:  # stream=0: the logs asked for, or nothing
                    data = attached_output(batch, wanted, tty, whole=whole)
                    if data:
                        await sock.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client has gone: nothing to report, and its tap goes with the `with`
            nursery.cancel_scope.cancel()


def attached_output(batch: list[tuple[str, bytes]], wanted: set[str], tty: bool, *, whole: bool = False) -> bytes:
    """Attached output as the client reads it: the bytes as written, framed by stream
    (a frame per chunk, or per run of one stream's chunks for `whole`: see `copies_bytes`),
    or raw with a terminal."""
    chosen = [(stream, data) for stream, data in batch if stream in wanted]
    if tty:
        return b"".join(data for _, data in chosen)
    if whole:
        chosen = [(stream, b"".join(data for _, data in run)) for stream, run in groupby(chosen, key=itemgetter(0))]
    return b"".join(_HEADER.pack(STREAM_IDS[stream], len(data)) + data for stream, data in chosen)


async def _copy_stdin(engine: Engine, c: Container, sock, head: bytes, matcher: detach_keys.Matcher | None,
                      session: trio.CancelScope) -> None:
    """Client → container stdin, from before the start on (`docker run -i` writes at once),
    across restarts; at the client's EOF a StdinOnce container's stdin is closed."""
    data = head
    while True:
        if data:
            detached = False
            if matcher is not None:
                data, detached = matcher.feed(data)
            if data and not await engine.write_stdin(c, data):
                return  # the run ended
            if detached:
                engine.publish_container(c, "detach")
                session.cancel()
                return
        try:
            data = await sock.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            if c.record.config.stdin_once:
                await engine.close_stdin(c)
            return


async def resize(req: Request, engine: Engine) -> Response:
    height, width = query.terminal_size(req)
    await engine.resize(req.params["id"], height, width)
    return Response(200)


async def top(req: Request, engine: Engine) -> Response:
    return json_response(await engine.top(req.params["id"], req.q("ps_args")))


async def stats_(req: Request, engine: Engine) -> None:
    """One reading (`stream=0`; after a second unless `one-shot=1`), or one a second."""
    c = engine.get(req.params["id"])
    follow = req.qbool("stream", True)
    response = await req.stream()
    async for reading in engine.stats(c, follow=follow, one_shot=req.qbool("one-shot")):
        await response.send(msgspec.json.encode(reading) + b"\n")


async def rename(req: Request, engine: Engine) -> Response:
    if not req.q("name"):
        raise BadRequest("Neither old nor new names may be empty")
    await engine.rename(req.params["id"], req.q("name"))
    return Response(204)


async def update(req: Request, engine: Engine) -> Response:
    await engine.update(req.params["id"], await req.json(UpdateRequest))
    return json_response({"Warnings": []})


async def prune(req: Request, engine: Engine) -> Response:
    filters = query.filters(req.q("filters"))
    gone, reclaimed = await engine.prune_containers(filters, query.until(filters))
    return json_response({"ContainersDeleted": gone or None, "SpaceReclaimed": reclaimed})
