"""A Dockerfile as stages, and which of them a target needs.

ARG lines before the first FROM are the build's global args (usable in FROM lines);
every FROM opens a stage, named by `AS name` or known by its index. A stage needs the
stages its FROM or its `COPY --from` name; the target (`--target`, else the last stage)
and what it needs, transitively, are built, in Dockerfile order; the rest are skipped.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import BadRequest
from .dockerfile import Dockerfile, Instruction, error


_STAGE_NAME = re.compile(r"[a-z][a-z0-9._-]*")  # dockerd's, after lowering


class Stage(msgspec.Struct):
    index: int
    name: str  # "" when it has no `AS name`
    base: str  # the FROM image (or earlier stage), variables not yet expanded
    instructions: list[Instruction]  # FROM first
    earlier: dict[str, int]  # the stages before it, by name and by index


def plan(dockerfile: Dockerfile, target: str = "") -> tuple[list[Instruction], list[Stage], list[int]]:
    """(global ARG lines, every stage, the indices of the stages to build, in order)."""
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for ins in dockerfile.instructions:
        if ins.keyword == "FROM":
            words = ins.rest.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise error(ins.line, "FROM requires either one or three arguments")
            name = words[2].lower() if len(words) == 3 else ""
            if name and not _STAGE_NAME.fullmatch(name):
                raise error(ins.line, f"invalid name for build stage: {words[2]!r}, name can't start with a "
                                      "number or contain symbols")
            if name in names:
                raise error(ins.line, f"duplicate name {name!r}: stage names must be unique")
            earlier = {**names, **{str(i): i for i in range(len(stages))}}
            stages.append(Stage(len(stages), name, words[0], [ins], earlier))
            if name:
                names[name] = len(stages) - 1
        elif not stages:
            if ins.keyword != "ARG":
                raise error(ins.line, f"{ins.keyword} cannot be used before FROM")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise BadRequest("the Dockerfile has no FROM: no build stage in current context")
    if target:
        if target.lower() not in names:
            raise BadRequest(f"failed to reach build target {target} in Dockerfile")
        last = names[target.lower()]
    else:
        last = len(stages) - 1
    needed, todo = set(), [last]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        stage = stages[index]
        refs = [stage.base.lower()] + [i.flags["from"].lower() for i in stage.instructions if "from" in i.flags]
        for ref in refs:
            if "$" in ref:  # known only once expanded: keep every earlier stage
                todo += range(index)
            elif ref in stage.earlier:
                todo.append(stage.earlier[ref])
    return global_args, stages, sorted(needed)
