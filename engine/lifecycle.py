"""The container state machine, as two tables: what happens, and what a user may ask.

Rules (read before editing the tables):

* A container is in exactly one `State`. The state changes only through `apply(state,
  step)`, the one writer: it looks the `Step` (something that happened to the container:
  its process started, it was signalled, it exited, …) up in `MOVES`, sets the status and
  derives Docker's `Running`/`Paused`/`Restarting`/`Dead` booleans from it, and returns the
  events that move emits. The caller publishes exactly those, in order.
* A user `Action` is checked first with `check(state, action)`, under the container's
  action lock: `REQUESTS` answers it with the steps it will take (`Accept`), or with the
  error Docker answers (`Refusal`: 304 when it is already done, 409 when it is illegal).
  A pair missing from `REQUESTS` is illegal (409 "not running", or "removal in progress").
* A step missing from `MOVES` for the current state is a bug in the engine, never the
  user's doing: `apply` raises `IllegalMove`.
* `docs/architecture.md` holds `render_markdown()`: each request with the state it ends
  in and the events its steps emit, derived from `MOVES`, so the two cannot disagree; a
  test keeps the doc equal to the code, and another walks every accepted request's steps.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import msgspec

from .errors import Conflict, EngineError, NotModified
from .models import ContainerState


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"


class Action(enum.StrEnum):
    """What a user asks of a container."""

    START = "start"
    STOP = "stop"
    KILL = "kill"
    RESTART = "restart"
    REMOVE = "remove"
    FORCE_REMOVE = "force-remove"
    PAUSE = "pause"
    UNPAUSE = "unpause"


class Step(enum.StrEnum):
    """What happens to a container; each is one move in `MOVES`."""

    RUN = "run"  # the runtime started its process
    START_FAILED = "start-failed"  # the runtime could not start it: the state stays
    SIGNAL = "signal"  # a signal was sent to its process
    THAW = "thaw"  # a signal thawed it (dockerd thaws to deliver a stop signal or SIGKILL)
    PAUSE = "pause"  # the cgroup freezer froze it
    UNPAUSE = "unpause"  # the cgroup freezer thawed it
    EXIT = "exit"  # its process ended, for good
    EXIT_TO_RESTART = "exit-to-restart"  # its process ended; the restart policy starts it again
    CANCEL_RESTART = "cancel-restart"  # a stop cut the restart policy's back-off short
    STOPPED = "stopped"  # a `stop` finished
    RESTARTED = "restarted"  # a `restart` finished
    RECOVER = "recover"  # a new daemon found it live: the process died with the old one
    REMOVE = "remove"  # its files are being deleted
    DESTROY = "destroy"  # it is gone


class Move(NamedTuple):
    """A legal step: the next state and the events it emits, in order."""

    next: State
    events: tuple[str, ...]


class Accept(NamedTuple):
    """A legal request: the steps it takes, in order (a kill that is not fatal stops
    after `SIGNAL`; the table lists the usual, fatal path)."""

    steps: tuple[Step, ...]


class Refusal(NamedTuple):
    """An illegal request: the error class and its message template ({id}, {name})."""

    error: type[EngineError]
    message: str


class IllegalMove(EngineError):
    """A step the state does not allow: an engine bug (500), never bad input."""


S, St = State, Step
MOVES: dict[tuple[State, Step], Move] = {
    (S.CREATED, St.RUN): Move(S.RUNNING, ("start",)),
    (S.EXITED, St.RUN): Move(S.RUNNING, ("start",)),
    (S.RESTARTING, St.RUN): Move(S.RUNNING, ("start",)),
    (S.CREATED, St.START_FAILED): Move(S.CREATED, ("die",)),
    (S.EXITED, St.START_FAILED): Move(S.EXITED, ("die",)),
    (S.RUNNING, St.SIGNAL): Move(S.RUNNING, ("kill",)),
    (S.PAUSED, St.SIGNAL): Move(S.PAUSED, ("kill",)),
    (S.PAUSED, St.THAW): Move(S.RUNNING, ("unpause",)),  # as dockerd, which thaws to deliver it
    (S.RUNNING, St.PAUSE): Move(S.PAUSED, ("pause",)),
    (S.PAUSED, St.UNPAUSE): Move(S.RUNNING, ("unpause",)),
    (S.RUNNING, St.EXIT): Move(S.EXITED, ("die",)),
    (S.PAUSED, St.EXIT): Move(S.EXITED, ("die",)),
    (S.RESTARTING, St.EXIT): Move(S.EXITED, ("die",)),  # a restart that could not start
    (S.RUNNING, St.EXIT_TO_RESTART): Move(S.RESTARTING, ("die",)),
    (S.PAUSED, St.EXIT_TO_RESTART): Move(S.RESTARTING, ("die",)),
    (S.RESTARTING, St.EXIT_TO_RESTART): Move(S.RESTARTING, ("die",)),
    (S.RESTARTING, St.CANCEL_RESTART): Move(S.EXITED, ()),
    (S.EXITED, St.STOPPED): Move(S.EXITED, ("stop",)),
    # an AutoRemove container, removed as its stop ended: the stop succeeded, as in dockerd
    (S.REMOVING, St.STOPPED): Move(S.REMOVING, ("stop",)),
    (S.RUNNING, St.RESTARTED): Move(S.RUNNING, ("restart",)),
    # the restarted process may have ended already (its exit is recorded first)
    (S.EXITED, St.RESTARTED): Move(S.EXITED, ("restart",)),
    (S.RESTARTING, St.RESTARTED): Move(S.RESTARTING, ("restart",)),
    (S.RUNNING, St.RECOVER): Move(S.EXITED, ()),
    (S.PAUSED, St.RECOVER): Move(S.EXITED, ()),
    (S.RESTARTING, St.RECOVER): Move(S.EXITED, ()),
    (S.REMOVING, St.RECOVER): Move(S.EXITED, ()),
    (S.CREATED, St.REMOVE): Move(S.REMOVING, ()),
    (S.EXITED, St.REMOVE): Move(S.REMOVING, ()),
    (S.DEAD, St.REMOVE): Move(S.REMOVING, ()),
    (S.REMOVING, St.DESTROY): Move(S.REMOVING, ("destroy",)),
}

_STOP = (St.SIGNAL, St.EXIT, St.STOPPED)
_STOP_PAUSED = (St.SIGNAL, St.THAW, St.EXIT, St.STOPPED)
_GONE = (St.REMOVE, St.DESTROY)
_NOT_RUNNING = Refusal(Conflict, "Container {id} is not running")
_CANNOT_KILL = "Cannot kill container: {name}: Container {id} is not running"

A = Action
REQUESTS: dict[tuple[State, Action], Accept | Refusal] = {
    (S.CREATED, A.START): Accept((St.RUN,)),
    (S.EXITED, A.START): Accept((St.RUN,)),
    (S.RUNNING, A.START): Refusal(NotModified, ""),
    (S.RESTARTING, A.START): Refusal(NotModified, ""),
    (S.PAUSED, A.START): Refusal(Conflict, "cannot start a paused container, try unpause instead"),
    (S.RUNNING, A.STOP): Accept(_STOP),
    (S.PAUSED, A.STOP): Accept(_STOP_PAUSED),
    (S.RESTARTING, A.STOP): Accept((St.CANCEL_RESTART, St.STOPPED)),
    (S.CREATED, A.STOP): Refusal(NotModified, ""),
    (S.EXITED, A.STOP): Refusal(NotModified, ""),
    (S.RUNNING, A.KILL): Accept((St.SIGNAL, St.EXIT)),
    (S.PAUSED, A.KILL): Accept((St.SIGNAL, St.THAW, St.EXIT)),
    (S.CREATED, A.KILL): Refusal(Conflict, _CANNOT_KILL),
    (S.EXITED, A.KILL): Refusal(Conflict, _CANNOT_KILL),
    (S.RESTARTING, A.KILL): Accept((St.CANCEL_RESTART,)),  # as dockerd: no process to signal; the loop ends
    (S.RUNNING, A.RESTART): Accept((*_STOP, St.RUN, St.RESTARTED)),
    (S.PAUSED, A.RESTART): Accept((*_STOP_PAUSED, St.RUN, St.RESTARTED)),
    (S.RESTARTING, A.RESTART): Accept((St.CANCEL_RESTART, St.STOPPED, St.RUN, St.RESTARTED)),
    (S.CREATED, A.RESTART): Accept((St.RUN, St.RESTARTED)),
    (S.EXITED, A.RESTART): Accept((St.RUN, St.RESTARTED)),
    (S.CREATED, A.REMOVE): Accept(_GONE),
    (S.EXITED, A.REMOVE): Accept(_GONE),
    (S.DEAD, A.REMOVE): Accept(_GONE),
    (S.RUNNING, A.REMOVE): Refusal(Conflict, "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
    (S.RESTARTING, A.REMOVE): Refusal(Conflict, "You cannot remove a restarting container {id}. Stop the container before attempting removal or force remove"),
    (S.PAUSED, A.REMOVE): Refusal(Conflict, "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"),
    (S.CREATED, A.FORCE_REMOVE): Accept(_GONE),
    (S.EXITED, A.FORCE_REMOVE): Accept(_GONE),
    (S.DEAD, A.FORCE_REMOVE): Accept(_GONE),
    (S.RUNNING, A.FORCE_REMOVE): Accept((St.SIGNAL, St.EXIT, *_GONE)),
    (S.PAUSED, A.FORCE_REMOVE): Accept((St.SIGNAL, St.THAW, St.EXIT, *_GONE)),
    (S.RESTARTING, A.FORCE_REMOVE): Accept((St.CANCEL_RESTART, *_GONE)),
    (S.RUNNING, A.PAUSE): Accept((St.PAUSE,)),
    (S.PAUSED, A.PAUSE): Refusal(Conflict, "Container {id} is already paused"),
    (S.RESTARTING, A.PAUSE): Refusal(Conflict, "Container {id} is restarting, wait until the container is running"),
    (S.PAUSED, A.UNPAUSE): Accept((St.UNPAUSE,)),
    (S.RUNNING, A.UNPAUSE): Refusal(Conflict, "Container {id} is not paused"),
    # dockerd asks whether it is paused before anything else
    (S.CREATED, A.UNPAUSE): Refusal(Conflict, "Container {id} is not paused"),
    (S.EXITED, A.UNPAUSE): Refusal(Conflict, "Container {id} is not paused"),
    (S.RESTARTING, A.UNPAUSE): Refusal(Conflict, "Container {id} is not paused"),
}
del S, St, A

_REMOVAL_IN_PROGRESS = Refusal(Conflict, "removal of container {id} is already in progress")
# Live: a process runs, or is about to again (Docker's `State.Running`).
LIVE = (State.RUNNING, State.PAUSED, State.RESTARTING)


def check(state: State, action: Action, *, id: str, name: str) -> Accept:
    """The steps `action` takes from `state`, or raise the error Docker answers."""
    rule = REQUESTS.get((state, action))
    if rule is None:
        rule = _REMOVAL_IN_PROGRESS if state is State.REMOVING else _NOT_RUNNING
    if isinstance(rule, Refusal):
        raise rule.error(rule.message.format(id=id, name=name))
    return rule


def apply(current: ContainerState, step: Step, **fields) -> tuple[ContainerState, tuple[str, ...]]:
    """Take `step` from `current`: the new state (with `fields` such as pid or exit_code
    set too) and the events to publish. The status and its booleans are never given."""
    state = State(current.status)
    move = MOVES.get((state, step))
    if move is None:
        raise IllegalMove(f"berthd: a {state} container cannot {step}")
    if fields.keys() & _STATUS_FIELDS:
        raise ValueError(f"the status follows from the step, not {sorted(fields.keys() & _STATUS_FIELDS)}")
    new = msgspec.structs.replace(current, **fields, status=move.next.value, running=move.next in LIVE,
                                  paused=move.next is State.PAUSED, restarting=move.next is State.RESTARTING,
                                  dead=move.next is State.DEAD)
    return new, move.events


_STATUS_FIELDS = frozenset({"status", "running", "paused", "restarting", "dead"})


def annotate(current: ContainerState, **fields) -> ContainerState:
    """Set what is kept beside the status (health): never the status, which only `apply` moves."""
    if fields.keys() & _STATUS_FIELDS:
        raise ValueError(f"the status moves only through lifecycle.apply, not {sorted(fields.keys() & _STATUS_FIELDS)}")
    return msgspec.structs.replace(current, **fields)


def walk(state: State, steps: tuple[Step, ...]) -> tuple[State, tuple[str, ...]]:
    """Where `steps` lead from `state`, and the events they emit on the way."""
    events: list[str] = []
    for step in steps:
        move = MOVES.get((state, step))
        if move is None:
            raise IllegalMove(f"a {state} container cannot {step}")
        state = move.next
        events += move.events
    return state, tuple(events)


def render_markdown() -> str:
    """The requests as Markdown, with where their steps lead (for docs/architecture.md)."""
    lines = ["| state | action | result | steps | events |", "|---|---|---|---|---|"]
    for (state, action), rule in REQUESTS.items():
        if isinstance(rule, Accept):
            end, events = walk(state, rule.steps)
            lines.append(f"| {state} | {action} | → {end} | {', '.join(rule.steps)} | {', '.join(events)} |")
        else:
            message = rule.message.format(id="<id>", name="<name>")
            lines.append(f"| {state} | {action} | {rule.error.status} {message} | | |")
    return "\n".join(lines)
