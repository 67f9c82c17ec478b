"""Redis back after an outage: ``Controller.store_resync`` writes back what happened
meanwhile. A call that ends while that write-back awaits Redis must never get its state (or
its agents' busy marks) written back after its end: the end always wins.

No event loop and no network: the coroutine is driven by hand (nothing in it suspends), the
real ``Cluster`` writes through a ``Leases`` stand-in that keeps Redis's state the way the
Lua steps do (START_CALL writes unconditionally, CONNECTED only while the state exists,
FINISH_CALL removes it and releases the call's own busy marks)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest

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
