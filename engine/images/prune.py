"""`docker image prune`: delete the images no container uses, dangling ones or (`-a`) all.

The docker CLI sends `filters={"dangling":{"true":true}}` for `image prune` and
`{"dangling":{"false":true}}` for `image prune -a`, plus any `--filter label=…`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..events import filters as flt
from ..errors import BadRequest
from ..models import Actor, Event

if TYPE_CHECKING:
    from ..core import Engine

PRUNE_FILTERS = ("dangling", "label")


class PruneReport(msgspec.Struct, rename="pascal"):
    images_deleted: list[dict[str, str]] | None
    space_reclaimed: int


def _dangling_only(filters: flt.Filters) -> bool:
    values = {v.lower() for v in filters.get("dangling", ["true"])}
    if not values <= {"true", "1", "false", "0"} or len(values) != 1:
        raise BadRequest(f"invalid filter 'dangling={','.join(sorted(values))}'")
    return values <= {"true", "1"}


async def prune_images(engine: Engine, filters: flt.Filters) -> PruneReport:
    """Remove every unused image the filters select, tag by tag as `rmi` would; report
    what went and the bytes of the layers deleted with them. Publishes `prune`."""
    wanted: flt.Filters = {"dangling": ["true"]} if _dangling_only(filters) else {}
    if "label" in filters:
        wanted["label"] = filters["label"]
    used = {c.record.image_id for c in engine.containers.values()}
    store = engine.images
    sizes = {chain: store.layer_meta(chain).size for image in store.images.values() for chain in store.layer_chain(image)}
    deleted: list[dict[str, str]] = []
    for image in engine.list_images(wanted):
        if image.id not in used and image.id in store.images:
            for ref in store.tags_of(image.id) or [image.id]:
                deleted += await engine.remove_image(ref)
    reclaimed = sum(size for chain, size in sizes.items() if not store.has_layer(chain))
    engine.bus.publish(Event(Type="image", Action="prune", Actor=Actor("", {"reclaimed": str(reclaimed)}), scope="local"))
    return PruneReport(deleted or None, reclaimed)
