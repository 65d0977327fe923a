"""The image builder: a Dockerfile and its context in, an image out, a layer per step.

A build runs the stages its target needs, in order (`plan.py` decides which). Each step
is looked up in the cache first (`cache.py`); on a miss:

* metadata instructions (ENV, LABEL, CMD, …) store an image with the new config and an
  `empty_layer` history entry (`steps.py`); as in Docker, an intermediate container is
  created for the step (never started) and removed, so the output and the events read
  as dockerd's (` ---> Running in`, `Removing intermediate container`);
* RUN runs a real container through the containers service (create from the current
  image with the step's config and the build args as its Env, attach, start, wait), its
  output streamed as it comes; the container's changes become the step's layer, and the
  container is removed (kept after a failure unless `forcerm`, as Docker does);
* COPY, ADD and WORKDIR work on an overlay of the current image's layers mounted for the
  step (no process needs to run): the copied files arrive through the one contained
  unpacker, and the overlay's upper directory becomes the layer.

A client that goes away cancels the build: a RUN container is killed and removed, the
mounts undone, and no image of the unfinished step is stored.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import logging
import os
import posixpath
import secrets
import stat
import time
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import trio

from .. import timefmt
from ..containers.files import Files
from ..containers.service import ContainerService
from ..errors import BadRequest, EngineError, NotFound
from ..fs import diff as fsdiff, inroot, tree, unpack
from ..images import reference
from ..images.commit import store_image, write_layer
from ..images.service import Images
from ..images.store import Image, host_arch
from ..models import CreateRequest, ErrorDetail, HistoryEntry, HostConfig, ImageConfig, ImageRuntimeConfig, RootFS
from ..runtime import bundle, rootfs
from . import cache, context, remote, steps, upload
from .contexts import Contexts
from .dockerfile import Dockerfile, Instruction, error, instruction, parse
from .options import BuildMessage, BuildOptions, Emit
from .plan import Stage, plan
from .words import expand, expand_words

log = logging.getLogger("berth.build")

METADATA = frozenset({"ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "USER", "STOPSIGNAL", "SHELL",
                      "ONBUILD", "HEALTHCHECK"})


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def check_platform(platform: str, line: int | None = None) -> None:
    """Only this host's platform can be built (no emulation)."""
    host = f"linux/{host_arch()}"
    if platform and platform not in ("linux", host) and not platform.startswith(host + "/"):
        message = f'"{platform}" is not a supported platform: this host builds for {host} only'
        raise error(line, message) if line else BadRequest(message)


class Builder:
    """Builds images; handed the kept contexts (berth's CLI sends only what changed), the
    containers service (RUN), the images service (storing, tagging) and the files service
    (a container's layer)."""

    def __init__(self, root: Path, contexts: Contexts, containers: ContainerService, images: Images, files: Files):
        self.root = root
        self.tmp = root / "tmp"  # what a build cut short by a crash left here goes at the daemon's start
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.cache = cache.Cache(root / "cache.json")
        self.sums = context.Sums()  # file checksums of earlier contexts
        self.contexts = contexts  # kept for berth's CLI
        self.containers = containers
        self.images = images
        self.files = files

    async def build(self, body: AsyncIterator[bytes], options: BuildOptions, emit: Emit) -> str | None:
        """Build from the context tar in `body`; the image ID. Bad input found before the
        first message is raised (a plain HTTP error); errors after it end the stream as
        `errorDetail`, and then None is returned."""
        session = self.contexts.take(options.context_session) if options.context_session else None
        if session is None:
            work = self.tmp / secrets.token_hex(8)
            work.mkdir()
        else:
            work = session.work  # its context holds the files the client did not send
        whole = False
        try:
            check_platform(options.platform)
            targets = [reference.new_name(t) for t in options.tags]  # a bad name: 400 before any work
            run = _Run(self, options, emit, work)
            await upload.receive(body, run.context, tar_only=session is not None)  # unpacked as it arrives
            whole = True
            text, _ = await trio.to_thread.run_sync(context.read_dockerfile, run.context, options.dockerfile)
            await trio.to_thread.run_sync(context.apply_ignore, run.context)
            dockerfile = parse(text)
            try:
                image = await run.execute(dockerfile, targets)
            except EngineError as exc:
                if not run.started:
                    raise
                await emit(BuildMessage(errorDetail=run.error_detail(exc), error=exc.message))
                return None
            return image.id
        finally:
            with trio.CancelScope(shield=True):
                if session is not None and whole:
                    try:
                        await self.contexts.keep(session)
                    except OSError as exc:  # the build stands; the next one sends everything
                        log.warning("build context of %s not kept: %s", session.source, exc)
                await trio.to_thread.run_sync(functools.partial(tree.remove, work, ignore_errors=True))


class StepFailed(EngineError):
    """A RUN step's command exited non-zero: the build fails with its code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class _State:
    """A stage while it is built: its current image and what its instructions set."""

    def __init__(self, image: Image, escape: str):
        self.image = image
        config = image.config.config
        if not any(e.startswith("PATH=") for e in config.env or []):  # as dockerd's builder at FROM (scratch too)
            config = msgspec.structs.replace(config, env=[*(config.env or []), f"PATH={bundle.DEFAULT_PATH}"])
        self.config = msgspec.structs.replace(config, on_build=None)
        self.escape = escape
        self.args: dict[str, str | None] = {}  # declared in this stage: name → value (None: no value)
        self.cmd_set = False
        self.author = image.config.author


class _Run:
    """One build: its options, context, stages, step count and messages."""

    def __init__(self, builder: Builder, options: BuildOptions, emit: Emit, work: Path):
        self.b = builder
        self.options = options
        self._emit = emit
        self.work = work
        self.context = work / "context"
        self.started_ns = time.time_ns()
        self.started = False
        self.step = 0
        self.total = 0
        self.mounts = 0
        self.global_args: dict[str, str | None] = {}
        self.consumed: set[str] = set()
        self.results: dict[int, Image] = {}
        self.cache_from: set[str] | None = None
        self.cache_sources: list[Image] = []  # --cache-from images whose histories may stand for steps
        self.stage: Stage | None = None  # the stage being built

    async def say(self, text: str) -> None:
        self.started = True
        if not self.options.quiet:
            await self._emit(BuildMessage(stream=text))

    def error_detail(self, exc: EngineError) -> ErrorDetail:
        return ErrorDetail(exc.message, getattr(exc, "code", 0))

    # --- the whole build ---------------------------------------------------------------

    async def execute(self, dockerfile: Dockerfile, targets: list) -> Image:
        for ins in dockerfile.instructions:
            steps.check(ins)
        global_args, stages, needed = plan(dockerfile, self.options.target)
        for ins in global_args:
            for name, value in self.arg_pairs(ins, {}):
                self.global_args[name] = self.options.buildargs.get(name) or value
                self.consumed.add(name)
        labels = sorted(self.options.labels.items())
        self.total = sum(len(stages[i].instructions) for i in needed) + len(labels)
        if self.options.cache_from:
            self.cache_from = self.ancestors(self.options.cache_from)
            self.cache_sources = [self.b.images.store.images[i] for i in dict.fromkeys(self.cache_from)
                                  if self.b.images.store.images[i].config.history]
        self.started = True  # from here on, errors are the stream's
        image = None
        for i in needed:
            extra = [instruction(f"LABEL {k}={_label_value(v)}", 0) for k, v in labels] if i == needed[-1] else []
            image = await self.run_stage(stages[i], dockerfile.escape, extra)
            self.results[i] = image
        assert image is not None
        unused = sorted(k for k in self.options.buildargs if k not in self.consumed and k not in steps.PROXY_ARGS)
        if self.options.quiet:
            await self._emit(BuildMessage(stream=image.id + "\n"))
        else:
            await self._emit(BuildMessage(aux={"ID": image.id}))
            if unused:
                await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
            await self.say(f"Successfully built {short(image.id)}\n")
        for target in dict.fromkeys(targets):  # a tag named twice is tagged (and said) once
            await self.b.images.tag(image.id, target.repo, target.tag)
            await self.say(f"Successfully tagged {target}\n")
        return image

    def ancestors(self, refs: list[str]) -> set[str]:
        """The images `cache_from` names and every image they were built on."""
        found = set()
        for ref in refs:
            try:
                image = self.b.images.resolve(ref)
            except NotFound:
                continue
            while image is not None and image.id not in found:
                found.add(image.id)
                image = self.b.images.store.images.get(image.config.parent)
        return found

    async def run_stage(self, stage: Stage, escape: str, extra: list[Instruction]) -> Image:
        self.stage = stage
        state: _State | None = None
        for ins in [*stage.instructions, *extra]:
            self.step += 1
            await self.say(f"Step {self.step}/{self.total} : {ins.original}")
            await self.say("\n")
            if state is None:
                state = await self.from_(ins, stage, escape)
            else:
                await self.dispatch(ins, state)
        return state.image

    # --- FROM and ONBUILD ----------------------------------------------------------------

    async def from_(self, ins: Instruction, stage: Stage, escape: str) -> _State:
        env = {k: v for k, v in self.global_args.items() if v is not None}
        env.update(BUILDPLATFORM=f"linux/{host_arch()}", TARGETPLATFORM=f"linux/{host_arch()}")
        check_platform(expand(ins.flags.get("platform", ""), env, escape), ins.line)
        name = expand(stage.base, env, escape)
        if name in stage.earlier:
            image = self.results[stage.earlier[name]]
        elif name == "scratch":
            image = Image("", ImageConfig(architecture=host_arch(), os="linux", config=ImageRuntimeConfig(),
                                          rootfs=RootFS()), 0)
        else:
            try:
                image = self.b.images.resolve(name)
            except NotFound:
                raise NotFound(f"pull access denied for {name}: no such image on this host, and berth's builder "
                               f"does not pull (pull it first: berth pull {name})") from None
        state = _State(image, escape)
        if image.id:
            await self.say(f" ---> {short(image.id)}\n")
        triggers = image.config.config.on_build or []
        if triggers:
            await self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                trigger = instruction(text, ins.line)
                steps.check(trigger)
                await self.dispatch(trigger, state)
        return state

    # --- one instruction -----------------------------------------------------------------

    def env(self, state: _State) -> dict[str, str]:
        """What `$NAME` expands to: the stage's args, then its Env (which wins)."""
        found = {k: v for k, v in state.args.items() if v is not None}
        found.update(e.split("=", 1) for e in state.config.env or [] if "=" in e)
        return found

    def arg_pairs(self, ins: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        found = []
        for word in expand_words(ins.rest, env, "\\"):
            name, eq, value = word.partition("=")
            if not name:
                raise error(ins.line, "ARG names can not be blank")
            found.append((name, value if eq else None))
        return found

    async def dispatch(self, ins: Instruction, state: _State) -> None:
        kw = ins.keyword
        env = self.env(state)
        if kw in METADATA:
            config, created_by = steps.apply(ins, state.config, env, state.escape, state.cmd_set)
            if kw == "CMD":
                state.cmd_set = True
            await self.commit(state, config, created_by)
        elif kw == "MAINTAINER":
            state.author = expand(ins.rest, env, state.escape)
            await self.commit(state, state.config, steps.nop(state.config, "MAINTAINER " + state.author))
        elif kw == "ARG":
            words = []
            for name, default in self.arg_pairs(ins, env):
                given = self.options.buildargs.get(name)
                if name in self.options.buildargs:
                    self.consumed.add(name)
                value = given if given is not None else default if default is not None else self.global_args.get(name)
                state.args[name] = value
                words.append(name + (f"={default}" if default is not None else ""))
            await self.commit(state, state.config, steps.nop(state.config, "ARG " + " ".join(words)))
        elif kw == "RUN":
            await self.run(ins, state)
        elif kw in ("COPY", "ADD"):
            await self.copy(ins, state)
        elif kw == "WORKDIR":
            await self.workdir(ins, state, env)
        else:
            raise error(ins.line, f"unknown instruction: {kw}")

    def cached(self, key: str) -> str | None:
        if self.options.nocache:
            return None
        allowed = self.cache_from
        return self.b.cache.get(key, lambda i: i in self.b.images.store.images and (allowed is None or i in allowed))

    async def use_cache(self, state: _State, key: str, created_by: str, config: ImageRuntimeConfig) -> bool:
        hit = self.cached(key)
        if hit is None and self.cache_sources and not self.options.nocache:
            async with self.b.images.lock:
                hit = await trio.to_thread.run_sync(self.from_sources, state.image, created_by, config)
            if hit is not None:
                await trio.to_thread.run_sync(self.b.cache.put, key, hit)
                self.cache_from.add(hit)
        if hit is None:
            return False
        state.image = self.b.images.store.images[hit]
        state.config = state.image.config.config
        await self.say(" ---> Using cache\n")
        await self.say(f" ---> {short(hit)}\n")
        return True

    def from_sources(self, parent: Image, created_by: str, config: ImageRuntimeConfig) -> str | None:
        """A step's image made from a `--cache-from` image's history, as dockerd's image
        cache does for images that came without their build's parents (loaded, pulled):
        an image whose history and layers begin as `parent`'s and whose next entry is this
        step. Its last step is that image itself; an earlier one, a new image of
        `parent` with that entry and its layer (already stored: the same chain)."""
        before, below = parent.config.history, parent.config.rootfs.diff_ids
        n = len(before)
        for source in self.cache_sources:
            history, diff_ids = source.config.history, source.config.rootfs.diff_ids
            if len(history) <= n or history[n].created_by != created_by or history[:n] != before \
                    or diff_ids[:len(below)] != below:
                continue
            if len(history) == n + 1:
                return source.id
            layers = list(below)
            if not history[n].empty_layer:
                layers.append(diff_ids[sum(not h.empty_layer for h in before)])
            self.cache_sources = [source]  # as dockerd: the rest of the build follows this one
            return self.b.images.store.add_image(ImageConfig(
                architecture=source.config.architecture, os=source.config.os, created=history[n].created,
                config=config, rootfs=RootFS(diff_ids=layers), history=[*before, history[n]],
                author=source.config.author, parent=parent.id)).id
        return None

    async def store(self, state: _State, layer: Path | None, config: ImageRuntimeConfig, created_by: str,
                    key: str) -> None:
        history = HistoryEntry(created=timefmt.now(), created_by=created_by, empty_layer=layer is None)
        images = self.b.images
        async with images.lock:
            image = await trio.to_thread.run_sync(store_image, images.store, state.image, layer, config, history,
                                                  state.author, state.image.id)
        await trio.to_thread.run_sync(self.b.cache.put, key, image.id)
        state.image, state.config = image, config

    async def commit(self, state: _State, config: ImageRuntimeConfig, created_by: str) -> None:
        """A metadata step: a new config, no layer."""
        key = cache.key(state.image.id, created_by, config)
        if await self.use_cache(state, key, created_by, config):
            return
        async with self.intermediate(state, config, created_by):
            await self.store(state, None, config, created_by, key)
        await self.say(f" ---> {short(state.image.id)}\n")

    @asynccontextmanager
    async def intermediate(self, state: _State, config: ImageRuntimeConfig, created_by: str) -> AsyncIterator[None]:
        """The container Docker's classic builder makes for a step that runs nothing
        (metadata, WORKDIR) and commits: never started, it shows as ` ---> Running in
        <id>` and `Removing intermediate container <id>`, and publishes its `create` and
        `destroy` events, as dockerd's do. (COPY and ADD print neither, as in Docker.)
        FROM scratch has no image to make it from, as nothing is yet built."""
        c = None
        if state.image.id:
            shell = steps.shell_of(state.config)
            req = CreateRequest(image=state.image.id, cmd=[*shell, created_by.removeprefix(" ".join(shell) + " ")],
                                entrypoint=[""], env=config.env, labels=config.labels,
                                host_config=HostConfig(network_mode="none"))
            c = await self.b.containers.create(req)
            await self.say(f" ---> Running in {c.id[:12]}\n")
        try:
            yield
        except BaseException:
            if c is not None:
                with trio.CancelScope(shield=True):
                    await self.b.containers.remove(c.id, force=True, volumes=True)
            raise
        if c is not None and self.options.rm:
            await self.b.containers.remove(c.id, force=True, volumes=True)
            await self.say(f"Removing intermediate container {c.id[:12]}\n")

    # --- RUN ---------------------------------------------------------------------------

    def build_args(self, state: _State) -> list[str]:
        """`K=V` of the build args RUN sees: declared ones with a value, and the proxy
        args given, unless ENV set the same name."""
        env_names = {e.partition("=")[0] for e in state.config.env or []}
        found = {k: v for k, v in state.args.items() if v is not None}
        found.update({k: v for k, v in self.options.buildargs.items() if k in steps.PROXY_ARGS and v is not None})
        for name in self.options.buildargs:
            if name in steps.PROXY_ARGS:
                self.consumed.add(name)
        return [f"{k}={v}" for k, v in sorted(found.items()) if k not in env_names]

    async def run(self, ins: Instruction, state: _State) -> None:
        cmd = steps.command(ins, state.config)
        args = self.build_args(state)
        shown = [f"{k}={v}" for k, v in sorted(state.args.items()) if v is not None
                 and f"{k}={v}" in args]  # history names declared args only
        created_by = " ".join(([f"|{len(shown)}", *shown] if shown else []) + cmd)
        key = cache.key(state.image.id, created_by, state.config)
        if await self.use_cache(state, key, created_by, state.config):
            return
        o = self.options
        hc = HostConfig(network_mode=o.network_mode or "default", extra_hosts=o.extra_hosts or None,
                        shm_size=o.shm_size, memory=o.memory, memory_swap=o.memswap, cpu_shares=o.cpu_shares,
                        cpu_period=o.cpu_period, cpu_quota=o.cpu_quota, cpuset_cpus=o.cpuset_cpus,
                        cpuset_mems=o.cpuset_mems, ulimits=o.ulimits)
        req = CreateRequest(image=state.image.id, cmd=cmd, entrypoint=[""], env=args or None, attach_stdout=True,
                            attach_stderr=True, host_config=hc)
        service = self.b.containers
        c = await service.create(req)
        try:
            await self.say(f" ---> Running in {c.id[:12]}\n")
            async with service.attach(c.id) as (_, output):
                await service.start(c.id)
                text = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
                async for batch in output:
                    for stream, data in batch:  # stderr in red, as dockerd marks it for the CLI
                        if said := text[stream].decode(data):
                            await self.say(f"\x1b[91m{said}\x1b[0m" if stream == "stderr" else said)
            code = await service.wait(c.id)
            if code != 0:
                raise StepFailed(f"The command '{' '.join(cmd)}' returned a non-zero code: {code}", code)
            layer = self.work / f"layer-{self.step}.tar"
            async with self.b.files.locked(c.id) as locked:
                lowers = self.b.files.lower_dirs(locked)
                count = await trio.to_thread.run_sync(write_layer, locked.upper, lowers, layer)
            await self.store(state, layer if count else None, state.config, created_by, key)
            layer.unlink(missing_ok=True)
        except BaseException as exc:
            # as Docker, a failed step's container stays for a look, unless `forcerm`; a
            # cancelled build (the client went away) leaves nothing running behind
            if o.forcerm or not isinstance(exc, EngineError):
                with trio.CancelScope(shield=True):
                    await service.remove(c.id, force=True, volumes=True)
            raise
        if o.rm:
            await service.remove(c.id, force=True, volumes=True)
            await self.say(f"Removing intermediate container {c.id[:12]}\n")
        await self.say(f" ---> {short(state.image.id)}\n")

    # --- COPY, ADD, WORKDIR: on the image's layers mounted for the step -----------------------

    @asynccontextmanager
    async def mounted(self, image: Image) -> AsyncIterator[tuple[Path, Path, list[Path]]]:
        """(root, upper dir, lower dirs) of an overlay of `image` for this step."""
        self.mounts += 1
        base = self.work / f"mount-{self.mounts}"
        upper, merged = base / "upper", base / "merged"
        store = self.b.images.store
        lowers = [store.layer_dir(chain) for chain in store.layer_chain(image)]
        if not lowers:
            upper.mkdir(parents=True)
            yield upper, upper, lowers
            return
        with trio.CancelScope(shield=True):
            # volatile: what the step writes is read into a layer of its own, never kept here
            await trio.to_thread.run_sync(functools.partial(rootfs.mount_overlay, lowers, upper, base / "work",
                                                            merged, volatile=True))
        try:
            yield merged, upper, lowers
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(functools.partial(rootfs.unmount, merged, own_fs=True))

    def resolve(self, image: Image, path: str) -> tuple[str, os.stat_result | None]:
        """Where `path` leads in `image`, every symlink followed inside it (`ImageLayers.resolve`);
        a non-directory on the way is dockerd's `Cannot mkdir` error."""
        if not image.id:
            return posixpath.normpath("/" + path), None
        store = self.b.images.store
        with fsdiff.ImageLayers([store.layer_dir(c) for c in store.layer_chain(image)][::-1]) as layers:
            try:
                return layers.resolve(path)
            except NotADirectoryError as exc:
                raise BadRequest(f"Cannot mkdir: {exc.filename} is not a directory") from None
            except OSError as exc:  # ELOOP: links that lead round in a circle
                raise BadRequest(f"{path}: {exc.strerror}") from None

    async def commit_layer(self, state: _State, config: ImageRuntimeConfig, created_by: str, key: str,
                           change, say: bool = True) -> None:
        """Mount the current image, `change(root_fd)` in a thread, store the changes as a layer."""
        layer = self.work / f"layer-{self.step}.tar"
        async with self.mounted(state.image) as (root, upper, lowers):
            def work() -> int:
                fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    change(fd)
                finally:
                    os.close(fd)
                return 0
            await trio.to_thread.run_sync(work)
        count = await trio.to_thread.run_sync(write_layer, upper, lowers, layer)
        await self.store(state, layer if count else None, config, created_by, key)
        layer.unlink(missing_ok=True)
        if say:
            await self.say(f" ---> {short(state.image.id)}\n")

    async def workdir(self, ins: Instruction, state: _State, env: dict[str, str]) -> None:
        path = posixpath.normpath(posixpath.join(state.config.working_dir or "/", expand(ins.rest, env, state.escape)))
        config = msgspec.structs.replace(state.config, working_dir=path)
        created_by = steps.nop(state.config, "WORKDIR " + path, 1)
        key = cache.key(state.image.id, created_by, config)
        if await self.use_cache(state, key, created_by, config):
            return
        _, found = await trio.to_thread.run_sync(self.resolve, state.image, path)
        async with self.intermediate(state, config, created_by):
            if found is not None and stat.S_ISDIR(found.st_mode):
                await self.store(state, None, config, created_by, key)  # already there: no layer
            else:
                await self.commit_layer(state, config, created_by, key, lambda fd: make_dirs(fd, path), say=False)
        await self.say(f" ---> {short(state.image.id)}\n")

    async def copy(self, ins: Instruction, state: _State) -> None:
        kw, env, escape = ins.keyword, self.env(state), state.escape
        words = [expand(w, env, escape) for w in ins.json] if ins.json is not None \
            else expand_words(ins.rest, env, escape)
        sources, given = words[:-1], words[-1]
        urls = [s for s in sources if remote.is_url(s)]
        for url in urls:
            remote.check(kw, url, ins.line)
        if urls and (len(urls) != len(sources) or ins.flags.get("from")):
            raise error(ins.line, f"{kw}: URLs and other sources in one instruction are not supported")
        chown = expand(ins.flags.get("chown", ""), env, escape)
        chmod = None
        if ins.flags.get("chmod"):
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise error(ins.line, f"invalid --chmod {ins.flags['chmod']!r}: an octal mode is needed") from None
        dest = posixpath.join(state.config.working_dir or "/", given) if not given.startswith("/") else given
        copy = _Copy(kw, given, dest, chown, chmod)
        source = ins.flags.get("from", "")
        if urls:  # fetched into a directory of their own, taken from there (never unpacked)
            fetched = self.work / f"url-{self.step}"
            names = [await trio.to_thread.run_sync(remote.fetch, url, fetched) for url in urls]
            await self.copy_from(copy, state, fetched, names, "url", extract=False)
        elif source:
            source = expand(source, env, escape)
            async with self.mounted(self.source_image(source)) as (root, _, _):
                # as dockerd: from a stage or an image, files keep their owners unless --chown
                await self.copy_from(copy, state, root, sources, f"from:{source}", keep_owners=not chown)
        else:
            await self.copy_from(copy, state, self.context, sources, "")

    def source_image(self, name: str) -> Image:
        """COPY --from: a stage (by name or index), else an image."""
        index = self.stage.earlier.get(name.lower())
        if index is not None and index in self.results:
            return self.results[index]
        try:
            return self.b.images.resolve(name)
        except NotFound:
            raise NotFound(f"COPY --from={name}: no stage or image of that name on this host") from None

    async def copy_from(self, copy: _Copy, state: _State, root: Path, sources: list[str], origin: str,
                        extract: bool = True, keep_owners: bool = False) -> None:
        """COPY or ADD `sources` (under `root`) as dockerd's classic builder does: the
        destination is where its symlinks lead in the image (a link to a directory is
        that directory, a link to a file is written through); files and the directories
        made for them are owned by --chown's user (root without it), with setuid and
        setgid dropped as a chown drops them, or keep their owners (`keep_owners`);
        archives that ADD unpacks keep their members' owners and modes."""
        kw, dest = copy.kw, copy.dest
        sources = await trio.to_thread.run_sync(context.expand_sources, root, sources)
        if len(sources) > 1 and not dest.endswith("/"):
            raise BadRequest(f"When using {kw} with more than one source file, the destination must be a "
                             "directory and end with a /")
        resolved, found = await trio.to_thread.run_sync(self.resolve, state.image, dest)
        if dest.endswith("/") and found is not None and not stat.S_ISDIR(found.st_mode):
            raise BadRequest(f"Cannot mkdir: {resolved} is not a directory")
        dest_is_dir = dest.endswith("/") or (found is not None and stat.S_ISDIR(found.st_mode))
        archives = []
        if kw == "ADD" and extract:
            for src in sources:
                host, st = context.find(root, src, kw)
                if stat.S_ISREG(st.st_mode) and await trio.to_thread.run_sync(context.is_archive, Path(host)):
                    archives.append((src, host))
        plain = [s for s in sources if s not in {a for a, _ in archives}]
        entries = await trio.to_thread.run_sync(context.plan, root, plain, dest_is_dir or bool(archives),
                                                posixpath.basename(resolved), kw)
        kind = "file"
        if len(plain) == 1 and stat.S_ISDIR(context.find(root, plain[0], kw)[1].st_mode):
            kind = "dir"
        memo = self.b.sums if not origin and not self.options.nocache else None
        sums = [await trio.to_thread.run_sync(context.checksum, entries, copy.chmod, kind, memo, self.context,
                                              self.started_ns, keep_owners)] if plain else []
        for _, host in archives:
            sums.append("file:" + await trio.to_thread.run_sync(_file_sha256, host))
        checksum = sums[0] if len(sources) == 1 else "multi:" + hashlib.sha256(" ".join(sums).encode()).hexdigest()
        chown_text = f"--chown={copy.chown}" if copy.chown else ""
        created_by = steps.nop(state.config, f"{kw} {chown_text}{checksum} in {copy.given} ", 1)
        key = cache.key(state.image.id, created_by, state.config, f"{origin} {copy.chown} {copy.chmod}")
        if await self.use_cache(state, key, created_by, state.config):
            return
        # a directory copies its contents into the destination, made if missing
        whole_dir = dest_is_dir or archives or kind == "dir"
        target = resolved if whole_dir else posixpath.dirname(resolved)
        packed = self.work / f"copy-{self.step}.tar"

        def change(fd: int) -> None:
            owner = None if keep_owners else \
                bundle.chown_owner(inroot.InRootPath(fd), copy.chown) if copy.chown else (0, 0)
            # as dockerd: a directory's copy owns the directory it fills if it made it;
            # a file's owns every directory made on its way; an archive's, none
            make_dirs(fd, target, None if not plain else owner, only_last=kind == "dir")
            with inroot.resolve(fd, target) as where:
                into = where.path
            if plain:
                context.pack(entries, packed, copy.chmod, owner)
                with open(packed, "rb") as f:
                    unpack.unpack(io.BufferedReader(f, 1 << 20), fd, into, unpack.copy_policy())
            for _, host in archives:
                with open(host, "rb") as f:
                    unpack.unpack(context.decompressed(io.BufferedReader(f, 1 << 20)), fd, into, unpack.copy_policy())

        await self.commit_layer(state, state.config, created_by, key, change)


class _Copy(msgspec.Struct, frozen=True):
    """What one COPY or ADD asks, its sources aside."""

    kw: str
    given: str  # the destination as written (history shows it so)
    dest: str  # …and taken from the working directory
    chown: str
    chmod: int | None


def make_dirs(root_fd: int, path: str, owner: tuple[int, int] | None = None, only_last: bool = False) -> None:
    """Make the missing directories of `path` inside the root (0755, symlinks on the way
    followed inside it), owned by `owner` (all of them, or `only_last`); a non-directory
    on the way is dockerd's `Cannot mkdir` error."""
    names = inroot.components(path)
    for count in range(1, len(names) + 1):
        sub = "/" + "/".join(names[:count])
        try:
            found = inroot.resolve(root_fd, sub, missing_ok=True)
        except NotADirectoryError:
            raise BadRequest(f"Cannot mkdir: {sub} is not a directory") from None
        with found:
            if found.stat is None:
                os.mkdir(found.name, 0o755, dir_fd=found.dir_fd)
                if owner and owner != (0, 0) and (count == len(names) or not only_last):
                    os.chown(found.name, *owner, dir_fd=found.dir_fd, follow_symlinks=False)
            elif not stat.S_ISDIR(found.stat.st_mode):
                raise BadRequest(f"Cannot mkdir: {sub} is not a directory")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _label_value(value: str) -> str:
    return value if value and not any(c.isspace() or c in "\"'\\$" for c in value) else \
        '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
