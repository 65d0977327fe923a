"""HTTP/1.1 to the daemon over its unix socket, with the standard library only.

A one-shot `berth` command must start fast: no event loop, no third-party imports, one
connection per request (the daemon is local; a connect costs microseconds). Three kinds
of exchange: a JSON request, a streamed response (logs, events, wait), and a hijacked
raw stream (attach) after `101 UPGRADED`.
"""

import posix  # not os, ~1 ms to import: this module is on every one-shot command's way
import sys

# _socket, not socket: the socket module's enums (and selectors) cost ~9 ms of start-up
import _socket


DEFAULT_HOST = "unix:///run/berth/berth.sock"
API = "/v1.41"


class DaemonError(Exception):
    """An error answer from the daemon: its status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    """The daemon cannot be reached, or it broke off an exchange."""


class Response:
    """An HTTP/1.1 response read from a socket: status and headers at once, the body
    (Content-Length, chunked, or until close) as the caller asks for it. After a
    `101 UPGRADED` the body is the raw hijacked stream, until the daemon closes it."""

    def __init__(self, sock: _socket.socket, head: bytes, rest: bytes, method: str = "GET"):
        self._sock = sock
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        self._buf = rest
        upgraded = self.status == 101
        self._chunked = not upgraded and self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = None if upgraded else self.headers.get("content-length")
        self._left = int(length) if length is not None and not self._chunked else None
        self._eof = self.status in (204, 304) or self._left == 0 or method == "HEAD"  # HEAD: headers only
        self._line = b""  # what readline() read past its last newline

    def _fill(self) -> bool:
        data = self._sock.recv(1 << 16)
        self._buf += data
        return bool(data)

    def _receive(self, have: bytes, size: int) -> bytes:
        """`have` completed to `size` bytes from the socket, received into one buffer: a
        daemon's chunks are up to 1 MiB (`save`, `export`), and appending 64 KiB reads to
        a bytes object copied the chunk over and over (berth save ran at ~60% of the
        docker CLI's speed)."""
        buf = bytearray(size)
        buf[:len(have)] = have
        view, got = memoryview(buf), len(have)
        while got < size:
            n = self._sock.recv_into(view[got:])
            if not n:
                raise ConnectError("the daemon closed the connection mid-response")
            got += n
        return bytes(buf)

    def read1(self, n: int = 1 << 16) -> bytes:
        """Some body bytes (at most `n`), b"" at the end."""
        while not self._eof:
            if self._chunked:
                while b"\r\n" not in self._buf:
                    if not self._fill():  # before the last chunk: the daemon went away (as docker's "unexpected EOF")
                        self._eof = True
                        raise ConnectError("unexpected EOF: the daemon closed the connection mid-response")
                size_line, _, rest = self._buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self._eof = True
                    return b""
                if len(rest) < size + 2:
                    rest = self._receive(rest, size + 2)
                self._buf = rest[size + 2:]
                return rest[:size]
            if not self._buf and not self._fill():
                self._eof = True
                if self._left:
                    raise ConnectError("unexpected EOF: the daemon closed the connection mid-response")
                return b""
            take = self._buf[:n] if self._left is None else self._buf[:min(n, self._left)]
            self._buf = self._buf[len(take):]
            if self._left is not None:
                self._left -= len(take)
                self._eof = self._left == 0
            return take
        return b""

    def read(self) -> bytes:
        """The whole (rest of the) body; closes the connection."""
        parts = []
        while chunk := self.read1():
            parts.append(chunk)
        self.close()
        return b"".join(parts)

    def close(self) -> None:
        try:  # wakes a read blocked in another thread (a background transfer abandoned)
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        self._sock.close()

    # a hijacked stream is two-way: what interactive sessions need besides read1()
    def fileno(self) -> int:
        return self._sock.fileno()

    @property
    def buffered(self) -> bool:
        """Body bytes already read from the socket (select() would not see them)."""
        return bool(self._buf)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: the end of our stdin, not of the session."""
        self._sock.shutdown(_socket.SHUT_WR)

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def readline(self) -> bytes:
        """One line of the body (streams of JSON lines: events, progress)."""
        pending = self._line
        while b"\n" not in pending:
            chunk = self.read1()
            if not chunk:
                self._line = b""
                return pending
            pending += chunk
        line, _, self._line = pending.partition(b"\n")
        return line + b"\n"


def _connect(path: str) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ConnectError(f"Cannot connect to the berth daemon at unix://{path}. "
                           f"Is the daemon running? ({exc.strerror})") from None
    return sock


def _read_head(sock: _socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectError("the daemon closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def resolve_host(flag: str | None) -> str:
    """The daemon address: -H, else $BERTH_HOST, else the default socket."""
    host = flag or posix.environ.get(b"BERTH_HOST", b"").decode() or DEFAULT_HOST
    if not host.startswith("unix://"):
        raise ConnectError(f"unsupported daemon address {host!r}: berth listens on unix:// sockets")
    return host


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: bytes = b"") -> str:
    """Percent-encoding (urllib.parse costs more start-up time than it saves here)."""
    return "".join(chr(b) if b in _SAFE or b in safe else f"%{b:02X}" for b in str(text).encode())


def path_of(endpoint: str, query: dict | None = None) -> str:
    """`/v1.41` + endpoint + the query string (lists repeat their key; None is left out)."""
    pairs = []
    for key, value in (query or {}).items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                pairs.append(f"{quote(key)}={quote(item)}")
    return API + endpoint + ("?" + "&".join(pairs) if pairs else "")


def ref(name: str) -> str:
    """A container or image reference made safe for a URL path (images may hold `/`)."""
    return quote(name, b"/:@")


class Client:
    """The daemon's API at one unix-socket address, one connection per request."""

    def __init__(self, host: str):
        self.host = host
        self.socket_path = host.removeprefix("unix://")

    def _send(self, method: str, endpoint: str, query=None, body=None, headers=None) -> Response:
        sock = _connect(self.socket_path)
        hdrs = {"Host": "berth", "User-Agent": "berth-cli", **(headers or {})}
        planned = hasattr(body, "send_to")  # its size known, it writes itself to the socket
        streaming = body is not None and not planned and not isinstance(body, (bytes, str))
        if isinstance(body, str):
            body = body.encode()
        if streaming:
            hdrs["Transfer-Encoding"] = "chunked"
        else:
            hdrs["Content-Length"] = str(len(body or b""))
        head = f"{method} {path_of(endpoint, query)} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        try:
            sock.sendall(head.encode() + b"\r\n" + (body if body and not streaming and not planned else b""))
            if planned:
                body.send_to(sock.fileno())
            elif streaming:
                while chunk := body.read(1 << 20):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered before it read the whole body: its answer says why
        return Response(sock, *_read_head(sock), method)

    def stream(self, method: str, endpoint: str, query=None, body=None, headers=None) -> Response:
        """Send a request; return the response once its headers arrived (raises on errors)."""
        resp = self._send(method, endpoint, query, body, headers)
        if resp.status >= 400:
            data = resp.read()
            from . import fastjson  # where JSON is read or written: pause, stop, rm… never load it (~0.5 ms)

            try:
                message = fastjson.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                message = data.decode(errors="replace").strip() or f"HTTP {resp.status}"
            raise DaemonError(resp.status, message)
        return resp

    def call(self, method: str, endpoint: str, query=None, body=None, headers=None):
        """A request whose answer is JSON (or empty): returns the decoded body or None."""
        if isinstance(body, (dict, list)):
            from . import fastjson

            body = fastjson.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        data = self.stream(method, endpoint, query, body, headers).read()
        if not data.strip():
            return None
        from . import fastjson

        return fastjson.loads(data)

    def get(self, endpoint: str, **query):
        """`GET endpoint?query`, decoded."""
        return self.call("GET", endpoint, query)

    def hijack(self, endpoint: str, query: dict, body: dict | None = None) -> Response:
        """`POST` with `Upgrade: tcp` (attach, exec start): the response after `101
        UPGRADED`, whose body is the raw stream, read with `read1()` until the daemon
        closes it (and written with `send()`)."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if body is not None:
            from . import fastjson

            headers["Content-Type"] = "application/json"
            body = fastjson.dumps(body)
        return self.stream("POST", endpoint, query, body, headers)


class Demuxer:
    """Splits Docker's multiplexed stream ([stream, 0, 0, 0, size u32 BE] + payload)
    into stdout and stderr writes; feed it bytes as they come. Stream 2 (stderr) and 3
    (the daemon's own error text) go to stderr, the rest to stdout, as the docker CLI does."""

    def __init__(self, out=None, err=None):
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self._buf = b""

    def feed(self, data: bytes) -> None:
        buf = self._buf + data
        pos = 0
        while len(buf) - pos >= 8:
            stream, size = buf[pos], int.from_bytes(buf[pos + 4:pos + 8], "big")  # >BxxxL
            if len(buf) - pos - 8 < size:
                break
            payload = buf[pos + 8:pos + 8 + size]
            target = self.err if stream in (2, 3) else self.out
            target.write(payload)
            pos += 8 + size
        self._buf = buf[pos:]
        self.out.flush()
        self.err.flush()
