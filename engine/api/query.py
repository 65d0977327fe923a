"""Query parameter values as Docker clients spell them: the `filters` JSON, and times
(a prune's `until` also as a Go duration).

Decoding only: which filter keys a listing takes is the Engine's to check.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import msgspec

from .. import timefmt
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


# The times a bound may name: those RFC 3339 can write (years 0001 to 9999, UTC).
_EPOCH = timefmt.EPOCH
_FIRST_NS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1) * 10**9
_LAST_NS = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1) * 10**9 \
    + 10**9 - 1
_UNIX = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def timestamp(value: str, name: str) -> int | None:
    """`since`/`until` (also as filter values): unix seconds (with optional
    `.nanoseconds`) or RFC 3339; nanoseconds since the epoch, None when empty. Anything
    else, and any time outside years 0001-9999, is a 400 naming the parameter."""
    if not value:
        return None
    ns = _unix_ns(value) if _UNIX.fullmatch(value) else timefmt.parse(value)
    if ns is None:
        raise BadRequest(f"invalid value for {name}: {_quote(value)}: not a unix timestamp or RFC 3339 time")
    if not _FIRST_NS <= ns <= _LAST_NS:
        raise BadRequest(f"invalid value for {name}: {_quote(value)}: not a time between "
                         "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return ns


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def until(filters: dict[str, list[str]]) -> int | None:
    """The `until` values a prune's filters carry (taken out of them), as dockerd reads
    them: a time (`timestamp`'s forms) or a Go duration before now (`24h`, `1h30m`);
    the earliest, in nanoseconds, or None when there is none."""
    found = []
    for value in filters.pop("until", []):
        if _DURATION.fullmatch(value):
            ago = sum(round(float(n) * _UNIT_NS[u]) for n, u in _DURATION_PART.findall(value))
            found.append(time.time_ns() - ago)
        else:
            found.append(timestamp(value, "until"))
    return min(found) if found else None


def _unix_ns(value: str) -> int:
    sign, secs, frac = _UNIX.fullmatch(value).groups()
    secs = secs.lstrip("0")[:20] or "0"  # 20 digits are past year 9999 already: no need to read 5000
    ns = int(secs) * 10**9 + int(((frac or "") + "000000000")[:9])
    return -ns if sign else ns


def _quote(value: str) -> str:
    """The value as a message may quote it: cut short, never 5000 digits back."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


def terminal_size(req) -> tuple[int, int]:
    """`h` and `w` of a resize (the Engine checks their range)."""
    try:
        return int(req.q("h")), int(req.q("w"))
    except ValueError:
        raise BadRequest("h and w must be numbers") from None
