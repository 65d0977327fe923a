"""Every event berth publishes is made here, in Docker's shape for its type.

One function per object type, so an event's fields (the legacy `status`/`id`/`from` of
container and image events, the actor's attributes, `scope`) are decided in one place.
"""

from __future__ import annotations

from ..models import Actor, Event


def container(cid: str, action: str, *, image: str, name: str, labels: dict[str, str] | None = None,
              **attrs: str) -> Event:
    """A container event: its labels, image and name as attributes, and the legacy fields."""
    attributes = {**(labels or {}), "image": image, "name": name, **attrs}
    return Event(Type="container", Action=action, Actor=Actor(cid, attributes), scope="local",
                 status=action, id=cid, from_=image)


def image(image_id: str, action: str, name: str | None = None) -> Event:
    return Event(Type="image", Action=action, Actor=Actor(image_id, {"name": name or image_id}), scope="local",
                 status=action, id=image_id)


def transfer(ref: str, action: str, repo: str) -> Event:
    """`pull` or `push` of an image, as dockerd makes them: the actor is the reference
    (`busybox:latest`), its `name` attribute the repository."""
    return Event(Type="image", Action=action, Actor=Actor(ref, {"name": repo}), scope="local",
                 status=action, id=ref)


def volume(name: str, action: str, driver: str, **attrs: str) -> Event:
    return Event(Type="volume", Action=action, Actor=Actor(name, {"driver": driver, **attrs}), scope="local")


def network(network_id: str, action: str, *, name: str, driver: str, **attrs: str) -> Event:
    return Event(Type="network", Action=action, Actor=Actor(network_id, {"name": name, "type": driver, **attrs}),
                 scope="local")


def plugin(name: str, action: str, /, **attrs: str) -> Event:
    return Event(Type="plugin", Action=action, Actor=Actor(name, {**attrs, "name": name}), scope="local")


def plugin_skip(name: str, cursor: int, skipped: Event, failures: int, error: str) -> Event:
    """`skip`: durable plugin `name` moved past the event at `cursor`, on which its handler
    failed `failures` times (the last with `error`). The skipped event's type, action,
    actor and time say which it was; the time is unix seconds to the nanosecond, so
    `berth events --since T --until T` shows that event alone."""
    ns = skipped.timeNano
    return plugin(name, "skip", cursor=str(cursor), failures=str(failures), error=error,
                  eventType=skipped.Type, eventAction=skipped.Action, eventActor=skipped.Actor.ID,
                  eventTime=f"{ns // 10**9}.{ns % 10**9:09d}")


def pruned(kind: str, reclaimed: int) -> Event:
    """`prune` of containers, images, volumes or networks, with the bytes it gave back."""
    return Event(Type=kind, Action="prune", Actor=Actor("", {"reclaimed": str(reclaimed)}), scope="local")
