"""`docker commit`: a new image from a container's writable layer.

The layer is the container's changes (`fsdiff.walk`: what `docker diff` lists) written as
an image-format tar (whiteouts as `.wh.` files, opaque directories marked), then added
through the image store like any layer: its DiffID is the sha256 of that tar and a layer
already present (same content on the same parent chain) is shared. A container that
changed nothing gives an empty layer: a history entry with `empty_layer`, no new DiffID,
as dockerd does.

The new image's config is dockerd's: start from the request's Config (or the container's),
apply the `--change` lines (compiled by the builder: `build.changes`), then fill what is still unset
from the container's config (`merge` below: Env by name, Labels and ExposedPorts added,
Cmd only when no Entrypoint was given…). The history gains one entry: CreatedBy is the
container's Cmd joined by spaces, with the comment and author.

Reading the container (paused meanwhile) is the containers service's part
(`ContainerService.commit`); storing the image is the images service's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config_merge import merged_env, merged_health
from ..fs import diff as fsdiff
from ..models import (CommitOptions, ContainerConfig, HistoryEntry, ImageConfig, ImageRuntimeConfig,
                      RootFS, words)
from .store import Image, ImageStore


def runtime_config(cfg: ContainerConfig) -> ImageRuntimeConfig:
    """A container Config as an image's runtime config (the fields images carry)."""
    return ImageRuntimeConfig(
        user=cfg.user, exposed_ports=cfg.exposed_ports or None, env=cfg.env or None,
        entrypoint=words(cfg.entrypoint) or None, cmd=words(cfg.cmd) or None, volumes=cfg.volumes or None,
        working_dir=cfg.working_dir, labels=cfg.labels or None, stop_signal=cfg.stop_signal or "",
        healthcheck=cfg.healthcheck, on_build=cfg.on_build or None, shell=cfg.shell or None)


def merge(user: ImageRuntimeConfig, base: ImageRuntimeConfig) -> ImageRuntimeConfig:
    """dockerd's `merge`: fill what `user` leaves unset from `base` (the container's
    config); its ONBUILD triggers and SHELL are its own."""
    env = merged_env(user.env or [], base.env or [])
    entrypoint, cmd = user.entrypoint, user.cmd
    if not entrypoint:
        cmd = cmd or base.cmd
        entrypoint = base.entrypoint if entrypoint is None else entrypoint
    return ImageRuntimeConfig(
        user=user.user or base.user,
        exposed_ports={**(base.exposed_ports or {}), **(user.exposed_ports or {})} or None,
        env=env or None, entrypoint=entrypoint, cmd=cmd,
        volumes={**(user.volumes or {}), **(base.volumes or {})} or None,
        working_dir=user.working_dir or base.working_dir,
        labels={**(base.labels or {}), **(user.labels or {})} or None,
        stop_signal=user.stop_signal or base.stop_signal, healthcheck=merged_health(user.healthcheck, base.healthcheck), on_build=user.on_build, shell=user.shell)


def new_config(container: ContainerConfig, options: CommitOptions,
               changes: Callable[[ImageRuntimeConfig], ImageRuntimeConfig]) -> ImageRuntimeConfig:
    """The committed image's runtime config (see the module docstring); `changes` applies
    the `--change` lines (read by the builder's parser: `build.changes`)."""
    user = runtime_config(options.config if options.config is not None else container)
    return merge(changes(user), runtime_config(container))


def write_layer(upper: Path, lowers: list[Path], out: Path) -> int:
    """Write the container's changes as a layer tar at `out`; return how many entries."""
    if not upper.exists():
        return 0
    with fsdiff.ImageLayers(lowers[::-1]) as image:
        entries = fsdiff.walk(upper, image)
    if entries:
        with open(out, "wb") as f:
            f.writelines(fsdiff.layer_chunks(upper, entries))
    return len(entries)


def store_image(store: ImageStore, parent: Image, layer: Path | None, config: ImageRuntimeConfig,
                history: HistoryEntry, author: str, parent_link: str = "") -> Image:
    """Add the layer (if any) on the parent's chain and the new image's config (naming
    `parent_link` as its parent image: a build step's)."""
    diff_ids = list(parent.config.rootfs.diff_ids)
    if layer is not None:
        chain = store.layer_chain(parent)
        _, diff_id = store.add_layer(lambda: open(layer, "rb"), chain[-1] if chain else "")
        diff_ids.append(diff_id)
    return store.add_image(ImageConfig(
        architecture=parent.config.architecture, os=parent.config.os, created=history.created, config=config,
        rootfs=RootFS(diff_ids=diff_ids), history=[*parent.config.history, history], author=author,
        comment=history.comment, parent=parent_link))  # dockerd's commit: the message is the image's Comment too
