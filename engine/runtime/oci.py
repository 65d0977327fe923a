"""Drive an OCI runtime binary (crun or runc) from trio.

A container runs as a foreground `<runtime> run` child of the daemon: its return code is
the container's exit status (128+N for a signal) and its stdout/stderr pipes are the
container's. Each daemon keeps its runtime state under its own root (`--root`), so
several daemons never see each other's containers.

crun 1.8 refuses a hybrid cgroup host whose v2 tree has controllers ("cgroups in hybrid
mode not supported"). berthd therefore runs in its own mount namespace without
/sys/fs/cgroup/unified on such a host (`cgroups.hide_hybrid_v2`), and crun runs as is;
where the tree is still visible (the Engine outside berthd), crun is marked unusable
with the reason. `Runtime.path` says how a runtime is driven, and `info` shows it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import trio

from .cgroups import CGROUP_ROOT, Layout

log = logging.getLogger("berth.runtime")
_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH")


class RuntimeFailure(Exception):
    """The runtime refused an operation; `message` is its own reason."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Runtime:
    """One OCI runtime binary, driven the way this host needs."""

    def __init__(self, name: str, binary: str, state_root: Path, path: str):
        self.name = name
        self.binary = binary
        self.state_root = state_root
        self.path = path

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.state_root), *args]

    async def open_run(self, bundle: Path, container_id: str, *, pid_file: Path, log_file: Path,
                       stdin, stdout, stderr) -> trio.Process:
        """Start `run` for the bundle; the caller owns the process (and its pipes)."""
        argv = self.argv("--log", str(log_file), "--log-format", "json",
                         "run", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id)
        return await trio.lowlevel.open_process(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                                start_new_session=True)

    async def _call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = await trio.run_process(self.argv(*args), capture_stdout=True, capture_stderr=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeFailure(result.stderr.decode(errors="replace").strip() or f"{self.name} {args[0]} failed")
        return result

    async def open_exec(self, container_id: str, argv: list[str], *, env: list[str], cwd: str, user: str,
                        stdout, stderr) -> trio.Process:
        """Start `argv` inside the running container; the caller waits for it."""
        opts = [f"--env={e}" for e in env] + ([f"--cwd={cwd}"] if cwd else []) + ([f"--user={user}"] if user else [])
        return await trio.lowlevel.open_process(self.argv("exec", *opts, container_id, *argv), stdin=subprocess.DEVNULL,
                                                stdout=stdout, stderr=stderr, start_new_session=True)

    async def kill(self, container_id: str, sig: int) -> None:
        await self._call("kill", container_id, str(sig))

    async def delete(self, container_id: str) -> None:
        """Forget the container's runtime state (and its cgroup); fine if already gone."""
        await self._call("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict | None:
        result = await self._call("state", container_id, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None


def failure_reason(log_file: Path, command: str) -> str:
    """The runtime's last error from its JSON log, worded as dockerd words it.

    The docker CLI picks `run`'s exit status (127, 126) from phrases in this message:
    "executable file not found" and "permission denied" must appear as runc says them.
    """
    reason = ""
    try:
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("level") in ("error", "fatal"):
                reason = entry.get("msg", "")
    except OSError:
        pass
    found = _CRUN_NOT_FOUND.search(reason)
    if found:
        reason = f'exec: "{found.group(1)}": executable file not found in $PATH'
    elif "open executable" in reason or "Permission denied" in reason:
        reason = f'exec: "{command}": permission denied'  # crun's words for a directory or a non-executable
    return reason or "the runtime exited before starting the container"


def detect(layout: Layout, state_dir: Path) -> dict[str, Runtime]:
    """Every installed runtime that works on this host as this process sees it."""
    runtimes = {}
    for name in ("crun", "runc"):
        binary = shutil.which(name)
        if not binary:
            continue
        path = "direct"
        if name == "crun" and layout.hybrid:
            if os.path.ismount(CGROUP_ROOT / "unified"):
                log.warning("crun left out: it refuses this hybrid cgroup host while /sys/fs/cgroup/unified is mounted")
                continue
            path = ("in berthd's own mount namespace, without /sys/fs/cgroup/unified (crun refuses this "
                    f"host's hybrid cgroup layout: v2 has {','.join(layout.hybrid_v2_controllers)})")
        runtimes[name] = Runtime(name, binary, state_dir / name, path)
    return runtimes


SIGNALS = {s.name: int(s) for s in signal.Signals}


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    """`9`, `KILL`, `SIGKILL` → 9; raises ValueError for anything else."""
    if value in (None, ""):
        return int(default)
    text = str(value).upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
        raise ValueError(f"invalid signal: {value}")
    number = SIGNALS.get(text if text.startswith("SIG") else f"SIG{text}")
    if number is None:
        raise ValueError(f"invalid signal: {value}")
    return number
