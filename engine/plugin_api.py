"""What a plugin imports: declare a `Plugin`, its events, its config and its handlers.

```python
import msgspec
from engine.plugin_api import Plugin, PluginContext
from engine.models import Event

class Config(msgspec.Struct):
    greeting: str = "hello"

plugin = Plugin("greeter", description="greets new containers",
                events={"type": ["container"], "event": ["start"]}, config=Config)

@plugin.on_event
async def greet(ctx: PluginContext, event: Event) -> None:
    ctx.log.info("%s, %s", ctx.config.greeting, event.Actor.Attributes["name"])
```

The daemon runs each enabled plugin as a supervised task: its event handler sees every
matching event in order (it reads the bus by cursor, so a slow plugin delays only
itself), its background tasks run beside it, and an exception restarts the plugin with
back-off after being logged and published as a `plugin` event. With `durable=True` the
plugin's cursor is kept on disk after each handled event, so after a daemon restart it
resumes where it stopped: every event is handled at least once, except an event the
handler has failed on `max_failures` times (a key of the plugin's TOML table, 5 by
default), which is skipped and reported as a `plugin` event `skip`.

This module and `engine.models` are all a plugin imports (a test holds berth's own
plugins to that). So what else a plugin needs of the engine is re-exported here, as part
of the plugin API: `EngineError` (what a failed Engine call raises, with `.message`),
`EventFilter` and `EVENT_FILTERS` (Docker's event filters, to match events as the
daemon does), `now()` (the current time as Docker writes times) and `CONTAINER_STATES`
(every state a container can be in, in lifecycle order).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from .errors import EngineError
from .events import constructors
from .events.bus import Bus
from .events.filters import EVENT_FILTERS, EventFilter
from .lifecycle import State
from .models import BusStatistics, Event, Health, ResourceUsage
from .timefmt import now

if TYPE_CHECKING:
    from .containers.container import Container
    from .images.service import PruneReport

__all__ = ["CONTAINER_STATES", "EVENT_FILTERS", "EngineError", "EngineFacade", "EventFilter", "NoConfig", "Plugin",
           "PluginContext", "now"]

CONTAINER_STATES: tuple[str, ...] = tuple(state.value for state in State)


class EngineFacade(Protocol):
    """The Engine's methods berth's plugins (and the documented example) call through
    `ctx.engine`. The Engine itself is handed over: the HTTP API's methods are all there;
    this names the contract plugins rely on, and a test keeps it to what they call."""

    def get(self, ref: str) -> Container: ...

    def list_containers(self, all_: bool = False, filters: dict[str, list[str]] | None = None) -> list[Container]: ...

    async def start(self, ref: str) -> Container: ...

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...

    async def set_health(self, c: Container, health: Health | None) -> None: ...

    async def exec_run(self, ref: str, cmd: list[str], *, user: str = "", workdir: str = "",
                       env: list[str] = (), timeout: float | None = None) -> tuple[int, bytes]: ...

    async def prune_images(self, filters: dict[str, list[str]] | None = None) -> PruneReport: ...

    def resource_usage(self, c: Container) -> ResourceUsage: ...

    def bus_statistics(self) -> BusStatistics: ...


class NoConfig(msgspec.Struct):
    """For plugins without options."""


class PluginContext:
    """What a running plugin gets: the Engine facade, its typed config, a logger, a
    directory of its own, and a way to publish its own events."""

    def __init__(self, engine: EngineFacade, bus: Bus, name: str, config: Any, state_dir: Path):
        self.engine = engine
        self._bus = bus
        self.name = name
        self.config = config
        self.state_dir = state_dir
        self.log = logging.getLogger(f"berth.plugin.{name}")
        self.state: dict[str, Any] = {}  # shared by the handler and tasks of one run
        self.cursor = 0  # the bus cursor of the event being (or last) handled

    def publish(self, action: str, /, **attributes: str | int | float | bool) -> None:
        """Publish a `plugin` event on the bus: Actor.ID and the `name` attribute are the
        plugin's name. Attributes are strings on the wire (Docker's map of strings, which
        every client decodes): numbers and booleans are written as text (`true`, `3`);
        any other value, or an attribute called `name`, is refused here, in the handler
        that published it, before it reaches the journal."""
        if not isinstance(action, str) or not action:
            raise TypeError(f"publish: the action must be a non-empty string, not {action!r}")
        if "name" in attributes:
            raise ValueError("publish: `name` is the plugin's own name in its events; "
                             "give the attribute another key (container=…, image=…)")
        self._bus.publish(constructors.plugin(self.name, action, **{k: _text(k, v) for k, v in attributes.items()}))


def _text(key: str, value) -> str:
    """An attribute's value as the text an event carries."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"  # as Go's strconv.FormatBool
    if isinstance(value, (int, float)):
        return str(value)
    raise TypeError(f"publish: attribute {key!r} is a {type(value).__name__}; event attributes are text "
                    "(a string, a number or a boolean)")


EventHandler = Callable[[PluginContext, Event], Awaitable[None]]
Task = Callable[[PluginContext], Awaitable[None]]


class Plugin:
    def __init__(self, name: str, *, description: str = "", events: dict[str, list[str]] | None = None,
                 config: type = NoConfig, durable: bool = False, enabled_by_default: bool = False):
        self.name = name
        self.description = description
        self.events = events
        self.config = config
        self.durable = durable
        self.enabled_by_default = enabled_by_default
        self.handler: EventHandler | None = None
        self.tasks: list[Task] = []

    def on_event(self, handler: EventHandler) -> EventHandler:
        """Decorator: the coroutine called with each matching event, one at a time."""
        self.handler = handler
        return handler

    def task(self, task: Task) -> Task:
        """Decorator: a coroutine that runs for as long as the plugin does (servers, timers)."""
        self.tasks.append(task)
        return task
