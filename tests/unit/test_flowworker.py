"""The admin API's flow worker (issue 13 item 12): the loader's result from a worker process,
refusals kept, one load at a time with a bounded queue, a deadline, a dead worker replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.admin.flowworker import FlowWorker, WorkerBusy
from controller.core.flows import loader

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"
TEXTS = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))}


def big_flow(n: int) -> str:
    nodes = "".join(f"      n{i}: {{type: message, prompt: beep, next: n{i + 1}}}\n"
                    for i in range(n - 1))
    return ("settings: {timezone: UTC}\nflows:\n  big:\n    dids: [\"+15550100\"]\n"
            f"    entry: n0\n    nodes:\n{nodes}      n{n - 1}: {{type: hangup}}\n")


@pytest.fixture
async def worker() -> FlowWorker:
    w = FlowWorker()
    yield w  # type: ignore[misc]
    await w.close()


async def test_the_worker_process_gives_the_loaders_result(worker: FlowWorker) -> None:
    got = await worker.load(TEXTS)
    want = loader.load_texts(TEXTS)
    assert worker.process and got.ok and got.flowset == want.flowset
    assert got.sources == TEXTS and got.problems == want.problems
    assert got.source_map is not None and got.source_map.files == list(TEXTS)
    pid = next(iter(worker._pool._processes))  # type: ignore[union-attr]
    assert pid != os.getpid()
    bad = await worker.load({"a.yaml": "flows:\n  x: \x00\n"})
    (err,) = bad.refused
    assert (err.file, err.line, err.col, err.code) == ("a.yaml", 2, 6, "control_character")
    assert next(iter(worker._pool._processes)) == pid  # the same worker, kept


async def test_too_many_waiting_loads_are_refused() -> None:
    w = FlowWorker(max_waiting=2)
    try:
        text = {"big.yaml": big_flow(3000)}
        results = await asyncio.gather(*(w.load(text) for _ in range(3)),
                                       return_exceptions=True)
        busy = [r for r in results if isinstance(r, WorkerBusy)]
        assert len(busy) == 1 and "waiting already" in str(busy[0])
        assert all(r.ok for r in results if not isinstance(r, WorkerBusy))  # type: ignore[union-attr]
    finally:
        await w.close()


async def test_a_load_past_the_deadline_is_refused_and_its_worker_killed() -> None:
    w = FlowWorker(deadline=0.05)
    try:
        with pytest.raises(WorkerBusy, match=r"longer than 0\.05 s"):
            await w.load({"big.yaml": big_flow(10_000)})
        assert w._pool is None
        w.deadline = 60
        assert (await w.load(TEXTS)).ok  # a new worker
    finally:
        await w.close()


async def test_a_dead_worker_is_replaced(worker: FlowWorker) -> None:
    assert (await worker.load(TEXTS)).ok
    pid = next(iter(worker._pool._processes))  # type: ignore[union-attr]
    os.kill(pid, signal.SIGKILL)
    assert (await worker.load(TEXTS)).ok
    assert next(iter(worker._pool._processes)) != pid  # type: ignore[union-attr]


async def test_without_a_process_it_loads_in_a_thread() -> None:
    w = FlowWorker(process=False)
    try:
        assert (await w.load(TEXTS)).ok
    finally:
        await w.close()


def test_the_worker_exits_when_the_controller_is_killed() -> None:
    script = ("import asyncio\nfrom controller.admin.flowworker import FlowWorker\n"
              "async def main():\n    w = FlowWorker()\n"
              "    await w.load({'a.yaml': 'settings: {}'})\n"
              "    print(next(iter(w._pool._processes)), flush=True)\n"
              "    await asyncio.sleep(60)\nasyncio.run(main())\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
    finally:
        parent.kill()  # kill -9: no clean-up runs in the controller
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the worker outlived the controller")
