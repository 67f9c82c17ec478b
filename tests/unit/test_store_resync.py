"""Redis back after an outage: ``Controller.store_resync`` writes back what happened
meanwhile. A call that ends while that write-back awaits Redis must never get its state (or
its agents' busy marks) written back after its end: the end always wins.

No event loop and no network: the coroutine is driven by hand (nothing in it suspends), the
real ``Cluster`` writes through a ``Leases`` stand-in that keeps Redis's state the way the
Lua steps do (START_CALL writes unconditionally, CONNECTED only while the state exists,
FINISH_CALL removes it and releases the call's own busy marks)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

from controller.adapters.redis import StoreUnavailable
from controller.adapters.redis.leases import CallEnd
from controller.config import load_settings
from controller.shell.runtime import Controller

TOKEN = "c1/aaaa"


class RedisLeases:
    def __init__(self) -> None:
        self.state: dict[str, dict[str, str]] = {}
        self.leases: dict[str, str] = {}
        self.busy: dict[str, str] = {}
        self.starts: list[str] = []
        self.during_start: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
        """call id -> what happens while its START_CALL is on its way (after it ran)."""

    async def start_call(self, call_id: str, node: str, fields: dict[str, str]) -> bool:
        self.starts.append(call_id)
        self.leases[call_id] = TOKEN
        self.state[call_id] = {**fields, "node": node}
        hook = self.during_start.pop(call_id, None)
        if hook is not None:
            await hook()
        return True

    async def connected(self, call_id: str, busy: list[str], fields: dict[str, str]) -> bool:
        if call_id not in self.state:
            return False
        for u in busy:
            self.busy[u] = call_id
        self.state[call_id].update(fields)
        return True

    async def finish_call(self, call_id: str, node: str, end: CallEnd) -> None:
        self.state.pop(call_id, None)
        if self.leases.get(call_id) == TOKEN:
            del self.leases[call_id]
        for u in end.busy:
            if self.busy.get(u) == call_id:
                del self.busy[u]


def make_call(cid: str, *, busy: tuple[str, ...] = ()) -> Any:
    ctx = SimpleNamespace(did="+15550100", caller="+15551234567", trace=[], path=[],
                          answered_by="alice" if busy else None)
    return SimpleNamespace(
        id=cid, node="node1", abandoned=False, ending=False, started=1.0, version=1,
        result="connected" if busy else "unknown", busy_users=set(busy),
        connected_leg=f"{cid}-L1" if busy else None, bridge_id=f"{cid}-B" if busy else None,
        answered_at=2.0 if busy else None, ctx=ctx)


def end_of(call: Any) -> CallEnd:
    return CallEnd(ended=3.0, record_json="{}", trace_json="[]",
                   busy=tuple(sorted(call.busy_users)), published={}, counts=())


@pytest.fixture
def ctl() -> Controller:
    c = Controller(load_settings({}))
    c.cluster.leases = RedisLeases()  # type: ignore[assignment]
    return c


def ends(ctl: Controller, call: Any) -> Callable[[], Coroutine[Any, Any, None]]:
    """The call's teardown running to its end: ``Call._teardown`` then ``call_ended``."""
    async def end() -> None:
        call.ending = True
        ctl.calls.pop(call.id, None)
        await ctl.cluster.end_call(call, end_of(call))
    return end


def resync(ctl: Controller) -> None:
    coro = ctl.store_resync()
    with pytest.raises(StopIteration):
        coro.send(None)


def test_a_call_that_ends_during_anothers_write_back_is_not_brought_back(
        ctl: Controller) -> None:
    redis: RedisLeases = ctl.cluster.leases  # type: ignore[assignment]
    ringing, bridged = make_call("c-1"), make_call("c-2", busy=("bob",))
    ctl.calls = {ringing.id: ringing, bridged.id: bridged}
    redis.during_start[ringing.id] = ends(ctl, bridged)  # the bridged caller hangs up
    resync(ctl)
    assert set(redis.state) == {"c-1"}  # no ghost call state for c-2
    assert redis.busy == {}  # bob is not left busy by a call that is over
    assert redis.starts == ["c-1"]
    assert ctl.cluster._leased == {"c-1"}


def test_a_call_that_ends_during_its_own_write_back_is_not_renewed_nor_marked_busy(
        ctl: Controller) -> None:
    redis: RedisLeases = ctl.cluster.leases  # type: ignore[assignment]
    bridged = make_call("c-3", busy=("carol",))
    ctl.calls = {bridged.id: bridged}
    redis.during_start[bridged.id] = ends(ctl, bridged)  # its end is written after the start
    resync(ctl)
    assert redis.state == {} and redis.busy == {} and redis.leases == {}
    assert ctl.cluster._leased == set()  # no lease kept alive for a call that is over


def test_a_call_tearing_down_is_left_to_its_end_and_a_pending_end_is_written(
        ctl: Controller) -> None:
    redis: RedisLeases = ctl.cluster.leases  # type: ignore[assignment]
    tearing, gone = make_call("c-4", busy=("dave",)), make_call("c-5", busy=("erin",))
    tearing.ending = True  # its teardown writes its end next
    redis.state[gone.id] = {"node": "node1"}  # written before Redis went away
    redis.busy["erin"] = gone.id
    ctl.calls = {tearing.id: tearing}
    ctl._pending_ends.append((gone, end_of(gone)))  # it ended while Redis was away
    resync(ctl)
    assert redis.starts == []
    assert redis.state == {} and redis.busy == {}
    assert not ctl._pending_ends


# ---------------------------------------------------------------------------- the queues

class Store:
    """The store's write-back calls: recorded; ``down`` makes them raise as Redis away."""

    def __init__(self) -> None:
        self.down = False
        self.writes: list[tuple[Any, ...]] = []

    async def _write(self, *what: Any) -> None:
        if self.down:
            raise StoreUnavailable("redis at redis://127.0.0.1:6379/0: ConnectionError")
        self.writes.append(what)

    async def set_sticky(self, dept: str, caller: str, user: str, ttl: int) -> None:
        await self._write("sticky", dept, caller, user, ttl)

    async def failover_log(self, event: dict[str, str]) -> None:
        await self._write("failover", event["call_id"])

    async def log_rejected(self, record: dict[str, Any], trace: list[Any],
                           blocked_by: str | None = None) -> bool:
        await self._write("rejected", record["call_id"])
        return True


def run(coro: Coroutine[Any, Any, Any]) -> None:
    with pytest.raises(StopIteration):
        coro.send(None)


@pytest.fixture
def away(ctl: Controller) -> Store:
    store = Store()
    store.down = True
    ctl.store = store  # type: ignore[assignment]
    ctl.store_degraded = True  # (its watcher is not started: no event loop here)
    return store


def test_a_sticky_agent_set_while_redis_is_away_is_used_then_written_with_its_time_left(
        ctl: Controller, away: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("controller.shell.degraded.time.time", lambda: now[0])
    run(ctl.write_sticky("sales", "+15551234567", "alice", 3600))
    assert ctl.sticky_held("sales", "+15551234567") == "alice"  # the caller's next call
    assert ctl.sticky_held("sales", "+15550000000") is None
    assert ctl.pending_writes() == 1
    now[0] += 600
    away.down = False
    resync(ctl)
    assert away.writes == [("sticky", "sales", "+15551234567", "alice", 3000)]
    assert ctl.pending_writes() == 0


def test_a_sticky_agent_whose_time_ran_out_during_the_outage_is_not_written(
        ctl: Controller, away: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("controller.shell.degraded.time.time", lambda: now[0])
    run(ctl.write_sticky("sales", "+15551234567", "alice", 60))
    now[0] += 61
    assert ctl.sticky_held("sales", "+15551234567") is None
    away.down = False
    resync(ctl)
    assert away.writes == [] and ctl.pending_writes() == 0


def test_refused_calls_failover_events_and_stickies_are_written_in_that_order(
        ctl: Controller, away: Store) -> None:
    ctl.pend(ctl._pending_rejected, ({"call_id": "r1"}, [], None), "refused calls")
    ctl.pend(ctl._pending_failover, {"event": "call", "line": "main", "call_id": "f1",
                                     "result": "completed"}, "failover-test events")
    run(ctl.write_sticky("sales", "+15551234567", "bob", 3600))
    away.down = False
    resync(ctl)
    assert [w[:2] for w in away.writes] == [("rejected", "r1"), ("failover", "f1"),
                                           ("sticky", "sales")]
    assert ctl.pending_writes() == 0


def test_redis_going_away_again_mid_write_back_keeps_what_is_not_written(
        ctl: Controller, away: Store) -> None:
    for i in range(3):
        ctl.pend(ctl._pending_rejected, ({"call_id": f"r{i}"}, [], None), "refused calls")
    away.down = False
    calls = 0
    real = away.log_rejected

    async def flaky(record: dict[str, Any], trace: list[Any],
                    blocked_by: str | None = None) -> bool:
        nonlocal calls
        calls += 1
        away.down = calls == 2  # the second write finds Redis gone
        return await real(record, trace, blocked_by)

    away.log_rejected = flaky  # type: ignore[method-assign]
    coro = ctl.store_resync()
    with pytest.raises(StoreUnavailable):
        coro.send(None)
    assert [r[0]["call_id"] for r in ctl._pending_rejected] == ["r1", "r2"]


def test_a_full_write_back_queue_drops_its_oldest_and_says_so(
        ctl: Controller, caplog: pytest.LogCaptureFixture) -> None:
    q: deque[int] = deque(maxlen=3)
    with caplog.at_level(logging.ERROR, logger="callctl.runtime"):
        for i in range(5):
            ctl.pend(q, i, "call ends")
    assert list(q) == [2, 3, 4]
    assert ctl.writeback_dropped == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "redis away: the write-back queue of call ends is full (3): the oldest is dropped, "
        "1 dropped so far"]  # the first drop of an outage, then every 1000th


def test_a_stop_with_redis_still_away_says_what_is_lost(
        ctl: Controller, away: Store, caplog: pytest.LogCaptureFixture) -> None:
    async def ping() -> bool:
        return False

    away.ping = ping  # type: ignore[attr-defined]
    ctl.pend(ctl._pending_rejected, ({"call_id": "r1"}, [], None), "refused calls")
    run(ctl.write_sticky("sales", "+15551234567", "bob", 3600))
    with caplog.at_level(logging.ERROR, logger="callctl.runtime"):
        asyncio.run(ctl.last_write_back(seconds=1))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "shutdown: Redis away: lost with this stop, not written: 0 call end(s), 1 refused "
        "call record(s), 0 failover-test event(s), 1 sticky agent(s)"]


def test_a_stop_after_redis_came_back_writes_what_waits(ctl: Controller, away: Store) -> None:
    async def ping() -> bool:
        return True

    away.ping = ping  # type: ignore[attr-defined]
    ctl.pend(ctl._pending_rejected, ({"call_id": "r1"}, [], None), "refused calls")
    away.down = False
    asyncio.run(ctl.last_write_back(seconds=1))
    assert away.writes == [("rejected", "r1")] and ctl.pending_writes() == 0
