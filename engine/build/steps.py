"""What each metadata instruction does to the image config, and the history line it
leaves, as Docker's classic builder writes them.

No I/O here: an instruction and the current config in, the new config and the history
entry's CreatedBy out. Metadata-only instructions leave `<shell> #(nop)  TEXT` (two
spaces, Docker's `withCmdComment`); COPY, ADD and WORKDIR leave `<shell> #(nop) TEXT`
(one); RUN leaves its command, after `|N K=V…` when build args are in scope.
"""

from __future__ import annotations

import json
import re

import msgspec

from ..containers import checks
from ..errors import BadRequest
from ..models import HealthConfig, ImageRuntimeConfig
from ..runtime.oci import parse_signal
from .dockerfile import Instruction, error, first_word
from .words import expand, expand_words

DEFAULT_SHELL = ["/bin/sh", "-c"]
# The args every build knows without an ARG line; they stay out of history unless declared.
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})
_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def shell_of(config: ImageRuntimeConfig) -> list[str]:
    return list(config.shell or DEFAULT_SHELL)


def nop(config: ImageRuntimeConfig, text: str, spaces: int = 2) -> str:
    """A metadata step's CreatedBy."""
    return " ".join(shell_of(config)) + " #(nop)" + " " * spaces + text


def go_quote_list(items: list[str]) -> str:
    """Go's `%q` of a string slice: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 1m30s, 500ms, 0s."""
    if ns == 0:
        return "0s"
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    s = f"{rest / 10**9:.9f}".rstrip("0").rstrip(".")
    return (f"{h}h{m}m" if h else f"{m}m" if m else "") + f"{s}s"


def parse_duration(text: str, flag: str, line: int) -> int:
    """A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(float(match.group(1)) * _UNITS[match.group(2)])
        pos = match.end()
    if pos != len(text) or not text:
        raise error(line, f"HEALTHCHECK: invalid duration for --{flag}: {text!r}")
    return total


def command(ins: Instruction, config: ImageRuntimeConfig) -> list[str]:
    """RUN, CMD and ENTRYPOINT's command: the JSON form as is, else the shell form."""
    if ins.json is not None:
        return list(ins.json)
    return [*shell_of(config), ins.rest] if ins.rest else shell_of(config)  # a bare CMD: the shell alone, as dockerd


def pairs(ins: Instruction, env: dict[str, str], escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL's `k=v k2="v 2"` (or the old `key value…`), values expanded."""
    words = _raw_words(ins.rest)
    if words and "=" not in words[0]:
        name, value = first_word(ins.rest)
        if not value.strip():
            raise error(ins.line, f"{ins.keyword} must have two arguments")
        return [(expand(name, env, escape), expand(value.strip(), env, escape))]
    found = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq:
            raise error(ins.line, f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        if not name:
            raise error(ins.line, f"{ins.keyword} names can not be blank")
        found.append((expand(name, env, escape), expand(value, env, escape)))
    return found


def _raw_words(text: str) -> list[str]:
    """Words at whitespace outside quotes, quotes kept (Docker's parseWords)."""
    words, current, quote, escaped = [], [], "", False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quote != "'":
            current.append(ch)
            escaped = True
        elif quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            current.append(ch)
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def check(ins: Instruction) -> None:
    """What can be refused before anything runs."""
    if ins.keyword == "SHELL" and ins.json is None:
        raise error(ins.line, "SHELL requires the arguments to be in JSON form")
    if ins.keyword == "SHELL" and not ins.json:
        raise error(ins.line, "SHELL requires at least one argument")
    if ins.keyword in ("COPY", "ADD") and len(ins.json if ins.json is not None else _raw_words(ins.rest)) < 2:
        raise error(ins.line, f"{ins.keyword} requires at least two arguments")
    if ins.keyword == "ONBUILD":
        trigger = ins.rest.split(None, 1)[0].upper()
        if trigger == "ONBUILD":
            raise error(ins.line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            raise error(ins.line, f"{trigger} isn't allowed as an ONBUILD trigger")
    if ins.keyword == "HEALTHCHECK":
        kind = ins.rest.split(None, 1)[0].upper()
        if kind not in ("CMD", "NONE"):
            raise error(ins.line, f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")


def apply(ins: Instruction, config: ImageRuntimeConfig, env: dict[str, str], escape: str,
          cmd_set: bool) -> tuple[ImageRuntimeConfig, str]:
    """A metadata instruction on `config`: (new config, CreatedBy)."""
    kw, replace = ins.keyword, msgspec.structs.replace
    if kw == "ENV":
        found = pairs(ins, env, escape)
        current = list(config.env or [])
        for name, value in found:  # replaced where it stands, as dockerd: `env` keeps its order
            at = next((i for i, e in enumerate(current) if e.partition("=")[0] == name), None)
            if at is None:
                current.append(f"{name}={value}")
            else:
                current[at] = f"{name}={value}"
        return replace(config, env=current), nop(config, "ENV " + " ".join(f"{k}={v}" for k, v in found))
    if kw == "LABEL":
        found = pairs(ins, env, escape)
        return (replace(config, labels={**(config.labels or {}), **dict(found)}),
                nop(config, "LABEL " + " ".join(f"{k}={v}" for k, v in found)))
    if kw == "CMD":
        cmd = command(ins, config)
        return replace(config, cmd=cmd), nop(config, "CMD " + go_quote_list(cmd))
    if kw == "ENTRYPOINT":
        entrypoint = command(ins, config) if ins.rest not in ("", "[]") else None
        # as Docker: a new ENTRYPOINT drops the base image's CMD, not one set in this stage
        return (replace(config, entrypoint=entrypoint, cmd=config.cmd if cmd_set else None),
                nop(config, "ENTRYPOINT " + go_quote_list(entrypoint or [])))
    if kw == "EXPOSE":
        ports = expand_words(ins.rest, env, escape)
        exposed = dict(config.exposed_ports or {})
        for port in ports:
            exposed.update(dict.fromkeys(exposed_ports(port, ins.line), {}))
        return replace(config, exposed_ports=exposed), nop(config, "EXPOSE " + " ".join(sorted(ports)))
    if kw == "VOLUME":
        volumes = [expand(v, env, escape) for v in ins.json] if ins.json is not None \
            else expand_words(ins.rest, env, escape)
        if not volumes or any(not v.strip() for v in volumes):
            raise error(ins.line, "VOLUME specified can not be an empty string")
        return (replace(config, volumes={**(config.volumes or {}), **{v: {} for v in volumes}}),
                nop(config, "VOLUME [" + " ".join(volumes) + "]"))
    if kw == "USER":
        user = expand(ins.rest, env, escape)
        return replace(config, user=user), nop(config, "USER " + user)
    if kw == "STOPSIGNAL":
        sig = expand(ins.rest, env, escape)
        try:
            parse_signal(sig)
        except ValueError:
            raise error(ins.line, f"STOPSIGNAL: invalid signal: {sig}") from None
        return replace(config, stop_signal=sig), nop(config, "STOPSIGNAL " + sig)
    if kw == "SHELL":
        return replace(config, shell=list(ins.json)), nop(config, "SHELL " + go_quote_list(list(ins.json)))
    if kw == "ONBUILD":
        trigger = ins.rest.strip()
        return (replace(config, on_build=[*(config.on_build or []), trigger]), nop(config, "ONBUILD " + trigger))
    if kw == "HEALTHCHECK":
        health = healthcheck(ins, config)
        text = ("&{" + go_quote_list(health.test or []) + " " + " ".join(
            json.dumps(go_duration(d)) for d in (health.interval, health.timeout, health.start_period))
            + " " + _go_rune(health.retries) + "}")
        return replace(config, healthcheck=health), nop(config, "HEALTHCHECK " + text)
    raise BadRequest(f"{kw} is not a metadata instruction")


def exposed_ports(spec: str, line: int) -> list[str]:
    """One EXPOSE word as dockerd reads a port spec (`80`, `53/UDP`, `8000-8002`, even
    `127.0.0.1:8080:80`: the container's side counts): its `N/proto` keys."""
    number, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    number = number.rsplit(":", 1)[-1]
    numbers = checks.port_range(number)
    if proto not in ("tcp", "udp", "sctp"):
        raise error(line, f"EXPOSE: invalid proto: {proto}")
    if not numbers or numbers[0] == 0 or numbers[-1] > 65535:  # empty: a reversed range
        raise error(line, f"EXPOSE: invalid containerPort: {number}")
    return [f"{n}/{proto}" for n in numbers]


def healthcheck(ins: Instruction, config: ImageRuntimeConfig) -> HealthConfig:
    kind, rest = first_word(ins.rest)
    rest = rest.strip()
    if kind.upper() == "NONE":
        if rest:
            raise error(ins.line, "HEALTHCHECK NONE takes no arguments")
        return HealthConfig(test=["NONE"])
    if not rest:
        raise error(ins.line, "Missing command after HEALTHCHECK CMD")
    try:
        as_json = json.loads(rest) if rest.startswith("[") else None
    except ValueError:
        as_json = None
    test = ["CMD", *as_json] if isinstance(as_json, list) else ["CMD-SHELL", rest]
    flags = ins.flags
    retries = flags.get("retries", "") or "0"
    if not retries.isdigit() or ("retries" in flags and int(retries) < 1):
        raise error(ins.line, f"HEALTHCHECK: --retries must be at least 1 (not {retries})")
    durations = {}
    for flag in ("interval", "timeout", "start-period"):
        value = parse_duration(flags.get(flag, "0") or "0", flag, ins.line)
        if flag in flags and flags[flag] and value <= 0:  # given, it must say something (dockerd)
            raise error(ins.line, f"HEALTHCHECK: Interval {flag!r} must be positive")
        durations[flag] = value
    return HealthConfig(test=test, interval=durations["interval"], timeout=durations["timeout"],
                        start_period=durations["start-period"], retries=int(retries))


def _go_rune(n: int) -> str:
    """Go's `%q` of an int: a quoted character."""
    if 32 <= n < 127:
        return "'" + ("\\" + chr(n) if chr(n) in "'\\" else chr(n)) + "'"
    return f"'\\x{n:02x}'" if n < 256 else f"'\\u{n:04x}'"
