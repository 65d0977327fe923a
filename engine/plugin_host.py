"""Finds, configures and supervises plugins.

Discovery: modules registered under the entry-point group `berth.plugins` (berth's own
plugins are registered there by its pyproject) and `*.py` files in the plugins
directory; each module exposes `plugin = Plugin(...)`. Configuration: the daemon's TOML
file, one table per plugin (`[plugins.NAME]`, `enabled = true` plus the plugin's own
options, validated into its `config` Struct). Enabling and disabling at run time
(`berth plugin enable NAME`) is remembered in `<root>/plugins/state.json`.

Each enabled plugin is one task in the daemon's nursery. A plugin that raises is logged,
reported as a `plugin` event with action `error`, and restarted with back-off (half a
second doubling to a minute); it never takes the daemon down. A plugin's event handler
reads the bus by cursor like any subscriber, so a slow plugin never slows the bus.

A durable plugin keeps its cursor on disk (`<root>/plugins/NAME/cursor`, the next cursor
to read) and, beside it, how often its handler has failed on the event at that cursor
(`failures`). An event its handler has failed on `max_failures` times (a key of its
table, 5 by default) is not delivered again: the plugin moves past it and publishes a
`plugin` event `skip` naming it. Without this, one poison event would hold the plugin
back forever, restarting it with back-off on the same event, and every event after it
would never be delivered.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import msgspec
import trio

from . import entry_points
from .errors import BadRequest, NotFound
from .events.filters import EVENT_FILTERS, EventFilter
from .events import constructors
from .events.bus import Bus
from .plugin_api import EngineFacade, Plugin, PluginContext
from .fs.store import atomic_write
from .models import PluginView

log = logging.getLogger("berth.plugins")

ENTRY_POINT_GROUP = "berth.plugins"
BACKOFF_START, BACKOFF_MAX = 0.5, 60.0
STEADY = 60.0  # seconds a plugin ran before it failed for its next restart to wait BACKOFF_START again


class HostOptions(msgspec.Struct):
    """The keys of a `[plugins.NAME]` table that the daemon reads; every other key is the
    plugin's own, validated into its `config` Struct."""

    enabled: bool | None = None
    max_failures: Annotated[int, msgspec.Meta(ge=1)] = 5  # handler failures on one event before it is skipped


HOST_KEYS = frozenset(HostOptions.__struct_fields__)


class Failures(msgspec.Struct):
    """How often a durable plugin's handler has failed on the event at `cursor`, and its
    last error. Kept on disk beside the cursor, so a daemon restart does not reset it."""

    cursor: int
    count: int
    error: str


class PluginState:
    """One discovered plugin and how it is doing."""

    def __init__(self, plugin: Plugin, module: ModuleType, source: str):
        self.plugin = plugin
        self.module = module
        self.source = source
        self.enabled = plugin.enabled_by_default
        self.status = "disabled"
        self.restarts = 0
        self.last_error = ""
        self.handled = 0
        self.scope: trio.CancelScope | None = None
        self.stopped = trio.Event()
        self.stopped.set()

    @property
    def name(self) -> str:
        return self.plugin.name

    def view(self) -> PluginView:
        """What the API shows of it."""
        plugin = self.plugin
        return PluginView(name=plugin.name, source=self.source, description=plugin.description, enabled=self.enabled,
                          status=self.status, restarts=self.restarts, last_error=self.last_error,
                          handled=self.handled, events=plugin.events, durable=plugin.durable)


def _plugin_of(module: ModuleType, source: str) -> Plugin:
    plugin = getattr(module, "plugin", None)
    if not isinstance(plugin, Plugin):
        raise TypeError(f"{source}: a plugin module must define `plugin = Plugin(...)`")
    unknown = set(plugin.events or {}) - set(EVENT_FILTERS)
    if unknown:
        raise TypeError(f"{source}: unknown event filter {sorted(unknown)[0]!r}")
    return plugin


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"berth_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class PluginHost:
    def __init__(self, bus: Bus, facade: EngineFacade, config_file: Path | None, plugins_dir: Path, state_dir: Path):
        self.bus = bus
        self.facade = facade  # what plugins call (the Engine)
        self.config_file = config_file
        self.plugins_dir = plugins_dir
        self.state_dir = state_dir
        self.plugins: dict[str, PluginState] = {}
        self._nursery: trio.Nursery | None = None

    def publish(self, name: str, action: str, **attrs: str) -> None:
        self.bus.publish(constructors.plugin(name, action, **attrs))

    # --- discovery and configuration ----------------------------------------

    def _options(self) -> dict[str, dict]:
        if self.config_file is None or not self.config_file.exists():
            return {}
        with open(self.config_file, "rb") as f:
            return tomllib.load(f).get("plugins", {})

    def _saved(self) -> dict[str, bool]:
        path = self.state_dir / "state.json"
        return msgspec.json.decode(path.read_bytes(), type=dict[str, bool]) if path.exists() else {}

    def discover(self, *, only_new_files: bool = False) -> None:
        """Load every plugin module (or only the plugin directory's files not loaded yet); a
        broken one is logged and skipped."""
        found: list[tuple[str, callable]] = []
        if not only_new_files:
            for ep in entry_points.find(ENTRY_POINT_GROUP):
                found.append((f"entry point {ep.name} ({ep.value})", lambda ep=ep: importlib.import_module(ep.module)))
        loaded = {state.source for state in self.plugins.values()}
        if self.plugins_dir.is_dir():
            for path in sorted(self.plugins_dir.glob("*.py")):
                if str(path) not in loaded:
                    found.append((str(path), lambda path=path: _load_file(path)))
        options, saved = self._options(), self._saved()
        for source, load in found:
            try:
                module = load()
                plugin = _plugin_of(module, source)
            except Exception as exc:
                log.error("plugin %s cannot be loaded: %s", source, exc)
                continue
            if only_new_files and plugin.name in self.plugins:  # the running one stays
                log.error("plugin %s cannot be loaded: another plugin is called %s (%s)", source, plugin.name,
                          self.plugins[plugin.name].source)
                continue
            state = PluginState(plugin, module, source)
            state.enabled = saved.get(plugin.name, options.get(plugin.name, {}).get("enabled", state.enabled))
            self.plugins[plugin.name] = state

    def _settings(self, state: PluginState) -> tuple[HostOptions, Any]:
        """The plugin's table, validated: the daemon's keys, and the plugin's own config."""
        table = self._options().get(state.name, {})
        own = {k: v for k, v in table.items() if k not in HOST_KEYS}
        # unknown keys are refused whatever the Struct says: a typo must not pass unseen
        try:
            known = {f.encode_name for f in msgspec.structs.fields(state.plugin.config)}
        except TypeError:  # not a Struct (a dataclass, say): msgspec's own rules apply
            known = set(own)
        if unknown := sorted(set(own) - known):
            raise BadRequest(f"plugin {state.name}: invalid configuration: unknown option"
                             f"{'s' * (len(unknown) > 1)} {', '.join(unknown)} (the plugin's: "
                             f"{', '.join(sorted(known)) or 'none'}; the daemon's: {', '.join(sorted(HOST_KEYS))})")
        try:
            host = msgspec.convert({k: v for k, v in table.items() if k in HOST_KEYS}, HostOptions)
            return host, msgspec.convert(own, state.plugin.config)
        except msgspec.ValidationError as exc:
            raise BadRequest(f"plugin {state.name}: invalid configuration: {exc}") from None

    # --- running ------------------------------------------------------------

    async def run(self, nursery: trio.Nursery) -> None:
        """Discover plugins and start the enabled ones under `nursery`."""
        self._nursery = nursery
        self.state_dir.mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(self.discover)
        for state in self.plugins.values():
            if state.enabled:
                self._start(state)

    def _start(self, state: PluginState) -> None:
        state.stopped = trio.Event()
        state.status = "starting"
        self._nursery.start_soon(self._supervise, state, name=f"plugin {state.name}")

    async def _supervise(self, state: PluginState) -> None:
        backoff = BACKOFF_START
        try:
            with trio.CancelScope() as scope:
                state.scope = scope
                try:
                    host, config = self._settings(state)
                except BadRequest as exc:  # a restart would not mend it: `plugin reload` after the fix does
                    self._failed(state, exc.message)
                    return
                while True:
                    started = trio.current_time()
                    try:
                        ctx = PluginContext(self.facade, self.bus, state.name, config, self.state_dir / state.name)
                        ctx.state_dir.mkdir(parents=True, exist_ok=True)
                        state.status = "running"
                        async with trio.open_nursery() as nursery:
                            if state.plugin.handler:
                                nursery.start_soon(self._pump, state, ctx, host.max_failures)
                            for task in state.plugin.tasks:
                                nursery.start_soon(task, ctx)
                        state.status = "stopped"  # every task returned: nothing left to do
                        return
                    except Exception as exc:  # a plugin's failure must never reach the daemon
                        state.last_error = _describe(exc)
                        state.status = "restarting"
                        log.error("plugin %s failed: %s", state.name, state.last_error, exc_info=exc)
                        self.publish(state.name, "error", error=state.last_error)
                        if trio.current_time() - started >= STEADY:
                            backoff = BACKOFF_START  # it had run well: a new failure, not the same one again
                        await trio.sleep(backoff)
                        backoff = min(backoff * 2, BACKOFF_MAX)
                        state.restarts += 1
        finally:
            if state.status != "stopped":
                state.status = "disabled" if not state.enabled else state.status
            state.scope = None
            state.stopped.set()

    async def _pump(self, state: PluginState, ctx: PluginContext, max_failures: int) -> None:
        """Feed the plugin's handler every matching event. If durable, persist its cursor,
        count the handler's failures on the event at the cursor, and skip that event once
        they reach `max_failures`."""
        plugin = state.plugin
        match = EventFilter(plugin.events) if plugin.events else None
        cursor_file, failures_file = ctx.state_dir / "cursor", ctx.state_dir / "failures"
        cursor, failures = None, None
        if plugin.durable:
            if not cursor_file.exists():  # kept at once: a restart after failing on its first event must resume there
                await trio.to_thread.run_sync(atomic_write, cursor_file, b"%d" % self.bus.journal.next_cursor)
            cursor = int(cursor_file.read_text())
            if failures_file.exists():
                failures = msgspec.json.decode(failures_file.read_bytes(), type=Failures)
        # until its first event, the plugin stands just before where it starts reading
        ctx.cursor = (cursor if cursor is not None else self.bus.journal.next_cursor) - 1
        async for record in self.bus.subscribe(match, cursor=cursor):
            ctx.cursor = record.cursor
            if failures is not None and failures.cursor == record.cursor and failures.count >= max_failures:
                log.warning("plugin %s: skipping event %d (%s %s of %s), its handler failed on it %d times: %s",
                            state.name, record.cursor, record.event.Type, record.event.Action,
                            record.event.Actor.ID, failures.count, failures.error)
                self.bus.publish(constructors.plugin_skip(state.name, record.cursor, record.event,
                                                          failures.count, failures.error))
            else:
                try:
                    await plugin.handler(ctx, record.event)
                except Exception as exc:
                    if plugin.durable:  # counted before the plugin restarts and is handed this event again
                        again = failures is not None and failures.cursor == record.cursor
                        failures = Failures(record.cursor, failures.count + 1 if again else 1, _describe(exc))
                        await trio.to_thread.run_sync(atomic_write, failures_file, msgspec.json.encode(failures))
                    raise
                state.handled += 1
            if plugin.durable:
                await trio.to_thread.run_sync(atomic_write, cursor_file, b"%d" % (record.cursor + 1))
                if failures is not None and record.cursor >= failures.cursor:  # past the event it counts
                    await trio.to_thread.run_sync(failures_file.unlink)
                    failures = None

    # --- management ---------------------------------------------------------

    def views(self) -> list[PluginView]:
        """Every discovered plugin, by name."""
        return [s.view() for _, s in sorted(self.plugins.items())]

    def get(self, name: str) -> PluginState:
        try:
            return self.plugins[name]
        except KeyError:
            raise NotFound(f'plugin "{name}" not found') from None

    async def _find(self, name: str) -> PluginState:
        """The plugin `name`: one whose file was put into the plugin directory since the
        daemon started is loaded first."""
        if name not in self.plugins:
            await trio.to_thread.run_sync(functools.partial(self.discover, only_new_files=True))
        return self.get(name)

    async def enable(self, name: str) -> None:
        state = await self._find(name)
        self._settings(state)  # refuse at once when its configuration is invalid
        state.enabled = True
        self._remember()
        if state.stopped.is_set():
            self._start(state)
            self.publish(name, "enable")

    async def disable(self, name: str) -> None:
        state = self.get(name)
        state.enabled = False
        self._remember()
        if state.scope is not None:
            state.scope.cancel()
        await state.stopped.wait()
        state.status = "disabled"
        self.publish(name, "disable")

    async def reload(self, name: str) -> None:
        """Re-read the plugin's code and configuration, and restart it if enabled."""
        state = await self._find(name)
        was_enabled = state.enabled
        if state.scope is not None:
            state.scope.cancel()
        await state.stopped.wait()
        module = await trio.to_thread.run_sync(
            lambda: _load_file(Path(state.source)) if state.source.endswith(".py") else importlib.reload(state.module))
        fresh = PluginState(_plugin_of(module, state.source), module, state.source)
        fresh.enabled, fresh.restarts = was_enabled, state.restarts
        self.plugins[name] = fresh
        if was_enabled:
            try:
                self._settings(fresh)
            except BadRequest as exc:
                self._failed(fresh, exc.message)
                raise
            self._start(fresh)
        self.publish(name, "reload")

    def _failed(self, state: PluginState, reason: str) -> None:
        """The plugin cannot start as configured: `failed`, with the reason to show."""
        state.status, state.last_error = "failed", reason
        log.error("%s; the plugin is not started", reason)
        self.publish(state.name, "error", error=reason)

    def _remember(self) -> None:
        atomic_write(self.state_dir / "state.json",
                     msgspec.json.encode({n: s.enabled for n, s in sorted(self.plugins.items())}))


def _describe(exc: BaseException) -> str:
    """The innermost error of a (possibly grouped) exception, in one line."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
