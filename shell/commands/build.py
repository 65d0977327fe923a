"""`berth build`: an image from a Dockerfile, as `docker build` (the classic builder) does
it. The context directory goes up as a tar made while it is sent, without what its
`.dockerignore` leaves out (the daemon applies it too, for any client); `-f` outside the
context adds that Dockerfile under a generated name, as the docker CLI does; `-` sends
stdin (a context tar, or a Dockerfile alone). The daemon's
messages are printed as they come; Ctrl-C closes the connection, which cancels the build
(a running step's container is removed, no image of it is kept)."""

from __future__ import annotations

import os
import sys

from .. import fastjson
from ..grammar import Arg, Command, Group, Opt, UsageError
from ..transport import Client, DaemonError
from .printers import FORCE_NEVER_ASKS, err


def _query(args) -> dict:
    buildargs = {}
    for item in args.build_arg or []:
        name, eq, value = item.partition("=")
        if eq:
            buildargs[name] = value
        elif name in os.environ:  # as docker: `--build-arg NAME` takes it from the environment
            buildargs[name] = os.environ[name]
    labels = dict(item.partition("=")[::2] for item in args.label or [])
    query = {"t": args.tag or None, "buildargs": fastjson.dumps(buildargs) if buildargs else None,
             "labels": fastjson.dumps(labels) if labels else None, "target": args.target or None,
             "nocache": 1 if args.no_cache else None, "q": 1 if args.quiet else None,
             "networkmode": args.network or None, "forcerm": 1 if args.force_rm else None,
             "pull": 1 if args.pull else None, "platform": args.platform or None,
             "cachefrom": fastjson.dumps(args.cache_from) if args.cache_from else None,
             "extrahosts": ",".join(args.add_host) if args.add_host else None}
    return {k: v for k, v in query.items() if v is not None}


def _context(client: Client, args, query: dict):
    """The context's upload for `PATH`: berthd is offered the listing
    first and the tar holds only what it has not kept from this directory's last
    build; a daemon without that (a dockerd) gets the whole context."""
    # imported here, as they weigh ~20 ms of start-up that every other command of this
    # module's table would pay
    import time

    from ..build_context import Ignore, Upload, dockerfile_name, entries, offer

    if not os.path.isdir(args.path):
        raise UsageError(f"unable to prepare context: path {args.path!r} not found")
    dockerfile, outside = dockerfile_name(args.path, args.file)
    if dockerfile:
        query["dockerfile"] = dockerfile
    try:
        with open(os.path.join(args.path, ".dockerignore"), errors="replace") as f:
            patterns = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        patterns = ""
    keep = (".dockerignore", dockerfile or "Dockerfile", *(() if dockerfile else ("dockerfile",)))
    listed_ns = time.time_ns()  # before the walk: a file changed during it counts as racy
    members = entries(args.path, Ignore(patterns, keep), (dockerfile, outside) if outside else None)
    listing = offer(args.path, members, listed_ns)
    if listing is None:
        return Upload(members)
    try:
        answer = client.call("POST", "/build/context", body=listing)
    except DaemonError as exc:
        if not 400 <= exc.status < 500:  # not berthd, a listing over its limit, or refused
            raise
        return Upload(members)
    query["berthcontext"] = answer["session"]
    files = listing["files"]
    return Upload(members, frozenset(f[0] for f in files) - {files[i][0] for i in answer["send"]})


def build(client: Client, args) -> int:
    """`docker build [OPTIONS] PATH|-`: the daemon's messages, then 0; on failure the
    error on stderr and the failed step's exit code (1 for other errors)."""
    query = _query(args)
    body = sys.stdin.buffer if args.path == "-" else _context(client, args, query)
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
    return 0


def pruned(client: Client, keep_storage: str | None = None, filters: list[str] | None = None) -> tuple[str, list[str], int]:
    """Drop the build contexts berthd kept (down to `keep_storage`, matching `filters`):
    the report print_pruned prints."""
    from ..options import filters as filter_query, ram_bytes

    query = {"filters": filter_query(filters)} if filters else {}
    if keep_storage:
        query["keep-storage"] = ram_bytes(keep_storage)
    try:
        found = client.call("POST", "/build/prune", query or None) or {}
    except DaemonError as exc:
        if exc.status != 404:
            raise
        found = {}  # a daemon without a build cache: nothing to prune
    return "Deleted build cache objects:", found.get("CachesDeleted") or [], found.get("SpaceReclaimed") or 0


def prune(client: Client, args) -> int:
    """`docker builder prune`: the contexts kept for berth's CLI are the build cache
    (every one is unused between builds, so `-a` changes nothing); the step cache is
    images, pruned with them."""
    from .printers import print_pruned

    print_pruned(pruned(client, args.keep_storage, args.filter))
    return 0


_BUILD = Command("build", build, "build an image from a Dockerfile", (
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
        (Arg("path"),))

COMMANDS = (
    _BUILD,
    Group("builder", "manage builds", (
        _BUILD,
        Command("prune", prune, "remove the build cache (the contexts kept between builds)", (
            Opt(("-a", "--all"), "all", "flag", "every unused cache object (all of them are)"),
            FORCE_NEVER_ASKS, Opt(("--filter",), "filter", "list", "filter (until=24h, label=…)"),
            Opt(("--keep-storage",), "keep_storage", "value", "keep the most recent up to this size (e.g. 1g)"))))),
)
