"""The container state machine, as one table.

Rules (read before editing the table):

* A container is in exactly one `State`. Every user action on a container goes through
  `check(state, action)` before anything is done; the answer is either the state the
  action leads to, or an `EngineError` carrying the HTTP status Docker answers
  (304 when the action is already done, 409 when it is illegal).
* A (state, action) pair missing from the table is illegal (409, "not running" for
  actions that need a running process, generic otherwise).
* Beside each legal move are the events it emits, in order (the supervisor publishes
  `die` when the process exits; the Engine the rest). `docs/architecture.md` holds this
  table as `render_markdown()` renders it, and a test keeps the two equal.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from .errors import Conflict, EngineError, NotModified


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"


class Action(enum.StrEnum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    RESTART = "restart"
    REMOVE = "remove"
    FORCE_REMOVE = "force-remove"
    PAUSE = "pause"
    UNPAUSE = "unpause"


class Move(NamedTuple):
    """A legal move: the next state and the events it emits, in order."""

    next: State
    events: tuple[str, ...]


class Refusal(NamedTuple):
    """An illegal move: the error class and its message template ({id}, {name})."""

    error: type[EngineError]
    message: str


_NOT_RUNNING = Refusal(Conflict, "Container {id} is not running")

S, A = State, Action
TABLE: dict[tuple[State, Action], Move | Refusal] = {
    (S.CREATED, A.START): Move(S.RUNNING, ("start",)),
    (S.EXITED, A.START): Move(S.RUNNING, ("start",)),
    (S.RUNNING, A.START): Refusal(NotModified, ""),
    (S.RESTARTING, A.START): Refusal(NotModified, ""),
    (S.RUNNING, A.STOP): Move(S.EXITED, ("kill", "die", "stop")),
    (S.RESTARTING, A.STOP): Move(S.EXITED, ("stop",)),
    (S.CREATED, A.STOP): Refusal(NotModified, ""),
    (S.EXITED, A.STOP): Refusal(NotModified, ""),
    (S.RUNNING, A.KILL): Move(S.EXITED, ("kill", "die")),
    (S.CREATED, A.KILL): Refusal(Conflict, "Cannot kill container: {name}: Container {id} is not running"),
    (S.EXITED, A.KILL): Refusal(Conflict, "Cannot kill container: {name}: Container {id} is not running"),
    (S.RESTARTING, A.KILL): Refusal(Conflict, "Cannot kill container: {name}: Container {id} is restarting, wait until the container is running"),
    (S.RUNNING, A.RESTART): Move(S.RUNNING, ("kill", "die", "stop", "start", "restart")),
    (S.RESTARTING, A.RESTART): Move(S.RUNNING, ("start", "restart")),
    (S.CREATED, A.RESTART): Move(S.RUNNING, ("start", "restart")),
    (S.EXITED, A.RESTART): Move(S.RUNNING, ("start", "restart")),
    (S.CREATED, A.REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.EXITED, A.REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.DEAD, A.REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.RUNNING, A.REMOVE): Refusal(Conflict, "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
    (S.RESTARTING, A.REMOVE): Refusal(Conflict, "You cannot remove a restarting container {id}. Stop the container before attempting removal or force remove"),
    (S.CREATED, A.FORCE_REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.EXITED, A.FORCE_REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.DEAD, A.FORCE_REMOVE): Move(S.REMOVING, ("destroy",)),
    (S.RUNNING, A.FORCE_REMOVE): Move(S.REMOVING, ("kill", "die", "destroy")),
    (S.RESTARTING, A.FORCE_REMOVE): Move(S.REMOVING, ("destroy",)),
    # A paused container keeps its process, frozen. A stop, kill or forced removal
    # signals it and thaws it, so the signal is delivered (as dockerd does).
    (S.RUNNING, A.PAUSE): Move(S.PAUSED, ("pause",)),
    (S.PAUSED, A.UNPAUSE): Move(S.RUNNING, ("unpause",)),
    (S.PAUSED, A.PAUSE): Refusal(Conflict, "Container {id} is already paused"),
    (S.RUNNING, A.UNPAUSE): Refusal(Conflict, "Container {id} is not paused"),
    (S.RESTARTING, A.PAUSE): Refusal(Conflict, "Container {id} is restarting, wait until the container is running"),
    (S.PAUSED, A.START): Refusal(Conflict, "cannot start a paused container, try unpause instead"),
    (S.PAUSED, A.STOP): Move(S.EXITED, ("kill", "die", "stop")),
    (S.PAUSED, A.KILL): Move(S.EXITED, ("kill", "die")),
    (S.PAUSED, A.RESTART): Move(S.RUNNING, ("kill", "die", "stop", "start", "restart")),
    (S.PAUSED, A.REMOVE): Refusal(Conflict, "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"),
    (S.PAUSED, A.FORCE_REMOVE): Move(S.REMOVING, ("kill", "die", "destroy")),
}
del S, A

_REMOVAL_IN_PROGRESS = Refusal(Conflict, "removal of container {id} is already in progress")


def check(state: State, action: Action, *, id: str, name: str) -> Move:
    """Return the move `action` makes from `state`, or raise the error Docker answers."""
    rule = TABLE.get((state, action))
    if rule is None:
        rule = _REMOVAL_IN_PROGRESS if state is State.REMOVING else _NOT_RUNNING
    if isinstance(rule, Refusal):
        raise rule.error(rule.message.format(id=id, name=name))
    return rule


def render_markdown() -> str:
    """The table as Markdown, for docs/architecture.md."""
    lines = ["| state | action | result | events |", "|---|---|---|---|"]
    for (state, action), rule in TABLE.items():
        if isinstance(rule, Move):
            lines.append(f"| {state} | {action} | → {rule.next} | {', '.join(rule.events)} |")
        else:
            message = rule.message.format(id="<id>", name="<name>")
            lines.append(f"| {state} | {action} | {rule.error.status} {message} | |")
    return "\n".join(lines)
