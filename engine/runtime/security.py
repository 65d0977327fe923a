"""`--security-opt`: HostConfig.SecurityOpt read as dockerd reads it.

- `no-new-privileges` (or `no-new-privileges=true|false`): the container's processes
  cannot gain privileges through execve (setuid binaries, file capabilities). Off by
  default, as in Docker: setuid programs in images work.
- `seccomp=unconfined`: no seccomp filter; `seccomp=<profile JSON>` (the CLI reads the
  file named by `seccomp=FILE` and sends its content): that profile instead of Docker's
  default.
- `apparmor=...` and `label=...` (SELinux): parsed here; `bundle.check` accepts only
  `apparmor=unconfined` and `label=disable` (berth applies neither LSM, so any other
  profile or label would be a promise it cannot keep: a 400 says so).

`:` is accepted in place of `=`, as dockerd still does. Anything else is refused with
dockerd's message.
"""

from __future__ import annotations

import msgspec

from ..errors import BadRequest

_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


class SecurityOptions(msgspec.Struct, frozen=True):
    no_new_privileges: bool = False
    seccomp: str = ""  # "": Docker's default profile; "unconfined"; or a profile's JSON
    apparmor: str = ""
    labels: tuple[str, ...] = ()


def parse(opts: list[str] | None) -> SecurityOptions:
    no_new_privileges, seccomp, apparmor, labels = False, "", "", []
    for opt in opts or []:
        if opt == "no-new-privileges":
            no_new_privileges = True
            continue
        if opt == "disable":
            labels.append(opt)
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise BadRequest(f'invalid --security-opt 1: "{opt}"')
        key, _, value = opt.partition(sep)
        if key == "label":
            labels.append(value)
        elif key == "apparmor":
            apparmor = value
        elif key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges" and value.lower() in _TRUE | _FALSE:
            no_new_privileges = value.lower() in _TRUE
        else:
            raise BadRequest(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(no_new_privileges, seccomp, apparmor, tuple(labels))
