"""metrics: a Prometheus text endpoint on a loopback address.

```toml
[plugins.metrics]
enabled = true
listen = "127.0.0.1:9323"
```

`curl http://127.0.0.1:9323/metrics` gives containers by state, per-container CPU and
memory from the cgroup files, events seen by type and action, and how far the bus is
ahead of this plugin (its lag, in events).

The endpoint is a small HTTP/1.1 server of its own (h11 over trio): one path, answered on
kept-alive connections as scrapers use them; anything else is a 404.
"""

from __future__ import annotations

from collections import Counter

import h11
import msgspec
import trio

from engine.models import Event
from engine.plugin_api import CONTAINER_STATES, Plugin, PluginContext


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
    containers = engine.list_containers(all_=True)
    states = Counter(c.state.value for c in containers)
    for state in CONTAINER_STATES:
        out.append(f'berth_containers{{state="{state}"}} {states.get(state, 0)}')
    out += ["# HELP berth_container_cpu_seconds_total CPU time used by a running container.",
            "# TYPE berth_container_cpu_seconds_total counter",
            "# HELP berth_container_memory_bytes Memory used by a running container.",
            "# TYPE berth_container_memory_bytes gauge"]
    for c in containers:
        if not c.live:
            continue
        usage = engine.resource_usage(c)
        labels = f'id="{c.id[:12]}",name="{_label(c.name)}"'
        if usage.cpu_ns is not None:
            out.append(f"berth_container_cpu_seconds_total{{{labels}}} {usage.cpu_ns / 1e9:.6f}")
        if usage.memory_bytes is not None:
            out.append(f"berth_container_memory_bytes{{{labels}}} {usage.memory_bytes}")
    out += ["# HELP berth_events_total Events seen on the bus since this plugin started.",
            "# TYPE berth_events_total counter"]
    for (kind, action), n in sorted(ctx.state.get("seen", {}).items()):
        out.append(f'berth_events_total{{type="{_label(kind)}",action="{_label(action)}"}} {n}')
    stats = engine.bus_statistics()
    out += ["# HELP berth_bus_published_total Events published on the bus.", "# TYPE berth_bus_published_total counter",
            f"berth_bus_published_total {stats.published}",
            "# HELP berth_bus_subscribers Subscribers reading the bus.", "# TYPE berth_bus_subscribers gauge",
            f"berth_bus_subscribers {stats.subscribers}",
            "# HELP berth_bus_lag_events Events published that this plugin has not seen yet.",
            "# TYPE berth_bus_lag_events gauge", f"berth_bus_lag_events {max(0, stats.published - ctx.cursor)}"]
    return "\n".join(out) + "\n"


def answer(ctx: PluginContext, target: bytes) -> tuple[int, bytes, str]:
    """(status, body, content type) for a request of `target`."""
    if target.partition(b"?")[0] != b"/metrics":
        return 404, msgspec.json.encode({"message": "try /metrics"}) + b"\n", "application/json"
    return 200, render(ctx).encode(), "text/plain; version=0.0.4"


async def serve_client(ctx: PluginContext, stream: trio.abc.Stream) -> None:
    """Answer one client's requests in turn until it closes (or breaks HTTP: then it is
    let go without an answer)."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    status, body, content_type = answer(ctx, event.target)
                    head_only = event.method == b"HEAD"
                elif isinstance(event, h11.EndOfMessage):  # the request is read: answer it
                    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
                    await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers))
                                          + conn.send(h11.Data(data=b"" if head_only else body))
                                          + conn.send(h11.EndOfMessage()))
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return  # the client asked to close
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return


@plugin.task
async def serve(ctx: PluginContext) -> None:
    host, _, port = ctx.config.listen.rpartition(":")
    ctx.log.info("serving metrics on http://%s/metrics", ctx.config.listen)
    await trio.serve_tcp(lambda stream: serve_client(ctx, stream), int(port), host=host)
