"""Docker's time format: RFC 3339 in UTC with nanoseconds, fixed width, so that these
strings also compare in time order; and HTTP's Date."""

from __future__ import annotations

import time


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
