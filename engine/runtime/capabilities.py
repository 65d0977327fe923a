"""Linux capabilities: their names, the daemon's bounding set, and Docker's rules for the
set a container gets.

Vocabulary:
- a capability is named as the OCI spec and the kernel headers name it, `CAP_NET_ADMIN`;
  `NAMES[bit]` is the name of bit `bit` of the masks in /proc/<pid>/status.
- the bounding set is the daemon's own (`CapBnd`): a container can hold nothing outside
  it, and a runtime asked for more fails in capset(2) with EPERM. Docker asks for every
  capability it knows under `--privileged` and fails on a host whose bounding set lacks
  one (CAP_SYS_RESOURCE on some sandboxes); berth asks for what the bounding set holds,
  as Podman does.

Docker's rules (moby `oci/caps.TweakCapabilities`): `--privileged` gives every
capability; otherwise `--cap-add ALL` gives every capability less `--cap-drop`;
`--cap-drop ALL` gives exactly `--cap-add`; else the defaults less `--cap-drop`, plus
`--cap-add` (an add wins over a drop of the same capability).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ..errors import BadRequest

# linux/capability.h, by bit number
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
# Docker's default set (moby `oci/caps.DefaultCapabilities`), in its order
DEFAULT = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL = "ALL"


def from_mask(mask: int) -> list[str]:
    """The capabilities whose bits are set in `mask` (bits this module cannot name are left out)."""
    return [name for bit, name in enumerate(NAMES) if mask >> bit & 1]


def to_mask(caps: Iterable[str]) -> int:
    return sum(1 << NAMES.index(c) for c in caps)


def status_mask(status: str, field: str) -> int:
    """A capability mask (`CapBnd`, `CapEff`, ...) from the text of /proc/<pid>/status."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value.strip(), 16)
    raise ValueError(f"no {field} in the status text")


@functools.cache
def bounding() -> frozenset[str]:
    """The daemon's bounding set: what any container of it can hold, read once."""
    with open("/proc/self/status") as f:
        return frozenset(from_mask(status_mask(f.read(), "CapBnd")))


def normalize(name: str) -> str:
    """`net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; `all` → `ALL`.
    A name that is no capability is the user's error (400), as in Docker."""
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    cap = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if cap not in NAMES:
        raise BadRequest(f'unknown capability: "{cap}"')
    return cap


def container_set(adds: Iterable[str] | None, drops: Iterable[str] | None, *, privileged: bool,
                  held: frozenset[str] | None = None) -> list[str]:
    """The capabilities of a container (Docker's rules, above), within `held` (default: the
    daemon's bounding set). Every capability and ALL are taken only as far as `held` has
    them; a `--cap-add` of a named capability outside it is refused with the reason, rather
    than left to fail in the runtime's capset(2)."""
    held = bounding() if held is None else held
    everything = [c for c in NAMES if c in held]
    if privileged:
        return everything
    add = [normalize(c) for c in adds or []]
    drop = {normalize(c) for c in drops or []}
    missing = [c for c in add if c != ALL and c not in held]
    if missing:
        raise BadRequest(f"cannot add {', '.join(missing)}: the daemon's own bounding set does not hold it")
    if ALL in add:
        return [c for c in everything if c not in drop]
    if ALL in drop:
        base: list[str] = []
    else:
        base = [c for c in DEFAULT if c not in drop and c in held]
    return base + [c for c in dict.fromkeys(add) if c not in base]
