"""metrics: a Prometheus text endpoint on a loopback address.

```toml
[plugins.metrics]
enabled = true
listen = "127.0.0.1:9323"
```

`curl http://127.0.0.1:9323/metrics` gives containers by state, per-container CPU and
memory from the cgroup files, events seen by type and action, and how far the bus is
ahead of this plugin (its lag, in events).
"""

from __future__ import annotations

from collections import Counter

import msgspec
import trio

from engine.api.http import Connection, Request, Response
from engine.errors import NotFound
from engine.models import Event
from engine.plugin_api import Plugin, PluginContext
from engine.runtime import cgroups


class Config(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:9323"


plugin = Plugin("metrics", description="Prometheus metrics: containers, CPU, memory, events, bus lag", config=Config)


@plugin.on_event
async def count(ctx: PluginContext, event: Event) -> None:
    ctx.state.setdefault("seen", Counter())[(event.Type, event.Action.partition(":")[0])] += 1


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(ctx: PluginContext) -> str:
    """The metrics in Prometheus' text exposition format."""
    engine = ctx.engine
    out = ["# HELP berth_containers Containers by state.", "# TYPE berth_containers gauge"]
    states = Counter(c.state.value for c in engine.containers.values())
    for state in ("created", "running", "restarting", "exited", "removing", "dead"):
        out.append(f'berth_containers{{state="{state}"}} {states.get(state, 0)}')
    out += ["# HELP berth_container_cpu_seconds_total CPU time used by a running container.",
            "# TYPE berth_container_cpu_seconds_total counter",
            "# HELP berth_container_memory_bytes Memory used by a running container.",
            "# TYPE berth_container_memory_bytes gauge"]
    for c in engine.containers.values():
        if not c.live:
            continue
        usage = cgroups.read_stats(engine.layout, engine.cgroup_path(c))
        labels = f'id="{c.id[:12]}",name="{_label(c.name)}"'
        if usage.cpu_total_ns is not None:
            out.append(f"berth_container_cpu_seconds_total{{{labels}}} {usage.cpu_total_ns / 1e9:.6f}")
        if usage.memory is not None:
            out.append(f"berth_container_memory_bytes{{{labels}}} {usage.memory}")
    out += ["# HELP berth_events_total Events seen on the bus since this plugin started.",
            "# TYPE berth_events_total counter"]
    for (kind, action), n in sorted(ctx.state.get("seen", {}).items()):
        out.append(f'berth_events_total{{type="{_label(kind)}",action="{_label(action)}"}} {n}')
    stats = engine.bus.statistics()
    out += ["# HELP berth_bus_published_total Events published on the bus.", "# TYPE berth_bus_published_total counter",
            f"berth_bus_published_total {stats['published']}",
            "# HELP berth_bus_subscribers Subscribers reading the bus.", "# TYPE berth_bus_subscribers gauge",
            f"berth_bus_subscribers {stats['subscribers']}",
            "# HELP berth_bus_lag_events Events published that this plugin has not seen yet.",
            "# TYPE berth_bus_lag_events gauge", f"berth_bus_lag_events {max(0, stats['published'] - ctx.cursor)}"]
    return "\n".join(out) + "\n"


@plugin.task
async def serve(ctx: PluginContext) -> None:
    host, _, port = ctx.config.listen.rpartition(":")

    async def dispatch(req: Request) -> Response:
        if req.path != "/metrics":
            raise NotFound("try /metrics")
        return Response(200, render(ctx).encode(), "text/plain; version=0.0.4")

    async def handle(stream: trio.SocketStream) -> None:
        await Connection(stream, dispatch).serve()

    ctx.log.info("serving metrics on http://%s/metrics", ctx.config.listen)
    await trio.serve_tcp(handle, int(port), host=host)
