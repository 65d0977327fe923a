"""The keeper process: `python -m engine.keeper --state DIR [--daemon]`.

Standard library only and single-threaded (the loop is in server.py): it listens on
DIR/keeper.sock (SOCK_SEQPACKET, mode 0600) and writes DIR/keeper.pid. See
engine/keeper/__init__.py for what it is for, protocol.py for what it speaks.

Without --daemon it runs in the foreground and must be started in a session of its own
(start_new_session), stdio on /dev/null. With --daemon the command forks the keeper into
a new session and exits once the keeper listens (0), or with 1 and the reason on stderr
if it could not start: so the keeper is nobody's child to wait for. Another keeper
already serving DIR (DIR/keeper.lock is held) counts as started.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import sys

from engine.keeper import protocol
from engine.keeper.server import Keeper, Log

PR_SET_CHILD_SUBREAPER = 36


class AlreadyRunning(Exception):
    """Another keeper holds the state directory's lock."""


def setup(state: str) -> Keeper:
    """Take DIR's lock, become the subreaper, listen: the keeper, ready to run."""
    os.makedirs(state, mode=0o700, exist_ok=True)
    state = os.path.abspath(state)
    lock_fd = os.open(os.path.join(state, protocol.LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise AlreadyRunning(state) from None
    if os.getsid(0) != os.getpid():
        os.setsid()  # fails (EPERM) in a process group leader: start it with start_new_session
    os.chdir("/")
    # No fd of the keeper reaches a process it spawns (posix_spawn closes nothing itself):
    # what it opens later is close-on-exec (Python's default; received fds by
    # MSG_CMSG_CLOEXEC), and so is, from here, anything it inherited.
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2:
            try:
                os.set_inheritable(int(name), False)
            except OSError:  # the listing's own fd, closed meanwhile
                pass
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    return Keeper(state, Log(os.path.join(state, protocol.LOG_FILE)), lock_fd)


def _null_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def daemonize(state: str) -> int:
    """Fork the keeper into a session of its own; 0 once it listens (or another keeper
    serves `state`), 1 with the reason on stderr if it could not start."""
    ready_r, ready_w = os.pipe()
    if os.fork():
        os.close(ready_w)
        answer = b""
        while chunk := os.read(ready_r, 4096):
            answer += chunk
        if answer in (b"ready", b"running"):
            return 0
        sys.stderr.write((answer or b"the keeper died while starting").decode(errors="replace") + "\n")
        return 1
    os.close(ready_r)
    os.setsid()
    try:
        keeper = setup(state)
    except AlreadyRunning:
        os.write(ready_w, b"running")
        os._exit(0)
    except BaseException as e:
        os.write(ready_w, f"keeper: {e}".encode(errors="replace"))
        os._exit(1)
    _null_stdio()
    os.write(ready_w, b"ready")
    os.close(ready_w)
    return _serve(keeper)


def _serve(keeper: Keeper) -> int:
    try:
        return keeper.run()
    except BaseException as e:
        keeper.log(f"fatal: {e!r}")
        raise


def main(args: list[str]) -> int:
    usage = "usage: python -m engine.keeper --state DIR [--daemon]"
    if "--state" not in args or args.index("--state") + 1 >= len(args):
        sys.stderr.write(usage + "\n")
        return 2
    state = args[args.index("--state") + 1]
    if set(args) - {"--state", "--daemon", state}:
        sys.stderr.write(usage + "\n")
        return 2
    if "--daemon" in args:
        return daemonize(state)
    try:
        keeper = setup(state)
    except AlreadyRunning:
        sys.stderr.write(f"a keeper already serves {state}\n")
        return 1
    return _serve(keeper)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
