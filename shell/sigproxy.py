"""`--sig-proxy` (on by default): while `run`, `start -a` or `attach` follow a container
that has no terminal, the signals this client gets go to the container
(`POST /containers/ID/kill?signal=NAME`), as the docker CLI forwards them, so Ctrl-C
interrupts the container's process instead of leaving it running behind a client that
quit. With a terminal, Ctrl-C is a key the container's terminal reads, and nothing is
proxied.

Better than Docker where a container ignores SIGINT (`sleep`, as PID 1, does): three
Ctrl-C within two seconds give this client back, with the container running on (said so
on stderr). The docker CLI keeps the terminal until the container ends, and the berth
shell would be stuck behind it.
"""

import _signal
import time

# What a user or a supervisor sends a foreground client. SIGCHLD, SIGPIPE and SIGWINCH are
# this client's own business; SIGTSTP still suspends it.
FORWARDED = {_signal.SIGINT: "INT", _signal.SIGTERM: "TERM", _signal.SIGHUP: "HUP", _signal.SIGQUIT: "QUIT",
             _signal.SIGUSR1: "USR1", _signal.SIGUSR2: "USR2"}
ESCAPE_PRESSES, ESCAPE_SECONDS = 3, 2.0
interrupts = 0  # Ctrl-C seen, forwarded or not: the shell's prompt reads it (repl.py)


class Proxy:
    """Forward FORWARDED to the container `cid` (shown as `name`) for the `with` block."""

    def __init__(self, client, cid: str, name: str):
        self.client, self.cid, self.name = client, cid, name
        self._presses: list[float] = []
        self._previous: dict[int, object] = {}

    def _forward(self, signum: int, _frame) -> None:
        global interrupts
        if signum == _signal.SIGINT:
            interrupts += 1
            now = time.monotonic()
            self._presses = [t for t in self._presses if now - t < ESCAPE_SECONDS] + [now]
            if len(self._presses) >= ESCAPE_PRESSES:
                import sys

                print(f"\nberth: detached from {self.name}, which runs on (`berth stop {self.name}` ends it)",
                      file=sys.stderr)
                raise KeyboardInterrupt
        from .transport import ConnectError, DaemonError

        try:
            self.client.call("POST", f"/containers/{self.cid}/kill", {"signal": FORWARDED[signum]})
        except (DaemonError, ConnectError):
            pass  # it ended meanwhile: its stream ends too, and the command with it

    def __enter__(self) -> "Proxy":
        for signum in FORWARDED:
            self._previous[signum] = _signal.signal(signum, self._forward)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)
