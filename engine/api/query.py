"""Query parameter values as Docker clients spell them: the `filters` JSON, and times.

Decoding only: which filter keys a listing takes is the Engine's to check.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ..errors import BadRequest


def filters(raw: str | None) -> dict[str, list[str]]:
    """A `filters` value in either wire shape: the docker CLI sends
    `{"label":{"app=x":true}}`, docker-py `{"name":["x"]}`; both are `{"label": ["app=x"]}`."""
    if not raw:
        return {}
    try:
        value = msgspec.json.decode(raw.encode(), type=dict[str, list[str] | dict[str, bool]])
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid filters: {exc}") from None
    return {key: [v for v, on in values.items() if on] if isinstance(values, dict) else list(values)
            for key, values in value.items()}


def timestamp(value: str, name: str) -> int | None:
    """`since`/`until` (also as filter values): unix seconds (with optional
    `.nanoseconds`) or RFC 3339; nanoseconds since the epoch, None when empty."""
    if not value:
        return None
    secs, dot, frac = value.partition(".")
    if secs.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        return int(secs) * 10**9 + int((frac + "000000000")[:9] if dot else 0)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 10**9)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r}") from None
