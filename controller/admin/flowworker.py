"""Flow files sent to the admin API are parsed and validated in a worker process, off the
controller's event loop (issue 13 item 12).

Measured with a 10,000-node flow (about 1 s to load), the longest event-loop stall: on the
loop, the whole second; in a thread, 150-200 ms (the loader builds about a million objects
and the garbage collector's full passes hold the GIL); in a worker process, about 10 ms. So:
one worker process, started on first use and kept, one load at a time, :data:`MAX_WAITING`
requests waiting at most, a :data:`DEADLINE`; a thread when no process can be started.

The worker sends back the LoadResult without its YAML node tree (only the file order):
problems, the flow set and the sources, which is what validate, publish and simulate use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from controller.core.flows import loader

log = logging.getLogger("callctl.admin")

MAX_WAITING = 4
"""Flow loads waiting for the worker; more get 503 (each holds up to 1 MiB)."""
DEADLINE = 30.0
"""Seconds one load may take (the limits keep it to a few); then the worker is killed."""


class WorkerBusy(Exception):
    """Too many loads waiting, the deadline passed, or the worker died (HTTP 503)."""


def _watch_parent(parent: int) -> None:
    """In the worker: exit when the controller is gone (kill -9 leaves no orphan)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def load_texts(texts: dict[str, str]) -> loader.LoadResult:
    """In the worker: load, and drop the node tree (big to send, unused by the API)."""
    res = loader.load_texts(texts)
    smap = loader.SourceMap()
    smap.files = list(res.source_map.files) if res.source_map else list(texts)
    return replace(res, source_map=smap)


class FlowWorker:
    def __init__(self, *, deadline: float = DEADLINE, max_waiting: int = MAX_WAITING,
                 process: bool = True) -> None:
        self.deadline = deadline
        self.max_waiting = max_waiting
        self.process = process
        self._pool: Executor | None = None
        self._lock = asyncio.Lock()
        self._waiting = 0

    async def load(self, texts: dict[str, str]) -> loader.LoadResult:
        """``loader.load_texts(texts)`` off the loop. Raises WorkerBusy."""
        if self._waiting >= self.max_waiting:
            raise WorkerBusy(f"{self._waiting} flow loads are waiting already: try again")
        self._waiting += 1
        try:
            async with self._lock:
                return await self._run(texts)
        finally:
            self._waiting -= 1

    async def _run(self, texts: dict[str, str]) -> loader.LoadResult:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):  # a worker that died (OOM killer...) is replaced once
            fut = loop.run_in_executor(self._executor(), load_texts, texts)
            try:
                return await asyncio.wait_for(fut, self.deadline)
            except TimeoutError:
                self._discard()
                raise WorkerBusy(f"the flow files took longer than {self.deadline:g} s to "
                                 "load: refused") from None
            except BrokenProcessPool:
                self._discard()
                if attempt == 2:
                    raise WorkerBusy("the flow worker process died: try again") from None
                log.warning("admin API: the flow worker process died; starting another")
        raise AssertionError("unreachable")

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.process:
                try:  # spawn: a clean interpreter (fork from an asyncio process is unsafe)
                    self._pool = ProcessPoolExecutor(
                        1, mp_context=multiprocessing.get_context("spawn"),
                        initializer=_watch_parent, initargs=(os.getpid(),))
                except (OSError, NotImplementedError, ImportError) as e:
                    log.warning("admin API: no flow worker process (%s): flows load in a "
                                "thread", e)
                    self.process = False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="callctl-flows")
        return self._pool

    def _discard(self) -> None:
        """Drop the executor; kill its process (a load past the deadline keeps running)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Stop the worker: an idle one exits, a busy one is killed."""
        if self._lock.locked() or self._pool is None:
            self._discard()
            return
        pool, self._pool = self._pool, None
        await asyncio.to_thread(pool.shutdown, True)
