"""dockerd's `merge` of a config with the one below it, field by field: a container's
with its image's at create, a commit's with its container's. What the upper config sets
stands; what it leaves unset comes from below."""

from __future__ import annotations

from ..models import HealthConfig


def merged_env(own: list[str], base: list[str]) -> list[str]:
    """Own entries first, then those of `base` whose names it does not set (`inspect`
    shows them in that order)."""
    names = {e.partition("=")[0] for e in own}
    return [*own, *(e for e in base if e.partition("=")[0] not in names)]


def merged_health(own: HealthConfig | None, base: HealthConfig | None) -> HealthConfig | None:
    """Own health check, each field it leaves zero from `base` (`--health-interval 2s`
    alone keeps the image's test and retries), or `base`'s when it has none."""
    if own is None or base is None:
        return own if own is not None else base
    return HealthConfig(test=own.test or base.test, interval=own.interval or base.interval,
                        timeout=own.timeout or base.timeout, retries=own.retries or base.retries,
                        start_period=own.start_period or base.start_period)
