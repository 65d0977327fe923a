"""Docker's time format: RFC 3339 in UTC with nanoseconds, fixed width, so that these
strings also compare in time order (and any RFC 3339 time read back); and HTTP's Date."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The seconds' fraction, read here: datetime would keep 6 of its digits.
_FRACTION = re.compile(r"(?<=:[0-9]{2})\.([0-9]+)(?=$|[zZ+-])")


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch → `2026-11-22T12:28:23.139675649Z`."""
    t = time.gmtime(ns // 10**9)
    # %Y is not zero-padded below year 1000 on glibc: the fields are formatted here.
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            f".{ns % 10**9:09d}Z")


def now() -> str:
    """The current time as `rfc3339`."""
    return rfc3339(time.time_ns())


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float | None = None) -> str:
    """An HTTP Date header's value (RFC 9110's IMF-fixdate, `Sun, 06 Dec 2026 20:52:01
    GMT`), for `seconds` since the epoch or now; English names whatever the locale."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def parse(value: str) -> int | None:
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
        return (when - EPOCH) // timedelta(seconds=1) * 10**9 + int((digits + "000000000")[:9])
    except (ValueError, OverflowError, OSError):
        return None
