"""janitor: removes exited containers whose time-to-live has passed and prunes dangling
images, on a schedule, and says what it removed.

A container opts in with a label: `berth run -l berth.ttl=30m …` (units s, m, h, d).
`default_ttl` applies to containers without the label (off unless set).

```toml
[plugins.janitor]
enabled = true
interval = 60          # seconds between sweeps
label = "berth.ttl"
default_ttl = ""       # e.g. "7d" to sweep every exited container after a week
prune_images = true
```
"""

from __future__ import annotations

import re
import time
from datetime import datetime

import msgspec
import trio

from engine.plugin_api import EngineError, Plugin, PluginContext

_TTL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Config(msgspec.Struct, forbid_unknown_fields=True):
    interval: float = 60.0
    label: str = "berth.ttl"
    default_ttl: str = ""
    prune_images: bool = True


plugin = Plugin("janitor", description="removes exited containers past their TTL label; prunes dangling images",
                config=Config)


def ttl_seconds(text: str) -> float | None:
    """`90s`, `30m`, `2h`, `7d` → seconds; None for an empty or malformed value."""
    found = _TTL.match(text.strip())
    return float(found.group(1)) * _UNITS[found.group(2)] if found else None


def _finished(finished_at: str) -> float:
    return datetime.fromisoformat(finished_at[:19] + "+00:00").timestamp()


async def sweep(ctx: PluginContext) -> None:
    """One pass: expired containers first (their images may become dangling), then images."""
    engine, cfg, now = ctx.engine, ctx.config, time.time()
    for c in engine.list_containers(all_=True, filters={"status": ["exited"]}):
        ttl = ttl_seconds((c.record.config.labels or {}).get(cfg.label, cfg.default_ttl))
        if ttl is None or now - _finished(c.record.state.finished_at) < ttl:
            continue
        try:
            await engine.remove(c.id)
        except EngineError as exc:  # restarted or removed meanwhile: next sweep decides
            ctx.log.info("kept %s: %s", c.name, exc.message)
            continue
        ctx.publish("removed", container=c.id, containerName=c.name)
    if cfg.prune_images:
        for entry in (await engine.prune_images()).images_deleted or []:
            if "Deleted" in entry:
                ctx.publish("pruned", image=entry["Deleted"])


@plugin.task
async def schedule(ctx: PluginContext) -> None:
    while True:
        await sweep(ctx)
        await trio.sleep(ctx.config.interval)
