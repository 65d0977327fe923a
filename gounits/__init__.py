"""Durations and sizes in the words Docker prints (Go's go-units): a tiny package shared by the daemon
(the `Status` column is rendered server-side) and the client (CREATED, SIZE).

Pure functions, stdlib only: the one-shot client imports this module too.
"""


def duration(seconds: float) -> str:
    """go-units HumanDuration: `Less than a second`, `5 seconds`, `About a minute`, … `2 years`."""
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
    hours = int(seconds / 3600 + 0.5)  # Go rounds half up here; Python's round() would not
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
    return f"{int(seconds / 3600) // 24 // 365} years"



def _scaled(n: float, base: float, units: tuple[str, ...], digits: int) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{digits}g}{units[i]}"


def size(n: float, digits: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units (`1.98MB`, `47B`); docker's images,
    history and ps tables use three significant digits."""
    return _scaled(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"), digits)


def binary_size(n: float) -> str:
    """go-units BytesSize: binary units, four digits (`23.54GiB`), as `docker info` shows memory."""
    return _scaled(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"), 4)
