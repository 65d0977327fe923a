"""One fuzz request over the daemon's unix socket, and what came of it.

Each request gets a connection of its own, so a reset is the request's doing and no
other's. Outcomes:

* `answer`: a status line arrived (the body is read up to a budget: streams such as
  events, logs, stats and attach never end by themselves);
* `reset`: the connection was reset or closed before any status line;
* `cut`: a status line arrived, then the connection broke before the end of a body whose
  length was announced (Content-Length or chunked);
* `timeout`: no status line within the time allowed (stop and wait may take that long
  on purpose; reported apart, not counted as a failure).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import h11

BODY_BYTES = 1 << 20  # read at most this much of a body
BODY_SECONDS = 0.3  # and for at most this long after the status line


@dataclass
class Request:
    method: str
    target: str  # path and query, percent-encoded
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def as_dict(self) -> dict:
        try:
            body: object = self.body.decode()
            key = "body"
        except UnicodeDecodeError:
            body, key = self.body.hex(), "body_hex"
        return {"method": self.method, "target": self.target, "headers": dict(self.headers), key: body}

    def curl(self, sock: str) -> str:
        """A shell command that sends the same request (the body on stdin)."""
        quote = lambda s: "'" + s.replace("'", "'\\''") + "'"  # noqa: E731
        parts = ["curl", "-sS", "--unix-socket", sock, "-X", self.method, quote("http://localhost" + self.target)]
        for name, value in self.headers:
            parts += ["-H", quote(f"{name}: {value}")]
        if self.body:
            parts += ["--data-binary", "@-"]
        return " ".join(parts)


@dataclass
class Outcome:
    kind: str  # answer, reset, cut, timeout
    status: int = 0
    body: bytes = b""  # the start of the body
    error: str = ""  # for reset, cut and timeout: what the socket said
    seconds: float = 0.0

    @property
    def message(self) -> str:
        text = self.body[:2000].decode(errors="replace")
        if text.startswith("{"):
            try:
                import json

                return str(json.loads(text).get("message", text))
            except (ValueError, AttributeError):
                pass
        return text.strip()


def send(sock_path: str, req: Request, head_timeout: float = 10.0) -> Outcome:
    started = time.monotonic()
    conn = h11.Connection(our_role=h11.CLIENT)
    headers = [("Host", "localhost"), *req.headers]
    if req.body or req.method in ("POST", "PUT"):
        headers.append(("Content-Length", str(len(req.body))))
    data = conn.send(h11.Request(method=req.method, target=req.target, headers=headers))
    data += conn.send(h11.Data(data=req.body)) if req.body else b""
    data += conn.send(h11.EndOfMessage())

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(head_timeout)
    try:
        sock.connect(sock_path)
        send_error = ""
        try:
            sock.sendall(data)
        except OSError as exc:  # the server may have answered (413, 400) and closed: read on
            send_error = f"while sending: {exc!r}"
        return _receive(sock, conn, started, head_timeout, send_error)
    finally:
        sock.close()


def _receive(sock: socket.socket, conn: h11.Connection, started: float, head_timeout: float,
             send_error: str) -> Outcome:
    status = 0
    body = bytearray()
    received = 0
    framed = False  # the body's end is announced, so a break before it is a cut
    head_deadline = started + head_timeout
    body_deadline = 0.0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            kind = "answer" if status else "reset"
            return Outcome(kind, status, bytes(body), f"malformed response: {exc}", time.monotonic() - started)
        if event is h11.NEED_DATA:
            now = time.monotonic()
            if status and (now >= body_deadline or received >= BODY_BYTES):
                return Outcome("answer", status, bytes(body), seconds=now - started)
            deadline = body_deadline if status else head_deadline
            if now >= deadline:
                return Outcome("timeout", 0, b"", send_error or "no status line in time", now - started)
            sock.settimeout(max(deadline - now, 0.001))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as exc:
                if status:
                    return Outcome("cut" if framed else "answer", status, bytes(body), repr(exc),
                                   time.monotonic() - started)
                return Outcome("reset", 0, b"", f"{send_error} {exc!r}".strip(), time.monotonic() - started)
            conn.receive_data(chunk)
            continue
        if isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:  # hijacked (attach, exec start): the stream is raw from here
                return Outcome("answer", 101, b"", seconds=time.monotonic() - started)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            names = {name.lower() for name, _ in event.headers}
            framed = b"content-length" in names or b"transfer-encoding" in names
            body_deadline = time.monotonic() + BODY_SECONDS
            if dict(event.headers).get(b"content-type") == b"application/vnd.docker.raw-stream":
                return Outcome("answer", status, b"", seconds=time.monotonic() - started)
            continue
        if isinstance(event, h11.Data):
            received += len(event.data)
            if len(body) < 4096:
                body += event.data[: 4096 - len(body)]
            continue
        if isinstance(event, h11.EndOfMessage):
            return Outcome("answer", status, bytes(body), seconds=time.monotonic() - started)
        if isinstance(event, h11.ConnectionClosed):
            if status:
                kind = "cut" if framed else "answer"
                return Outcome(kind, status, bytes(body), "closed before the end of the body" if framed else "",
                               time.monotonic() - started)
            return Outcome("reset", 0, b"", f"{send_error} closed without an answer".strip(),
                           time.monotonic() - started)
