"""docker's management commands for containers and images: the `container` and `image`
nouns, whose verbs are the top-level commands under docker's names (`container ls` is
`ps`, `image rm` is `rmi`) with docker's aliases (`list`, `remove`)."""

from __future__ import annotations

from ..grammar import Command, Group
from . import build, containers, files, images, registry


def _verbs(words: str, *modules) -> list[tuple[str, Command]]:
    """(word, command) for the top-level commands named in `words`, from `modules`' tables."""
    table = {c.name: c for module in modules for c in module.COMMANDS if isinstance(c, Command)}
    return [(word, table[word]) for word in words.split()]


def _sorted(verbs: list[tuple[str, Command]]) -> tuple[tuple[str, Command], ...]:
    """Verbs in docker's order, alphabetical, for the noun's help."""
    return tuple(sorted(verbs, key=lambda verb: verb[0]))


_CONTAINER_VERBS = ("attach commit cp create diff exec export kill logs pause port rename restart rm run start stats "
                    "stop top unpause update wait")
_IMAGE_VERBS = "build history import load pull push save tag"

COMMANDS = (
    Group("container", "manage containers", _sorted([
        *_verbs(_CONTAINER_VERBS, containers, files), ("inspect", containers.INSPECT),
        ("ls", _verbs("ps", containers)[0][1]), ("prune", containers.PRUNE)]),
        aliases={"list": "ls", "ps": "ls", "remove": "rm"}),
    Group("image", "manage images", _sorted([
        *_verbs(_IMAGE_VERBS, images, files, build, registry), ("inspect", images.INSPECT),
        ("ls", _verbs("images", images)[0][1]), ("prune", images.PRUNE), ("rm", _verbs("rmi", images)[0][1])]),
        aliases={"list": "ls", "remove": "rm", "rmi": "rm"}),
)
