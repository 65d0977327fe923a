"""Parsers for option values the way the docker CLI reads them."""

import time

from . import fastjson
from .grammar import UsageError

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _float(text: str) -> float | None:
    """A finite, non-negative number, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None  # also refuses nan


def checked(parse):
    """A flag's converter that checks its value with `parse` as the line is read (a bad
    one is a usage error naming the flag, as docker's) and keeps it as typed."""
    def check(text: str) -> str:
        parse(text)
        return text
    return check


def ram_bytes(text: str) -> int:
    """`64m`, `1g`, `512kb`, `1048576` → bytes (binary units, as `docker run -m`)."""
    t = text.strip().lower()
    if len(t) > 1 and t.endswith("b") and t[-2] in "kmgt":
        t = t[:-1]
    unit = t[-1:] if t[-1:] in ("b", "k", "m", "g", "t") else ""
    value = _float(t[:-1] if unit else t)
    if value is None:
        raise UsageError(f"invalid size: {text!r}")
    return int(value * 1024 ** "bkmgt".index(unit or "b"))


def duration_ns(text: str) -> int:
    """`30s`, `1m`, `500ms` → nanoseconds (Go durations, one unit)."""
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit) and (amount := _float(text[:-len(unit)])) is not None:
            return int(amount * _DURATION_UNITS[unit] * 1e9)
    raise UsageError(f"invalid duration {text!r} (e.g. 30s, 1m, 500ms)")


def nano_cpus(text: str) -> int:
    """`--cpus 0.5` → NanoCpus."""
    value = _float(text)
    if value is None:
        raise UsageError(f"invalid argument {text!r} for --cpus")
    return int(round(value * 1e9))


def restart_policy(text: str) -> dict:
    """`--restart on-failure:3` → HostConfig.RestartPolicy."""
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise UsageError(f"invalid restart policy {text!r}")
    if count and (name != "on-failure" or not count.isdigit()):
        raise UsageError(f"invalid restart policy {text!r}: maximum retry count applies to on-failure only")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def key_values(items: list[str], what: str) -> dict[str, str]:
    """Repeated `KEY=VALUE` (labels, log options) → a dict; `KEY` alone means an empty value."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what}: {item!r}")
        out[key] = value
    return out


def filters(items: list[str]) -> str | None:
    """Repeated `--filter key=value` → Docker's JSON filters value."""
    found: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {item}")
        found.setdefault(key, {})[value] = True
    return fastjson.dumps(found) if found else None


def timestamp(text: str | None, now: float | None = None) -> str | None:
    """`--since`/`--until`: a duration before now (`10m`, `1h30m` as `90m`), RFC 3339, or unix
    seconds → unix seconds with nanoseconds, as the docker CLI sends them."""
    if not text:
        return None
    now = time.time() if now is None else now
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit) and (amount := _float(text[:-len(unit)])) is not None:
            return f"{now - amount * _DURATION_UNITS[unit]:.9f}"
    if _float(text) is not None:
        return text  # unix seconds
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid time {text!r}: use a duration (10m), RFC 3339 or unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return f"{moment.timestamp():.9f}"


def _port_range(text: str, what: str) -> list[int]:
    first, dash, last = text.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise UsageError(f"invalid {what} port: {text!r}")
    low, high = int(first), int(last) if dash else int(first)
    if not 0 < low <= high <= 65535:
        raise UsageError(f"invalid {what} port range: {text!r}")
    return list(range(low, high + 1))


def publish(specs: list[str]) -> tuple[dict, dict]:
    """`-p` values (docker's `[ip:][hostPort:]containerPort[/proto]`, ranges `a-b`) →
    (ExposedPorts, PortBindings)."""
    exposed: dict = {}
    bindings: dict = {}
    for spec in specs:
        body, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise UsageError(f"invalid protocol {proto!r} in {spec!r}")
        if body.startswith("["):  # [::1]:80:80
            ip, _, rest = body[1:].partition("]")
            parts = [ip, *rest.lstrip(":").split(":")]
        else:
            parts = body.split(":")
        if len(parts) == 1:
            ip, host, container = "", "", parts[0]
        elif len(parts) == 2:
            ip, (host, container) = "", parts
        elif len(parts) == 3:
            ip, host, container = parts
        else:
            raise UsageError(f"invalid port specification: {spec!r}")
        container_ports = _port_range(container, "container")
        host_ports = _port_range(host, "host") if host else []
        if host_ports and len(host_ports) != len(container_ports):
            if len(container_ports) != 1:
                raise UsageError(f"invalid ranges specified for container and host ports: {spec!r}")
            host_ports = [host_ports[0]]  # docker: one container port, a host range: the first free (here: the first)
        for i, port in enumerate(container_ports):
            key = f"{port}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": str(host_ports[i]) if host_ports else ""})
    return exposed, bindings
