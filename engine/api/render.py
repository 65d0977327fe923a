"""Docker's JSON shapes for containers and images, built from berth's typed state."""

from __future__ import annotations

import time
from datetime import datetime

import msgspec

import gounits
from ..core import Container, Engine, Image, State
from ..errors import EngineError, NotFound
from ..models import ZERO_TIME, EndpointSettings


def _to_builtins(struct) -> dict:
    return msgspec.to_builtins(struct)


def unix_seconds(rfc3339: str) -> int:
    if not rfc3339 or rfc3339 == ZERO_TIME:
        return 0
    return int(datetime.fromisoformat(rfc3339[:19] + "+00:00").timestamp())


def status_text(c: Container) -> str:
    """The `Status` column, rendered by the server as dockerd renders it."""
    st = c.record.state
    now = time.time()
    if c.has_process:
        up = f"Up {gounits.duration(now - unix_seconds(st.started_at))}"
        if c.state is State.PAUSED:
            return up + " (Paused)"
        if st.health is not None:  # as dockerd: `Up 3 seconds (healthy)`, `(health: starting)`
            return f"{up} (health: starting)" if st.health.status == "starting" else f"{up} ({st.health.status})"
        return up
    if c.state is State.RESTARTING:
        return f"Restarting ({st.exit_code}) {gounits.duration(now - unix_seconds(st.finished_at))} ago"
    if c.state is State.REMOVING:
        return "Removal In Progress"
    if c.state is State.EXITED:
        return f"Exited ({st.exit_code}) {gounits.duration(now - unix_seconds(st.finished_at))} ago"
    if c.state is State.DEAD:
        return "Dead"
    return "Created"


def _command(c: Container) -> str:
    """`Command` of `ps`: as dockerd writes it, an argument with a space in single quotes."""
    return " ".join([c.record.path, *(f"'{arg}'" if " " in arg else arg for arg in c.record.args)])


def mounts(c: Container) -> list[dict]:
    """`Mounts` of inspect and list, as dockerd shows them (Name and Driver for volumes only)."""
    out = []
    for m in c.record.mounts:
        item = {"Type": m.type, "Name": m.name, "Source": m.source, "Destination": m.destination,
                "Driver": m.driver, "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation}
        if m.type != "volume":
            del item["Name"], item["Driver"]
        out.append(item)
    return out


def _image_shown(engine: Engine, c: Container) -> str:
    """The list's `Image`, as dockerd's: the name the container was created from while
    that name still leads to its image, else the image's ID (untagged or retagged since)."""
    r = c.record
    if r.image_ref == r.image_id:
        return r.image_id
    try:
        return r.image_ref if engine.image(r.image_ref).id == r.image_id else r.image_id
    except EngineError:  # no such image now, or a name no longer valid
        return r.image_id


def container_summary(engine: Engine, c: Container) -> dict:
    r = c.record
    return {
        "Id": r.id, "Names": ["/" + r.name], "Image": _image_shown(engine, c), "ImageID": r.image_id,
        "Command": _command(c), "Created": unix_seconds(r.created),
        "Ports": summary_ports(c),
        "Labels": r.config.labels or {}, "State": c.state.value, "Status": status_text(c),
        "HostConfig": {"NetworkMode": r.host_config.network_mode},
        "NetworkSettings": {"Networks": networks(engine, c)}, "Mounts": mounts(c),
    }


def summary_ports(c: Container) -> list[dict]:
    """The list's `Ports`: published ports, then, while the container has its network
    (running or paused), the exposed ones with their container side only, as dockerd
    lists them from `NetworkSettings.Ports` (`docker ps` shows `9999/tcp`)."""
    ports = [{"IP": m.host_ip, "PrivatePort": m.container_port, "PublicPort": m.host_port, "Type": m.proto}
             for m in c.ports]
    if c.state in (State.RUNNING, State.PAUSED):
        published = {m.key for m in c.ports}
        for key in c.record.config.exposed_ports or {}:
            port, _, proto = key.partition("/")
            if key not in published and port.isdigit():
                ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return ports


def networks(engine: Engine, c: Container) -> dict:
    """`NetworkSettings.Networks`: each network the container is on (or will join)."""
    found = {}
    for name, record in engine.container_networks(c):
        endpoint = c.networks.get(name)
        asked = c.record.endpoints.get(name) or EndpointSettings()
        ipam = _to_builtins(asked.ipam_config) if asked.ipam_config else None
        found[name] = {
            "IPAMConfig": ipam, "Links": asked.links, "Aliases": endpoint.aliases if endpoint else asked.aliases,
            "NetworkID": record.id, "EndpointID": endpoint.endpoint_id if endpoint else "",
            "Gateway": endpoint.gateway if endpoint else "", "IPAddress": endpoint.ip if endpoint else "",
            "IPPrefixLen": endpoint.prefixlen if endpoint else 0, "IPv6Gateway": endpoint.gateway6 if endpoint else "",
            "GlobalIPv6Address": endpoint.ip6 if endpoint else "",
            "GlobalIPv6PrefixLen": endpoint.prefixlen6 if endpoint else 0,
            "MacAddress": endpoint.mac if endpoint else asked.mac_address, "DriverOpts": asked.driver_opts}
    return found


def port_map(c: Container) -> dict:
    """`NetworkSettings.Ports`: published ports with their host side, exposed ones with null."""
    ports: dict = {key: None for key in c.record.config.exposed_ports or {}}
    for m in c.ports:
        ports.setdefault(m.key, None)
        ports[m.key] = [*(ports[m.key] or []), {"HostIp": m.host_ip, "HostPort": str(m.host_port)}]
    return ports


def container_inspect(engine: Engine, c: Container) -> dict:
    r = c.record
    try:
        lowers = [str(d) for d in engine.image_facts(engine.image(r.image_id)).layer_dirs]
    except NotFound:
        lowers = []  # its image is gone
    config = _to_builtins(r.config)
    host_config = _host_config(engine, c)
    state = _to_builtins(r.state)
    if state.get("Health") is None:
        state.pop("Health", None)  # Docker shows Health only for containers with a healthcheck
    for key in ("Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "Shell"):
        if not config.get(key):
            config.pop(key, None)  # omitted when empty, as dockerd's Config omits them
    return {
        "Id": r.id, "Created": r.created, "Path": r.path, "Args": r.args,
        "State": state, "Image": r.image_id,
        "ResolvConfPath": str(c.dir / "resolv.conf"), "HostnamePath": str(c.dir / "hostname"),
        "HostsPath": str(c.dir / "hosts"), "LogPath": str(c.log_path), "Name": "/" + r.name,
        "RestartCount": r.restart_count, "Driver": "overlay", "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": engine.exec_ids(c),
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(lowers)), "UpperDir": str(c.upper),
            "WorkDir": str(c.work), "MergedDir": str(c.rootfs)}},
        "Mounts": mounts(c), "Config": config,
        "NetworkSettings": _network_settings(engine, c),
    }


def _host_config(engine: Engine, c: Container) -> dict:
    """`HostConfig` as dockerd shows it: legacy links as `/<container>:/<this>/<alias>`
    (by the linked container's name now), the `none` log driver with its options (none)."""
    host_config = _to_builtins(c.record.host_config)
    if host_config.get("Links"):
        shown = []
        for spec in host_config["Links"]:
            target, _, alias = spec.partition(":")
            try:
                target = engine.get(target).name
            except NotFound:
                pass  # removed since: its ID stands in for its name
            shown.append(f"/{target}:/{c.name}/{alias}")
        host_config["Links"] = shown
    if host_config["LogConfig"]["Type"] == "none":
        host_config["LogConfig"]["Config"] = {}
    return host_config


def _network_settings(engine: Engine, c: Container) -> dict:
    bridge = c.networks.get("bridge")
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": port_map(c),
            "SandboxKey": str(c.netns) if c.live and c.record.host_config.network_mode != "host" else "",
            "Gateway": bridge.gateway if bridge else "", "IPAddress": bridge.ip if bridge else "",
            "IPPrefixLen": bridge.prefixlen if bridge else 0, "MacAddress": bridge.mac if bridge else "",
            "Networks": networks(engine, c)}


def _image_container_config(image: Image) -> dict:
    cfg = image.config.config
    return {
        "Hostname": "", "Domainname": "", "User": cfg.user, "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "ExposedPorts": cfg.exposed_ports, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": cfg.env, "Cmd": cfg.cmd, "Image": "", "Volumes": cfg.volumes,
        "WorkingDir": cfg.working_dir, "Entrypoint": cfg.entrypoint, "OnBuild": cfg.on_build, "Labels": cfg.labels,
        **({"StopSignal": cfg.stop_signal} if cfg.stop_signal else {}),
        # as dockerd: present only when set, and a health check without its zero durations
        **({"Healthcheck": {k: v for k, v in _to_builtins(cfg.healthcheck).items() if v}} if cfg.healthcheck else {}),
        **({"Shell": cfg.shell} if cfg.shell else {}),
    }


def image_summary(engine: Engine, image: Image) -> dict:
    facts = engine.image_facts(image)
    size, tags = facts.size, facts.tags
    return {
        "Containers": -1, "Created": unix_seconds(image.config.created), "Id": image.id,
        "Labels": image.config.config.labels, "ParentId": image.config.parent,
        "RepoDigests": facts.digests or ([] if tags else ["<none>@<none>"]), "RepoTags": tags or ["<none>:<none>"],
        "SharedSize": -1, "Size": size, "VirtualSize": size,
    }


def image_inspect(engine: Engine, image: Image) -> dict:
    facts = engine.image_facts(image)
    dirs = [str(d) for d in facts.layer_dirs]
    size = facts.size
    cfg = image.config
    return {
        "Id": image.id, "RepoTags": facts.tags, "RepoDigests": facts.digests, "Parent": image.config.parent,
        "Comment": cfg.comment, "Created": cfg.created, "Container": "", "ContainerConfig": _image_container_config(image) | {"Cmd": None, "Env": None},
        "DockerVersion": "", "Author": cfg.author, "Config": _image_container_config(image),
        "Architecture": cfg.architecture, "Os": cfg.os, "Size": size, "VirtualSize": size,
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": ":".join(reversed(dirs[:-1])) or None,
                                                     "UpperDir": dirs[-1] if dirs else None}},
        "RootFS": {"Type": "layers", "Layers": list(cfg.rootfs.diff_ids)},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def image_history(engine: Engine, image: Image) -> list[dict]:
    """Newest first; layer-bearing entries take the layers' sizes in order."""
    facts = engine.image_facts(image)
    sizes = facts.layer_sizes
    rows = []
    layer = 0
    for entry in image.config.history:
        size = 0
        if not entry.empty_layer and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        rows.append({"Comment": entry.comment, "Created": unix_seconds(entry.created), "CreatedBy": entry.created_by,
                     "Id": "<missing>", "Size": size, "Tags": None})
    rows.reverse()
    # as dockerd: the newest entry is the image, each older one its parent while there is
    # one here (a build's steps; `<missing>` for what came from elsewhere)
    step: Image | None = image
    for row in rows:
        if step is None:
            break
        row["Id"], row["Tags"] = step.id, engine.image_facts(step).tags or None
        try:
            step = engine.image(step.config.parent) if step.config.parent else None
        except NotFound:
            step = None
    return rows
