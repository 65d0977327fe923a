"""The `volume` noun: create, ls, inspect, rm, prune, as `docker volume`."""

from __future__ import annotations

from .. import options
from ..grammar import Arg, Command, Group, Opt
from ..transport import Client
from .printers import (FILTER, FORCE_NEVER_ASKS, each, format_option, inspect_verb, out, print_listing, print_pruned,
                       quiet_option)


def create(client: Client, args) -> int:
    """`docker volume create [NAME]`: prints its name (a generated one without NAME)."""
    body = {"Name": args.name or "", "Driver": args.driver or "local",
            "DriverOpts": options.key_values(args.opt, "driver option"), "Labels": options.key_values(args.label, "label")}
    out(client.call("POST", "/volumes/create", None, body)["Name"])
    return 0


def _ls_row(volume: dict) -> dict:
    """A volume as `docker volume ls` fields (the names `--format` templates use); a size
    and a link count only `system df` measures, the cluster fields N/A as on a local volume."""
    labels = volume.get("Labels") or {}
    return {"Name": volume["Name"], "Driver": volume["Driver"], "Scope": volume.get("Scope", "local"),
            "Mountpoint": volume.get("Mountpoint", ""), "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Links": "N/A", "Size": "N/A", "Availability": "N/A", "Group": "N/A", "Status": "N/A"}


def ls(client: Client, args) -> int:
    """`docker volume ls`: DRIVER and VOLUME NAME."""
    found = [_ls_row(v) for v in client.get("/volumes", filters=options.filters(args.filter)).get("Volumes") or []]
    print_listing(found, args.format, ["DRIVER", "VOLUME NAME"], lambda v: [v["Driver"], v["Name"]],
                  (lambda v: v["Name"]) if args.quiet else None, {"Name": "VOLUME NAME"})
    return 0


def rm(client: Client, args) -> int:
    """`docker volume rm [-f] NAME…`."""
    return each(client, args.volumes, "DELETE", "/volumes/{}", {"force": int(args.force)})


def pruned(client: Client, filters: list[str]) -> tuple[str, list[str], int]:
    """Remove the unused volumes (matching `filters`): the report print_pruned prints."""
    found = client.call("POST", "/volumes/prune", {"filters": options.filters(filters)})
    return "Deleted Volumes:", found.get("VolumesDeleted") or [], found.get("SpaceReclaimed", 0)


def prune(client: Client, args) -> int:
    """`docker volume prune [-a]`: every unused volume (named ones too, as API 1.41 does)."""
    print_pruned(pruned(client, args.filter + (["all=true"] if args.all else [])))
    return 0


COMMANDS = (
    Group("volume", "manage volumes", (
        Command("create", create, "create a volume (a generated name without NAME)", (
            Opt(("-d", "--driver"), "driver", "value", "volume driver (local)"),
            Opt(("-o", "--opt"), "opt", "list", "driver option: type=tmpfs|none, device=…, o=size=64m|bind"),
            Opt(("--label",), "label", "list", "set a label (KEY=VALUE)")), (Arg("name", "optional"),)),
        Command("ls", ls, "list volumes", (quiet_option("names"), FILTER, format_option("{{.Name}}"))),
        inspect_verb("volume", "{{.Mountpoint}}"),
        Command("rm", rm, "remove volumes", (
            Opt(("-f", "--force"), "force", "flag", "no error for a missing volume"),), (Arg("volumes", "many"),)),
        Command("prune", prune, "remove unused volumes", (
            Opt(("-a", "--all"), "all", "flag", "named ones too (what API 1.41 does anyway)"), FORCE_NEVER_ASKS,
            Opt(("--filter",), "filter", "list", "filter (label=…)")))), aliases={"list": "ls", "remove": "rm"}),
)
