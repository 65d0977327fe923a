"""Moving bytes between the daemon and local files: `cp`, `save`, `load`, `export`,
`import`. Everything streams (nothing is held whole in memory), and a transfer over a
few MB draws a progress bar on stderr when that is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from .grammar import UsageError
from .transport import Response

PROGRESS_FROM = 4 * 1024 * 1024  # bytes: smaller transfers end before a bar would help


def amount_and_rate(done: int, total: int | None, seconds: float) -> str:
    """`12.3MB/40.0MB 25MB/s` (`12.3MB 25MB/s` when the total is not known)."""
    from .render import size

    amount = f"{size(done)}/{size(total)}" if total else size(done)
    return f"{amount} {size(int(done / max(seconds, 1e-6)))}/s"


class Progress:
    """A one-line progress bar (`label [=====>    ] 12.3MB/40.0MB 25MB/s`) on stderr,
    redrawn at most ten times a second; silent when stderr is not a terminal."""

    def __init__(self, label: str, total: int | None = None, stream=None):
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.started = self._drawn = time.monotonic()
        self.shown = False

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn >= 0.1 and self.done >= PROGRESS_FROM and self.stream.isatty():
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        bar = ""
        if self.total:
            filled = min(30, 30 * self.done // self.total)
            bar = "[" + "=" * filled + (">" if filled < 30 else "") + " " * (29 - filled) + "] "
        self.stream.write(f"\r{self.label} {bar}{amount_and_rate(self.done, self.total, now - self.started)}\x1b[K")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


class Counted:
    """A readable file whose reads count toward a Progress."""

    def __init__(self, raw: BinaryIO, progress: Progress):
        self.raw, self.progress = raw, progress

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.progress.add(len(data))
        return data


class BodyReader:
    """A response body as a file (`read(n)`), for tarfile's streaming mode."""

    def __init__(self, response: Response, progress: Progress | None = None):
        self.response, self.progress = response, progress
        self._pending = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._pending) < n:
            chunk = self.response.read1()
            if not chunk:
                break
            if self.progress:
                self.progress.add(len(chunk))
            self._pending += chunk
        data, self._pending = (self._pending, b"") if n < 0 else (self._pending[:n], self._pending[n:])
        return data


@contextlib.contextmanager
def landing(path: str) -> Iterator[str]:
    """Where a download to `path` is written until it is whole: a hidden file in the same
    directory, renamed over `path` when the block ends, removed if it ends in an error or
    is cancelled, so that a transfer that fails or is abandoned never leaves a truncated
    archive under the name asked for (as the docker CLI's `.docker_temp_` files). The
    file must be closed by the end of the block."""
    import secrets

    head, tail = os.path.split(os.path.abspath(path))
    temp = os.path.join(head, f".berth_temp_{tail}.{secrets.token_hex(4)}")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def download(response: Response, path: str | None, label: str) -> None:
    """Write a response body to `path` (None or "-": stdout), with progress; a file is
    written whole or not at all (landing)."""
    progress = Progress(label)
    try:
        if path in (None, "-"):
            _copy(response, sys.stdout.buffer, progress)
        else:
            with landing(path) as temp, open(temp, "xb") as out:
                _copy(response, out, progress)
    finally:
        progress.finish()


def _copy(response: Response, out: BinaryIO, progress: Progress) -> None:
    while chunk := response.read1():
        out.write(chunk)
        progress.add(len(chunk))


def upload_source(path: str | None, label: str) -> tuple[BinaryIO, Progress]:
    """A local file (or stdin for None/"-") to send as a request body, with progress;
    close `.raw` after."""
    raw = sys.stdin.buffer if path in (None, "-") else open(path, "rb")
    total = os.fstat(raw.fileno()).st_size if raw is not sys.stdin.buffer else None
    progress = Progress(label, total)
    return Counted(raw, progress), progress


def tar_of(path: str, arcname: str) -> tuple[BinaryIO, threading.Thread]:
    """A tar stream of a local file or directory (the top entry named `arcname`), made by
    a thread into a pipe so it is sent while it is written."""
    read_end, write_end = os.pipe()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_end, "wb") as sink, tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(path, arcname=arcname)
        except BaseException as exc:  # reported by the caller once the upload ended
            errors.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.errors = errors
    thread.start()
    return os.fdopen(read_end, "rb"), thread


def extract(response: Response, dest_dir: str, rename_to: str | None, label: str) -> None:
    """Unpack a tar response into `dest_dir`, the top entry renamed to `rename_to` (cp
    to a new name). Ownership is kept when we are root, as `docker cp` does."""
    progress = Progress(label)
    unpack(BodyReader(response, progress), dest_dir, rename_to)
    progress.finish()


# tarfile's own filters (3.11.4+) would do the same checks, but the Python berth runs on
# may predate them; with them, ours have already run and nothing is left to filter.
_NO_FILTER = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def unpack(raw: BinaryIO, dest_dir: str, rename_to: str | None = None) -> None:
    """Unpack the tar read from `raw` into `dest_dir`, refusing what would land outside
    it: the archive describes a container's files, and its names and links are the
    container's choice. A member whose path (through symlinks already unpacked) or hard
    link target resolves outside `dest_dir` is refused; setuid, setgid, sticky and
    group/other write bits are dropped; as another user than root, device nodes and
    symlinks leading outside are refused too."""
    root = os.path.realpath(dest_dir)
    as_root = os.geteuid() == 0
    with tarfile.open(fileobj=raw, mode="r|") as tar:
        top = None
        for member in tar:
            top = top or member.name.split("/")[0]
            if rename_to:
                member.name = rename_to + member.name[len(top):]
                if member.islnk() and (member.linkname + "/").startswith(top + "/"):
                    member.linkname = rename_to + member.linkname[len(top):]
            _contain(member, root, as_root)
            tar.extract(member, root, **_NO_FILTER)


def _contain(member: tarfile.TarInfo, root: str, as_root: bool) -> None:
    member.name = member.name.lstrip("/")
    where = os.path.join(root, member.name)
    _inside(member, root, where, "path")
    if member.islnk():
        _inside(member, root, os.path.join(root, member.linkname.lstrip("/")), "hard link target")
    elif not as_root and member.issym():
        if os.path.isabs(member.linkname):  # (said first: most such targets also lead outside)
            raise UsageError(f"refusing {member.name!r} from the archive: an absolute symlink ({member.linkname!r})")
        _inside(member, root, os.path.join(os.path.dirname(where), member.linkname), "symlink target")
    if not as_root and (member.ischr() or member.isblk()):
        raise UsageError(f"refusing {member.name!r} from the archive: a device node")
    member.mode &= 0o755  # no setuid, setgid, sticky, group or other write


def _inside(member: tarfile.TarInfo, root: str, path: str, what: str) -> None:
    resolved = os.path.realpath(path)
    if os.path.commonpath([root, resolved]) != root:
        raise UsageError(f"refusing {member.name!r} from the archive: its {what} leads outside the "
                         f"destination ({resolved})")
