"""`docker search`: which registry a term names, and the filters dockerd applies.

A term's first part names the registry when it looks like a host (a `.` or `:` in it, or
`localhost`), as dockerd's splitReposSearchTerm reads it; anything else is Docker Hub,
searched at index.docker.io (its v1 search API, `GET /v1/search?q=…&n=…`), `library/`
left out of the query.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BadRequest
from ..models import SearchResult

HUB_INDEX = "index.docker.io"
DEFAULT_LIMIT = 25
FILTERS = ("is-automated", "is-official", "stars")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def split_term(term: str) -> tuple[str, str]:
    """(registry host, query): `127.0.0.1:5000/app` → ("127.0.0.1:5000", "app")."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") \
            and first not in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return first, rest
    if sep and first in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        term = rest
    return HUB_INDEX, term.removeprefix("library/")


def _bool(filters: dict[str, list[str]], key: str) -> bool | None:
    values = {v.lower() for v in filters.get(key, [])}
    if not values:
        return None
    if values <= set(_TRUE):
        return True
    if values <= set(_FALSE):
        return False
    raise BadRequest(f"invalid filter '{key}={','.join(sorted(filters[key]))}'")


def matcher(filters: dict[str, list[str]]) -> Callable[[SearchResult], bool]:
    """dockerd's search filters: `is-official`, `is-automated` (true/false, 1/0) and
    `stars` (at least the largest number given); any other key is a 400."""
    for key in filters:
        if key not in FILTERS:
            raise BadRequest(f"invalid filter '{key}'")
    official, automated = _bool(filters, "is-official"), _bool(filters, "is-automated")
    stars = 0
    for value in filters.get("stars", []):
        try:
            stars = max(stars, int(value))
        except ValueError:
            raise BadRequest(f"invalid filter 'stars={value}'") from None

    def match(result: SearchResult) -> bool:
        return ((official is None or result.is_official == official)
                and (automated is None or result.is_automated == automated)
                and result.star_count >= stars)

    return match


def check_limit(limit: int) -> int:
    if not 1 <= limit <= 100:
        raise BadRequest(f"limit {limit} is outside the range of [1, 100]")
    return limit
