"""Import rules: who may import whom among berth's own packages, read from the source.

The Engine (`engine/core.py`) is the one door: the HTTP API and plugins reach the daemon
through it and never past it, and the lower layers never import upwards. Every import
counts, those under `if TYPE_CHECKING:` and inside functions too. Third-party and
standard-library imports are not governed here, nor `gounits` (a leaf package of
formatting functions that imports nothing of berth's) and `dockerignore` (likewise: the
`.dockerignore` rules, read by the daemon and the client alike).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("engine", "plugins", "shell")

# (modules the rule governs, modules of berth's they may import: exact names, or
# prefixes ending in "." for a whole package)
RULES = [
    ("engine.api.", ("engine.core", "engine.models", "engine.errors", "engine.timefmt", "engine.api.")),
    ("plugins.", ("engine.plugin_api", "engine.models", "plugins.")),
    ("engine.images.", ("engine.models", "engine.errors", "engine.timefmt", "engine.fs.", "engine.events.",
                        "engine.images.")),
    ("engine.registry.", ("engine.models", "engine.errors", "engine.timefmt", "engine.fs.", "engine.events.",
                          "engine.images.", "engine.registry.")),
    # the bundle reads the container's passwd and group files inside its root (a leaf module)
    ("engine.runtime.", ("engine.models", "engine.errors", "engine.fs.inroot", "engine.runtime.")),
    ("engine.build.", ("engine.models", "engine.errors", "engine.timefmt", "engine.fs.", "engine.events.",
                       "engine.images.", "engine.containers.", "engine.runtime.", "engine.build.")),
    ("engine.keeper.", ("engine.keeper.",)),  # the keeper outlives the daemon: it needs nothing of it
    ("shell.", ("shell.",)),
]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, name: str) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every first-party module `path` imports, relative imports
    resolved; `from package import name` counts as the module `package.name` when that is
    a module, else as `package`."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((node.lineno, name if _is_module(root, name) else base))
    return sorted({(line, name) for line, name in found if name.split(".")[0] in FIRST_PARTY})


def _sources(root: Path) -> list[Path]:
    return sorted(p for top in FIRST_PARTY for p in (root / top).rglob("*.py"))


def _allowed(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a.removesuffix(".") or (a.endswith(".") and target.startswith(a)) for a in allowed)


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks a rule, as `path:line: module imports target`."""
    out = []
    for path in _sources(root):
        module = _module_name(root, path)
        for prefix, allowed in RULES:
            if not (module + ".").startswith(prefix):
                continue
            for line, target in imports_of(root, path):
                if not _allowed(target, allowed):
                    out.append(f"{path.relative_to(root)}:{line}: {module} imports {target}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself): each is at least one import cycle. Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found


def engine_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """engine/'s modules and the engine modules each imports (packages' empty
    `__init__` modules aside: importing through them runs no code of theirs)."""
    graph = {}
    for path in sorted((root / "engine").rglob("*.py")):
        graph[_module_name(root, path)] = {t for _, t in imports_of(root, path)
                                           if root.joinpath(*t.split(".")).with_suffix(".py").is_file()}
    return graph


def test_layers_import_only_what_their_rule_allows():
    found = violations()
    assert not found, "imports that break the layering rules:\n" + "\n".join(found)


def test_no_import_cycle_in_engine():
    found = cycles(engine_graph())
    assert not found, "import cycles among engine modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checks_see_violations_and_cycles(tmp_path):
    """The checks themselves, on a tree of their own: rule-breaking imports (relative under
    TYPE_CHECKING, inside a function, absolute) and the cycle two of them make."""
    files = {
        "engine/api/handlers.py": ("from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    from ..runtime import cgroups\n"),
        "engine/runtime/cgroups.py": "def f():\n    from engine.core import Engine\n",
        "engine/core.py": "from .runtime import cgroups\n",
        "plugins/p.py": "from engine.plugin_api import Plugin\nfrom engine.errors import EngineError\n",
        "shell/s.py": "import engine.models\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for package in ("engine", "engine/api", "engine/runtime", "plugins", "shell"):
        (tmp_path / package / "__init__.py").touch()
    assert violations(tmp_path) == [
        "engine/api/handlers.py:3: engine.api.handlers imports engine.runtime.cgroups",
        "engine/runtime/cgroups.py:2: engine.runtime.cgroups imports engine.core",
        "plugins/p.py:2: plugins.p imports engine.errors",
        "shell/s.py:1: shell.s imports engine.models",
    ]
    assert cycles(engine_graph(tmp_path)) == [["engine.core", "engine.runtime.cgroups"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_engine_facade_lists_exactly_what_plugins_call():
    """`plugin_api.EngineFacade` names the Engine methods the shipped plugins (and the
    documented example) call through `ctx.engine`, no more, no fewer, and the Engine has each."""
    from engine.core import Engine
    from engine.plugin_api import EngineFacade

    sources = [p.read_text() for p in sorted((ROOT / "plugins").glob("*.py"))]
    docs = (ROOT / "docs" / "plugins.md").read_text()
    sources += re.findall(r"<!-- example: \S+ -->\n```python\n(.*?)```", docs, re.S)
    called = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and (
                    (isinstance(node.value, ast.Name) and node.value.id == "engine")
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "engine")):
                called.add(node.attr)
    listed = {name for name in vars(EngineFacade) if not name.startswith("_")}
    assert listed == called
    assert all(callable(getattr(Engine, name, None)) for name in listed)
