"""The lifecycle tables: every state answers every action with Docker's statuses, every
accepted action's steps are legal moves, and `apply` is the only writer of the state."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine import lifecycle
from engine.errors import Conflict, NotModified
from engine.lifecycle import Action, IllegalMove, State, Step
from engine.models import ContainerState

ENGINE = Path(__file__).resolve().parents[2] / "engine"


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_every_pair_has_an_answer(state, action):
    try:
        accept = lifecycle.check(state, action, id="abc", name="n")
    except (Conflict, NotModified) as exc:
        assert exc.status in (304, 409)
    else:
        end, events = lifecycle.walk(state, accept.steps)  # every step is a legal move
        # kill of a restarting container only ends its loop: dockerd signals nothing, says nothing
        assert isinstance(end, State) and (events or (state, action) == (State.RESTARTING, Action.KILL))


def test_docker_statuses():
    with pytest.raises(NotModified):
        lifecycle.check(State.RUNNING, Action.START, id="i", name="n")
    with pytest.raises(NotModified):
        lifecycle.check(State.EXITED, Action.STOP, id="i", name="n")
    with pytest.raises(Conflict, match="You cannot remove a running container i"):
        lifecycle.check(State.RUNNING, Action.REMOVE, id="i", name="n")
    with pytest.raises(Conflict, match="Cannot kill container: n: Container i is not running"):
        lifecycle.check(State.EXITED, Action.KILL, id="i", name="n")
    with pytest.raises(Conflict, match="removal of container i is already in progress"):
        lifecycle.check(State.REMOVING, Action.START, id="i", name="n")
    accept = lifecycle.check(State.RUNNING, Action.FORCE_REMOVE, id="i", name="n")
    assert lifecycle.walk(State.RUNNING, accept.steps) == (State.REMOVING, ("kill", "die", "destroy"))
    accept = lifecycle.check(State.RUNNING, Action.STOP, id="i", name="n")
    assert lifecycle.walk(State.RUNNING, accept.steps) == (State.EXITED, ("kill", "die", "stop"))


@pytest.mark.parametrize(("state", "step"), list(lifecycle.MOVES))
def test_apply_sets_the_status_and_derives_dockers_booleans(state, step):
    current = ContainerState(status=state.value, pid=7)
    new, events = lifecycle.apply(current, step, exit_code=3)
    move = lifecycle.MOVES[state, step]
    assert (new.status, events, new.exit_code, new.pid) == (move.next.value, move.events, 3, 7)
    # Docker counts paused and restarting containers as running (State.Running).
    assert new.running == (move.next in (State.RUNNING, State.PAUSED, State.RESTARTING))
    assert new.paused == (move.next is State.PAUSED)
    assert new.restarting == (move.next is State.RESTARTING)
    assert new.dead == (move.next is State.DEAD)


def test_apply_refuses_an_illegal_step_and_a_status_given_by_hand():
    with pytest.raises(IllegalMove):
        lifecycle.apply(ContainerState(status="created"), Step.EXIT)
    with pytest.raises(ValueError):
        lifecycle.apply(ContainerState(status="running"), Step.SIGNAL, running=False)
    with pytest.raises(ValueError):
        lifecycle.annotate(ContainerState(status="running"), status="exited")


def test_rendered_table_lists_every_request():
    text = lifecycle.render_markdown()
    assert text.count("\n") == len(lifecycle.REQUESTS) + 1


def _state_writes(tree: ast.AST):
    """Assignments to a container record's `state` (or to a field of it)."""
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            for t in (target.elts if isinstance(target, ast.Tuple) else [target]):
                text = ast.unparse(t)
                if text.endswith("record.state") or ".record.state." in text:
                    yield node, text


def test_only_the_lifecycle_writes_a_containers_state():
    """Every write of `record.state` takes its value from lifecycle.apply or annotate."""
    found = []
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node, text in _state_writes(tree):
            value = ast.unparse(node.value) if node.value is not None else ""
            if not value.startswith(("lifecycle.apply(", "lifecycle.annotate(")):
                found.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno}: {text} = {value}")
    assert not found, "the state written outside the lifecycle table:\n" + "\n".join(found)
