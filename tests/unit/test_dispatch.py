"""KeyedDispatcher: strict order per key, concurrency across keys, no leaks, survives errors.

Every wait is bounded with asyncio.wait_for; progress is signalled with events, not sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import pytest

from controller.adapters.ari.dispatch import KeyedDispatcher

T = 2.0  # generous bound for anything that should happen at once


class Recorder:
    """A handler that records (key, event) and can be told to block on a key."""

    def __init__(self) -> None:
        self.seen: dict[str, list[object]] = defaultdict(list)
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.changed = asyncio.Condition()

    async def __call__(self, key: str, ev: object) -> None:
        self.entered[key].set()
        gate = self.gates.get(key)
        if gate is not None:
            await gate.wait()
        if ev == "boom":
            raise RuntimeError("handler bug")
        self.seen[key].append(ev)
        async with self.changed:
            self.changed.notify_all()

    async def until(self, pred: object) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(pred)  # type: ignore[arg-type]
        await asyncio.wait_for(wait(), T)


async def _gone(d: KeyedDispatcher[object], key: str) -> None:
    """Wait for ``key``'s consumer task to exit; then the key must be forgotten."""
    task = d._tasks.get(key)
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), T)
    assert key not in d


async def test_given_many_events_for_one_key_then_handled_in_submission_order() -> None:
    rec = Recorder()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    for i in range(200):
        d.submit("call-1", i)
    await rec.until(lambda: len(rec.seen["call-1"]) == 200)
    assert rec.seen["call-1"] == list(range(200))
    await d.aclose()


async def test_given_interleaved_keys_then_each_key_keeps_its_order() -> None:
    rec = Recorder()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    for i in range(50):
        for k in ("a", "b", "c"):
            d.submit(k, i)
    await rec.until(lambda: all(len(rec.seen[k]) == 50 for k in "abc"))
    assert all(rec.seen[k] == list(range(50)) for k in "abc")
    assert len(d) == 3
    await d.aclose()


async def test_given_a_blocked_key_when_other_key_gets_events_then_it_is_not_delayed() -> None:
    rec = Recorder()
    rec.gates["slow"] = asyncio.Event()  # never set until the end
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    d.submit("slow", 1)
    d.submit("slow", 2)
    await asyncio.wait_for(rec.entered["slow"].wait(), T)
    d.submit("fast", "x")
    d.submit("fast", "y")
    await rec.until(lambda: rec.seen["fast"] == ["x", "y"])
    assert rec.seen["slow"] == []
    assert d.pending("slow") == 1  # event 2 waits behind the blocked event 1
    rec.gates["slow"].set()
    await rec.until(lambda: rec.seen["slow"] == [1, 2])
    await d.aclose()


async def test_given_close_key_then_queue_is_finished_and_key_forgotten() -> None:
    rec = Recorder()
    gate = rec.gates["k"] = asyncio.Event()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    for i in range(3):
        d.submit("k", i)
    d.close_key("k")
    assert "k" in d  # still draining
    gate.set()
    await _gone(d, "k")
    assert rec.seen["k"] == [0, 1, 2]
    assert len(d) == 0
    assert not d._tasks  # no task left behind
    d.close_key("k")  # closing an unknown key is a no-op


async def test_given_many_short_lived_keys_then_nothing_leaks() -> None:
    rec = Recorder()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    for n in range(100):
        d.submit(f"call-{n}", "start")
        d.close_key(f"call-{n}")
    await rec.until(lambda: sum(len(v) for v in rec.seen.values()) == 100)
    for n in range(100):
        await _gone(d, f"call-{n}")
    assert len(d) == 0 and not d._tasks and not d._queues


async def test_given_submit_after_close_key_then_order_kept_and_key_lives_on() -> None:
    rec = Recorder()
    gate = rec.gates["k"] = asyncio.Event()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    d.submit("k", 1)
    d.close_key("k")
    d.submit("k", 2)  # queued behind the close marker, before the consumer reached it
    gate.set()
    await rec.until(lambda: rec.seen["k"] == [1, 2])
    assert "k" in d  # re-opened by the late event
    d.close_key("k")
    await _gone(d, "k")
    d.submit("k", 3)  # a fresh consumer after the old one is gone
    await rec.until(lambda: rec.seen["k"] == [1, 2, 3])
    await d.aclose()


async def test_given_handler_raises_then_logged_with_key_and_consumer_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    with caplog.at_level(logging.ERROR, logger="callctl.dispatch"):
        d.submit("call-9", 1)
        d.submit("call-9", "boom")
        d.submit("call-9", 3)
        await rec.until(lambda: rec.seen["call-9"] == [1, 3])
    assert any("call-9" in r.getMessage() and r.exc_info for r in caplog.records)
    await d.aclose()


async def test_given_handler_cancelled_internally_then_consumer_survives() -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(key: str, ev: int) -> None:
        if ev == 1:
            raise asyncio.CancelledError  # e.g. an inner task it awaited was cancelled
        seen.append(ev)
        done.set()

    d: KeyedDispatcher[int] = KeyedDispatcher(handler)
    d.submit("k", 1)
    d.submit("k", 2)
    await asyncio.wait_for(done.wait(), T)
    assert seen == [2]
    await d.aclose()


async def test_given_aclose_then_consumers_cancelled_and_submit_refused() -> None:
    rec = Recorder()
    rec.gates["k"] = asyncio.Event()  # blocked forever
    d: KeyedDispatcher[object] = KeyedDispatcher(rec)
    d.submit("k", 1)
    d.submit("j", 1)
    await asyncio.wait_for(rec.entered["k"].wait(), T)
    tasks = list(d._tasks.values())
    await asyncio.wait_for(d.aclose(), T)
    assert all(t.done() for t in tasks)
    assert len(d) == 0
    with pytest.raises(RuntimeError):
        d.submit("new", 1)
