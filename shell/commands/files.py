"""Files and filesystems in and out of the daemon: cp, diff, commit, export, import,
save, load. The tar handling is shell/transfer.py's, imported only by the verbs that
move bytes."""

from __future__ import annotations

import os
import sys

from .. import fastjson
from ..grammar import Arg, Command, Opt, UsageError
from ..transport import Client, DaemonError, Response, ref
from .printers import err, out


def _split_container_path(arg: str) -> tuple[str | None, str]:
    """`CONTAINER:PATH` → (container, path); a local path (no colon before any slash) → (None, path)."""
    head, colon, tail = arg.partition(":")
    if colon and head and "/" not in head and not arg.startswith((".", "/")):
        return head, tail
    return None, arg


def cp(client: Client, args) -> int:
    """`docker cp CONTAINER:SRC DEST` and `docker cp SRC CONTAINER:DEST` (`-` for a tar on
    stdin or stdout); modes, owners, links and times are kept."""
    from ..transfer import download, extract, tar_of, upload_source

    src_container, src = _split_container_path(args.source)
    dst_container, dst = _split_container_path(args.dest)
    if (src_container is None) == (dst_container is None):
        raise UsageError("copying between containers is not supported, nor between two local paths: "
                         "one side must be CONTAINER:PATH")
    if src_container is not None:
        with client.stream("GET", f"/containers/{ref(src_container)}/archive", {"path": src}) as resp:
            if dst == "-":
                download(resp, None, "copying")
            elif os.path.isdir(dst):
                extract(resp, dst, None, "copying")
            else:
                parent = os.path.dirname(os.path.abspath(dst))
                if not os.path.isdir(parent):
                    raise UsageError(f"destination directory {parent} does not exist")
                extract(resp, parent, os.path.basename(dst), "copying")
        return 0
    endpoint = f"/containers/{ref(dst_container)}/archive"
    query = {"path": dst, "copyUIDGID": int(args.archive) or None}
    if src == "-":
        body, _ = upload_source("-", "copying")
    else:
        if not os.path.lexists(src):
            raise UsageError(f"could not find the file {src} on this machine")
        try:
            client.stream("HEAD", endpoint, {"path": dst}).close()
            exists = True
        except DaemonError as exc:
            if exc.status != 404:
                raise
            exists = False  # a new name: extract into its parent, renamed
        name = os.path.basename(os.path.normpath(src)) if exists else os.path.basename(dst.rstrip("/"))
        if not exists:
            query["path"] = os.path.dirname(dst.rstrip("/")) or "/"
        body, writer = tar_of(src, name)
    client.call("PUT", endpoint, query, body, {"Content-Type": "application/x-tar"})
    if src != "-":
        writer.join()
        if writer.errors:
            raise writer.errors[0]
    return 0


def diff(client: Client, args) -> int:
    """`docker diff`: `A|C|D path` for what the container changed."""
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in client.get(f"/containers/{ref(args.container)}/changes") or []:
        out(f"{kinds[change['Kind']]} {change['Path']}")
    return 0


def commit(client: Client, args) -> int:
    """`docker commit`: a new image from the container's changes; prints its id."""
    repo, _, tag = (args.reference or "").partition(":") if args.reference and "@" not in args.reference else ("", "", "")
    if args.reference and "/" in args.reference.rsplit(":", 1)[-1]:
        repo, tag = args.reference, ""  # a registry port, not a tag
    query = {"container": args.container, "repo": repo or None, "tag": tag or None, "author": args.author,
             "comment": args.message, "changes": args.change or None, "pause": int(args.pause != "false")}
    out(client.call("POST", "/commit", query, {})["Id"])
    return 0


def export(client: Client, args) -> int:
    """`docker export`: the container's filesystem as a tar, to `-o FILE` or stdout."""
    return _download(client, f"/containers/{ref(args.container)}/export", None, args.output, "exporting")


def save(client: Client, args) -> int:
    """`docker save`: images as one tar (docker's and OCI's layout), to `-o FILE` or stdout."""
    return _download(client, "/images/get", {"names": args.images}, args.output, "saving")


def load(client: Client, args) -> int:
    """`docker load`: images from a tar (`-i FILE` or stdin)."""
    if not args.input and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    return _upload(client, "/images/load", {"quiet": int(args.quiet)}, args.input, "loading")


def import_(client: Client, args) -> int:
    """`docker import FILE|- [REPO[:TAG]]`: the tar streamed as the body; prints the new id."""
    query = {"fromSrc": "-", "repo": args.reference, "changes": args.change or None, "message": args.message}
    return _upload(client, "/images/create", query, args.file, "importing")


def _download(client: Client, endpoint: str, query: dict | None, output: str | None, doing: str) -> int:
    """A tar from the daemon to the file `output`, else to stdout unless that is a terminal."""
    from ..transfer import download

    if not output and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with client.stream("GET", endpoint, query) as resp:
        download(resp, output, doing)
    return 0


def _upload(client: Client, endpoint: str, query: dict, path: str | None, doing: str) -> int:
    """A tar from the file `path` (stdin for none or `-`) as the body of a POST whose
    answer is a message stream, printed."""
    from ..transfer import upload_source

    source, progress = upload_source(path, doing)
    try:
        resp = client.stream("POST", endpoint, query, body=source, headers={"Content-Type": "application/x-tar"})
        progress.finish()
        return _print_messages(resp)
    finally:
        if source.raw is not sys.stdin.buffer:
            source.raw.close()


def _print_messages(resp: Response) -> int:
    """Print a JSON message stream (import, load) as the docker CLI does; 1 on an error."""
    for line in resp.read().splitlines():
        if not line.strip():
            continue
        message = fastjson.loads(line)
        if "error" in message:
            err(message["error"])
            return 1
        if "stream" in message:
            sys.stdout.write(message["stream"])
        elif message.get("status"):
            out(message["status"])
    return 0


_OUTPUT = Opt(("-o", "--output"), "output", "value", "write to this file, not stdout")
_CHANGE = Opt(("-c", "--change"), "change", "list", "Dockerfile instruction (CMD, ENV, …)")
_MESSAGE = Opt(("-m", "--message"), "message", "value", "commit message")

COMMANDS = (
    Command("cp", cp, "copy files between a container and here (CONTAINER:PATH, - for a tar)", (
        Opt(("-a", "--archive"), "archive", "flag", "keep the files' owners (as the container's user)"),),
        (Arg("source"), Arg("dest"))),
    Command("diff", diff, "what a container changed in its filesystem (A, C, D)", (), (Arg("container"),)),
    Command("commit", commit, "a new image from a container's changes", (
        Opt(("-a", "--author"), "author", "value", "author"), _MESSAGE, _CHANGE,
        Opt(("-p", "--pause"), "pause", "value", "pause the container meanwhile (default true)")),
        (Arg("container"), Arg("reference", "optional"))),
    Command("export", export, "a container's filesystem as a tar", (_OUTPUT,), (Arg("container"),)),
    Command("save", save, "images as a tar (docker's and OCI's layout)", (_OUTPUT,), (Arg("images", "many"),)),
    Command("load", load, "images from a tar", (
        Opt(("-i", "--input"), "input", "value", "read this file, not stdin"),
        Opt(("-q", "--quiet"), "quiet", "flag", "no progress")), ()),
    Command("import", import_, "import a rootfs tar (file or -) as an image", (
        _CHANGE, _MESSAGE), (Arg("file"), Arg("reference", "optional"))),
)
