"""controller.ops pure parts: parsing, validation, formatting, the simulation driver."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from controller.core.eligibility import OUTSIDE_WINDOW, check
from controller.core.flows.directory import User, Window
from controller.core.flows.schema import FlowSet
from controller.core.flows.settings import Settings
from controller.core.model import UserFacts
from controller.core.overrides import user_facts
from controller.ops.calls import records_csv
from controller.ops.errors import OpsError, exit_code
from controller.ops.parse import (
    clean_by,
    parse_at,
    parse_since,
    parse_slots,
    validate_alternate,
    window_text,
)
from controller.ops.simulate import SimLookups, simulate_flow
from controller.ops.timeline import call_events, describe

USERS = {u: User.model_validate({"id": u, "endpoint": f"agent{i}"})
         for i, u in enumerate(("alice", "bob", "carol"), 1)}


def err(fn: Any, *a: Any, **kw: Any) -> OpsError:
    with pytest.raises(OpsError) as ei:
        fn(*a, **kw)
    return ei.value


# ------------------------------------------------------------------ availability slots


def test_slots_groups_and_several_ranges() -> None:
    ws = parse_slots(["mon-fri", "09:00-12:00", "13:00-17:00", "sat", "10:00-14:00"])
    assert [(w.days, w.start, w.end) for w in ws] == [
        (["mon", "tue", "wed", "thu", "fri"], "09:00", "12:00"),
        (["mon", "tue", "wed", "thu", "fri"], "13:00", "17:00"),
        (["sat"], "10:00", "14:00"),
    ]


def test_slots_one_word_per_group_and_objects() -> None:
    ws = parse_slots(["mon-fri 09:00-17:00", {"days": "sun", "start": "22:00", "end": "06:00"}])
    assert [window_text(w) for w in ws] == ["mon-fri 09:00-17:00", "sun 22:00-06:00"]
    assert ws[1].overnight


@pytest.mark.parametrize(("slots", "field", "words"), [
    (["mon-fri"], "windows", "no time range"),
    (["09:00-17:00"], "windows[0]", "needs days"),
    (["mon-fri", "sat", "10:00-12:00"], "windows[1]", "no time range"),
    (["mon-fri 09:00-25:00"], "windows[0]", "invalid time"),
    (["funday 09:00-17:00"], "windows[0]", "invalid day"),
    (["mon 09:00-09:00"], "windows[0]", "both 09:00"),
    ([{"days": "mon", "start": "9"}], "windows[0]", ""),
    ([7], "windows[0]", "string like"),
])
def test_slots_errors_name_the_field(slots: list[Any], field: str, words: str) -> None:
    e = err(parse_slots, slots)
    assert e.status == 400
    assert e.field is not None and e.field.startswith(field), e.field
    assert words in e.message


def test_window_text_ranges_and_lists() -> None:
    assert window_text(Window(days=["mon", "wed"], start="09:00", end="10:00")) == \
        "mon,wed 09:00-10:00"
    assert window_text(Window(days=["mon", "tue", "thu"], start="09:00", end="10:00")) == \
        "mon,tue,thu 09:00-10:00"


# ------------------------------------------------------------------ alternates


@pytest.mark.parametrize(("spec", "want"), [
    ("+91 98765-43210", "+919876543210"),
    ("(555) 010.9999", "5550109999"),
    ("bob", "user:bob"),
    ("user:carol", "user:carol"),
    ("sip:agent7", "sip:agent7"),
])
def test_alternate_accepted_and_normalised(spec: str, want: str) -> None:
    assert validate_alternate(spec, "alice", USERS) == want


@pytest.mark.parametrize(("spec", "words"), [
    ("alice", "own alternate"),
    ("user:alice", "own alternate"),
    ("user:zed", "unknown user"),
    ("zed", "not an external number"),
    ("+0123", "not an external number"),
    ("sip:bad endpoint", "PJSIP endpoint"),
    ("12;rm -rf", "not an external number"),
    ("  ", "empty"),
])
def test_alternate_rejected(spec: str, words: str) -> None:
    e = err(validate_alternate, spec, "alice", USERS)
    assert (e.status, e.field) == (400, "alternate")
    assert words in e.message


# ------------------------------------------------------------------ times


def test_parse_at_reads_naive_times_in_the_zone() -> None:
    at = parse_at("2026-12-06 22:00", "Asia/Kolkata")
    assert at.isoformat() == "2026-12-06T22:00:00+05:30"
    assert parse_at("2026-12-06T22:00+01:00", "UTC").utcoffset().total_seconds() == 3600
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_at("now", "UTC", now=now) == now
    assert err(parse_at, "tomorrow", "UTC").field == "at"
    assert err(parse_at, "2026-12-06 22:00", "Mars/Olympus").field == "tz"


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("15m", now=now) == now - 900
    assert parse_since("2h", now=now) == now - 7200
    assert parse_since("7d", now=now) == now - 7 * 86400
    assert parse_since("1700000000", now=now) == 1_700_000_000
    iso = parse_since("2026-12-06T08:00+00:00", now=now)
    assert iso == datetime(2026, 12, 6, 8, tzinfo=UTC).timestamp()
    assert err(parse_since, "yesterday").field == "since"


# ------------------------------------------------------------------ small things


def test_exit_codes() -> None:
    assert [exit_code(OpsError(s, "x")) for s in (400, 404, 409, 503, 500)] == [2, 3, 1, 3, 1]


def test_clean_by_keeps_names_and_drops_junk() -> None:
    assert clean_by("alice") == "alice"
    assert clean_by("token:ops-bot") == "token:ops-bot"
    assert clean_by("evil\nname; rm") == "evilnamerm"
    assert clean_by("") == "unknown"


def test_facts_from_raw_values() -> None:
    f = user_facts("call-9", "12.5", {"receive_calls": "0", "alternate": "",
                                      "availability": "[]", "timezone": "Asia/Tokyo"})
    assert f == UserFacts(busy=True, last_call_end=12.5, receive_calls=False, alternate="",
                          availability=(), timezone="Asia/Tokyo")
    assert user_facts(None, None, {"availability": "not json"}).availability is None


def test_timezone_override_moves_the_windows() -> None:
    u = User.model_validate({"id": "a", "endpoint": "a1", "timezone": "UTC"})
    nine_to_five = ({"days": ["mon"], "start": "09:00", "end": "17:00"},)
    at = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)  # Monday 02:00 UTC = 11:00 in Tokyo
    assert check(u, UserFacts(availability=nine_to_five), at, Settings()).reason == \
        OUTSIDE_WINDOW
    assert check(u, UserFacts(availability=nine_to_five, timezone="Asia/Tokyo"), at,
                 Settings()).ok


def test_records_csv() -> None:
    text = records_csv([{"call_id": "c1", "started": 0, "ended": 5.5, "duration": 5.5,
                         "did": "+1555", "caller": "+1666", "result": "completed",
                         "answered_by": "bob", "path": ["menu", "sales"],
                         "rang": [{"user": "alice", "outcome": "no_answer"},
                                  {"user": "bob", "outcome": "answered"}],
                         "voicemail": None, "failovers": []}])
    head, row = text.splitlines()
    assert head.startswith("call_id,started,ended,duration")
    assert "c1,1970-01-01T00:00:00+00:00" in row
    assert "alice:no_answer;bob:answered" in row and "menu > sales" in row


def test_describe_and_events() -> None:
    trace = [{"at": 10.0, "kind": "node", "id": "menu", "type": "menu"},
             {"at": 10.5, "kind": "skip", "user": "bob", "reason": "opted_out"},
             {"at": 11.0, "kind": "ring", "users": ["alice"], "timeout": 20.0, "wave": 0},
             {"at": 12.0, "kind": "whatever", "x": 1}]
    ev = call_events(trace, started=9.0)
    assert [e["t"] for e in ev] == [1.0, 1.5, 2.0, 3.0]
    assert ev[1]["text"] == "skip bob: opted_out"
    assert ev[2]["text"] == "ring alice for 20 s (wave 0)"
    assert describe(trace[3]) == "whatever x=1"


# ------------------------------------------------------------------ simulation

FLOWS = FlowSet.model_validate({
    "settings": {"timezone": "UTC"},
    "users": {"alice": {"endpoint": "agent1", "alternate": "+15550109999"},
              "bob": {"endpoint": "agent2"},
              "carol": {"endpoint": "agent3"}},
    "departments": {
        "sales": {"members": ["alice", "bob"], "strategy": "serial", "ring_time": 5},
        "team": {"members": ["alice", "bob", "carol"], "strategy": "serial", "ring_time": 10,
                 "total_timeout": 15},
    },
    "flows": {"main": {
        "dids": ["+15550100"], "entry": "hours",
        "nodes": {
            "hours": {"type": "time", "hours": [{"days": "mon-fri", "start": "09:00",
                                                 "end": "17:00"}],
                      "open": "menu", "closed": "bye"},
            "menu": {"type": "menu", "prompt": "beep", "options": {"1": "sales", "2": "team"},
                     "fallback": "bye", "retries": 0},
            "sales": {"type": "department", "department": "sales", "fallback": "bye"},
            "team": {"type": "department", "department": "team", "fallback": "bye"},
            "bye": {"type": "hangup"},
        }}},
})
MONDAY_10 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
SUNDAY_22 = datetime(2025, 6, 8, 22, 0, tzinfo=UTC)


async def sim(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"did": "+15550100", "caller": "+15551230001", "at": MONDAY_10}
    args.update(kw)
    return await simulate_flow(FLOWS, **args)


async def test_simulate_closed_hours() -> None:
    r = await sim(at=SUNDAY_22)
    assert r["path"] == ["hours", "bye"]
    assert r["result"] == "hangup" and r["hangup_cause"] == 16
    assert r["rings"] == [] and r["first_ring"] is None


async def test_simulate_menu_digits_and_ring_order() -> None:
    r = await sim(digits=["1"])
    assert r["path"] == ["hours", "menu", "sales", "bye"]
    assert r["ring_order"] == ["alice", "bob"]
    assert r["first_ring"]["address"] == "agent1"
    assert r["first_ring"]["alternate"]["address"] == "+15550109999"
    assert r["digits_unused"] == []


async def test_simulate_uses_live_facts_and_reports_skips() -> None:
    async def facts(users: tuple[str, ...]) -> dict[str, UserFacts]:
        return {u: UserFacts(receive_calls=False) if u == "alice" else
                UserFacts(busy=u == "carol") for u in users}

    r = await sim(digits=["2"], lookups=SimLookups(facts=facts))
    assert r["ring_order"] == ["bob"]
    assert {(s["user"], s["reason"]) for s in r["skips"]} == {
        ("alice", "opted_out"), ("carol", "busy")}


async def test_simulate_answer_stops_the_path() -> None:
    r = await sim(digits=["1"], answer="bob")
    assert r["result"] == "connected" and r["answered_by"] == "bob"
    assert r["path"] == ["hours", "menu", "sales"]


async def test_simulate_clock_advances_through_total_timeout() -> None:
    r = await sim(digits=["2"])  # 10 s each, 15 s in all: alice 10 s, bob 5 s, carol never
    assert [(x["targets"][0]["user"], x["timeout"]) for x in r["rings"]] == [
        ("alice", 10.0), ("bob", 5.0)]
    assert any(s["reason"] == "total_timeout" for s in r["skips"])


async def test_simulate_no_digits_means_no_input() -> None:
    r = await sim(digits=[])
    assert r["path"] == ["hours", "menu", "bye"]
    assert r["prompts"][0]["digits"] == ""


async def test_simulate_unused_digits_are_reported() -> None:
    r = await sim(digits=["1", "5"])
    assert r["digits_unused"] == ["5"]


def _legs(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(t["role"], t["address"], t["outcome"]) for t in r["trace"] if t["kind"] == "leg"]


async def test_simulate_a_busy_primary_rings_its_alternate_like_a_real_call() -> None:
    """The simulation runs the live call's ring race: the phone answering 486 (cause 17)
    rings the alternate at once, which answers here."""
    r = await sim(digits=["1"], busy=["alice"], answer="+15550109999")
    assert r["result"] == "connected" and r["answered_by"] == "alice"
    assert [(x["role"], x["address"]) for x in r["rings"][0]["legs"]] == [
        ("primary", "agent1"), ("alternate", "+15550109999")]
    assert _legs(r) == [("primary", "agent1", "busy"),
                        ("alternate", "+15550109999", "answered")]


async def test_simulate_a_busy_primary_whose_alternate_does_not_answer_moves_on() -> None:
    r = await sim(digits=["1"], busy=["alice"])
    assert r["ring_order"] == ["alice", "alice", "bob"]  # alice's alternate rang for her
    assert _legs(r) == [("primary", "agent1", "busy"),
                        ("alternate", "+15550109999", "no_answer"),
                        ("primary", "agent2", "no_answer")]
    assert r["rings"][1]["at"] == "2025-06-02T10:00:05+00:00"  # the alternate's 5 s


async def test_simulate_alternate_on_no_answer_rings_it_after_the_ring_time() -> None:
    data = FLOWS.model_dump(mode="json")
    data["departments"]["sales"]["alternate_on_no_answer"] = True
    fs = FlowSet.model_validate(data)
    r = await simulate_flow(fs, did="+15550100", caller="+15551230001", at=MONDAY_10,
                            digits=["1"], answer="+15550109999")
    assert r["result"] == "connected" and r["answered_by"] == "alice"
    assert _legs(r) == [("primary", "agent1", "no_answer"),
                        ("alternate", "+15550109999", "answered")]
