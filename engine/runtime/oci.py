"""Drive an OCI runtime binary (crun or runc) from trio.

A container is started by `<runtime> run --detach`, spawned by the keeper (engine/keeper):
the runtime exits once the container runs, and the container's init is the keeper's
child, whose exit the keeper records; its stdout/stderr pipes are the container's. An exec
runs as a foreground `<runtime> exec` child of the daemon. Each daemon keeps its runtime
state under its own root (`--root`), so several daemons never see each other's containers.

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

from . import sealed, terminal
from .cgroups import CGROUP_ROOT, Layout
from .terminal import Terminal

log = logging.getLogger("berth.runtime")
_CRUN_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH")
_LOGRUS_MSG = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')


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
        """The command line of `<runtime> args`, run from the binary's sealed copy."""
        return [sealed.executable(self.binary), "--root", str(self.state_root), *args]

    def detached_run(self, bundle: Path, container_id: str, *, pid_file: Path, log_file: Path,
                     console_socket: Path | None = None) -> list[str]:
        """The argv of `run --detach` for the bundle: the runtime starts the container and
        exits, leaving its init to the nearest child subreaper (the keeper, which spawns
        it); a terminal goes to `console_socket`."""
        return self.argv("--log", str(log_file), "--log-format", "json", "run", "--detach", "--bundle", str(bundle),
                         "--pid-file", str(pid_file),
                         *(["--console-socket", str(console_socket)] if console_socket else []), container_id)

    async def _call(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = await trio.run_process(self.argv(*args), capture_stdout=True, capture_stderr=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeFailure(result.stderr.decode(errors="replace").strip() or f"{self.name} {args[0]} failed")
        return result

    async def open_exec(self, container_id: str, process: bytes, *, pid_file: Path, tty: bool = False,
                        console_dir: Path | None = None, stdin=subprocess.DEVNULL, stdout=None,
                        stderr=None) -> tuple[trio.Process, Terminal | None]:
        """Start the process described by the process.json `process` inside the running
        container (`bundle.exec_process`); the caller waits for it. With `tty` (which the
        process says too) the process gets a terminal (returned), and stdio arguments are
        not used. The JSON reaches the runtime in a memfd it inherits: a file in the
        bundle cost ~0.2 ms to create and remove here, the memfd ~0.01."""
        fd = os.memfd_create("process.json", os.MFD_CLOEXEC)
        try:
            view = memoryview(process)
            while view:
                view = view[os.write(fd, view):]
            args = ["exec", *(["--tty"] if tty else []), f"--process=/proc/self/fd/{fd}", f"--pid-file={pid_file}",
                    container_id]
            return await self._start(args, subcommand="exec", tty=tty, console_dir=console_dir, pid_file=pid_file,
                                     stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=(fd,))
        finally:
            os.close(fd)  # the runtime has its copy

    async def _start(self, args: list[str], *, subcommand: str, tty: bool, console_dir: Path | None, pid_file: Path,
                     stdin, stdout, stderr, pass_fds: tuple[int, ...] = ()) -> tuple[trio.Process, Terminal | None]:
        """Spawn `<runtime> args` in a session of its own, with `pass_fds` open in it; with
        `tty`, get its terminal the way this runtime hands it over (see runtime/terminal.py).
        `pid_file` is where the runtime writes the process's PID."""
        if not tty:
            process = await trio.lowlevel.open_process(self.argv(*args), stdin=stdin, stdout=stdout, stderr=stderr,
                                                       start_new_session=True, pass_fds=pass_fds)
            return process, None
        if self.name == "crun":
            assert console_dir is not None
            async with terminal.console_socket(console_dir) as (path, receive):
                at = args.index(subcommand) + 1
                args = [*args[:at], "--console-socket", str(path), *args[at:]]
                process = await trio.lowlevel.open_process(self.argv(*args), stdin=subprocess.DEVNULL,
                                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                           start_new_session=True, pass_fds=pass_fds)
                master = await _first_of(receive, process.wait)
                if master is None:  # the runtime ended before handing over a terminal
                    reason = (await process.stdout.receive_some(65536)).decode(errors="replace").strip()
                    raise RuntimeFailure(reason or f"{self.name} exited with {process.returncode}")
                return process, Terminal(master)
        master, slave = terminal.raw_pty()

        def pid_of() -> int:
            try:
                return int(pid_file.read_text().strip() or 0)
            except (OSError, ValueError):
                return 0

        try:
            process = await trio.lowlevel.open_process(self.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                                                       start_new_session=True, pass_fds=pass_fds)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return process, Terminal(master, pid_of)

    async def update(self, container_id: str, resources: dict, scratch: Path) -> None:
        """Apply new resource limits to a running container (`scratch`: a file to use)."""
        scratch.write_text(json.dumps(resources))
        try:
            await self._call("update", "--resources", str(scratch), container_id)
        finally:
            scratch.unlink(missing_ok=True)

    async def kill(self, container_id: str, sig: int) -> None:
        await self._call("kill", container_id, str(sig))

    async def delete(self, container_id: str) -> None:
        """Forget the container's runtime state (and its cgroup); fine if already gone."""
        await self._call("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict | None:
        result = await self._call("state", container_id, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None


async def _first_of(wanted, other):
    """`await wanted()`, unless `await other()` returns first: then None."""
    result = None
    async with trio.open_nursery() as nursery:
        async def get():
            nonlocal result
            result = await wanted()
            nursery.cancel_scope.cancel()

        async def watch():
            await other()
            nursery.cancel_scope.cancel()

        nursery.start_soon(get)
        nursery.start_soon(watch)
    return result


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
    return docker_words(reason, command) or "the runtime exited before starting the container"


def docker_words(reason: str, command: str) -> str:
    """The runtime's reason for not starting `command`, in runc's words where the docker
    CLI reads them (crun says "executable file `x` not found in $PATH"), without the
    runtime's own framing (runc's logrus line, its `exec failed: unable to start container
    process:` that the caller's words already say)."""
    if logged := _LOGRUS_MSG.search(reason):
        reason = re.sub(r"\\(.)", r"\1", logged.group(1))
    reason = reason.strip().removeprefix("exec failed: ").removeprefix("unable to start container process: ")
    found = _CRUN_NOT_FOUND.search(reason)
    if found:
        return f'exec: "{found.group(1)}": executable file not found in $PATH'
    if "open executable" in reason or "Permission denied" in reason:
        return f'exec: "{command}": permission denied'  # crun's words for a directory or a non-executable
    return reason


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
SIGNALS.update({name: int(getattr(signal, name)) for name in ("SIGIOT", "SIGCLD", "SIGPOLL") if hasattr(signal, name)})
# moby's names for the real-time signals between the two ends (STOPSIGNAL SIGRTMIN+3: systemd's)
SIGNALS.update({f"SIGRTMIN+{n}": signal.SIGRTMIN + n for n in range(1, 16)})
SIGNALS.update({f"SIGRTMAX-{n}": signal.SIGRTMAX - n for n in range(1, 15)})


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
