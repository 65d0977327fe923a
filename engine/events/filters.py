"""Docker's `filters` query parameter: parse both wire shapes, match events.

The docker CLI sends `{"label":{"app=x":true}}`, docker-py sends `{"name":["x"]}`; both
become `{"label": ["app=x"]}`. Values of one key are ORed, keys are ANDed, as in Docker.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..errors import BadRequest
from ..models import Event

Filters = dict[str, list[str]]


def parse(raw: str | None, allowed: Iterable[str]) -> Filters:
    """Decode a `filters` value; unknown keys are a 400 naming the key, as in Docker."""
    if not raw:
        return {}
    try:
        value = msgspec.json.decode(raw.encode(), type=dict[str, list[str] | dict[str, bool]])
    except msgspec.DecodeError as exc:
        raise BadRequest(f"invalid filters: {exc}") from None
    allowed = set(allowed)
    out: Filters = {}
    for key, values in value.items():
        if key not in allowed:
            raise BadRequest(f"invalid filter '{key}'")
        out[key] = [v for v, on in values.items() if on] if isinstance(values, dict) else list(values)
    return out


def label_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """Every `key` / `key=value` in `wanted` holds for `labels` (label filters AND)."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


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
            if not (image in f["image"] or (event.Type == "image" and _actor_is(event, f["image"]))):
                return False
        for kind in ("volume", "network", "daemon", "plugin"):
            if kind in f and not (event.Type == kind and _actor_is(event, f[kind])):
                return False
        return True


def _actor_is(event: Event, refs: list[str]) -> bool:
    actor_id, name = event.Actor.ID, event.Actor.Attributes.get("name", "")
    return any(ref == name or (ref and actor_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:")))
               for ref in refs)
