"""Docker's filters: which keys a listing takes, label matching, and event filters.

Filters arrive decoded (the API reads both wire shapes of the `filters` query parameter)
as `{"label": ["app=x"]}`. Values of one key are ORed, keys are ANDed, as in Docker.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import BadRequest
from ..models import Event

Filters = dict[str, list[str]]


def check(filters: Filters | None, allowed: Iterable[str]) -> Filters:
    """`filters` (empty for None) when every key is one of `allowed`; an unknown key is a
    400 naming it, as in Docker."""
    for key in filters or {}:
        if key not in allowed:
            raise BadRequest(f"invalid filter '{key}'")
    return filters or {}


def label_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """Every `key` / `key=value` in `wanted` holds for `labels` (label filters AND)."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


PRUNE_FILTERS = ("label", "label!")  # and `until`, which the API takes out first (`query.until`)


def prune_match(filters: Filters, labels: dict[str, str], created: str, before: str) -> bool:
    """Whether a prune takes an object: every `label` holds, no `label!` does, and it was
    created before `before` ("" for no bound; RFC 3339 times as records hold them are
    fixed-width, so they compare as strings)."""
    if filters.get("label") and not label_match(filters["label"], labels):
        return False
    if any(label_match([item], labels) for item in filters.get("label!", [])):
        return False
    return not before or created < before


EVENT_FILTERS = ("type", "event", "container", "image", "label", "volume", "network", "daemon", "scope", "plugin")


class EventFilter:
    """A compiled event filter: call it with an Event."""

    def __init__(self, filters: Filters):
        self.filters = filters

    def __call__(self, event: Event) -> bool:
        f = self.filters
        attrs = event.Actor.Attributes
        if "type" in f and event.Type not in f["type"]:
            return False
        if "event" in f and event.Action.partition(":")[0] not in f["event"]:
            return False
        if "scope" in f and event.scope not in f["scope"]:
            return False
        if "label" in f and not label_match(f["label"], attrs):
            return False
        if "container" in f and not (event.Type == "container" and _actor_is(event, f["container"])):
            return False
        if "image" in f:
            image = attrs.get("image") if event.Type == "container" else None
            if not (image in f["image"] or (event.Type == "image" and _actor_is(event, f["image"], name_prefix=False))):
                return False
        for kind in ("volume", "network", "daemon", "plugin"):
            if kind in f and not (event.Type == kind and _actor_is(event, f[kind])):
                return False
        return True


def _actor_is(event: Event, refs: list[str], *, name_prefix: bool = True) -> bool:
    """Whether the event's actor is one of `refs`: an ID prefix, or its name (a name's
    prefix too, as dockerd's FuzzyMatch, except for images, whose names it matches whole:
    `container=web` follows `web-1` through a rename)."""
    actor_id, name = event.Actor.ID, event.Actor.Attributes.get("name", "")
    return any(ref and (actor_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
                        or (name.startswith(ref) if name_prefix else name == ref))
               for ref in refs)
