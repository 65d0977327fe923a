"""Images: `images`, tag, rmi, history, and the `image` noun's own verbs (inspect,
prune). Moving images in and out (save, load, import) is in files."""

from __future__ import annotations

from .. import options, render
from ..grammar import Arg, Command, Opt
from ..transport import Client, ref
from .printers import (FILTER, FORCE_NEVER_ASKS, NO_TRUNC, each_name, format_option, inspect_verb, out, print_listing,
                       print_pruned, quiet_option)


def _image_rows(image: dict, no_trunc: bool) -> list[dict]:
    """An image list entry as `docker images` fields, one per tag (`<none>` when untagged)."""
    shared = image.get("SharedSize", -1)
    containers = image.get("Containers", -1)
    fields = {"ID": image["Id"] if no_trunc else render.short_id(image["Id"]),
              "CreatedSince": render.since(image["Created"]), "Size": render.size(image["Size"]),
              # the rest of docker's image fields, in its words ("N/A" for what the list did not count)
              "CreatedAt": render.go_time(image["Created"]),
              "Containers": "N/A" if containers == -1 else str(containers),
              "SharedSize": "N/A" if shared == -1 else render.size(shared, 4),
              "UniqueSize": "N/A" if shared == -1 else render.size(image["Size"] - shared, 4),
              "VirtualSize": render.size(image.get("VirtualSize", image["Size"]), 4)}
    digests = dict(d.split("@", 1) for d in image.get("RepoDigests") or [] if "@" in d)
    rows = [{"Repository": repo, "Tag": tag, "Digest": digests.get(repo, "<none>"), **fields}
            for repo, _, tag in (name.rpartition(":") for name in image["RepoTags"] or ["<none>:<none>"])]
    if rows[0]["Repository"] == "<none>" and digests:  # pulled by digest only
        rows = [{"Repository": repo, "Tag": "<none>", "Digest": digest, **fields} for repo, digest in digests.items()]
    return rows


def images(client: Client, args) -> int:
    """`docker images`: one row per tag (`<none>` for untagged images), newest first; `-q`
    a row's image id (an image with two tags twice, as docker prints it)."""
    filters = list(args.filter) + ([f"reference={args.reference}"] if args.reference else [])
    found = client.get("/images/json", all=int(args.all), filters=options.filters(filters))
    rows = [row for image in found for row in _image_rows(image, args.no_trunc)]
    if args.digests:  # docker: the digest of the row's repository, if the image has one there
        print_listing(rows, args.format, ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"],
                      lambda row: [row["Repository"], row["Tag"], row["Digest"], row["ID"], row["CreatedSince"],
                                   row["Size"]],
                      (lambda row: row["ID"]) if args.quiet else None, {"ID": "IMAGE ID"})
        return 0
    print_listing(rows, args.format, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                  lambda row: [row["Repository"], row["Tag"], row["ID"], row["CreatedSince"], row["Size"]],
                  (lambda row: row["ID"]) if args.quiet else None, {"ID": "IMAGE ID"})
    return 0


def tag(client: Client, args) -> int:
    """`docker tag SOURCE TARGET` (TARGET's tag defaults to latest; a registry port is no tag)."""
    repo, _, name = args.target.rpartition(":") if ":" in args.target.rsplit("/", 1)[-1] else (args.target, "", "")
    client.call("POST", f"/images/{ref(args.source)}/tag", {"repo": repo, "tag": name or "latest"})
    return 0


def rmi(client: Client, args) -> int:
    """`docker rmi`: `Untagged: …` / `Deleted: …` per image."""
    def remove(name: str) -> None:
        query = {"force": int(args.force), "noprune": int(args.no_prune)}
        for entry in client.call("DELETE", f"/images/{ref(name)}", query) or []:
            for key, value in entry.items():
                out(f"{key}: {value}")

    return each_name(args.images, remove)


def history(client: Client, args) -> int:
    """`docker history`: IMAGE CREATED CREATED-BY SIZE COMMENT, newest layer first."""
    def image_id(row: dict) -> str:
        return row["Id"] if args.no_trunc or row["Id"] == "<missing>" else render.short_id(row["Id"])

    def fields(row: dict) -> dict:  # the names docker's history templates use
        created_by = row["CreatedBy"].replace("\t", " ")
        return {"ID": image_id(row), "CreatedSince": render.since(row["Created"]),
                "CreatedAt": render.go_time(row["Created"]),
                "CreatedBy": created_by if args.no_trunc else render.truncate(created_by, 45),
                "Size": render.size(row["Size"]), "Comment": row["Comment"]}

    keys = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    print_listing([fields(row) for row in client.get(f"/images/{ref(args.image)}/history")], args.format,
                  ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], lambda row: [row[k] for k in keys],
                  (lambda row: row["ID"]) if args.quiet else None, {"ID": "IMAGE", "CreatedSince": "CREATED",
                                                                     "CreatedBy": "CREATED BY"})
    return 0


def pruned(client: Client, filters: list[str], every: bool) -> tuple[str, list[str], int]:
    """Remove the dangling images (`every`: all unused ones): the report print_pruned prints."""
    filters = [*filters, "dangling=false" if every else "dangling=true"]
    found = client.call("POST", "/images/prune", {"filters": options.filters(filters)})
    deleted = [f"{kind.lower()}: {value}" for item in found.get("ImagesDeleted") or [] for kind, value in item.items()]
    return "Deleted Images:", deleted, found.get("SpaceReclaimed", 0)


def prune(client: Client, args) -> int:
    """`docker image prune [-a]`: removes dangling (or all unused) images."""
    print_pruned(pruned(client, args.filter, args.all))
    return 0


_IMAGES_OPTS = (Opt(("-a", "--all"), "all", "flag", "all images"), quiet_option("IDs"), NO_TRUNC, FILTER,
                Opt(("--digests",), "digests", "flag", "show digests"),
                format_option("{{.Repository}}:{{.Tag}}"))

COMMANDS = (
    Command("images", images, "list images", _IMAGES_OPTS, (Arg("reference", "optional"),)),
    Command("tag", tag, "tag an image", (), (Arg("source"), Arg("target"))),
    Command("rmi", rmi, "remove images", (Opt(("-f", "--force"), "force", "flag", "remove even if used"),
                                          Opt(("--no-prune",), "no_prune", "flag", "keep untagged parents")),
            (Arg("images", "many"),)),
    Command("history", history, "show an image's history", (quiet_option("IDs"), NO_TRUNC,
                                                             format_option("{{.CreatedBy}}")), (Arg("image"),)),
)

# the `image` noun's own verbs; the noun is docker's management command (management.py)
PRUNE = Command("prune", prune, "remove dangling images (-a: every unused one)", (
    Opt(("-a", "--all"), "all", "flag", "every unused image, not only dangling ones"), FORCE_NEVER_ASKS,
    Opt(("--filter",), "filter", "list", "filter (label=…)")))
INSPECT = inspect_verb("image", "{{.Config.Cmd}}")
