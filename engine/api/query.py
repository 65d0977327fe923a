"""Query parameter values as Docker clients spell them: the `filters` JSON, and times.

Decoding only: which filter keys a listing takes is the Engine's to check.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

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


# The times a bound may name: those RFC 3339 can write (years 0001 to 9999, UTC).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIRST_NS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1) * 10**9
_LAST_NS = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - _EPOCH) // timedelta(seconds=1) * 10**9 \
    + 10**9 - 1
_UNIX = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
# The seconds' fraction, read here: datetime would keep 6 of its digits.
_FRACTION = re.compile(r"(?<=:[0-9]{2})\.([0-9]+)(?=$|[zZ+-])")


def timestamp(value: str, name: str) -> int | None:
    """`since`/`until` (also as filter values): unix seconds (with optional
    `.nanoseconds`) or RFC 3339; nanoseconds since the epoch, None when empty. Anything
    else, and any time outside years 0001-9999, is a 400 naming the parameter."""
    if not value:
        return None
    ns = _unix_ns(value) if _UNIX.fullmatch(value) else _rfc3339_ns(value)
    if ns is None:
        raise BadRequest(f"invalid value for {name}: {_quote(value)}: not a unix timestamp or RFC 3339 time")
    if not _FIRST_NS <= ns <= _LAST_NS:
        raise BadRequest(f"invalid value for {name}: {_quote(value)}: not a time between "
                         "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    return ns


def _unix_ns(value: str) -> int:
    sign, secs, frac = _UNIX.fullmatch(value).groups()
    secs = secs.lstrip("0")[:20] or "0"  # 20 digits are past year 9999 already: no need to read 5000
    ns = int(secs) * 10**9 + int(((frac or "") + "000000000")[:9])
    return -ns if sign else ns


def _rfc3339_ns(value: str) -> int | None:
    """RFC 3339 to the nanosecond (a time without an offset is local time, as dockerd
    reads it); None if it is not one."""
    fraction = _FRACTION.search(value)
    digits = fraction.group(1) if fraction else ""
    if fraction:
        value = value[:fraction.start()] + value[fraction.end():]
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.astimezone()
        return (when - _EPOCH) // timedelta(seconds=1) * 10**9 + int((digits + "000000000")[:9])
    except (ValueError, OverflowError, OSError):
        return None


def _quote(value: str) -> str:
    """The value as a message may quote it: cut short, never 5000 digits back."""
    return repr(value if len(value) <= 40 else value[:40] + "...")
