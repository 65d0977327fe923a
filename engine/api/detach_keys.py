"""Detach keys: the key sequence that leaves an attached session without stopping the
container (Docker's default Ctrl-P Ctrl-Q, `--detach-keys` to change it).

Part of the attach and exec stream protocol: the API watches the stdin of a client
attached to a terminal for the sequence (not without a terminal: there stdin is data,
passed as is), as dockerd does: bytes that could be its start are held back until the
next bytes tell; a completed sequence is swallowed and ends the session; a broken one is
passed on whole.
"""

from __future__ import annotations

from ..errors import BadRequest

DEFAULT = "ctrl-p,ctrl-q"
_CTRL_EXTRA = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse(spec: str) -> bytes:
    """`ctrl-p,ctrl-q` → b"\\x10\\x11"; single characters stand for themselves."""
    keys = bytearray()
    for part in (spec or DEFAULT).split(","):
        key = part.strip()
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            char = key[5].lower()
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_EXTRA:
                keys.append(_CTRL_EXTRA[char])
            else:
                raise BadRequest(f"Invalid detach keys ({spec}) provided")
        else:
            raise BadRequest(f"Invalid detach keys ({spec}) provided")
    return bytes(keys)


class Matcher:
    """Feed it stdin as it comes; it answers what to pass on and whether to detach."""

    def __init__(self, keys: bytes):
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward now, True when the sequence completed: detach)."""
        if not self._held and self.keys[:1] not in data:
            return data, False  # the usual case, with no Python work per byte
        out = bytearray()
        for byte in data:
            candidate = self._held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self._held = b""
                    return bytes(out), True
                self._held = candidate
                continue
            out += self._held
            self._held = b""
            if self.keys.startswith(bytes([byte])):
                self._held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False
