"""The docs say what the code does: the API table and the lifecycle table stay current."""

from __future__ import annotations

import re
from pathlib import Path

from engine import lifecycle
from engine.api.router import ROUTES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _doc_path(pattern: str) -> str:
    """`/containers/(?P<id>[^/]+)/json` → `/containers/{id}/json`."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)


def test_every_route_is_in_the_api_table():
    table = (DOCS / "api.md").read_text()
    for method, pattern, _ in ROUTES:
        path = _doc_path(pattern)
        rows = [line for line in table.splitlines() if f"`{path}`" in line and method in line.split("|")[1]]
        assert rows, f"{method} {path} is served but missing from docs/api.md"
        assert any(row.split("|")[3].strip() in ("yes", "partial") for row in rows), rows


def test_lifecycle_table_in_architecture_doc():
    assert lifecycle.render_markdown() in (DOCS / "architecture.md").read_text()
