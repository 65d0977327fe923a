"""Registry credentials and challenges: what the docker CLI sends, what a registry asks.

* `decode_header`: the `X-Registry-Auth` header, base64url of an `AuthConfig` JSON
  (`e30=`, `{}`, when the user is not logged in). Padding may be missing.
* `Challenge`: a `WWW-Authenticate` answer to `GET /v2/` — `Basic realm=…` or
  `Bearer realm=…,service=…[,scope=…]`.
* `Tokens`: bearer tokens by scope, each kept until it expires (`expires_in`, 60 s when
  the token server says nothing, as the distribution spec defines).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from typing import NamedTuple

import msgspec

from ..errors import BadRequest
from ..models import AuthConfig

log = logging.getLogger("berth.registry")
_PARAM = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
DEFAULT_EXPIRY = 60.0  # seconds, when the token server gives no expires_in
MARGIN = 5.0  # renew a token this long before it expires


def decode_header(value: str) -> AuthConfig | None:
    """The `X-Registry-Auth` header as credentials; None when empty or `{}`. Keys match
    in any case and nulls are no value, as Go decodes the JSON; a header that does not
    decode is no credentials at all, as dockerd takes it (a pull from an open registry
    still works)."""
    text = value.strip()
    if not text:
        return None
    try:
        raw = msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        fields = {f.lower() for f in AuthConfig.__struct_fields__}
        config = msgspec.convert({k.lower(): v for k, v in raw.items() if v is not None and k.lower() in fields},
                                 AuthConfig)
        return credentials(config)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError, BadRequest) as exc:
        log.warning("X-Registry-Auth header ignored (%s): pulling and pushing without credentials", exc)
        return None


def credentials(config: AuthConfig) -> AuthConfig | None:
    """Fill username and password from `auth` (base64 `user:pass`) when only that is given;
    None when there is nothing to authenticate with."""
    if config.auth and not config.username:
        try:
            user, _, password = base64.b64decode(config.auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("invalid auth field: not base64 of user:password") from None
        config = msgspec.structs.replace(config, username=user, password=password)
    if not (config.username or config.identitytoken or config.registrytoken):
        return None
    return config


class Challenge(NamedTuple):
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """A `WWW-Authenticate` header's first challenge, or None if it has none berth knows."""
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme, params)


def basic(auth: AuthConfig) -> str:
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()


class TokenAnswer(msgspec.Struct):
    token: str = ""
    access_token: str = ""
    expires_in: float = 0


class Tokens:
    """Bearer tokens by scope, until they expire (`clock` is injectable for tests)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(self, scope: str) -> str | None:
        found = self._tokens.get(scope)
        if found and found[1] > self._clock():
            return found[0]
        self._tokens.pop(scope, None)
        return None

    def put(self, scope: str, answer: bytes) -> str:
        """Keep the token of a token server's JSON answer; return it."""
        try:
            parsed = msgspec.json.decode(answer, type=TokenAnswer)
        except msgspec.DecodeError:
            raise BadRequest("the registry's token server answered something that is not a token") from None
        token = parsed.token or parsed.access_token
        if not token:
            raise BadRequest("the registry's token server answered no token")
        lifetime = parsed.expires_in if parsed.expires_in > 0 else DEFAULT_EXPIRY
        self._tokens[scope] = (token, self._clock() + max(lifetime - MARGIN, 1.0))
        return token

    def forget(self, scope: str) -> None:
        self._tokens.pop(scope, None)
