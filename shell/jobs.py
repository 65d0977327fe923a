"""Transfers the shell runs in the background: `save -o`, `export -o`, `load -i` and
`import FILE` move their bytes while the prompt stays usable, and so do `pull` and
`push` given a trailing `&` (their layers' bytes summed in the toolbar).

A thread of its own runs an asyncio loop for them. The local file side is aiofiles; the
daemon side is the same transport the one-shot commands use, its blocking calls moved
to worker threads, so there is one HTTP client in berth, not two. Progress shows in the
toolbar; the outcome is printed above the prompt when a transfer ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
import time
from collections.abc import Callable

import aiofiles

from . import fastjson, progress
from .commands import registry
from .render import size
from .transfer import amount_and_rate, landing
from .transport import Client, ConnectError, DaemonError, ref


class Job:
    """One transfer: what it is, how far it got, how it ended."""

    def __init__(self, number: int, label: str, total: int | None):
        self.number, self.label, self.total = number, label, total
        self.done = 0
        self.started = time.monotonic()
        self.result: str | None = None  # set when it ended: the line to show
        self.failed = False

    def line(self) -> str:
        percent = f" {100 * self.done // self.total}%" if self.total else ""
        return f"[{self.number}] {self.label}{percent} {amount_and_rate(self.done, self.total, time.monotonic() - self.started)}"


class Jobs:
    def __init__(self, client: Client, on_change: Callable[[], None], report: Callable[[str, bool], None]):
        self.client = client
        self.on_change = on_change  # redraw the toolbar
        self.report = report  # (line, failed): print the outcome above the prompt
        self.running: dict[int, Job] = {}
        self._numbers = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="berth-jobs", daemon=True).start()

    def toolbar(self) -> str:
        return "   ".join(job.line() for job in self.running.values())

    # --- what the shell hands over -------------------------------------------------

    def save(self, images: list[str], path: str) -> Job:
        return self._start(f"save → {path}", None, self._download("GET", "/images/get", {"names": images}, path))

    def export(self, container: str, path: str) -> Job:
        return self._start(f"export → {path}", None,
                           self._download("GET", f"/containers/{container}/export", None, path))

    def load(self, path: str, quiet: bool) -> Job:
        return self._start(f"load ← {path}", _size(path),
                           self._upload(path, "/images/load", {"quiet": int(quiet)}))

    def import_(self, path: str, query: dict) -> Job:
        return self._start(f"import ← {path}", _size(path), self._upload(path, "/images/create", query))

    def pull(self, name: str) -> Job:
        repo, tag = registry.split_name(name)
        return self._start(f"pull {name}", None, self._progress("/images/create", {"fromImage": repo, "tag": tag},
                                                                 registry.registry_of(repo)))

    def push(self, name: str) -> Job:
        repo, tag = registry.split_name(name)
        return self._start(f"push {name}", None, self._progress(f"/images/{ref(repo)}/push", {"tag": tag},
                                                                 registry.registry_of(repo)))

    # --- the work ---------------------------------------------------------------------

    def _start(self, label: str, total: int | None, work) -> Job:
        job = Job(next(self._numbers), label, total)
        self.running[job.number] = job
        asyncio.run_coroutine_threadsafe(self._run(job, work), self._loop)
        self.on_change()
        return job

    def abandon(self, timeout: float = 5.0) -> None:
        """Cancel every running transfer and wait (up to `timeout`) for each to clean up:
        a download's unfinished file is removed, an upload's connection closed (the
        daemon stores nothing of a load or import cut short)."""
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(timeout)
        except concurrent.futures.TimeoutError:
            pass  # leaving anyway: what is left dies with the process

    async def _run(self, job: Job, work) -> None:
        try:
            job.result = await work(job)
        except (ConnectError, DaemonError, OSError) as exc:
            job.failed = True
            job.result = f"{getattr(exc, 'message', None) or getattr(exc, 'strerror', None) or exc}"
        del self.running[job.number]
        self.report(f"[{job.number}] {job.label}: {job.result}", job.failed)
        self.on_change()

    def _download(self, method: str, endpoint: str, query: dict | None, path: str):
        async def work(job: Job) -> str:
            resp = await asyncio.to_thread(self.client.stream, method, endpoint, query)
            try:
                with landing(path) as temp:  # renamed over `path` once whole: never a truncated archive
                    async with aiofiles.open(temp, "xb") as out:
                        while chunk := await asyncio.to_thread(resp.read1, 1 << 20):
                            await out.write(chunk)
                            job.done += len(chunk)
                            self.on_change()
            finally:
                resp.close()
            return f"done, {size(job.done)}"
        return work

    def _progress(self, endpoint: str, query: dict, server: str):
        """A pull or push: its progress stream read line by line, the bytes of its
        layers summed into the job; the stream's last status is the outcome."""
        async def work(job: Job) -> str:
            headers = await asyncio.to_thread(registry.auth_header, server)
            resp = await asyncio.to_thread(self.client.stream, "POST", endpoint, query, None, headers)
            tally = progress.Tally()

            def follow() -> None:  # in a worker thread: the stream's reads block
                for message in registry.stream_messages(resp):
                    tally.add(message)
                    job.done, job.total = tally.done, tally.total
                    self.on_change()

            try:
                await asyncio.to_thread(follow)
            finally:
                resp.close()
            return tally.last
        return work

    def _upload(self, path: str, endpoint: str, query: dict):
        loop, on_change = self._loop, self.on_change

        class Body:
            """The file as the transport reads a body (from its worker thread), each
            read done by aiofiles on the jobs' loop."""

            def __init__(self, job: Job, file):
                self.job, self.file = job, file

            def read(self, n: int) -> bytes:
                data = asyncio.run_coroutine_threadsafe(self.file.read(n), loop).result()
                self.job.done += len(data)
                on_change()
                return data

        async def work(job: Job) -> str:
            async with aiofiles.open(path, "rb") as source:
                resp = await asyncio.to_thread(self.client.stream, "POST", endpoint, query, Body(job, source),
                                               {"Content-Type": "application/x-tar"})
                data = await asyncio.to_thread(resp.read)
            lines = [fastjson.loads(line) for line in data.splitlines() if line.strip()]
            for message in lines:
                if "error" in message:
                    raise DaemonError(400, message["error"])
            said = [m.get("stream", "").strip() or m.get("status", "") for m in lines]
            return "; ".join(s for s in said if s) or f"done, {size(job.done)}"
        return work


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None
