"""A build's context: the uploaded tar unpacked into a private directory (`upload.py`,
as it arrives), its Dockerfile,
its `.dockerignore`, and the files COPY and ADD take from it (or from another stage).

The upload (plain, gzip, bzip2 or xz) goes through the one contained unpacker; a body
that is no tar at all is the Dockerfile alone (`docker build - < Dockerfile`). Paths
named by COPY/ADD are taken from the context's root: `../x` and `/x` are both `x`, and
symlinks on the way resolve inside the context (`inroot`), as Docker resolves them.
What a COPY takes is packed into a tar whose entries carry the owner and mode the
instruction asks for; the checksum of that content (names, modes, owners, sizes, link
targets and file contents, never times) is what the cache compares; `Sums` remembers
the checksums of big unchanged files between builds.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import posixpath
import re
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

import msgspec

from dockerignore import Ignore

from ..errors import BadRequest
from ..fs import inroot, tree, unpack

_GLOB = re.compile(r"[*?\[]")
IGNORE_LIMIT = 1 << 20  # bytes of .dockerignore read (its patterns cost ~100 times their size)


def decompressed(raw: BinaryIO) -> BinaryIO:
    """A tar stream read through gzip, bzip2 or xz when its first bytes say so."""
    head = raw.peek(6)[:6] if hasattr(raw, "peek") else b""
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return unpack.uncompressed(raw)


def is_archive(path: Path) -> bool:
    """Whether ADD unpacks this file: a tar, plain or compressed."""
    try:
        with open(path, "rb") as f:
            src = decompressed(io.BufferedReader(f))
            block = src.read(512)
    except (OSError, EOFError, lzma.LZMAError):
        return False
    return len(block) == 512 and block[257:262] == b"ustar"


def read_dockerfile(root: Path, name: str) -> tuple[str, str]:
    """(text, path in the context) of the Dockerfile `name` (Docker also tries
    `dockerfile` for the default name)."""
    candidates = [name or "Dockerfile"] + (["dockerfile"] if name in ("", "Dockerfile") else [])
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for candidate in candidates:
            try:
                return inroot.read_file(fd, candidate, limit=16 << 20).decode("utf-8", "replace"), candidate
            except (FileNotFoundError, NotADirectoryError, OSError):
                continue
    finally:
        os.close(fd)
    raise BadRequest(f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")


def apply_ignore(root: Path) -> Ignore:
    """Remove what `.dockerignore` leaves out (clients filter too; this holds for any
    client). The Dockerfile and `.dockerignore` are read before, whatever it says."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:  # inside the context, as the Dockerfile: a link to a host file is a link to nothing here
        data = inroot.read_file(fd, ".dockerignore", limit=IGNORE_LIMIT + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return Ignore()
    except OSError as exc:
        raise BadRequest(f"cannot read .dockerignore: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > IGNORE_LIMIT:
        raise BadRequest(f".dockerignore is larger than {IGNORE_LIMIT >> 20} MiB")
    ignore = Ignore(data.decode("utf-8", "replace"))
    if not ignore:
        return ignore
    for dirpath, _, filenames in tree.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in filenames:  # symlinks to directories among them (tree.walk)
            path = name if rel == "." else f"{rel}/{name}"
            if ignore.excluded(path):
                os.unlink(os.path.join(dirpath, name))
    for dirpath, dirnames, filenames in tree.walk(root, topdown=False):
        rel = os.path.relpath(dirpath, root)
        if rel != "." and ignore.excluded(rel) and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return ignore


def clean(src: str) -> str:
    """A source path as taken from the root: `../x`, `/x` and `./x` are all `x`."""
    return posixpath.normpath("/" + src).lstrip("/")


def expand_sources(root: Path, sources: list[str]) -> list[str]:
    """The sources with wildcards matched against the root's paths (`*` stays within a
    component, as Go's filepath.Match); a pattern matching nothing is an error."""
    found: list[str] = []
    for src in sources:
        src = clean(src)
        if not _GLOB.search(src):
            found.append(src)
            continue
        pattern = re.compile(_glob_regex(src))
        matched = []
        for dirpath, dirnames, filenames in tree.walk(root):
            rel = os.path.relpath(dirpath, root)
            for name in sorted(dirnames + filenames):
                path = name if rel == "." else f"{rel}/{name}"
                if pattern.fullmatch(path):
                    matched.append(path)
        if not matched:
            raise BadRequest(f"COPY failed: no source files were specified (nothing matches {src!r})")
        found += sorted(matched)
    return found


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := pattern.find("]", i + 1)) > 0:
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


class _Entry(msgspec.Struct):
    arcname: str
    host: str  # the file on the host (inside the context directory or a stage's mount)
    st: os.stat_result


def find(root: Path, src: str, what: str) -> tuple[str, os.stat_result]:
    """The host path of `src` inside `root`, symlinks resolved inside it, and its stat."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with inroot.resolve(fd, src) as found:
            st = os.stat(found.name, dir_fd=found.dir_fd, follow_symlinks=False)
            host = str(root) + found.path
    except (FileNotFoundError, NotADirectoryError):
        raise BadRequest(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                         f"stat {src}: file does not exist") from None
    finally:
        os.close(fd)
    return host, st


def plan(root: Path, sources: list[str], dest_is_dir: bool, dest_name: str, what: str) -> list[_Entry]:
    """The entries a COPY writes, named relative to its destination directory: a
    directory's contents, a file under its own name (or `dest_name` when the
    destination is a file)."""
    entries: list[_Entry] = []
    for src in sources:
        host, st = find(root, src, what)
        if stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in tree.walk(host):
                dirnames.sort()
                rel = os.path.relpath(dirpath, host)
                for name in dirnames + sorted(filenames):
                    path = os.path.join(dirpath, name)
                    entries.append(_Entry(name if rel == "." else f"{rel}/{name}", path, os.lstat(path)))
        else:
            name = posixpath.basename(src) if dest_is_dir or not dest_name else dest_name
            entries.append(_Entry(name, host, st))
    return entries


class Sums:
    """File checksums remembered between builds, so a cached COPY hashes nothing unchanged.

    A context is unpacked afresh for every build, so what identifies "the same file" is
    what the client sent for it: its path in the context, size, mode and mtime (the
    docker CLI sends whole seconds; berth's CLI nanoseconds), plus a sample of its bytes
    (the first, middle and last 4 KiB) read in three `pread`s. Only files of at least
    `MIN_SIZE` are remembered (smaller ones cost less to hash than to doubt), and only
    when their mtime is over 2 s older than the build: a file changed since, even with
    the same size, then has another mtime. What the key cannot see is a same-size edit
    outside the sampled bytes whose mtime was put back by hand; `--no-cache` hashes
    everything again. Kept in memory, at most `LIMIT` entries (oldest dropped first).
    """

    MIN_SIZE = 64 << 10
    LIMIT = 100_000
    SAMPLE = 4096

    def __init__(self):
        self.entries: dict[tuple, str] = {}
        self.hashed = 0  # bytes hashed (for tests and the benchmark's story)

    def key(self, rel: str, st: os.stat_result, fd: int) -> tuple:
        size, n = st.st_size, self.SAMPLE
        sample = b"".join(os.pread(fd, n, at) for at in sorted({0, max(0, size // 2 - n // 2), max(0, size - n)}))
        return rel, size, stat.S_IMODE(st.st_mode), st.st_mtime_ns, hashlib.sha256(sample).digest()

    def remember(self, key: tuple, digest: str) -> None:
        self.entries.pop(key, None)
        self.entries[key] = digest
        while len(self.entries) > self.LIMIT:
            del self.entries[next(iter(self.entries))]


def _file_digest(fd: int) -> str:
    digest = hashlib.sha256()
    with open(fd, "rb", closefd=False) as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checksum(entries: list[_Entry], chmod: int | None, kind: str, sums: Sums | None = None,
             root: Path | None = None, before_ns: int = 0, owners: bool = False) -> str:
    """What the cache compares of the entries a COPY writes: names, types, modes, sizes,
    link targets and contents, never times; their owners too when the copy keeps them
    (else the step decides them). With `sums`, files under the context `root` whose
    mtime is before `before_ns` are looked up there first (and remembered)."""
    total = hashlib.sha256()
    prefix = str(root) + "/" if root is not None else None
    for entry in entries:
        st, digest, link = entry.st, "", ""
        if stat.S_ISREG(st.st_mode):
            fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                memo = sums is not None and prefix is not None and entry.host.startswith(prefix) \
                    and st.st_size >= Sums.MIN_SIZE and st.st_mtime_ns < before_ns - 2_000_000_000
                key = sums.key(entry.host[len(prefix):], st, fd) if memo else None
                digest = sums.entries.get(key, "") if memo else ""
                if not digest:
                    digest = _file_digest(fd)
                    if sums is not None:
                        sums.hashed += st.st_size
                    if memo:
                        sums.remember(key, digest)
            finally:
                os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            link = os.readlink(entry.host)
        elif not stat.S_ISDIR(st.st_mode):
            continue
        mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
        # a name that is no UTF-8 (its bytes as surrogates) goes in with those bytes escaped
        name = entry.arcname.encode(errors="surrogateescape").decode(errors="backslashreplace")
        link = link.encode(errors="surrogateescape").decode(errors="backslashreplace")
        total.update(msgspec.json.encode([name, stat.S_IFMT(st.st_mode), mode, st.st_size if not link else 0,
                                          link, digest, *((st.st_uid, st.st_gid) if owners else ())]))
    return f"{kind}:{total.hexdigest()}"


def pack(entries: list[_Entry], out: Path, chmod: int | None, owner: tuple[int, int] | None) -> None:
    """Write the entries as a tar at `out`, owned by `owner` (with setuid and setgid
    dropped from files as a chown drops them: dockerd chowns what it copies) or by their
    own owners (None), with `chmod`'s mode, if any."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            st = entry.st
            info = tarfile.TarInfo(entry.arcname)
            info.uid, info.gid = owner if owner is not None else (st.st_uid, st.st_gid)
            info.mtime = int(st.st_mtime)
            info.mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
            if owner is not None and chmod is None and stat.S_ISREG(st.st_mode):
                info.mode &= ~(stat.S_ISUID | (stat.S_ISGID if info.mode & stat.S_IXGRP else 0))
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.host)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(entry.host, "rb") as f:
                    tar.addfile(info, f)
            # devices, fifos and sockets are not copied
