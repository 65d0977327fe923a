"""The API description the fuzzer is driven by: Docker's own Engine API v1.41 (moby's
`api/swagger.yaml`, Swagger 2.0), cut down to what the fuzzer may call.

`swagger-v1.41.json` beside this file is made by `python -m tests.fuzz.spec SWAGGER_YAML`
from moby v20.10.27 (see NOTICE). The cut: the paths `EXCLUDED` names are dropped (they
reach a registry, build from a context, or are Swarm mode), then prose (`description`,
`summary`), examples and Go code-generation hints (`x-go-*`), then every definition no
kept path refers to. Schemas, parameters and statuses are Docker's, untouched.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

SPEC = Path(__file__).with_name("swagger-v1.41.json")

# Path patterns (regular expressions, whole path) the fuzzer never calls, and why.
EXCLUDED = {
    r"/images/\{name\}/push": "pushes to a registry",
    r"/images/search": "searches a registry",
    r"/auth": "logs in to a registry",
    r"/distribution/.*": "asks a registry",
    r"/plugins/(pull|privileges|\{name\}/upgrade|\{name\}/push)": "pulls from or pushes to a registry",
    r"/build(/.*)?": "builds from a context (runs its RUN steps)",
    r"/session": "a BuildKit session (hijacked, gRPC)",
    r"/(swarm|services|nodes|tasks|secrets|configs)(/.*)?": "Swarm mode (out of berth's scope)",
}
_EXCLUDED = re.compile("|".join(f"(?:{p})" for p in EXCLUDED))
_PROSE = {"description", "summary", "example", "examples", "x-go-name", "x-go-type", "x-omitempty", "x-logo"}


def excluded(path: str) -> bool:
    return bool(_EXCLUDED.fullmatch(path))


def _strip(node, in_properties: bool = False):
    """Without prose and examples; a property that happens to be named like them stays."""
    if isinstance(node, dict):
        return {key: _strip(value, key == "properties" and not in_properties)
                for key, value in node.items() if in_properties or key not in _PROSE}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def cut(full: dict) -> dict:
    """Docker's description without what the fuzzer must not call and without prose."""
    paths = {path: item for path, item in full["paths"].items() if not excluded(path)}
    spec = _strip({key: value for key, value in full.items() if key not in ("paths", "definitions", "tags")})
    spec["paths"] = _strip(paths)
    definitions = _strip(full["definitions"])
    wanted: set[str] = set()
    _refs(spec["paths"], wanted)
    while True:  # definitions refer to definitions
        more: set[str] = set()
        for name in wanted:
            _refs(definitions[name], more)
        if more <= wanted:
            break
        wanted |= more
    spec["definitions"] = {name: definitions[name] for name in sorted(wanted)}
    return spec


def load() -> dict:
    return json.loads(SPEC.read_text())


def main() -> None:
    import yaml  # schemathesis depends on PyYAML

    full = yaml.safe_load(Path(sys.argv[1]).read_text())
    SPEC.write_text(json.dumps(cut(full), indent=1, sort_keys=False) + "\n")
    print(f"{SPEC}: {len(cut(full)['paths'])} paths of {len(full['paths'])}")


if __name__ == "__main__":
    main()
