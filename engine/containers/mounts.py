"""A container's mount requests, as `POST /containers/create` carries them, checked and
resolved into `MountPoint`s — with Docker's rules and Docker's 400 messages.

Three sources, in the order dockerd applies them (an earlier one wins a destination):

* `HostConfig.Binds` (`-v`): `name:/dst[:mode]` (a named volume, created on first use),
  `/host/dir:/dst[:mode]` (a bind; a missing host directory is created at start, as
  dockerd does for `-v`), or a bare `/dst` (an anonymous volume). Mode is a comma list
  of `ro`/`rw`, a propagation (`rprivate`, `shared`, …), `nocopy`, and the SELinux and
  consistency words dockerd accepts and ignores here (`z`, `Z`, `cached`, …).
* `HostConfig.Mounts` (`--mount`): Docker's Mount struct; a bind's source must exist.
* The image's `Config.Volumes` and the request's `Volumes`: an anonymous volume for
  every destination nothing above covers.

Nothing here touches the volume store or the host beyond checking that a `--mount`
bind source exists: `plan` is pure validation, so a refused create leaves no trace.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
from collections.abc import Callable

from ..errors import BadRequest
from ..models import Mount, MountPoint, VolumeCreateRequest

ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what dockerd 23+ marks anonymous volumes with
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_IGNORED_MODES = ("z", "Z", "consistent", "cached", "delegated")
DEFAULT_PROPAGATION = "rprivate"


def check_volume_name(name: str) -> None:
    """Docker's rule for local volume names (a 400 naming what went wrong)."""
    if not VOLUME_NAME.match(name):
        if len(name) < 2 and name.isalnum():
            raise BadRequest(f"create {name}: volume name is too short, names should be at least two alphanumeric characters")
        raise BadRequest(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                         f'"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def anonymous_request() -> VolumeCreateRequest:
    """How an anonymous volume is created: a generated name and dockerd's marker label."""
    return VolumeCreateRequest(name=secrets.token_hex(32), driver="local", labels={ANONYMOUS_LABEL: ""})


def _destination(raw: str, spec: str) -> str:
    if not raw.startswith("/"):
        raise BadRequest(f"invalid volume specification: '{spec}': invalid mount config for type \"volume\": "
                         f"invalid mount path: '{raw}' mount path must be absolute")
    dst = posixpath.normpath(raw)
    if dst == "/":
        raise BadRequest(f"invalid volume specification: '{spec}': invalid mount config for type \"bind\": "
                         f"invalid specification: destination can't be '/'")
    return dst


def _bind_mode(mode: str, spec: str) -> tuple[bool, str, bool]:
    """(read-write, propagation, copy data) from a `-v` mode string."""
    rw, propagation, copy = True, "", True
    seen_rw = False
    for word in filter(None, mode.split(",")):
        if word in ("ro", "rw"):
            if seen_rw:
                raise BadRequest(f"invalid mode: {mode}")
            seen_rw, rw = True, word == "rw"
        elif word in PROPAGATIONS:
            if propagation:
                raise BadRequest(f"invalid mode: {mode}")
            propagation = word
        elif word == "nocopy":
            copy = False
        elif word not in _IGNORED_MODES:
            raise BadRequest(f"invalid mode: {mode}")
    return rw, propagation, copy


def _from_bind(spec: str, data_path: Callable[[str], str]) -> tuple[MountPoint, VolumeCreateRequest | None]:
    parts = spec.split(":")
    if len(parts) == 1:  # `-v /dst`: an anonymous volume
        parts = ["", parts[0]]
    if len(parts) not in (2, 3) or not parts[1]:
        raise BadRequest(f"invalid volume specification: '{spec}'")
    src, raw_dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    dst = _destination(raw_dst, spec)
    rw, propagation, copy = _bind_mode(mode, spec)
    if src.startswith("/"):
        if not copy:
            raise BadRequest(f"invalid mode: {mode}")  # nocopy means nothing for a host path
        return MountPoint(type="bind", destination=dst, source=posixpath.normpath(src), mode=mode, rw=rw,
                          propagation=propagation or DEFAULT_PROPAGATION), None
    if propagation:
        raise BadRequest(f"invalid volume specification: '{spec}': propagation mode is only valid for binds")
    create = anonymous_request() if not src else VolumeCreateRequest(name=src, driver="local")
    if src:
        check_volume_name(src)
    return MountPoint(type="volume", destination=dst, name=create.name, source=data_path(create.name), driver="local",
                      mode=mode or ("z" if src else ""), rw=rw, copy_data=copy, anonymous=not src), create


def _invalid(kind: str, why: str) -> BadRequest:
    return BadRequest(f'invalid mount config for type "{kind}": {why}')


def _from_mount(m: Mount, data_path: Callable[[str], str]) -> tuple[MountPoint, VolumeCreateRequest | None]:
    kind = m.type
    if kind not in ("volume", "bind", "tmpfs"):
        raise _invalid(kind, "mount type unknown")
    if not m.target:
        raise _invalid(kind, "field Target must not be empty")
    if not m.target.startswith("/"):
        raise _invalid(kind, f"invalid mount path: '{m.target}' mount path must be absolute")
    dst = posixpath.normpath(m.target)
    if dst == "/":
        raise _invalid(kind, "invalid specification: destination can't be '/'")
    if kind != "volume" and m.volume_options is not None:
        raise _invalid(kind, "field VolumeOptions must not be specified")
    if kind != "tmpfs" and m.tmpfs_options is not None:
        raise _invalid(kind, "field TmpfsOptions must not be specified")
    if kind != "bind" and m.bind_options is not None:
        raise _invalid(kind, "field BindOptions must not be specified")
    if kind == "bind":
        if not m.source:
            raise _invalid(kind, "field Source must not be empty")
        if not m.source.startswith("/"):
            raise _invalid(kind, f"invalid mount path: '{m.source}' mount path must be absolute")
        if not os.path.exists(m.source):
            raise _invalid(kind, f"bind source path does not exist: {m.source}")
        propagation = (m.bind_options.propagation if m.bind_options else "") or DEFAULT_PROPAGATION
        if propagation not in PROPAGATIONS:
            raise _invalid(kind, f"invalid propagation mode: {propagation}")
        return MountPoint(type="bind", destination=dst, source=posixpath.normpath(m.source), rw=not m.read_only,
                          propagation=propagation), None
    if kind == "tmpfs":
        if m.source:
            raise _invalid(kind, "field Source must not be specified")
        options = ["nosuid", "nodev", "noexec"]
        if m.tmpfs_options and m.tmpfs_options.size_bytes:
            if m.tmpfs_options.size_bytes < 0:
                raise _invalid(kind, "invalid tmpfs size")
            options.append(f"size={m.tmpfs_options.size_bytes}")
        if m.tmpfs_options and m.tmpfs_options.mode:
            if not 0 <= m.tmpfs_options.mode < 1 << 32:  # Go's os.FileMode: stored, it broke every client's inspect
                raise BadRequest(f"invalid tmpfs mode {m.tmpfs_options.mode}: a file mode is 32 bits")
            options.append(f"mode={m.tmpfs_options.mode & 0o7777:o}")
        return MountPoint(type="tmpfs", destination=dst, rw=not m.read_only, tmpfs_options=options), None
    vo = m.volume_options
    driver = vo.driver_config.name if vo and vo.driver_config else ""
    if m.source:
        check_volume_name(m.source)
        create = VolumeCreateRequest(name=m.source)
    else:
        create = anonymous_request()
    create.driver = driver or "local"
    create.driver_opts = (vo.driver_config.options if vo and vo.driver_config else None) or None
    create.labels = {**(create.labels or {}), **((vo.labels if vo else None) or {})} or None
    return MountPoint(type="volume", destination=dst, name=create.name, source=data_path(create.name),
                      driver=driver or "local", rw=not m.read_only, copy_data=not (vo and vo.no_copy),
                      anonymous=not m.source), create


def valid_mode(mode: str) -> bool:
    """A `-v` mode string dockerd would take (ro/rw, a propagation, nocopy, and the words
    it accepts and ignores here)."""
    try:
        _bind_mode(mode, "")
    except BadRequest:
        return False
    return True


def plan(binds: list[str] | None, mounts: list[Mount] | None, volumes: list[str],
         data_path: Callable[[str], str], *, tmpfs: list[str] = (),
         inherited: list[MountPoint] = ()) -> list[tuple[MountPoint, VolumeCreateRequest | None]]:
    """Every mount of a new container, with how to create each volume it names if that
    volume does not exist yet (None for binds and tmpfs). `volumes` are the destinations
    of the image's and the request's `Volumes`; `data_path(name)` is a volume's `_data`.

    In dockerd's order: `inherited` (`--volumes-from`, already resolved) first, which a
    bind or `--mount` of the same destination replaces; `tmpfs` (`--tmpfs` destinations,
    mounted by the bundle) take a destination that no bind or `--mount` may share; image
    volumes fill what is left."""
    planned: list[tuple[MountPoint, VolumeCreateRequest | None]] = []
    tmpfs = {posixpath.normpath(d) for d in tmpfs}
    taken: set[str] = set(tmpfs)
    given = {m.destination: m for m in inherited if m.destination not in tmpfs}

    def add(item: tuple[MountPoint, VolumeCreateRequest | None]) -> None:
        if item[0].destination in taken:
            raise BadRequest(f"Duplicate mount point: {item[0].destination}")
        taken.add(item[0].destination)
        given.pop(item[0].destination, None)
        planned.append(item)

    for spec in binds or []:
        add(_from_bind(spec, data_path))
    for m in mounts or []:
        add(_from_mount(m, data_path))
    planned[:0] = [(m, None) for m in given.values()]
    taken |= set(given)
    for raw in volumes:
        dst = _destination(raw, raw)
        if dst not in taken:
            add(_from_bind(dst, data_path))
    return planned
