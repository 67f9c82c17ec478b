"""Blocklist patterns and matching, the cache's Redis-outage behaviour, call counters."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from controller.core.callerid import normalise
from controller.core.calllog import call_counts, counted_users, counter_updates, summarise
from controller.shell.blocklist import (
    WITHHELD,
    Blocklist,
    BlocklistCache,
    PatternError,
    normalise_pattern,
)


@pytest.mark.parametrize(("text", "want"), [
    ("+1 (900) 555-1234", "+19005551234"),
    ("0044 20 7946 0000", "+442079460000"),
    ("+1900*", "+1900*"),
    ("1 900 *", "1900*"),
    ("Anonymous", WITHHELD),
    ("withheld", WITHHELD),
])
def test_patterns_normalised(text: str, want: str) -> None:
    assert normalise_pattern(text) == want


@pytest.mark.parametrize("text", ["", "abc", "+", "*", "12a*", "1" * 21, "sip:1234@x", "+1;2"])
def test_bad_patterns(text: str) -> None:
    with pytest.raises(PatternError):
        normalise_pattern(text)


def bl(*patterns: str) -> Blocklist:
    return Blocklist({normalise_pattern(p): {"reason": p} for p in patterns})


def test_exact_match_ignores_plus_and_formatting() -> None:
    b = bl("+19005551234")
    assert b.match(normalise("+1 900 555 1234")) == "+19005551234"
    assert b.match(normalise("19005551234")) == "+19005551234"
    assert b.match(normalise("001 900 555 1234")) == "+19005551234"
    assert b.match(normalise("+19005551235")) is None


def test_exact_wins_then_longest_prefix() -> None:
    b = bl("+1*", "+1900*", "+19005551234")
    assert b.match("+19005551234") == "+19005551234"
    assert b.match("+19005559999") == "+1900*"
    assert b.match("+15550000000") == "+1*"
    assert b.match("+445550000000") is None


def test_withheld_only_when_listed() -> None:
    assert bl("+1900*").match("") is None
    assert bl("withheld").match("") == WITHHELD
    assert bl("withheld").match("+15551234567") is None


class FlakyRedis:
    """Answers from a dict until ``down`` is set; then every call fails like a lost Redis."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.down = False
        self.hgetall_calls = 0

    async def get(self, key: str) -> Any:
        if self.down:
            raise RedisConnectionError("down")
        return self.data.get(key)

    async def hgetall(self, key: str) -> dict[str, str]:
        if self.down:
            raise RedisConnectionError("down")
        self.hgetall_calls += 1
        return dict(self.data.get(key, {}))


async def test_cache_keeps_the_last_list_while_redis_is_down() -> None:
    r = FlakyRedis()
    r.data["p:blocklist"] = {"+19005551234": '{"reason": "spam"}'}
    r.data["p:blocklist:version"] = "1"
    cache = BlocklistCache(r, "p:")
    assert await cache.refresh() is True
    assert cache.match("+19005551234") == "+19005551234"
    assert await cache.refresh() is False and r.hgetall_calls == 1  # unchanged: no reload
    r.down = True
    assert await cache.refresh() is False
    assert cache.match("+19005551234") == "+19005551234"
    r.down = False
    r.data["p:blocklist"] = {}
    r.data["p:blocklist:version"] = "2"
    assert await cache.refresh() is True
    assert cache.match("+19005551234") is None


async def test_cache_with_no_blocklist_key_loads_once() -> None:
    r = FlakyRedis()
    cache = BlocklistCache(r, "p:")
    assert await cache.refresh() is True
    assert await cache.refresh() is False
    assert r.hgetall_calls == 1 and len(cache.current) == 0


# ------------------------------------------------------------------ call counters

SERIAL_TRACE = [
    {"kind": "node", "id": "sales", "type": "department"},
    {"kind": "department", "department": "sales", "strategy": "serial"},
    {"kind": "skip", "user": "carol", "reason": "opted_out"},
    {"kind": "leg", "user": "alice", "role": "primary", "outcome": "no_answer"},
    {"kind": "leg", "user": "dave", "role": "primary", "outcome": "busy"},
    {"kind": "leg", "user": "bob", "role": "primary", "outcome": "answered", "at": 5.0},
    {"kind": "answer", "user": "bob", "at": 5.0},
]


def test_counts_per_agent_and_department() -> None:
    c = call_counts(SERIAL_TRACE)
    assert c["agent:alice"] == {"missed": 1}
    assert c["agent:bob"] == {"answered": 1}
    assert c["agent:dave"] == {"busy": 1}
    assert "agent:carol" not in c  # skipped (opted out): never rung, never counted
    assert c["dept:sales"] == {"alice:missed": 1, "bob:answered": 1, "calls": 1,
                               "answered": 1}


def test_counts_cancelled_and_failover_legs_count_for_nobody() -> None:
    c = call_counts([
        {"kind": "department", "department": "support"},
        {"kind": "leg", "user": "a", "role": "primary", "outcome": "cancelled"},
        {"kind": "leg", "user": None, "role": "failover", "outcome": "answered"},
    ])
    assert c == {"dept:support": {"calls": 1, "missed": 1}}


def test_counts_extension_legs_count_for_the_agent_only() -> None:
    c = call_counts([{"kind": "node", "id": "x", "type": "extension"},
                     {"kind": "leg", "user": "a", "role": "alternate", "outcome": "rejected"}])
    assert c == {"agent:a": {"missed": 1}}


def test_counter_updates_name_whose_opt_out_drops_each_row() -> None:
    rows = counter_updates(call_counts(SERIAL_TRACE))
    kept = [(k, f, n) for k, f, n, owner in rows if owner != "alice"]
    assert ("agent:alice", "missed", 1) not in kept
    assert {(f, n) for k, f, n in kept if k == "dept:sales"} == {
        ("bob:answered", 1), ("calls", 1), ("answered", 1)}
    assert all(owner is None for k, f, _, owner in rows if k == "dept:sales" and ":" not in f)
    assert counted_users(rows) == {"alice", "bob", "dave"}


def test_summarise() -> None:
    s = summarise({"started": 1.0, "ended": 20.0}, [
        *SERIAL_TRACE,
        {"kind": "failover", "number": "+15550100"},
        {"kind": "voicemail", "mailbox": "sales", "recording": "voicemail/sales/x"},
        {"kind": "recorded", "name": "voicemail/sales/x", "duration": 3.5},
    ])
    assert [(r["user"], r["outcome"]) for r in s["rang"]] == [
        ("alice", "no_answer"), ("dave", "busy"), ("bob", "answered")]
    assert s["duration"] == 19.0 and s["wait"] == 4.0 and s["talk"] == 15.0
    assert s["failovers"] == [{"reason": "failover", "number": "+15550100"}]
    assert s["voicemail"] == {"mailbox": "sales", "recording": "voicemail/sales/x",
                              "seconds": 3.5}
