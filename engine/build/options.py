"""What a build is asked (`POST /build`'s query) and what it says (the JSON stream)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from ..models import ErrorDetail


class BuildOptions(msgspec.Struct, kw_only=True):
    dockerfile: str = "Dockerfile"
    tags: list[str] = []
    buildargs: dict[str, str | None] = {}
    labels: dict[str, str] = {}
    target: str = ""
    nocache: bool = False
    pull: bool = False  # base images are local: berth's builder never pulls
    rm: bool = True  # remove intermediate containers after a successful step
    forcerm: bool = False  # remove them after a failed one too
    quiet: bool = False
    network_mode: str = ""
    platform: str = ""
    cache_from: list[str] = []
    extra_hosts: list[str] = []
    shm_size: int = 0
    memory: int = 0
    memswap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""


class BuildMessage(msgspec.Struct, omit_defaults=True):
    """One message of the classic builder's stream: text, the image ID, or the error."""

    stream: str = ""
    aux: dict | None = None
    errorDetail: ErrorDetail | None = None
    error: str = ""


Emit = Callable[[BuildMessage], Awaitable[None]]
