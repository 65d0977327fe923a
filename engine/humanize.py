"""Durations and sizes in the words Docker prints (Go's go-units), shared by the daemon
(the `Status` column is rendered server-side) and the client (CREATED, SIZE).

Pure functions, stdlib only: the one-shot client imports this module too.
"""

from __future__ import annotations


def duration(seconds: float) -> str:
    """go-units HumanDuration: `Less than a second`, `5 seconds`, `About a minute`, …"""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def size(n: float) -> str:
    """go-units HumanSize: decimal units with 4 significant digits (`1.98MB`, `512B`)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"
