"""Things that exist in the fuzzed daemon, so generated requests can name them.

A name drawn from the schema almost never names a real container, so most requests would
end in a 404 and never reach the code behind it. The pools hold real references (seed
containers in each state, execs, networks, volumes, images, plugins); the fuzzer puts one
in place of a generated path parameter or body field about half the time.

`Pools.tend()` runs between requests: it puts back seeds the fuzz requests removed,
stopped or paused, and keeps the daemon's population bounded (containers, networks,
volumes and images a run creates are removed once there are too many), so a long run
measures the API, not a full disk.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.api import Api

SEED_LABEL = "berth.fuzz.seed"
# PID 1 of a seed ends on SIGTERM at once (a shell ignores it otherwise), so stop is quick
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
KINDS = ("running", "created", "exited", "paused")
MAX_CONTAINERS, MAX_NETWORKS, MAX_VOLUMES, MAX_IMAGES = 40, 30, 60, 40


class Pools:
    def __init__(self, api: Api, on_error):
        self.api = api
        self.on_error = on_error  # called with (what, status or exception, body) for a 5xx or a failure here
        self.containers: dict[str, list[tuple[str, str]]] = {kind: [] for kind in KINDS}  # kind → (id, name)
        self.execs: list[str] = []
        self.networks: list[tuple[str, str]] = []
        self.volumes: list[str] = []
        self.images: list[str] = []  # references to read
        self.deletable_images: list[str] = []  # tags of busybox the fuzzer may remove
        self.plugins: list[str] = []
        self.saved_busybox = b""  # `docker save busybox`, a valid body for /images/load
        self._serial = 0

    # --- talking to the daemon -------------------------------------------------------

    def _call(self, method: str, path: str, json_body=None, body: bytes | None = None, **query):
        target = path + ("?" + urlencode(query, doseq=True) if query else "")
        try:
            if json_body is not None:
                reply = self.api.request(method, target, json_body=json_body)
            else:
                reply = self.api.request(method, target, body=body)
        except OSError as exc:
            self.on_error(f"{method} {target}", exc, b"")
            return None
        if reply.status >= 500:
            self.on_error(f"{method} {target}", reply.status, reply.body)
        return reply

    def _json(self, path: str, **query):
        reply = self._call("GET", path, **query)
        return reply.json() if reply is not None and reply.status == 200 else []

    def _name(self, stem: str) -> str:
        self._serial += 1
        return f"fz-{stem}-{self._serial}"

    # --- seeding and tending ---------------------------------------------------------

    def start(self) -> None:
        reply = self._call("GET", "/images/get", names="busybox")
        self.saved_busybox = reply.body if reply is not None and reply.status == 200 else b""
        self.tend()

    def tend(self) -> None:
        self._ensure_busybox()
        self._tend_containers()
        self._tend_others()

    def _ensure_busybox(self) -> None:
        reply = self._call("GET", "/images/busybox/json")
        if reply is not None and reply.status == 404:  # a fuzz request removed it: import it again
            from engine.images import busybox

            with tempfile.TemporaryDirectory() as tmp:
                tar = Path(tmp) / "rootfs.tar"
                busybox.write_rootfs_tar(busybox.find_busybox(), tar)
                self._call("POST", "/images/create", body=tar.read_bytes(), fromSrc="-", repo="busybox",
                           tag="latest", changes=busybox.CHANGES)
        image = self._json("/images/busybox/json")
        self.images = ["busybox", "busybox:latest"] + ([image["Id"], image["Id"][7:19]] if image else [])
        tags = [t for i in self._json("/images/json") for t in (i.get("RepoTags") or []) if t.startswith("fz-img")]
        while len(tags) < 2:
            tag = self._name("img")
            self._call("POST", "/images/busybox/tag", repo="fz-img", tag=tag)
            tags.append(f"fz-img:{tag}")
        self.deletable_images = tags

    def _create_seed(self, kind: str) -> None:
        name = self._name(kind)
        config = {"Image": "busybox", "Cmd": ["true"] if kind == "exited" else LOOP, "Labels": {SEED_LABEL: kind},
                  "HostConfig": {"NetworkMode": random.choice(["none", "bridge"])}}
        reply = self._call("POST", "/containers/create", json_body=config, name=name)
        if reply is None or reply.status != 201:
            return
        cid = reply.json()["Id"]
        if kind != "created":
            self._call("POST", f"/containers/{cid}/start")
        if kind == "exited":
            self._call("POST", f"/containers/{cid}/wait")
        if kind == "paused":
            self._call("POST", f"/containers/{cid}/pause")

    def _seeds(self, listed: list[dict]) -> dict[str, list[tuple[str, str]]]:
        """The seeds still in the state they were made for (an exited seed may also be dead)."""
        seeds: dict[str, list[tuple[str, str]]] = {kind: [] for kind in KINDS}
        for c in listed:
            kind, state = (c.get("Labels") or {}).get(SEED_LABEL), c.get("State")
            if kind in seeds and (state == kind or (kind == "exited" and state == "dead")):
                seeds[kind].append((c["Id"], (c.get("Names") or ["/"])[0].lstrip("/")))
        return seeds

    def _tend_containers(self) -> None:
        listed = self._json("/containers/json", all="1")
        seeds = self._seeds(listed)
        if len(listed) > MAX_CONTAINERS:  # the oldest of what fuzz requests made, and seeds gone astray
            kept = {cid for found in seeds.values() for cid, _ in found}
            others = sorted((c for c in listed if c["Id"] not in kept), key=lambda c: c.get("Created", 0))
            for c in others[: len(listed) - MAX_CONTAINERS // 2]:
                self._call("DELETE", f"/containers/{c['Id']}", force="1", v="1")
        wanted = {"running": 2, "created": 1, "exited": 1, "paused": 1}
        missing = [kind for kind in KINDS for _ in range(wanted[kind] - len(seeds[kind]))]
        for kind in missing:
            self._create_seed(kind)
        self.containers = self._seeds(self._json("/containers/json", all="1")) if missing else seeds
        self._tend_execs()

    def _tend_execs(self) -> None:
        running = self.containers["running"]
        if not running:
            return
        for cmd in (["true"], LOOP):
            cid = random.choice(running)[0]
            reply = self._call("POST", f"/containers/{cid}/exec", json_body={"Cmd": cmd, "AttachStdout": False})
            if reply is not None and reply.status == 201:
                self.execs.append(reply.json()["Id"])
        self.execs = self.execs[-6:]

    def _tend_others(self) -> None:
        networks = self._json("/networks")
        if len(networks) > MAX_NETWORKS:
            self._call("POST", "/networks/prune")
            networks = self._json("/networks")
        ours = [(n["Id"], n["Name"]) for n in networks if n["Name"].startswith("fz-net")]
        for _ in range(2 - len(ours)):
            name = self._name("net")
            reply = self._call("POST", "/networks/create", json_body={"Name": name})
            if reply is not None and reply.status == 201:
                ours.append((reply.json()["Id"], name))
        self.networks = ours + [(n["Id"], n["Name"]) for n in networks if n["Name"] in ("bridge", "none", "host")]

        volumes = (self._json("/volumes") or {}).get("Volumes") or []
        if len(volumes) > MAX_VOLUMES:
            self._call("POST", "/volumes/prune")
            volumes = (self._json("/volumes") or {}).get("Volumes") or []
        ours_v = [v["Name"] for v in volumes if v["Name"].startswith("fz-vol")]
        for _ in range(2 - len(ours_v)):
            name = self._name("vol")
            self._call("POST", "/volumes/create", json_body={"Name": name})
            ours_v.append(name)
        self.volumes = ours_v

        images = self._json("/images/json")
        if len(images) > MAX_IMAGES:
            keep = {"busybox:latest"}
            for image in images:
                if not keep & set(image.get("RepoTags") or []):
                    self._call("DELETE", f"/images/{image['Id']}", force="1")
        self.plugins = [p.get("Name", "") for p in self._json("/plugins")] or ["healthcheck"]

    def clear(self) -> None:
        """Remove what the run made (before the daemon stops, so its leak check is fair)."""
        for c in self._json("/containers/json", all="1"):
            self._call("DELETE", f"/containers/{c['Id']}", force="1", v="1")
        self._call("POST", "/networks/prune")
        self._call("POST", "/volumes/prune")

    # --- drawing references ----------------------------------------------------------

    def container(self, rnd: random.Random) -> str:
        kinds = [k for k in KINDS if self.containers[k]]
        if not kinds:
            return "fz-none"
        cid, name = rnd.choice(self.containers[rnd.choice(kinds)])
        return rnd.choice([cid, cid[:12], name, name])

    def reference(self, path: str, method: str, rnd: random.Random) -> str | None:
        """A real reference for the path parameter of `path`, or None (keep the generated one)."""
        if path.startswith("/containers/{id}"):
            return self.container(rnd)
        if path.startswith("/exec/{id}") and self.execs:
            return rnd.choice(self.execs)
        if path.startswith("/networks/{id}") and self.networks:
            nid, name = rnd.choice(self.networks)
            return rnd.choice([nid, nid[:12], name])
        if path.startswith("/images/{name}"):
            pool = self.deletable_images if method == "DELETE" else self.images + self.deletable_images
            return rnd.choice(pool) if pool else None
        if path.startswith("/volumes/{name}") and self.volumes:
            return rnd.choice(self.volumes)
        if path.startswith("/plugins/{name}") and self.plugins:
            return rnd.choice(self.plugins)
        return None

    def network(self, rnd: random.Random) -> str:
        return rnd.choice(self.networks)[1] if self.networks else "bridge"


def random_tar(rnd: random.Random) -> bytes:
    """A small valid tar of directories and files with plain relative names (no `..`, no
    links), so that a write it causes stays where the daemon puts it."""
    out = io.BytesIO()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
    with tarfile.open(fileobj=out, mode="w", format=rnd.choice([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])) as tar:
        for _ in range(rnd.randint(0, 4)):
            parts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(rnd.randint(1, 3))]
            name = "/".join(p if p.strip(".") else "x" + p for p in parts)
            info = tarfile.TarInfo(name)
            info.mtime = rnd.randint(0, 2**33)
            info.mode = rnd.choice([0o644, 0o755, 0o600, 0o4755, 0o000])
            if rnd.random() < 0.3:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = (json.dumps({"fuzz": rnd.random()}) if name.endswith("json") else "x" * rnd.randint(0, 300)).encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def quote_ref(ref: str) -> str:
    return quote(ref, safe=":@")
