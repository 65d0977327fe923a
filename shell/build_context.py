"""`berth build`'s side of the context: the tar of the context directory, made while it
is sent, without what its `.dockerignore` leaves out (read by `dockerignore`, as the
daemon reads it for any client), and the name a Dockerfile gets in it."""

from __future__ import annotations

import os
import secrets
import tarfile
import threading
from typing import BinaryIO

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
        return ".dockerfile." + secrets.token_hex(10), full
    return rel.replace(os.sep, "/"), None


def context_tar(root: str, ignore: Ignore, extra: tuple[str, str] | None = None) -> tuple[BinaryIO, threading.Thread]:
    """The context directory as a tar stream (made by a thread into a pipe, so it is sent
    while it is written), without what `.dockerignore` leaves out; `extra` is (name,
    host file) of a Dockerfile from outside the context. Times keep their fractions (PAX)."""
    read_end, write_end = os.pipe()
    errors: list[BaseException] = []

    def add(tar: tarfile.TarFile, path: str, name: str) -> None:
        info = tar.gettarinfo(path, arcname=name)
        if info is None:  # sockets and the like, as the docker CLI skips them
            return
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            with open(path, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)

    def write() -> None:
        try:
            with os.fdopen(write_end, "wb") as sink, \
                    tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
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
                        add(tar, os.path.join(dirpath, name), path)
                        if not os.path.islink(os.path.join(dirpath, name)):
                            keep_dirs.append(name)
                    dirnames[:] = keep_dirs
                    for name in sorted(filenames):
                        if not ignore.excluded(prefix + name):
                            add(tar, os.path.join(dirpath, name), prefix + name)
                if extra is not None:
                    add(tar, extra[1], extra[0])
        except BaseException as exc:  # reported by the caller once the upload ended
            errors.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return os.fdopen(read_end, "rb"), thread
