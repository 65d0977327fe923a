"""`berth build`'s side of the context: the context directory's members without what its
`.dockerignore` leaves out (read by `dockerignore`, as the daemon reads it for any
client), the listing of its files offered to berthd first (which answers with those it
has not kept from the last build), the tar of the rest, and the name a Dockerfile from
outside the context gets in it."""

from __future__ import annotations

import io
import os
import stat

from dockerignore import Ignore

from .grammar import UsageError


def dockerfile_name(context: str, path: str | None) -> tuple[str | None, str | None]:
    """`-f PATH`: (its name in the context, the host file to add to the upload when it
    lies outside the context). As the docker CLI, a Dockerfile outside the context is
    sent inside it under a generated name (`.dockerfile.<random>`)."""
    if not path:
        return None, None
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise UsageError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                         f"lstat {full}: no such file or directory")
    rel = os.path.relpath(full, os.path.abspath(context))
    if rel == ".." or rel.startswith("../"):
        return ".dockerfile." + os.urandom(10).hex(), full
    return rel.replace(os.sep, "/"), None


class Entry:
    """One member of the context: the host file, its name in the tar, its `lstat`."""

    __slots__ = ("host", "name", "st")

    def __init__(self, host: str, name: str, st: os.stat_result):
        self.host, self.name, self.st = host, name, st


def entries(root: str, ignore: Ignore, extra: tuple[str, str] | None = None) -> list[Entry]:
    """The context directory's members in tar order, without what `.dockerignore` leaves
    out (sockets too, as the docker CLI skips them); `extra` is (name, host file) of a
    Dockerfile from outside the context."""
    found: list[Entry] = []

    def add(path: str, name: str) -> None:
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            found.append(Entry(path, name, st))

    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        keep_dirs = []
        for name in sorted(dirnames):
            path = prefix + name
            if ignore.excluded(path):
                if ignore.negations and not os.path.islink(os.path.join(dirpath, name)):
                    keep_dirs.append(name)  # an exception may bring back something inside
                continue
            add(os.path.join(dirpath, name), path)
            if not stat.S_ISLNK(found[-1].st.st_mode):
                keep_dirs.append(name)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            if not ignore.excluded(prefix + name):
                add(os.path.join(dirpath, name), prefix + name)
    if extra is not None:  # the file itself, where -f names a symlink to it
        host = os.path.realpath(extra[1])
        found.append(Entry(host, extra[0], os.lstat(host)))
    return found


def offer(root: str, members: list[Entry], listed_ns: int) -> dict | None:
    """`POST /build/context`'s body: the context's regular files as the daemon compares
    them with the context it kept from this directory's last build (None for a directory
    whose path JSON cannot carry: such a context is sent whole)."""
    where = os.path.realpath(root)
    if not _utf8(where):
        return None
    files = [[e.name, e.st.st_mode, e.st.st_size, e.st.st_mtime_ns, e.st.st_ctime_ns, e.st.st_ino, e.st.st_dev]
             for e in members if stat.S_ISREG(e.st.st_mode) and _utf8(e.name)]  # others are always sent
    return {"source": f"{os.uname().nodename}:{where}", "now_ns": listed_ns, "files": files}


def _utf8(name: str) -> bool:
    """Whether JSON can carry the name (a file name's undecodable bytes cannot)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


class Upload:
    """The context tar, planned from the members before it is sent: its size is known
    (a Content-Length, no chunked encoding), headers and small files go out in ~1 MiB
    writes, and bigger files straight from the page cache to the socket (sendfile(2)).
    Regular files named in `kept` are left out (the daemon has them). Owners are
    root's; times keep their fractions (PAX); a second name of an inode is a hard link."""

    _SMALL = 64 << 10  # files below this are copied into the write buffer

    def __init__(self, members: list[Entry], kept: frozenset[str] = frozenset()):
        import tarfile  # ~4 ms beyond what the rest of a build's start-up imports

        tar = tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)  # its gettarinfo
        self.parts: list[tuple[bytes, str | None, int]] = []  # (header, file to send, its size)
        self.size = 2 * tarfile.BLOCKSIZE  # the end-of-archive blocks
        for member in members:
            if stat.S_ISREG(member.st.st_mode) and member.name in kept:
                continue
            info = tar.gettarinfo(member.host, arcname=member.name)
            if info is None:
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            header = info.tobuf(tarfile.PAX_FORMAT, tar.encoding, tar.errors)
            size = info.size if info.isreg() else 0
            self.parts.append((header, member.host if size else None, size))
            self.size += len(header) + size + -size % tarfile.BLOCKSIZE

    def __len__(self) -> int:
        return self.size

    def send_to(self, out: int) -> None:
        """Write the tar to `out` (a socket, or any file); a file that changed size (or
        became something else) since it was planned is an OSError naming it: the tar
        would no longer be whole."""
        buf = bytearray()
        for header, host, size in self.parts:
            buf += header
            if host is None:
                continue
            changed = OSError(f"{host} changed while the build context was sent")
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                    raise changed
                if size < self._SMALL:
                    data = os.pread(fd, size, 0)
                    if len(data) != size:
                        raise changed
                    buf += data
                else:
                    _write(out, buf)
                    buf.clear()
                    sent = 0
                    while sent < size:
                        n = os.sendfile(out, fd, sent, size - sent)
                        if n == 0:
                            raise changed
                        sent += n
            finally:
                os.close(fd)
            buf += bytes(-size % 512)
            if len(buf) >= 1 << 20:
                _write(out, buf)
                buf.clear()
        _write(out, buf + bytes(1024))


def _write(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
