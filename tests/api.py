"""A raw Docker Engine API client for tests: one request per call over the unix socket,
so tests see exact statuses, headers and bodies (including malformed requests)."""

from __future__ import annotations

import http.client
import json
import socket
import struct
from urllib.parse import urlencode


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return self.json()["message"]


class Api:
    def __init__(self, sock: str, timeout: float = 60):
        self.sock = sock
        self.timeout = timeout

    def request(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                json_body=None, headers: dict | None = None) -> Reply:
        if query:
            path += "?" + urlencode(query, doseq=True)
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = _UnixConnection(self.sock, self.timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **query) -> Reply:
        return self.request("GET", path, query=query or None)

    def get_json(self, path: str, **query):
        reply = self.get(path, **query)
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()

    def post(self, path: str, json_body=None, **query) -> Reply:
        return self.request("POST", path, query=query or None, json_body=json_body)

    def delete(self, path: str, **query) -> Reply:
        return self.request("DELETE", path, query=query or None)

    # conveniences used across tests
    def create(self, cmd: list[str], image: str = "busybox", name: str | None = None, **fields) -> str:
        reply = self.post("/containers/create", {"Image": image, "Cmd": cmd, **fields}, **({"name": name} if name else {}))
        assert reply.status == 201, (reply.status, reply.body)
        return reply.json()["Id"]

    def run(self, cmd: list[str], **fields) -> str:
        cid = self.create(cmd, **fields)
        reply = self.post(f"/containers/{cid}/start")
        assert reply.status == 204, (reply.status, reply.body)
        return cid

    def wait(self, cid: str, condition: str = "not-running") -> int:
        return self.post(f"/containers/{cid}/wait", condition=condition).json()["StatusCode"]

    def logs(self, cid: str, **query) -> list[tuple[int, bytes]]:
        query.setdefault("stdout", 1)
        query.setdefault("stderr", 1)
        return demux(self.get(f"/containers/{cid}/logs", **query).body)

    def hijack(self, path: str, body: dict | None = None, **query) -> tuple[socket.socket, bytes]:
        """POST with `Upgrade: tcp`; returns the raw socket after the 101 and the bytes
        that came with the head (the stream's start)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(self.timeout)
        s.connect(self.sock)
        data = json.dumps(body).encode() if body is not None else b""
        target = path + ("?" + urlencode(query, doseq=True) if query else "")
        s.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, head
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
        return s, rest

    def remove(self, cid: str) -> None:
        self.delete(f"/containers/{cid}", force=1)


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """Split a multiplexed stream into (stream id, payload) frames."""
    frames, pos = [], 0
    while pos + 8 <= len(data):
        stream, size = struct.unpack(">BxxxL", data[pos:pos + 8])
        frames.append((stream, data[pos + 8:pos + 8 + size]))
        pos += 8 + size
    assert pos == len(data), "trailing bytes in multiplexed stream"
    return frames
