"""healthcheck: runs a container's health check (the image's HEALTHCHECK, or `run
--health-cmd …`) inside it on its interval, and keeps `State.Health` as Docker does.

Status starts as `starting` at each start (the log of earlier runs kept); a passing check
makes it `healthy`; `retries` failures in a row (a non-zero exit, or a check running
longer than `timeout`: exit code -1) make it `unhealthy`; failures during `start_period`
do not count while the container has not yet passed one. Each change is published as
`health_status: healthy|unhealthy`; the last five results are kept in `State.Health.Log`.
When the container stops or is paused, its checks stop and it is left `unhealthy` (no
event), as dockerd leaves it; an unpause resumes them.
Docker's defaults: interval 30 s, timeout 30 s, retries 3, start period 0.

On by default: it only acts on containers that have a health check.
"""

from __future__ import annotations

import time

import msgspec
import trio

from engine.models import Event, Health, HealthConfig, HealthLogEntry
from engine.plugin_api import EngineError, Plugin, PluginContext, now

DEFAULT_INTERVAL = DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
KEEP_RESULTS = 5
MAX_OUTPUT = 4096

plugin = Plugin("healthcheck", description="runs containers' health checks, keeps State.Health",
                events={"type": ["container"], "event": ["start", "unpause", "pause", "die", "destroy"]},
                enabled_by_default=True)


def command(test: list[str] | None) -> list[str] | None:
    """The argv a health check runs, or None when there is none (or it is NONE)."""
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return test[1:] or None
    return ["/bin/sh", "-c", " ".join(test)]  # a bare string list: shell form, as Docker reads it


def _seconds(ns: int, default: float) -> float:
    return ns / 1e9 if ns > 0 else default


async def probe(ctx: PluginContext, container_id: str, config: HealthConfig, *, fresh: bool) -> None:
    """Check one container until cancelled (the container stops, is paused or goes);
    `fresh` at a start: `starting` again, the earlier results kept (else, at an unpause,
    the health goes on as it was)."""
    engine = ctx.engine
    argv = command(config.test)
    interval = _seconds(config.interval, DEFAULT_INTERVAL)
    timeout = _seconds(config.timeout, DEFAULT_TIMEOUT)
    retries = config.retries or DEFAULT_RETRIES
    grace_until = time.monotonic() + config.start_period / 1e9
    c = engine.get(container_id)
    health = c.record.state.health or Health()
    if fresh:
        health = Health("starting", 0, health.log)
        await engine.set_health(c, health)
    while True:
        await trio.sleep(interval)
        started, clock = now(), trio.current_time()
        try:
            code, output = await engine.exec_run(container_id, argv, timeout=timeout)
        except EngineError:
            continue  # stopping or pausing: its event ends this probe
        text = output[:MAX_OUTPUT].decode(errors="replace") + ("..." if len(output) > MAX_OUTPUT else "")
        if code == 137 and trio.current_time() - clock >= timeout:  # killed at its timeout, as dockerd says it
            code, text = -1, f"Health check exceeded timeout ({timeout:g}s)"
        entries = [*health.log, HealthLogEntry(started, now(), code, text)][-KEEP_RESULTS:]
        if code == 0:
            health = Health("healthy", 0, entries)
        elif health.status == "starting" and time.monotonic() < grace_until:
            health = msgspec.structs.replace(health, log=entries)
        else:
            streak = health.failing_streak + 1
            status = "unhealthy" if streak >= retries else health.status
            health = Health(status, streak, entries)
        await engine.set_health(c, health)


def _start(ctx: PluginContext, container_id: str, *, fresh: bool = True) -> None:
    c = ctx.engine.get(container_id)
    config = c.record.config.healthcheck
    if config is None or command(config.test) is None or container_id in ctx.state["probes"]:
        return
    if not fresh and c.record.state.health is None:
        return  # a container the checks never started on (started before a plugin reload): its start does
    scope = trio.CancelScope()
    ctx.state["probes"][container_id] = scope

    async def run() -> None:
        with scope:
            await probe(ctx, container_id, config, fresh=fresh)
        ctx.state["probes"].pop(container_id, None)

    ctx.state["nursery"].start_soon(run)


@plugin.task
async def probes(ctx: PluginContext) -> None:
    """Owns every probe; picks up containers already running when the plugin starts."""
    ctx.state["probes"] = {}
    async with trio.open_nursery() as nursery:
        ctx.state["nursery"] = nursery
        for c in ctx.engine.list_containers(filters={"status": ["running"]}):  # a paused one: at its unpause
            _start(ctx, c.id)
        await trio.sleep_forever()


@plugin.on_event
async def follow(ctx: PluginContext, event: Event) -> None:
    while "nursery" not in ctx.state:  # the probes task starts beside this handler
        await trio.sleep(0.01)
    if event.Action in ("start", "unpause"):
        try:
            _start(ctx, event.Actor.ID, fresh=event.Action == "start")
        except EngineError:
            pass  # removed meanwhile
    elif (scope := ctx.state["probes"].pop(event.Actor.ID, None)) is not None:
        scope.cancel()
        if event.Action in ("die", "pause"):  # as dockerd: a container whose checks stopped is unhealthy
            try:
                c = ctx.engine.get(event.Actor.ID)
            except EngineError:
                return  # removed meanwhile
            if (health := c.record.state.health) is not None:
                await ctx.engine.set_health(c, msgspec.structs.replace(health, status="unhealthy"))
