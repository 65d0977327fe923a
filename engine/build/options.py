"""What a build is asked (`POST /build`'s query) and what it says (the JSON stream), and
the kept contexts' offers and prunes (`contexts.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from ..models import ErrorDetail, Ulimit


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
    ulimits: list[Ulimit] | None = None
    context_session: str = ""  # berth's: the context offered first (`contexts.py`), the tar the rest


class BuildMessage(msgspec.Struct, omit_defaults=True):
    """One message of the classic builder's stream: text, the image ID, or the error."""

    stream: str = ""
    aux: dict | None = None
    errorDetail: ErrorDetail | None = None
    error: str = ""


Emit = Callable[[BuildMessage], Awaitable[None]]


class ContextFile(msgspec.Struct, array_like=True, frozen=True):
    """A regular file of a context as its client sees it (`lstat`)."""

    path: str  # as named in the tar: relative, `/`-separated
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int


class ContextOffer(msgspec.Struct):
    """`POST /build/context`'s body."""

    source: str  # which directory of which client (berth's CLI: `host:/path`): one source, one kept context
    now_ns: int  # the client's clock when it listed (what is racy is judged against it)
    files: list[ContextFile]


class ContextAnswer(msgspec.Struct):
    """The session to name in `POST /build`, and which files (indices into the offer's
    list) the context tar must hold."""

    session: str
    send: list[int]


class PruneResult(msgspec.Struct):
    """`POST /build/prune`'s answer: the kept contexts dropped and the bytes freed."""

    CachesDeleted: list[str]
    SpaceReclaimed: int


class CacheRecord(msgspec.Struct):
    """A build cache record of `GET /system/df` (`BuildCache`): a kept context."""

    ID: str
    Description: str
    Size: int
    CreatedAt: str
    LastUsedAt: str
    UsageCount: int
    Type: str = "source.local"
    Parents: list[str] | None = None
    InUse: bool = False
    Shared: bool = False
