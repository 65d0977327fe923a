"""The lifecycle table: every state answers every action, with Docker's statuses."""

from __future__ import annotations

import pytest

from engine import lifecycle
from engine.errors import Conflict, NotModified
from engine.lifecycle import Action, State


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_every_pair_has_an_answer(state, action):
    try:
        move = lifecycle.check(state, action, id="abc", name="n")
    except (Conflict, NotModified) as exc:
        assert exc.status in (304, 409)
    else:
        assert isinstance(move.next, State) and move.events


def test_docker_statuses():
    with pytest.raises(NotModified):
        lifecycle.check(State.RUNNING, Action.START, id="i", name="n")
    with pytest.raises(NotModified):
        lifecycle.check(State.EXITED, Action.STOP, id="i", name="n")
    with pytest.raises(Conflict, match="You cannot remove a running container i"):
        lifecycle.check(State.RUNNING, Action.REMOVE, id="i", name="n")
    with pytest.raises(Conflict, match="Cannot kill container: n: Container i is not running"):
        lifecycle.check(State.EXITED, Action.KILL, id="i", name="n")
    assert lifecycle.check(State.RUNNING, Action.FORCE_REMOVE, id="i", name="n").next is State.REMOVING


def test_rendered_table_lists_every_rule():
    text = lifecycle.render_markdown()
    assert text.count("\n") == len(lifecycle.TABLE) + 1
