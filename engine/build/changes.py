"""`--change` lines of `docker commit` and `docker import`: Dockerfile instructions on an
image's runtime config, read and applied by the builder's own parser and steps, as
dockerd's commit and import use its builder's dispatchers.

The instructions dockerd takes there, and only those: CMD, ENTRYPOINT, ENV, EXPOSE,
HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR. Variables expand against the
config's own environment (`ENV PATH=/x:$PATH`), a relative WORKDIR joins the current one,
and an ENTRYPOINT clears the CMD it inherits unless a CMD came before it in the same
changes.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Iterator

import msgspec

from ..errors import BadRequest
from ..models import ImageRuntimeConfig
from . import steps
from .dockerfile import Instruction, instruction
from .words import expand

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")

ConfigChanges = Callable[[ImageRuntimeConfig], ImageRuntimeConfig]


def compile_changes(lines: list[str]) -> ConfigChanges:
    """Read every line now (a bad one is a 400 before anything is stored); the result
    applies them in order to a config."""
    found: list[Instruction] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        keyword = line.split(None, 1)[0]
        if keyword.upper() not in ALLOWED:
            raise BadRequest(f"{keyword.lower()} is not a valid change command")
        with _as_change(number):
            ins = instruction(line, number)
            steps.check(ins)
        found.append(ins)

    def apply(config: ImageRuntimeConfig) -> ImageRuntimeConfig:
        cmd_set = False
        for ins in found:
            env = dict(e.partition("=")[::2] for e in config.env or [])
            with _as_change(ins.line):
                if ins.keyword == "WORKDIR":
                    path = posixpath.join(config.working_dir or "/", expand(ins.rest, env))
                    config = msgspec.structs.replace(config, working_dir=posixpath.normpath(path))
                else:
                    config, _ = steps.apply(ins, config, env, "\\", cmd_set)
            cmd_set = cmd_set or ins.keyword == "CMD"
        return config

    return apply


@contextlib.contextmanager
def _as_change(number: int) -> Iterator[None]:
    """The builder's errors without their "Dockerfile parse error line N:" start: a change
    is not a Dockerfile line."""
    prefix = f"Dockerfile parse error line {number}: "
    try:
        yield
    except BadRequest as exc:
        if not exc.message.startswith(prefix):
            raise
        raise BadRequest(exc.message.removeprefix(prefix)) from None
