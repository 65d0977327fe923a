"""webhook: POSTs matching events as JSON to configured URLs.

Delivery is at least once, across daemon restarts: the plugin is durable (its bus cursor
is saved after each event is delivered everywhere), and a failed POST is retried with
back-off — doubling from `retry_initial` seconds up to `retry_max` — until it succeeds or
`max_attempts` is reached (then a `plugin` event `failed` says which event was given up).

```toml
[plugins.webhook]
enabled = true
urls = ["http://127.0.0.1:8080/hook"]
filters = { type = ["container"], event = ["die", "oom"] }
```

Only `http://` URLs; the body is the event exactly as `GET /events` sends it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import h11
import msgspec
import trio

from engine.models import Event
from engine.plugin_api import EVENT_FILTERS, EventFilter, Plugin, PluginContext


class Config(msgspec.Struct, forbid_unknown_fields=True):
    urls: list[str] = []
    filters: dict[str, list[str]] = {}
    timeout: float = 5.0
    retry_initial: float = 0.5
    retry_max: float = 60.0
    max_attempts: int = 20

    def __post_init__(self):
        for url in self.urls:
            if urlsplit(url).scheme != "http" or not urlsplit(url).hostname:
                raise ValueError(f"webhook url must be http://host[:port]/path, not {url!r}")
        unknown = set(self.filters) - set(EVENT_FILTERS)
        if unknown:
            raise ValueError(f"unknown event filter {sorted(unknown)[0]!r}")


plugin = Plugin("webhook", description="POSTs events as JSON to URLs, at least once", config=Config, durable=True)


async def post(url: str, body: bytes, timeout: float) -> int:
    """POST `body` to `url` with h11 over a trio TCP stream; return the status code."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = h11.Connection(h11.CLIENT)
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
        async with stream:
            request = h11.Request(method="POST", target=target, headers=[
                ("Host", parts.netloc), ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("User-Agent", "berth-webhook"), ("Connection", "close")])
            await stream.send_all(conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Response):
                    return event.status_code
                if isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("connection closed before a response")


async def deliver(ctx: PluginContext, url: str, body: bytes) -> bool:
    cfg = ctx.config
    delay = cfg.retry_initial
    for attempt in range(1, cfg.max_attempts + 1):
        try:
            status = await post(url, body, cfg.timeout)
            if 200 <= status < 300:
                return True
            reason = f"HTTP {status}"
        except (OSError, trio.TooSlowError, h11.ProtocolError, ConnectionError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        ctx.log.warning("webhook %s attempt %d failed: %s", url, attempt, reason)
        if attempt < cfg.max_attempts:
            await trio.sleep(delay)
            delay = min(delay * 2, cfg.retry_max)
    ctx.publish("failed", url=url, reason=reason)
    return False


@plugin.on_event
async def forward(ctx: PluginContext, event: Event) -> None:
    match = ctx.state.get("match")
    if match is None:
        match = ctx.state["match"] = EventFilter(ctx.config.filters)
    if not match(event):
        return
    body = msgspec.json.encode(event)
    for url in ctx.config.urls:
        await deliver(ctx, url, body)
