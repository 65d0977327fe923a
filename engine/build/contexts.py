"""Build contexts kept between builds, so a client that says what its context holds
sends only what changed.

The classic builder's `POST /build` takes the whole context as a tar every time: a
rebuild of an unchanged 50 MB project uploads 50 MB again, and that upload is most of
what a cached build costs. berth's own CLI first offers a listing of the context's
regular files (`POST /build/context`: path, mode, size, mtime, ctime, inode, device);
the daemon compares it with the context it kept from the last build of the same
directory (the client names it as `source`, its host and path) and answers with
the files it needs. Those it does not need are hard-linked at once from the kept tree
into the new build's context directory; the client's tar then holds the rest
(directories, symlinks and the files asked for), and `POST /build?berthcontext=SESSION`
unpacks it over them through the one contained unpacker.

A file counts as unchanged when everything the client listed is equal: a write changes
the mtime and ctime, a chmod the ctime, a replacement the inode. A file changed within
`RACY_NS` of the listing is never trusted the next time (two writes within one tick of
the file system's clock would leave the same times, as git's index knows), and a file
that cannot be linked (gone from the kept tree) is asked for. Nothing of the kept tree
is written after it was unpacked (a build only reads its context), so a link always
holds the bytes that were sent.

After the build (failed or not, once its upload was whole) its context directory
becomes the kept tree of its key, with the listing as its index: a rename. `KEEP` keys
are kept, the least recently built dropped first; `POST /build/prune` drops them all.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import stat
import time
from pathlib import Path

import msgspec
import trio

from ..errors import BadRequest
from ..events import filters as flt
from ..fs import inroot, tree
from ..timefmt import rfc3339
from .options import CacheRecord, ContextAnswer, ContextFile, ContextOffer, PruneResult


class _Index(msgspec.Struct):
    files: list[ContextFile]
    source: str = ""
    uses: int = 0  # builds that kept this context


def _read_index(kept: Path) -> _Index:
    return msgspec.json.decode((kept / "index.json").read_bytes(), type=_Index)


class Session(msgspec.Struct):
    """An offer's outcome, until its build takes it."""

    source: str
    key: str  # the kept context's directory name: a hash of the offer's source
    work: Path
    files: list[ContextFile]  # the index the context gets once kept (racy files left out)
    deadline: float


def _clean(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise BadRequest(f"invalid path in the build context listing: {path!r}")
    return path


class Contexts:
    """The kept contexts under `root` (a directory per key: `tree/` and `index.json`);
    `tmp` is the builder's scratch directory, emptied at the daemon's start."""

    KEEP = 16
    RACY_NS = 2_000_000_000
    SESSION_SECONDS = 600.0
    SESSIONS = 32  # offered and not yet built: beyond this the oldest is dropped
    PRUNE_FILTERS = ("label", "label!")  # `until` comes apart (the API reads its time)

    def __init__(self, root: Path, tmp: Path):
        self.root = root
        self.tmp = tmp
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = trio.Lock()  # an offer's linking and a keep never overlap
        self._sessions: dict[str, Session] = {}

    async def offer(self, offer: ContextOffer) -> ContextAnswer:
        """Link what the kept context of `offer.source` still holds into a new session's
        context directory; the answer names the files to send."""
        if not offer.source or len(offer.source) > 8192:
            raise BadRequest("a build context offer names its source: 1 to 8192 characters")
        key = hashlib.sha256(offer.source.encode(errors="surrogatepass")).hexdigest()
        seen: set[str] = set()
        for f in offer.files:
            if _clean(f.path) in seen:
                raise BadRequest(f"the build context listing names {f.path!r} twice")
            seen.add(f.path)
        await self._expire()
        work = self.tmp / secrets.token_hex(8)
        try:
            (work / "context").mkdir(parents=True)
            async with self._lock:
                send = await trio.to_thread.run_sync(self._link, self.root / key, offer.files, work / "context")
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(functools.partial(tree.remove, work, ignore_errors=True))
            raise
        recent = offer.now_ns - self.RACY_NS
        index = [f for f in offer.files if f.mtime_ns < recent and f.ctime_ns < recent]
        session = secrets.token_hex(16)
        self._sessions[session] = Session(offer.source, key, work, index, time.monotonic() + self.SESSION_SECONDS)
        return ContextAnswer(session, send)

    def take(self, session: str) -> Session:
        """The offered session a build names: its work directory holds the linked files."""
        found = self._sessions.pop(session, None)
        if found is None:
            raise BadRequest(f"unknown or expired build context session {session!r}: offer the context again")
        return found

    async def keep(self, session: Session) -> None:
        """Make the session's build context (`work/context`, its upload whole) the kept
        context of its key."""
        stage = self.tmp / secrets.token_hex(8)
        old = self.tmp / secrets.token_hex(8)
        try:
            stage.mkdir()
            (session.work / "context").rename(stage / "tree")
            await self._replace(session, stage, old)
        finally:
            if stage.exists():  # not kept: the build's own clean-up takes the rest
                await trio.to_thread.run_sync(functools.partial(tree.remove, stage, ignore_errors=True))

    async def _replace(self, session: Session, stage: Path, old: Path) -> None:
        async with self._lock:
            kept = self.root / session.key
            try:
                uses = _read_index(kept).uses
            except (OSError, msgspec.DecodeError):
                uses = 0
            index = _Index(session.files, session.source, uses + 1)
            (stage / "index.json").write_bytes(msgspec.json.encode(index))
            if kept.exists():
                kept.rename(old)
            stage.rename(kept)
            extra = sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime)[:-self.KEEP]
            for i, path in enumerate(extra):
                path.rename(old.with_name(f"{old.name}-{i}"))
        for path in [old, *(old.with_name(f"{old.name}-{i}") for i in range(len(extra)))]:
            # after the build's answer, not before it: it is out of the way already (in
            # the scratch directory, which a daemon emptied at its start)
            trio.lowlevel.spawn_system_task(trio.to_thread.run_sync,
                                            functools.partial(tree.remove, path, ignore_errors=True))

    async def prune(self, filters: flt.Filters | None = None, until_ns: int | None = None,
                    keep_bytes: int = 0) -> PruneResult:
        """Drop kept contexts, least recently built first, until at most `keep_bytes`
        remain (0: all); with `until_ns`, only those last built before it. Kept contexts
        carry no labels: a `label` filter matches none of them, `label!` every one."""
        filters = flt.check(filters, self.PRUNE_FILTERS)
        if filters.get("label"):
            return PruneResult([], 0)
        kept = await trio.to_thread.run_sync(self._by_age)
        dropped, total, reclaimed = [], 0, 0
        for path, mtime_ns, size in kept:
            total += size
            if (keep_bytes and total <= keep_bytes) or (until_ns is not None and mtime_ns >= until_ns):
                continue
            old = self.tmp / secrets.token_hex(8)
            async with self._lock:
                try:
                    if path.stat().st_mtime_ns != mtime_ns:
                        continue  # built again meanwhile: it is no longer what was measured
                    path.rename(old)
                except FileNotFoundError:
                    continue
            dropped.append((path.name, old))
            reclaimed += size
        for _, old in dropped:
            await trio.to_thread.run_sync(functools.partial(tree.remove, old, ignore_errors=True))
        return PruneResult([name for name, _ in dropped], reclaimed)

    def _by_age(self) -> list[tuple[Path, int, int]]:
        """(directory, last built, bytes) of each kept context, the most recent first."""
        found = []
        for path in self.root.iterdir():
            try:
                found.append((path, path.stat().st_mtime_ns, _disk_usage(path)))
            except FileNotFoundError:
                continue
        return sorted(found, key=lambda k: k[1], reverse=True)

    async def usage(self) -> list[CacheRecord]:
        """The kept contexts as `system df` lists build cache records (read without the
        lock: a context replaced meanwhile is skipped or read as it is now)."""
        return await trio.to_thread.run_sync(self._records)

    def _records(self) -> list[CacheRecord]:
        found = []
        for kept in sorted(self.root.iterdir()):
            try:
                index, at = _read_index(kept), rfc3339(kept.stat().st_mtime_ns)  # OSError: gone meanwhile
            except (OSError, msgspec.DecodeError):
                continue
            found.append(CacheRecord(ID=kept.name, Description=f"local source for context {index.source}",
                                     Size=_disk_usage(kept), CreatedAt=at, LastUsedAt=at, UsageCount=index.uses))
        return found

    async def _expire(self) -> None:
        """Drop the sessions past their deadline, and the oldest beyond `SESSIONS - 1`."""
        now = time.monotonic()
        sessions = list(self._sessions.items())  # oldest first
        for i, (session, found) in enumerate(sessions):
            if found.deadline < now or i < len(sessions) - (self.SESSIONS - 1):
                if self._sessions.pop(session, None) is not None:  # not taken meanwhile
                    await trio.to_thread.run_sync(functools.partial(tree.remove, found.work, ignore_errors=True))

    @staticmethod
    def _link(kept: Path, files: list[ContextFile], dest: Path) -> list[int]:
        try:
            index = {f.path: f for f in _read_index(kept).files}
            tree = os.open(kept / "tree", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, msgspec.DecodeError):
            return list(range(len(files)))
        out = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        dirs = _Dirs(tree, out)
        send = []
        try:
            for i, f in enumerate(files):
                if index.get(f.path) != f or not dirs.link(f):
                    send.append(i)
        finally:
            dirs.close()
            os.close(tree)
            os.close(out)
        return send


class _Dirs:
    """The directory a listed file is in, open in the kept tree and in the new context:
    one at a time (a listing comes directory by directory), so a context of many
    directories holds two descriptors, not two per directory."""

    def __init__(self, tree: int, out: int):
        self.tree, self.out = tree, out
        self.parent: str | None = None
        self.src = self.dst = -1

    def close(self) -> None:
        for fd in (self.src, self.dst):
            if fd >= 0:
                os.close(fd)
        self.src = self.dst = -1

    def link(self, f: ContextFile) -> bool:
        """Hard-link the kept file `f.path` into the new context (its directories made
        there); False when that cannot be done: the file is then sent."""
        parent, _, name = f.path.rpartition("/")
        try:
            if parent != self.parent:
                self.close()
                self.parent = parent
                # the kept tree's own paths: no symlink may be followed on the way
                self.src = inroot.open_beneath(self.tree, parent or ".", os.O_PATH | os.O_DIRECTORY)
                self.dst = inroot.open_dir(self.out, parent or "/", make=True)
            if self.src < 0 or self.dst < 0:
                return False
            os.link(name, name, src_dir_fd=self.src, dst_dir_fd=self.dst, follow_symlinks=False)
            st = os.stat(name, dir_fd=self.dst, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
                os.unlink(name, dir_fd=self.dst)
                return False
        except OSError:
            return False
        return True


def _disk_usage(path: Path) -> int:
    """The blocks of the files under `path`, each inode once; 0 for what vanished meanwhile."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in tree.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total
