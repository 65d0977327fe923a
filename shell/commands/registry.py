"""Registries: pull, push, login, logout and search, as the docker CLI does them.

Credentials live where the docker CLI keeps them, `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`), under `auths.<server>.auth` as base64 `user:password`, so a
login by either CLI serves both; with `credHelpers` (per host) or `credsStore` (for all)
in config.json they go through `docker-credential-<name> store|get|erase` instead, and
`auths` keeps an entry with no `auth`, as the docker CLI does. They travel to the daemon in the `X-Registry-Auth`
header (base64url JSON), as the docker CLI sends them. The progress stream is drawn as
the docker CLI draws it (shell/progress.py): a bar per layer on a terminal, plain lines
elsewhere. Standard library only: this runs per command.
"""

from __future__ import annotations

import binascii  # not base64, which imports re: ~6 ms of every command's start-up
import os
import sys

from .. import fastjson, options, progress, render
from ..grammar import Arg, Command, Opt, UsageError
from ..transport import Client, DaemonError, ref
from .printers import FILTER, NO_TRUNC, err, format_option, out, print_listing

HUB = "https://index.docker.io/v1/"

_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64's URL alphabet, as the docker CLI encodes X-Registry-Auth


def config_path() -> str:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def read_config() -> dict:
    try:
        with open(config_path(), "rb") as f:
            return fastjson.loads(f.read() or b"{}")
    except FileNotFoundError:
        return {}


def write_config(config: dict) -> None:
    import json  # as the docker CLI writes it (tab-indented); json costs ~8 ms to import

    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent="\t")
    os.replace(tmp, path)


def registry_of(name: str) -> str:
    """The registry host of an image name, as docker reads it (docker.io by default)."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def full_name(name: str) -> str:
    """`busybox:latest` → `docker.io/library/busybox:latest`, as `docker pull` ends."""
    if registry_of(name) != "docker.io":
        return name
    return "docker.io/" + (name if "/" in name else f"library/{name}")


def server_key(server: str) -> str:
    """The key of a server in config.json's `auths` (docker.io's is the v1 index URL)."""
    host = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    return HUB if host in ("docker.io", "index.docker.io", "registry-1.docker.io", "index.docker.io/v1") else host


def credential_helper(config: dict, key: str) -> str:
    """The credential helper's name for a server key ('' when secrets stay in `auths`)."""
    helpers = config.get("credHelpers") or {}
    host = key.removeprefix("https://").removeprefix("http://").rstrip("/")
    host = "index.docker.io" if key == HUB else host
    return helpers.get(key) or helpers.get(host) or config.get("credsStore") or ""


class HelperError(UsageError):
    """A credential helper that failed (printed as `berth: …`, exit 1)."""


def run_helper(name: str, action: str, data: str) -> str:
    """`docker-credential-<name> <action>` with `data` on stdin; its stdout, or HelperError."""
    import subprocess  # only here: ~4 ms of start-up for every command of the table otherwise

    try:
        done = subprocess.run([f"docker-credential-{name}", action], input=data.encode(),
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HelperError(f"error running credential helper docker-credential-{name}: {exc}") from None
    answer = done.stdout.decode(errors="replace").strip()
    if done.returncode:
        raise HelperError(answer or done.stderr.decode(errors="replace").strip()
                          or f"docker-credential-{name} {action} failed")
    return answer


def stored_credentials(key: str) -> tuple[str, str] | None:
    """(user, secret) stored for a server key: through its helper, else from `auths`."""
    config = read_config()
    helper = credential_helper(config, key)
    if helper:
        try:
            found = fastjson.loads(run_helper(helper, "get", key) or "{}")
        except HelperError as exc:
            if "credentials not found" in str(exc):
                return None
            raise
        return (found.get("Username", ""), found.get("Secret", "")) if found.get("Secret") else None
    auths = config.get("auths", {})
    entry = auths.get(key) or auths.get(f"https://{key}") or auths.get(f"http://{key}")
    if not entry or not entry.get("auth"):
        return None
    user, _, password = binascii.a2b_base64(entry["auth"]).decode().partition(":")
    return user, password


def auth_header(server: str) -> dict[str, str]:
    """`X-Registry-Auth` for the server, from the stored login ({} when there is none)."""
    key = server_key(server)
    found = stored_credentials(key)
    if not found:
        return {}
    user, password = found
    payload = {"username": user, "password": password, "serveraddress": key}
    if user == "<token>":  # a helper's identity token, as the docker CLI reads it
        payload = {"identitytoken": password, "serveraddress": key}
    return {"X-Registry-Auth": binascii.b2a_base64(fastjson.dumps(payload).encode(), newline=False).translate(_URLSAFE).decode()}


def split_name(name: str) -> tuple[str, str]:
    """(repository, tag or digest) as the docker CLI sends them (`tag` defaults to latest)."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = name.rpartition(":")
        return repo, tag
    return name, "latest"


class StreamError(DaemonError):
    """An error message inside a progress stream (the daemon's answer had begun)."""


def stream_messages(response):
    """The messages of a progress stream, one dict each; StreamError on its error message."""
    while line := response.readline():
        if not line.strip():
            continue
        message = fastjson.loads(line)
        if message.get("error"):
            raise StreamError(500, message["error"])
        yield message


def print_stream(response, file=None) -> None:
    """Show a progress stream on `file` (stdout by default): bars redrawn in place on a
    terminal, plain lines elsewhere; raise StreamError on its error message."""
    shown = progress.display(file or sys.stdout)
    for message in stream_messages(response):
        shown.show(message)


def error_text(exc: DaemonError) -> str:
    """A failed pull or push as docker words it: an in-stream error as it is, an HTTP one
    as `Error response from daemon: …`."""
    return (exc.message if isinstance(exc, StreamError) and not exc.message.startswith("Error") else
            f"Error response from daemon: {exc.message}")


def _stream_error(exc: DaemonError) -> int:
    err(error_text(exc))
    return 1


def pull_image(client: Client, name: str, file=None) -> str:
    """Pull NAME[:TAG|@DIGEST] with the stored credentials, its progress printed on `file`
    (stdout by default); the full reference pulled. DaemonError when it fails (StreamError
    once the stream has begun). `pull`
    uses it, and `run`/`create` for a missing image (progress on stderr, as docker)."""
    repo, tag = split_name(name)
    response = client.stream("POST", "/images/create", {"fromImage": repo, "tag": tag},
                             headers=auth_header(registry_of(repo)))
    print_stream(response, file)
    return full_name(f"{repo}@{tag}" if tag.startswith("sha256:") else f"{repo}:{tag}")


def pull(client: Client, args) -> int:
    """`docker pull NAME[:TAG|@DIGEST]`: progress, then the full reference."""
    try:
        pulled = pull_image(client, args.name)
    except StreamError as exc:  # one refused before its stream began is the caller's
        return _stream_error(exc)
    out(pulled)
    return 0


def push(client: Client, args) -> int:
    """`docker push [-a] NAME[:TAG]`: progress, then `TAG: digest: sha256:… size: N` for
    the tag (`latest` when none is given, as docker's since 20.10), or for every tag of
    the repository with `-a`."""
    repo, tag = split_name(args.name)
    if args.all_tags:
        if repo != args.name:
            raise UsageError("tag can't be used with --all-tags/-a")
        tag = ""  # the daemon pushes every tag of the repository
    response = client.stream("POST", f"/images/{ref(repo)}/push", {"tag": tag},
                             headers=auth_header(registry_of(repo)))
    try:
        print_stream(response)
    except StreamError as exc:
        return _stream_error(exc)
    return 0


def login(client: Client, args) -> int:
    """`docker login [-u USER] [-p PASS | --password-stdin] [SERVER]`: checked by the daemon,
    then kept in config.json."""
    server = args.server or HUB
    if args.password and args.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    user = args.username
    if not user:
        if not sys.stdin.isatty() or args.password_stdin:
            raise UsageError("cannot perform an interactive login from a non TTY device: give -u USER")
        user = input("Username: ").strip()
    password = args.password
    if args.password:
        err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    elif args.password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass  # only for a prompt

        password = getpass.getpass("Password: ")
    if not password:
        raise UsageError("a password is required (-p, --password-stdin, or typed at the prompt)")
    answer = client.call("POST", "/auth", body={"username": user, "password": password,
                                                "serveraddress": server.removeprefix("https://").removeprefix("http://")
                                                if server != HUB else HUB})
    config = read_config()
    key = server_key(server)
    helper = credential_helper(config, key)
    if helper:
        run_helper(helper, "store", fastjson.dumps({"ServerURL": key, "Username": user, "Secret": password}))
        config.setdefault("auths", {})[key] = {}
    else:
        config.setdefault("auths", {})[key] = {"auth": binascii.b2a_base64(f"{user}:{password}".encode(), newline=False).decode()}
    write_config(config)
    out((answer or {}).get("Status") or "Login Succeeded")
    return 0


def logout(client: Client, args) -> int:
    """`docker logout [SERVER]`: forget the stored credentials (the daemon is not asked)."""
    key = server_key(args.server or HUB)
    config = read_config()
    auths = config.get("auths", {})
    found = [k for k in (key, f"https://{key}", f"http://{key}") if k in auths]
    helper = credential_helper(config, key)
    if helper:
        try:
            run_helper(helper, "erase", key)
            found = found or [key]
        except HelperError as exc:
            if "credentials not found" not in str(exc):
                raise
    if not found:
        out(f"Not logged in to {args.server or HUB}")
        return 0
    out(f"Removing login credentials for {args.server or HUB}")
    for k in found:
        auths.pop(k, None)
    write_config(config)
    return 0


def search(client: Client, args) -> int:
    """`docker search TERM`: the registry's answer as docker's table (NAME DESCRIPTION
    STARS OFFICIAL AUTOMATED), the description cut at 45 characters unless `--no-trunc`."""
    query = {"term": args.term, "filters": options.filters(args.filter)}
    if args.limit is not None:
        try:
            query["limit"] = int(args.limit)
        except ValueError:
            raise UsageError(f"invalid --limit: {args.limit}") from None
    found = client.call("GET", "/images/search", query, headers=auth_header(registry_of(args.term))) or []
    rows = []
    for result in found:
        description = (result.get("description") or "").replace("\n", " ").replace("\r", " ")
        rows.append({"Name": result.get("name", ""), "StarCount": result.get("star_count", 0),
                     "IsOfficial": bool(result.get("is_official")), "IsAutomated": bool(result.get("is_automated")),
                     "Description": description if args.no_trunc else render.truncate(description, 45)})
    print_listing(rows, args.format, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"],
                  lambda row: [row["Name"], row["Description"], str(row["StarCount"]),
                               "[OK]" if row["IsOfficial"] else "", "[OK]" if row["IsAutomated"] else ""])
    return 0


COMMANDS = (
    Command("pull", pull, "pull an image from a registry", (), (Arg("name"),)),
    Command("push", push, "push an image to a registry", (
        Opt(("-a", "--all-tags"), "all_tags", "flag", "push every tag of the repository"),), (Arg("name"),)),
    Command("login", login, "log in to a registry", (
        Opt(("-u", "--username"), "username", "value", "user name"),
        Opt(("-p", "--password"), "password", "value", "password (insecure: prefer --password-stdin)"),
        Opt(("--password-stdin",), "password_stdin", "flag", "read the password from stdin")),
        (Arg("server", "optional"),)),
    Command("logout", logout, "log out from a registry", (), (Arg("server", "optional"),)),
    Command("search", search, "search a registry for images", (
        Opt(("--limit",), "limit", "value", "at most N results (default 25)"),
        FILTER, NO_TRUNC, format_option("{{.Name}}: {{.StarCount}}")),
        (Arg("term"),)),
)
