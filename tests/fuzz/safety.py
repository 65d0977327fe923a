"""What the fuzzer never sends, whatever the schema allows: the rules that keep a fuzz run
on this machine and inside its own daemon.

The isolated berthd has its own root, socket, bridge and cgroup parent (tests/daemon.py);
these rules close the doors a request could still open to the host or the network:

* containers: no `Privileged`, no added capabilities, no security options, devices or
  sysctls, no `host` network/PID/IPC/UTS/user namespace, no bind of a host path
  (`Binds` with a path source, `Mounts` of a type other than volume or tmpfs), no volume
  driver options (a `device` volume mounts what it names), published ports on 127.0.0.1
  only and no `PublishAllPorts` (it would listen on every address);
* execs: no `Privileged`;
* networks: a subnet given is replaced by one of 10.251.0.0/16 (a bridge holding a public
  or host subnet would take its routes), a valid bridge name given is replaced by a
  `bfz…` name (never an existing link such as eth0), no `parent` option, no macvlan,
  ipvlan or overlay driver;
* volumes: `device` options only as tmpfs, without bind;
* images: no `fromImage` (a pull; berth refuses it today, a later berth might not);
* archives: when the fuzzer sends a real tar (names without `..`), the target path has no
  `..` either, so a traversal bug could not write into the host.

Each rule acts only on a value of the expected type: a value of the wrong type stays, as
the daemon must refuse it.
"""

from __future__ import annotations

import ipaddress
import re
import zlib

FUZZ_SUBNETS = ipaddress.ip_network("10.251.0.0/16")
_LINK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_HOST_PATH = re.compile(r"^[/.~\\]|/")
_DROPPED_HOST_CONFIG = ("Privileged", "CapAdd", "SecurityOpt", "Devices", "DeviceRequests", "DeviceCgroupRules",
                        "Sysctls", "CgroupParent", "PublishAllPorts", "VolumeDriver")
_NAMESPACES = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")


def _fuzz_subnet(text: str) -> str:
    index = zlib.crc32(text.encode(errors="replace")) % 256
    return str(list(FUZZ_SUBNETS.subnets(new_prefix=24))[index])


def _safe_binds(binds: list) -> list:
    kept = []
    for item in binds:
        if isinstance(item, str) and ":" in item and _HOST_PATH.search(item.split(":", 1)[0] or "/"):
            continue  # /host/path:/dst (or an empty source, which a daemon might read as /)
        kept.append(item)
    return kept


def _safe_mounts(mounts: list) -> list:
    kept = []
    for item in mounts:
        if isinstance(item, dict):
            kind = item.get("Type")
            if not isinstance(kind, str) or kind.strip().lower() not in ("volume", "tmpfs"):
                continue
            source = item.get("Source")
            if isinstance(source, str) and _HOST_PATH.search(source):
                continue
            if isinstance(item.get("VolumeOptions"), dict):
                item["VolumeOptions"].pop("DriverConfig", None)
            item.pop("BindOptions", None)
        kept.append(item)
    return kept


def container_config(body) -> None:
    if not isinstance(body, dict):
        return
    hc = body.get("HostConfig")
    if isinstance(hc, dict):
        for key in _DROPPED_HOST_CONFIG:
            hc.pop(key, None)
        for key in _NAMESPACES:
            if isinstance(hc.get(key), str) and "host" in hc[key].lower():
                del hc[key]
        if isinstance(hc.get("Binds"), list):
            hc["Binds"] = _safe_binds(hc["Binds"])
        if isinstance(hc.get("Mounts"), list):
            hc["Mounts"] = _safe_mounts(hc["Mounts"])
        bindings = hc.get("PortBindings")
        if isinstance(bindings, dict):
            for value in bindings.values():
                for binding in value if isinstance(value, list) else []:
                    if isinstance(binding, dict):
                        binding["HostIp"] = "127.0.0.1"


def exec_config(body) -> None:
    if isinstance(body, dict):
        body.pop("Privileged", None)


def network_config(body) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("Driver"), str) and body["Driver"].strip().lower() in ("macvlan", "ipvlan", "overlay"):
        del body["Driver"]
    options = body.get("Options")
    if isinstance(options, dict):
        options.pop("parent", None)
        for key, value in list(options.items()):
            if "bridge.name" in key and isinstance(value, str) and _LINK_NAME.match(value):
                options[key] = f"bfz{zlib.crc32(value.encode()):08x}"
    ipam = body.get("IPAM")
    if isinstance(ipam, dict):
        ipam.pop("Driver", None)
        ipam.pop("Options", None)
        for pool in ipam.get("Config") if isinstance(ipam.get("Config"), list) else []:
            if not isinstance(pool, dict):
                continue
            for key in ("Subnet", "IPRange"):
                value = pool.get(key)
                if isinstance(value, str):
                    try:
                        ipaddress.ip_network(value.strip(), strict=False)
                    except ValueError:
                        continue  # not a network: the daemon must refuse it
                    pool[key] = _fuzz_subnet(value)
            pool.pop("AuxiliaryAddresses", None)


def volume_config(body) -> None:
    if not isinstance(body, dict):
        return
    opts = body.get("DriverOpts")
    if isinstance(opts, dict) and any(key in opts for key in ("type", "device", "o")):
        words = opts.get("o") if isinstance(opts.get("o"), str) else ""
        words = ",".join(w for w in words.split(",") if w.strip() not in ("bind", "rbind") and "addr" not in w)
        opts.update({"type": "tmpfs", "device": "tmpfs", "o": words})


def query(method: str, path: str, params: dict, real_tar: bool) -> None:
    if path == "/images/create":
        params.pop("fromImage", None)
    if path == "/containers/{id}/archive" and method == "PUT" and real_tar and isinstance(params.get("path"), str):
        params["path"] = "/".join(part for part in params["path"].split("/") if part != "..") or "/"


BODY_RULES = {
    ("POST", "/containers/create"): container_config,
    ("POST", "/containers/{id}/exec"): exec_config,
    ("POST", "/networks/create"): network_config,
    ("POST", "/volumes/create"): volume_config,
}


def body(method: str, path: str, value) -> None:
    rule = BODY_RULES.get((method, path))
    if rule:
        rule(value)
