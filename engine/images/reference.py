"""Image references: parse, validate and normalise `name[:tag][@digest]`.

Docker clients send references normalised (`docker.io/library/busybox`); berth stores and
shows the familiar form (`busybox`), as dockerd does. Where an image lives is read from the
familiar name as Docker reads it (`remote`): a first component with a `.` or a `:`, or
`localhost`, names the registry (`127.0.0.1:5000/app`, `registry.example.com/team/app`);
otherwise the registry is docker.io, and a one-part name is under `library/` there.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import BadRequest

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_NAME_RE = re.compile(rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOSTED_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/")

DEFAULT_TAG = "latest"
DEFAULT_REGISTRY = "docker.io"


class Reference(NamedTuple):
    repo: str
    tag: str = DEFAULT_TAG
    digest: str = ""

    def __str__(self) -> str:
        return f"{self.repo}@{self.digest}" if self.digest else f"{self.repo}:{self.tag}"


def familiar(repo: str) -> str:
    """`docker.io/library/busybox` → `busybox`."""
    for prefix in _HOSTED_PREFIXES:
        if repo.startswith(prefix):
            return repo[len(prefix):]
    return repo


def parse(ref: str, tag: str = "") -> Reference:
    """Parse `name[:tag][@digest]` (an explicit `tag` argument wins); raise BadRequest if invalid."""
    name, _, digest = ref.partition("@")
    # A colon after the last slash is a tag; before it, it is a registry port.
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, ref_tag = name[:colon], name[colon + 1:]
    else:
        ref_tag = ""
    name = familiar(name)
    tag = tag or ref_tag or DEFAULT_TAG
    if not _NAME_RE.match(name):
        raise BadRequest(f"invalid reference format: repository name ({name}) must be lowercase")
    if len(name) > 255:
        raise BadRequest("invalid reference format: repository name must not be more than 255 characters")
    if not _TAG_RE.match(tag):
        raise BadRequest(f"invalid tag format: {tag!r}")
    if digest and not _DIGEST_RE.match(digest):
        raise BadRequest(f"invalid reference format: bad digest {digest!r}")
    return Reference(name, tag, digest)


def new_name(ref: str, tag: str = "") -> Reference:
    """`parse`, for a name an image is to be given (tag, commit, import, build `-t`,
    load): as dockerd, no digest (what a registry says, never given here), and not
    `sha256` as a repository (`sha256:<hex>` would read as an image ID, the tag
    unreachable)."""
    parsed = parse(ref, tag)
    if parsed.digest:
        raise BadRequest("refusing to create a tag with a digest reference")
    if parsed.repo == "sha256":
        raise BadRequest("refusing to create an ambiguous tag using digest algorithm as name")
    return parsed


def remote(repo: str) -> tuple[str, str]:
    """(registry host, repository path on it) of a familiar name: `busybox` →
    (`docker.io`, `library/busybox`), `127.0.0.1:5000/app` → (`127.0.0.1:5000`, `app`)."""
    first, sep, rest = repo.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_REGISTRY, repo if sep else f"library/{repo}"


def full_name(repo: str) -> str:
    """The fully qualified repository name, as `docker push` shows it (`docker.io/library/busybox`)."""
    host, path = remote(repo)
    return f"{host}/{path}"
