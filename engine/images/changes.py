"""Dockerfile-style `--change` instructions applied to an image's runtime config.

`docker import --change` and `docker commit --change` send lines such as
`CMD ["sh"]`, `ENV A=1 B=2`, `WORKDIR /app`; the same parser will serve `build`.
"""

from __future__ import annotations

import json
import shlex

import msgspec

from ..errors import BadRequest
from ..models import ImageRuntimeConfig

SHELL = ["/bin/sh", "-c"]


def _command(arg: str) -> list[str]:
    """Exec form (a JSON array of strings) or shell form (`/bin/sh -c ...`)."""
    if arg.startswith("["):
        try:
            value = json.loads(arg)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [*SHELL, arg]


def _pairs(arg: str, instruction: str) -> dict[str, str]:
    words = shlex.split(arg)
    if len(words) == 2 and "=" not in words[0]:
        return {words[0]: words[1]}  # legacy `ENV KEY value`
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise BadRequest(f"{instruction} requires KEY=VALUE pairs, got {word!r}")
        pairs[key] = value
    return pairs


def apply(config: ImageRuntimeConfig, changes: list[str]) -> ImageRuntimeConfig:
    """Return `config` with each change line applied in order.

    As in a Dockerfile, an ENTRYPOINT clears the CMD it inherits, unless a CMD came
    before it in the same changes (dockerd's commit and import follow that rule)."""
    cmd_set = False
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instruction, _, arg = line.partition(" ")
        instruction, arg = instruction.upper(), arg.strip()
        if instruction == "CMD":
            config = msgspec.structs.replace(config, cmd=_command(arg))
            cmd_set = True
        elif instruction == "ENTRYPOINT":
            config = msgspec.structs.replace(config, entrypoint=_command(arg), cmd=config.cmd if cmd_set else None)
        elif instruction == "ENV":
            env = dict(e.partition("=")[::2] for e in config.env or [])
            env.update(_pairs(arg, "ENV"))
            config = msgspec.structs.replace(config, env=[f"{k}={v}" for k, v in env.items()])
        elif instruction == "LABEL":
            config = msgspec.structs.replace(config, labels={**(config.labels or {}), **_pairs(arg, "LABEL")})
        elif instruction == "WORKDIR":
            config = msgspec.structs.replace(config, working_dir=arg)
        elif instruction == "USER":
            config = msgspec.structs.replace(config, user=arg)
        elif instruction == "STOPSIGNAL":
            config = msgspec.structs.replace(config, stop_signal=arg)
        elif instruction == "EXPOSE":
            ports = {p if "/" in p else f"{p}/tcp": {} for p in arg.split()}
            config = msgspec.structs.replace(config, exposed_ports={**(config.exposed_ports or {}), **ports})
        elif instruction == "VOLUME":
            paths = _command(arg) if arg.startswith("[") else arg.split()
            config = msgspec.structs.replace(config, volumes={**(config.volumes or {}), **{p: {} for p in paths}})
        else:
            raise BadRequest(f"{instruction} is not a valid change command")
    return config
