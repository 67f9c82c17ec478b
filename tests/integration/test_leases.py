"""Issue 6: the lease scripts (controller.adapters.redis.leases) against the real Redis of the test
stack: who may claim, renew, adopt and release what. Each test uses its own key prefix."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from controller.adapters.redis import RedisStore
from controller.adapters.redis.leases import (
    CLAIMED,
    CLAIMED_ELSEWHERE,
    CLAIMED_NO_STATE,
    ENDED,
    GONE,
    STARTED,
    CallEnd,
    Leases,
)
from controller.config import Settings

TTL = 600  # ms
END = CallEnd(ended=2.0, record_json="{}", trace_json="[]")


@pytest.fixture
async def r(test_settings: Settings) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    prefix = f"l{uuid.uuid4().hex[:8]}:"
    client = aioredis.from_url(test_settings.redis_url, decode_responses=True)
    yield client, prefix
    while _made:  # their hot-path runners (store/runner.py)
        await _made.pop().close()
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


_made: list[Leases] = []


def leases(r: tuple[aioredis.Redis, str], cid: str, instance: str = "i1") -> Leases:
    made = Leases(r[0], r[1], cid, instance, TTL)
    _made.append(made)
    return made


async def test_a_node_lease_is_held_by_one_controller_until_released_or_lapsed(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    assert await c1.claim_node("a")
    assert not await c2.claim_node("a")
    assert await c1.claim_node("a")  # ours already: extended
    assert await c1.node_owner("a") == "c1/i1"
    assert 0 < await r[0].pttl(f"{r[1]}lease:node:a") <= TTL
    assert not await c2.release_node("a")  # not c2's to release
    assert await c1.release_node("a")
    assert await c2.claim_node("a")
    await asyncio.sleep(TTL / 1000 + 0.1)  # c2 stops renewing (it died)
    assert await c1.claim_node("a")


async def test_a_restarted_controller_takes_its_previous_life_s_leases_at_once(
        r: tuple[aioredis.Redis, str]) -> None:
    old, new, other = leases(r, "c1", "old"), leases(r, "c1", "new"), leases(r, "c2")
    assert await old.claim_node("a")
    await old.start_call("n1-1.1", "a", {"did": "+15550100", "started": "1"})
    assert not await other.claim_node("a")
    assert await new.claim_node("a")  # same id, other instance: its own previous life
    assert await new.orphans("a", set()) == ["n1-1.1"]
    assert await other.orphans("a", set()) == []  # for c2 the call's lease still runs
    state = await new.adopt("n1-1.1")
    assert isinstance(state, dict) and state["owner"] == "c1/old" and state["node"] == "a"
    assert await r[0].get(f"{r[1]}lease:call:n1-1.1") == "c1/new"
    assert await r[0].hget(f"{r[1]}call:n1-1.1", "owner") == "c1/new"
    assert await new.adopt("n1-1.1") is None  # ours now: not adopted twice


async def test_renew_extends_ours_retakes_lapsed_and_reports_lost(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    await c1.claim_node("a")
    await c1.claim_node("b")
    await c1.start_call("x", "a", {"started": "1"})
    await c1.start_call("y", "a", {"started": "1"})
    await r[0].delete(f"{r[1]}lease:node:a", f"{r[1]}lease:call:x")  # lapsed (Redis blip)
    await r[0].set(f"{r[1]}lease:node:b", "c2/i1")  # b taken by c2 meanwhile
    await c1.finish_call("y", "a", END)  # y ended: its lease must not come back
    nodes, calls = await c1.renew(["a", "b"], ["x", "y"])
    assert nodes == {"a": True, "b": False}
    assert calls == {"x": True, "y": False}
    assert await c1.node_owner("a") == "c1/i1"
    assert await r[0].get(f"{r[1]}lease:call:x") == "c1/i1"
    assert await r[0].get(f"{r[1]}lease:call:y") is None
    assert await c2.renew([], []) == ({}, {})


async def test_a_call_owned_elsewhere_is_not_started_and_its_state_is_untouched(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    assert await c1.start_call("z", "a", {"did": "+15550100", "started": "5"})
    assert not await c2.start_call("z", "b", {"did": "+15559999", "started": "6"})
    assert await r[0].hget(f"{r[1]}call:z", "did") == "+15550100"
    assert await r[0].smembers(f"{r[1]}calls:node:a") == {"z"}
    assert not await r[0].exists(f"{r[1]}calls:node:b")
    assert await r[0].zscore(f"{r[1]}calls:live", "z") == 5
    # c2 ending it (it never owned it) removes the state but not c1's lease
    await c2.finish_call("z", "a", END)
    assert not await r[0].exists(f"{r[1]}call:z")
    assert await r[0].get(f"{r[1]}lease:call:z") == "c1/i1"
    await c1.finish_call("z", "a", END)
    assert not await r[0].exists(f"{r[1]}lease:call:z")
    assert not await r[0].exists(f"{r[1]}calls:node:a")
    assert await r[0].zcard(f"{r[1]}calls:live") == 0


async def test_adopt_takes_lapsed_calls_only_and_reports_vanished_state(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    await c1.start_call("p", "a", {"started": "1"})
    await c1.start_call("q", "a", {"started": "1"})
    assert await c2.orphans("a", set()) == []
    assert await c2.adopt("p") is None  # c1 still renews it
    await r[0].delete(f"{r[1]}lease:call:p")  # c1 died: p's lease lapsed
    assert await c2.orphans("a", set()) == ["p"]
    assert await c2.orphans("a", {"p"}) == []  # already driven by us
    state = await c2.adopt("p")
    assert isinstance(state, dict) and state["owner"] == "c1/i1"
    await r[0].delete(f"{r[1]}call:q", f"{r[1]}lease:call:q")  # q's state expired
    assert await c2.adopt("q") == GONE
    await c2.forget("q", "a")
    assert await r[0].smembers(f"{r[1]}calls:node:a") == {"p"}
    assert await c2.connected("p", [], {"state": "connected"})
    assert not await c2.connected("q", ["ann"], {"state": "connected"})  # never re-created
    assert not await r[0].exists(f"{r[1]}busy:ann")  # nobody busy for an ended call
    assert not await r[0].exists(f"{r[1]}call:q")


async def test_presence_lists_live_controllers_and_shows_a_duplicate_id(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2, dup = leases(r, "c1"), leases(r, "c2"), leases(r, "c1", "i2")
    peers, before = await c1.heartbeat({"token": c1.token, "primary": ["a"]})
    assert set(peers) == {"c1"} and before is None
    peers, _ = await c2.heartbeat({"token": c2.token, "primary": ["b"]})
    assert peers["c1"]["primary"] == ["a"] and peers["c2"]["primary"] == ["b"]
    _, before = await dup.heartbeat({"token": dup.token})
    assert before is not None and before["token"] == "c1/i1"  # c1's presence, not ours
    await c2.leave()
    peers, _ = await c1.heartbeat({"token": c1.token})
    assert set(peers) == {"c1"}
    await asyncio.sleep(TTL / 1000 + 0.1)  # c1 stops beating: gone from the list
    peers, _ = await c2.heartbeat({"token": c2.token})
    assert set(peers) == {"c2"}


async def test_a_bridged_call_marks_its_users_busy_with_its_state(
        r: tuple[aioredis.Redis, str]) -> None:
    c1 = leases(r, "c1")
    await c1.start_call("b1", "a", {"started": "1"})
    assert await c1.connected("b1", ["ann", "bob"], {"state": "connected", "leg": "L"})
    assert await r[0].get(f"{r[1]}busy:ann") == "b1"
    assert 0 < await r[0].ttl(f"{r[1]}busy:bob") <= 4 * 3600
    assert await r[0].hget(f"{r[1]}call:b1", "leg") == "L"


async def test_an_answering_leg_books_its_user_for_one_call_only_with_the_state(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")  # two controllers, one call each
    await c1.start_call("x", "a", {"started": "1"})
    await c2.start_call("y", "b", {"started": "1"})
    ann = f"{r[1]}busy:ann"
    got = await asyncio.gather(c1.claim_connected("x", ["ann"], {"state": "connected"}),
                               c2.claim_connected("y", ["ann"], {"state": "connected"}))
    assert sorted(got) == [CLAIMED_ELSEWHERE, CLAIMED]  # atomic: one of the two
    won, lost = ("x", "y") if got[0] == CLAIMED else ("y", "x")
    assert await r[0].get(ann) == won
    assert await r[0].hget(f"{r[1]}call:{won}", "state") == "connected"
    assert await r[0].hget(f"{r[1]}call:{lost}", "state") is None  # nothing written
    winner = c1 if won == "x" else c2
    assert await winner.claim_connected(won, ["ann"], {"state": "connected"}) == CLAIMED
    # a save (handover, Redis back) of the other call never takes her from the winner
    loser = c2 if won == "x" else c1
    assert await loser.connected(lost, ["ann"], {"state": "connected"})
    assert await r[0].get(ann) == won
    # a call whose state is not written yet (Redis was away when it came) still books
    assert await c1.claim_connected("z", ["bob"], {"state": "connected"}) == CLAIMED_NO_STATE
    assert await r[0].get(f"{r[1]}busy:bob") == "z"
    assert not await r[0].exists(f"{r[1]}call:z")
    # no user (a failover number): the state alone
    assert await c1.claim_connected("x", [], {"leg": "L9"}) == CLAIMED


async def test_finish_call_is_one_step_for_state_busy_marks_log_and_counters(
        r: tuple[aioredis.Redis, str]) -> None:
    redis, p = r
    c1 = leases(r, "c1")
    await c1.start_call("f1", "a", {"started": "1"})
    await c1.connected("f1", ["ann"], {"state": "connected"})
    await redis.set(f"{p}busy:bob", "other-call")  # bob is on another call: not released
    await redis.hset(f"{p}user:cat", "receive_calls", "0")  # cat opted out at runtime
    await redis.hset(f"{p}user:dan", "receive_calls", "1")  # dan opted back in
    end = CallEnd(
        ended=123.5, record_json='{"call_id": "f1"}', trace_json='[{"kind": "answer"}]',
        busy=("ann", "bob"), published={"ann": True, "cat": True, "dan": False, "eve": False},
        counts=(("agent:ann", "answered", 1, "ann"), ("agent:cat", "missed", 1, "cat"),
                ("agent:dan", "busy", 1, "dan"), ("agent:eve", "missed", 1, "eve"),
                ("agent:zed", "missed", 2, "zed"),  # not published: always counted
                ("dept:s", "calls", 1, None), ("dept:s", "cat:missed", 1, "cat"),
                ("dept:s", "ann:answered", 1, "ann")))
    await c1.finish_call("f1", "a", end)
    assert not await redis.exists(f"{p}call:f1", f"{p}lease:call:f1", f"{p}calls:node:a",
                                  f"{p}busy:ann")
    assert await redis.zscore(f"{p}calls:live", "f1") is None
    assert await redis.get(f"{p}busy:bob") == "other-call"
    assert await redis.zscore(f"{p}lastcall", "ann") == 123.5
    assert await redis.zscore(f"{p}lastcall", "bob") is None
    assert await redis.get(f"{p}trace:f1") == '[{"kind": "answer"}]'
    assert 0 < await redis.ttl(f"{p}trace:f1") <= 30 * 86400
    rows = await redis.xrange(f"{p}calllog")
    assert [f for _, f in rows] == [{"record": '{"call_id": "f1"}'}]
    assert await redis.hgetall(f"{p}stats:agent:ann") == {"answered": "1"}
    assert not await redis.exists(f"{p}stats:agent:cat", f"{p}stats:agent:eve")
    assert await redis.hgetall(f"{p}stats:agent:dan") == {"busy": "1"}
    assert await redis.hgetall(f"{p}stats:agent:zed") == {"missed": "2"}
    assert await redis.hgetall(f"{p}stats:dept:s") == {"calls": "1", "ann:answered": "1"}


async def test_a_finish_written_again_logs_and_counts_once_and_still_drops_our_lease(
        r: tuple[aioredis.Redis, str]) -> None:
    """A retry after a lost reply (or the re-sync after an outage) runs FINISH_CALL again:
    one call log record, counters added once; the state and our lease still go."""
    redis, p = r
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    end = CallEnd(ended=9.0, record_json='{"call_id": "h1"}', trace_json="[]",
                  counts=(("dept:s", "calls", 1, None),))
    await c1.start_call("h1", "a", {"started": "1"})
    await c2.finish_call("h1", "a", end)  # a peer wrote the end first
    assert await redis.get(f"{p}lease:call:h1") == "c1/i1"
    await c1.finish_call("h1", "a", end)
    await c1.finish_call("h1", "a", end)
    assert not await redis.exists(f"{p}call:h1", f"{p}lease:call:h1", f"{p}calls:node:a")
    assert [f for _, f in await redis.xrange(f"{p}calllog")] == [{"record": '{"call_id": "h1"}'}]
    assert await redis.hgetall(f"{p}stats:dept:s") == {"calls": "1"}


async def test_a_rejected_call_is_logged_once_with_its_blocklist_counters(
        test_settings: Settings) -> None:
    store = RedisStore(test_settings.redis_url, f"l{uuid.uuid4().hex[:8]}:")
    p = store.p
    try:
        rec = {"call_id": "rj1", "did": "+15550100", "result": "blocked"}
        trace = [{"at": 1.0, "kind": "blocked", "pattern": "+1555*"}]
        assert await store.log_rejected(rec, trace, "+1555*")
        assert not await store.log_rejected(rec, trace, "+1555*")  # the re-sync's retry
        assert await store.log_rejected({**rec, "call_id": "rj2", "result": "no_flow"},
                                        trace)
        rows = [json.loads(f["record"]) for _, f in await store.redis.xrange(f"{p}calllog")]
        assert [x["call_id"] for x in rows] == ["rj1", "rj2"]
        assert await store.get_trace("rj1") == trace
        assert await store.redis.hgetall(f"{p}blocklist:hits") == {"+1555*": "1"}
        assert await store.redis.get(f"{p}blocklist:blocked") == "1"
    finally:
        keys = [k async for k in store.redis.scan_iter(match=f"{p}*")]
        if keys:
            await store.redis.delete(*keys)
        await store.close()


async def test_a_start_that_lands_after_the_call_s_end_writes_nothing(
        r: tuple[aioredis.Redis, str]) -> None:
    """START_CALL is written in the background and, with a connection pool, may reach Redis
    after the same call's FINISH_CALL (another connection, still connecting): it must not
    bring the ended call back (a ghost in calls:live, a lease, an adoptable state)."""
    redis, p = r
    c1 = leases(r, "c1")
    await c1.finish_call("g1", "a", END)  # the call ended before its start was written
    assert await c1.start_call("g1", "a", {"started": "1"}) == ENDED
    assert not await redis.exists(f"{p}call:g1", f"{p}lease:call:g1", f"{p}calls:node:a")
    assert await redis.zscore(f"{p}calls:live", "g1") is None
    assert await c1.orphans("a", set()) == []
    assert await c1.start_call("g2", "a", {"started": "1"}) == STARTED  # a new call starts


async def test_a_handover_releases_only_our_call_leases_and_a_peer_adopts_them_at_once(
        r: tuple[aioredis.Redis, str]) -> None:
    c1, c2 = leases(r, "c1"), leases(r, "c2")
    for cid in ("x", "y"):
        assert await c1.start_call(cid, "a", {"did": "+15550100", "started": "1"})
    assert await c2.start_call("z", "a", {"started": "1"})
    assert await c2.orphans("a", {"z"}) == []  # c1's leases still run
    assert await c1.release_calls(["x", "y", "z", "gone"]) == 2  # z is c2's: left alone
    assert await r[0].get(f"{r[1]}lease:call:z") == "c2/i1"
    assert sorted(await c2.orphans("a", {"z"})) == ["x", "y"]  # no lease to wait for
    state = await c2.adopt("x")
    assert isinstance(state, dict) and state["owner"] == "c1/i1"
    assert await c1.release_calls([]) == 0
