"""The keeper's wire format, shared by the keeper (standard library only) and its client.

One AF_UNIX SOCK_SEQPACKET message per request, reply or notification: a JSON object in
UTF-8 with an "op"; file descriptors ride on that same message as SCM_RIGHTS. A request
carries an "id" (any JSON scalar the client picks), echoed by its reply.

Requests, client → keeper (fds in the order given):

    spawn     argv: [str], env: {str: str} | null; fds: stdin, stdout, stderr (it runs in /)
              → exit_code (the reply comes once the child exited; 128+N for signal N).
              The child runs in a session of its own. An exec failure replies ok false
              with "errno".
    hold      container: str, pid: int, names: [str] (from FD_NAMES); fds: one per name
              → (nothing). The pid must descend from the keeper (its child, or one
              once the runtime's own process between them ended), running or reaped.
    take      container → names: [str]; fds: one per name (empty if not held)
    held      → held: [{container, pid, exit_code, exited_ns}], split over several replies
              to one request: every one but the last has "more": true
    status    container → pid, exit_code, exited_ns (both null while it runs)
    release   container → (nothing); also for a container not held
    drop      container, name → (nothing): the keeper closes its copy of that one fd (the
              daemon ended the container's stdin: the container must see its end)
    shutdown  → done: bool, live: int (the keeper exits after replying done true)

Replies: {"op": "reply", "id": ..., "ok": true, ...fields} or
{"op": "reply", "id": ..., "ok": false, "error": str} (id null when the request had none).

Notification, keeper → every connected client, when a held container's pid is reaped:
{"op": "exited", "container": str, "pid": int, "exit_code": int, "exited_ns": int}
(exited_ns: the time of the reap, in ns since the epoch).
"""

from __future__ import annotations

import array
import json
import os
import socket

SOCKET = "keeper.sock"
PID_FILE = "keeper.pid"
LOG_FILE = "keeper.log"
LOCK_FILE = "keeper.lock"

MAX_MESSAGE = 65536  # bytes of JSON in one message, either way
MAX_FDS = 8  # fds on one message
FD_NAMES = ("stdout", "stderr", "stdin", "terminal")
HELD_BATCH = 200  # containers per `held` reply: 200 of them stay far below MAX_MESSAGE


def running_pid(state) -> int | None:
    """The pid of the keeper of the state directory `state`, if it runs: its pid file
    names a process whose command line is that keeper's (not a reused pid, not a zombie)."""
    state = os.fspath(state)
    try:
        with open(os.path.join(state, PID_FILE)) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return None
    return pid if b"engine.keeper" in cmdline and state.encode() in cmdline else None


_INT_SIZE = array.array("i").itemsize
ANCILLARY_SPACE = socket.CMSG_SPACE(MAX_FDS * _INT_SIZE)


def encode(message: dict) -> bytes:
    """The bytes of one message."""
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    """The message in `data`; ValueError unless it is a JSON object."""
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a message is a JSON object")
    return message


def ancillary(fds) -> list:
    """sendmsg's ancillary data passing `fds` (none when empty)."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []


def received_fds(ancdata) -> list[int]:
    """The fds that arrived in recvmsg's ancillary data."""
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % _INT_SIZE])
    return list(fds)
