"""`berth build`: an image from a Dockerfile, as `docker build` (the classic builder) does
it. The context directory goes up as a tar made while it is sent, without what its
`.dockerignore` leaves out (the daemon applies it too, for any client); `-f` outside the
context adds that Dockerfile under a generated name, as the docker CLI does; `-` sends
stdin (a context tar, or a Dockerfile alone). The daemon's
messages are printed as they come; Ctrl-C closes the connection, which cancels the build
(a running step's container is removed, no image of it is kept)."""

from __future__ import annotations

import json
import os
import posixpath
import re
import secrets
import sys
import tarfile
import threading
from typing import BinaryIO

from .. import fastjson
from ..grammar import Arg, Command, Opt, UsageError
from ..transport import Client
from .printers import err


def _query(args) -> dict:
    buildargs = {}
    for item in args.build_arg or []:
        name, eq, value = item.partition("=")
        if eq:
            buildargs[name] = value
        elif name in os.environ:  # as docker: `--build-arg NAME` takes it from the environment
            buildargs[name] = os.environ[name]
    labels = dict(item.partition("=")[::2] for item in args.label or [])
    query = {"t": args.tag or None, "buildargs": json.dumps(buildargs) if buildargs else None,
             "labels": json.dumps(labels) if labels else None, "target": args.target or None,
             "nocache": 1 if args.no_cache else None, "q": 1 if args.quiet else None,
             "networkmode": args.network or None, "forcerm": 1 if args.force_rm else None,
             "pull": 1 if args.pull else None, "platform": args.platform or None,
             "cachefrom": json.dumps(args.cache_from) if args.cache_from else None,
             "extrahosts": ",".join(args.add_host) if args.add_host else None}
    return {k: v for k, v in query.items() if v is not None}


def _dockerfile(context: str, path: str | None) -> tuple[str | None, str | None]:
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


def _ignore_regex(pattern: str) -> str:
    """A `.dockerignore` pattern as a regex (the daemon's engine/build/ignore.py reads
    them the same way: `*` within a component, `?`, `[…]`, `**` any number of them)."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := pattern.find("]", i + 1)) > 0:
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out) + "$"


class Ignore:
    """The context's `.dockerignore`: what the CLI leaves out of the upload (the last
    matching pattern decides; `!` brings back). The Dockerfile and `.dockerignore`
    are always sent, as the docker CLI sends them (the daemon reads them first)."""

    def __init__(self, text: str, keep: tuple[str, ...] = ()):
        self.patterns = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#") or line == "!":
                continue
            negate = line.startswith("!")
            cleaned = posixpath.normpath(line[1:].strip() if negate else line).lstrip("/")
            self.patterns.append((negate, re.compile(_ignore_regex(cleaned))))
        self.keep = set(keep)
        self.negations = any(negate for negate, _ in self.patterns)

    def excluded(self, path: str) -> bool:
        if path in self.keep:
            return False
        parents = [path]
        while "/" in parents[-1]:
            parents.append(parents[-1].rpartition("/")[0])
        verdict = False
        for negate, regex in self.patterns:
            if any(regex.match(p) for p in parents):
                verdict = not negate
        return verdict


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


def build(client: Client, args) -> int:
    """`docker build [OPTIONS] PATH|-`: the daemon's messages, then 0; on failure the
    error on stderr and the failed step's exit code (1 for other errors)."""
    query = _query(args)
    thread = None
    if args.path == "-":
        body = sys.stdin.buffer
    else:
        if not os.path.isdir(args.path):
            raise UsageError(f"unable to prepare context: path {args.path!r} not found")
        dockerfile, outside = _dockerfile(args.path, args.file)
        if dockerfile:
            query["dockerfile"] = dockerfile
        try:
            with open(os.path.join(args.path, ".dockerignore"), errors="replace") as f:
                patterns = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            patterns = ""
        keep = (".dockerignore", dockerfile or "Dockerfile", *(() if dockerfile else ("dockerfile",)))
        body, thread = context_tar(args.path, Ignore(patterns, keep), (dockerfile, outside) if outside else None)
    resp = client.stream("POST", "/build", query, body=body, headers={"Content-Type": "application/x-tar"})
    try:
        while line := resp.readline():
            if not line.strip():
                continue
            message = fastjson.loads(line)
            if message.get("error"):
                err(message["error"])
                return (message.get("errorDetail") or {}).get("code") or 1
            if "stream" in message:
                sys.stdout.write(message["stream"])
                sys.stdout.flush()
    finally:
        resp.close()
        if thread is not None:
            body.close()
    return 0


COMMANDS = (
    Command("build", build, "build an image from a Dockerfile", (
        Opt(("-t", "--tag"), "tag", "list", "name (and tag) for the image; may be repeated"),
        Opt(("-f", "--file"), "file", "value", "the Dockerfile (default PATH/Dockerfile)"),
        Opt(("--build-arg",), "build_arg", "list", "a build arg NAME=VALUE (or NAME, from the environment)"),
        Opt(("--target",), "target", "value", "the stage to build"),
        Opt(("--no-cache",), "no_cache", "flag", "do not use the cache"),
        Opt(("--label",), "label", "list", "a label KEY=VALUE for the image"),
        Opt(("-q", "--quiet"), "quiet", "flag", "print the image ID only"),
        Opt(("--network",), "network", "value", "network mode for RUN steps (default, none, host)"),
        Opt(("--force-rm",), "force_rm", "flag", "remove intermediate containers after a failed step too"),
        Opt(("--pull",), "pull", "flag", "accepted for docker's sake: base images are local"),
        Opt(("--platform",), "platform", "value", "this host's platform only"),
        Opt(("--cache-from",), "cache_from", "list", "images to take the cache from"),
        Opt(("--add-host",), "add_host", "list", "a host:ip line for /etc/hosts in RUN steps")),
        (Arg("path"),)),
)
