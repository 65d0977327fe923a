"""The `plugin` noun: the daemon's plugins, their state and restarts (ls, inspect), and
switching them (enable, disable, reload)."""

from __future__ import annotations

from ..grammar import Arg, Command, Group
from ..transport import Client
from .printers import each, inspect_verb, print_listing


def ls(client: Client, args) -> int:
    """`berth plugin ls`: each plugin, whether it is enabled, its state, restarts and last error."""
    def cells(plugin: dict) -> list[str]:
        status = plugin["BerthStatus"]
        return [plugin["Name"], plugin["Config"]["Description"], str(plugin["Enabled"]).lower(), status["Status"],
                str(status["Restarts"]), status["LastError"]]

    print_listing(client.get("/plugins"), None, ["NAME", "DESCRIPTION", "ENABLED", "STATUS", "RESTARTS", "LAST ERROR"], cells)
    return 0


def enable(client: Client, args) -> int:
    """`berth plugin enable NAME…`."""
    return each(client, args.plugins, "POST", "/plugins/{}/enable")


def disable(client: Client, args) -> int:
    """`berth plugin disable NAME…`."""
    return each(client, args.plugins, "POST", "/plugins/{}/disable")


def reload(client: Client, args) -> int:
    """`berth plugin reload NAME…`: its code and configuration read again, restarted if enabled."""
    return each(client, args.plugins, "POST", "/plugins/{}/reload")


_PLUGINS = (Arg("plugins", "many"),)

COMMANDS = (
    Group("plugin", "manage the daemon's plugins", (
        Command("ls", ls, "list plugins"),
        inspect_verb("plugin", "{{.BerthStatus.Status}}"),
        Command("enable", enable, "enable plugins", (), _PLUGINS),
        Command("disable", disable, "disable plugins", (), _PLUGINS),
        Command("reload", reload, "read plugins' code and configuration again", (), _PLUGINS)), aliases={"list": "ls"}),
)
