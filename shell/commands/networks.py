"""The `network` noun: create, ls, inspect, rm, connect, disconnect, prune, as `docker network`."""

from __future__ import annotations

from .. import options
from ..grammar import Arg, Command, Group, Opt
from ..transport import Client, ref
from .printers import (FILTER, FORCE_NEVER_ASKS, NO_TRUNC, each, format_option, inspect_verb, out, print_deleted,
                       print_listing, quiet_option)


def create(client: Client, args) -> int:
    """`docker network create NAME`: a bridge network; prints its id."""
    pool = {k: v for k, v in (("Subnet", args.subnet), ("Gateway", args.gateway)) if v}
    body = {"Name": args.name, "Driver": args.driver or "bridge", "Internal": args.internal,
            "IPAM": {"Driver": "default", "Config": [pool] if pool else []},
            "Options": options.key_values(args.opt, "option"), "Labels": options.key_values(args.label, "label")}
    out(client.call("POST", "/networks/create", None, body)["Id"])
    return 0


def _ls_row(network: dict, no_trunc: bool) -> dict:
    """A network as `docker network ls` fields (the names `--format` templates use)."""
    labels = network.get("Labels") or {}
    return {"ID": network["Id"] if no_trunc else network["Id"][:12], "Name": network["Name"],
            "Driver": network["Driver"], "Scope": network["Scope"],
            "IPv4": "true" if network.get("EnableIPv4") else "false",
            "IPv6": "true" if network.get("EnableIPv6") else "false",
            "Internal": "true" if network.get("Internal") else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "CreatedAt": _go_time_string(network.get("Created", ""))}


def _go_time_string(stamp: str) -> str:
    """An RFC 3339 time as Go's time.Time String() prints it parsed (`2024-05-01
    10:00:00.5 +0000 UTC`): fraction without trailing zeros, its own offset kept."""
    day, _, clock = stamp.partition("T")
    zone = "Z" if clock.endswith("Z") else clock[-6:] if clock[-6:-5] in "+-" else ""
    clock = clock[:len(clock) - len(zone)]
    whole, _, fraction = clock.partition(".")
    fraction = fraction.rstrip("0")
    offset = "+0000 UTC" if zone in ("Z", "") else f"{zone.replace(':', '')} {zone.replace(':', '')}"
    return f"{day} {whole}{'.' + fraction if fraction else ''} {offset}" if stamp else ""


def ls(client: Client, args) -> int:
    """`docker network ls`: NETWORK ID, NAME, DRIVER, SCOPE."""
    found = [_ls_row(n, args.no_trunc) for n in client.get("/networks", filters=options.filters(args.filter))]
    print_listing(found, args.format, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                  lambda n: [n["ID"], n["Name"], n["Driver"], n["Scope"]], (lambda n: n["ID"]) if args.quiet else None,
                  {"ID": "NETWORK ID"})
    return 0


def rm(client: Client, args) -> int:
    """`docker network rm NAME…`."""
    return each(client, args.networks, "DELETE", "/networks/{}", failed=lambda _: "exit status 1")  # docker's words


def connect(client: Client, args) -> int:
    """`docker network connect [--alias NAME] NETWORK CONTAINER`."""
    aliases = {"EndpointConfig": {"Aliases": args.alias}} if args.alias else {}
    client.call("POST", f"/networks/{ref(args.network)}/connect", None, {"Container": args.container, **aliases})
    return 0


def disconnect(client: Client, args) -> int:
    """`docker network disconnect NETWORK CONTAINER`."""
    client.call("POST", f"/networks/{ref(args.network)}/disconnect", None, {"Container": args.container})
    return 0


def pruned(client: Client) -> tuple[str, list[str], int]:
    """Remove the networks no container uses: the report print_pruned prints."""
    return "Deleted Networks:", client.call("POST", "/networks/prune").get("NetworksDeleted") or [], 0


def prune(client: Client, args) -> int:
    """`docker network prune`: what it removed (networks free no space to report)."""
    title, deleted, _ = pruned(client)
    print_deleted(title, deleted)
    return 0


_NETWORK_AND_CONTAINER = (Arg("network"), Arg("container"))

COMMANDS = (
    Group("network", "manage networks", (
        Command("create", create, "create a bridge network", (
            Opt(("-d", "--driver"), "driver", "value", "bridge (the only driver)"),
            Opt(("--subnet",), "subnet", "value", "e.g. 10.90.0.0/24 (else a free /24)"),
            Opt(("--gateway",), "gateway", "value", "the bridge's address (else the subnet's first)"),
            Opt(("--internal",), "internal", "flag", "no default route for its containers"),
            Opt(("-o", "--opt"), "opt", "list", "driver option (com.docker.network.bridge.name=…)"),
            Opt(("--label",), "label", "list", "set a label (KEY=VALUE)")), (Arg("name"),)),
        Command("ls", ls, "list networks", (quiet_option("IDs"), FILTER, NO_TRUNC, format_option("{{.Name}}"))),
        inspect_verb("network", "{{.IPAM.Config}}"),
        Command("rm", rm, "remove networks", (), (Arg("networks", "many"),)),
        Command("connect", connect, "connect a container to a network", (
            Opt(("--alias",), "alias", "list", "another name on this network"),), _NETWORK_AND_CONTAINER),
        Command("disconnect", disconnect, "disconnect a container from a network", (), _NETWORK_AND_CONTAINER),
        Command("prune", prune, "remove unused networks", (FORCE_NEVER_ASKS,))), aliases={"list": "ls", "remove": "rm"}),
)
