"""Issue 8 part A: the `callctl` ops commands against the real stack.

The CLI runs as a subprocess (`python -m controller`) with the test slot's environment and the
test's own Redis prefix, exactly as an operator would run it; calls are real SIPp calls through
Asterisk and an in-process controller.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.config import PROJECT_ROOT

from integration.conftest import TEST_ENV, Harness, PhoneBank, until

FLOW = """
settings:
  timezone: UTC
users:
  alice: {endpoint: agent1}
  bob: {endpoint: agent2}
  carol: {endpoint: agent3}
  dave: {endpoint: agent4}
departments:
  sales:
    strategy: serial
    members: [alice, bob]
    ring_time: 3
  support:
    strategy: serial
    members: [carol, dave]
    ring_time: 3
flows:
  main:
    dids: ["+15550100"]
    entry: hours
    nodes:
      hours:
        type: time
        hours: [{days: mon-fri, start: "09:00", end: "17:00"}]
        open: menu
        closed: sales
      menu:
        type: menu
        prompt: beep
        options: {"1": sales, "2": support}
        fallback: bye
        timeout: 5
      sales:
        type: department
        department: sales
        fallback: bye
      support:
        type: department
        department: support
        fallback: bye
      bye:
        type: hangup
"""
MONDAY_10 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
BLOCKED_CALLER = "+19005551234"


async def cli(h: Harness, *args: str, user: str = "tester") -> tuple[int, Any, str]:
    """Run `callctl ARGS` against this test's Redis prefix; (exit code, stdout (JSON parsed
    when it parses), stderr)."""
    env = {**os.environ, **TEST_ENV, "CALLCTL_REDIS_PREFIX": h.prefix, "USER": user,
           "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("SUDO_USER", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = text
    assert proc.returncode is not None
    return proc.returncode, data, err.decode()


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


async def test_user_changes_round_trip_validated_and_audited(
        harness: Harness, tmp_path: Path) -> None:
    version = await harness.publish(FLOW, tmp_path)

    rc, users, _ = await cli(harness, "users", "--json")
    assert rc == 0 and set(by_id(users)) == {"alice", "bob", "carol", "dave"}
    assert by_id(users)["alice"]["effective"]["receive_calls"] is True

    rc, _, _ = await cli(harness, "users", "opt-out", "on", "alice", "--json")
    assert rc == 0
    rc, _, _ = await cli(harness, "users", "availability", "bob", "mon-fri", "09:00-12:00",
                         "13:00-17:00", "--tz", "Asia/Kolkata")
    assert rc == 0
    rc, _, _ = await cli(harness, "users", "alternate", "carol", "+91 98765 43210")
    assert rc == 0
    rc, users, _ = await cli(harness, "users", "--json")
    u = by_id(users)
    assert u["alice"]["effective"]["receive_calls"] is False
    assert u["alice"]["eligible_now"] is False and u["alice"]["reason"] == "opted_out"
    assert u["bob"]["effective"]["availability"] == ["mon-fri 09:00-12:00",
                                                     "mon-fri 13:00-17:00"]
    assert u["bob"]["effective"]["timezone"] == "Asia/Kolkata"
    assert u["carol"]["effective"]["alternate"] == "+919876543210"
    # stored where the call runtime reads them
    assert await harness.redis.hget(f"{harness.prefix}user:alice", "receive_calls") == "0"

    # bad input: exit 2, with the field; nothing changes
    rc, err, _ = await cli(harness, "users", "alternate", "carol", "not-a-number", "--json")
    assert rc == 2 and err["field"] == "alternate" and err["status"] == 400
    rc, err, _ = await cli(harness, "users", "availability", "bob", "mon-fri", "9-5", "--json")
    assert rc == 2 and err["field"].startswith("windows")
    rc, _, stderr = await cli(harness, "users", "opt-out", "on", "zed")
    assert rc == 3 and "unknown user 'zed'" in stderr
    rc, _, _ = await cli(harness, "users", "alternate", "carol")  # neither number nor flag
    assert rc == 2
    rc, users, _ = await cli(harness, "users", "--json")
    assert by_id(users)["carol"]["effective"]["alternate"] == "+919876543210"

    # clear / reset
    rc, _, _ = await cli(harness, "users", "alternate", "carol", "--clear")
    assert rc == 0
    rc, _, _ = await cli(harness, "users", "availability", "bob", "--reset")
    assert rc == 0
    rc, users, _ = await cli(harness, "users", "--json")
    assert by_id(users)["carol"]["effective"]["alternate"] is None
    assert by_id(users)["bob"]["effective"]["availability"] == []
    assert by_id(users)["bob"]["overrides"] == {}

    # audited: who, what, old and new
    rc, audit, _ = await cli(harness, "audit", "--json")
    assert rc == 0
    assert [(a["action"], a["target"]) for a in reversed(audit)] == [
        ("opt_out.on", "alice"), ("availability.set", "bob"), ("alternate.set", "carol"),
        ("alternate.clear", "carol"), ("availability.reset", "bob")]
    assert {a["by"] for a in audit} == {"tester"}
    assert audit[1]["old"] == {"alternate": "+919876543210"} and audit[1]["new"] == {
        "alternate": ""}
    # no publish happened
    assert int(await harness.redis.get(f"{harness.prefix}flows:live")) == version


async def test_status_calls_blocklist_and_simulate_commands(
        harness: Harness, tmp_path: Path) -> None:
    await harness.publish(FLOW, tmp_path)

    rc, st, _ = await cli(harness, "status", "--json")
    assert rc == 3, st  # no controller connected
    assert st["redis"]["ok"] and st["ari"]["ok"] and st["ami"]["ok"]
    assert st["controller"]["connected"] is False
    await harness.start()
    rc, st, _ = await cli(harness, "status", "--json")
    assert rc == 0 and st["controller"]["connected"] is True and st["live_calls"] == 0

    rc, calls, _ = await cli(harness, "calls", "--json")
    assert rc == 0 and calls == []
    rc, _, stderr = await cli(harness, "call", "nosuchcall")
    assert rc == 3 and "no call" in stderr
    rc, _, _ = await cli(harness, "calls", "--since", "yesterday")
    assert rc == 2

    rc, e, _ = await cli(harness, "block", "+1 900 555 1234", "--reason", "spam", "--json")
    assert rc == 0 and e["pattern"] == "+19005551234"
    rc, _, _ = await cli(harness, "block", "+1800*")
    assert rc == 0
    rc, e, _ = await cli(harness, "block", "hello", "--json")
    assert rc == 2 and e["field"] == "number"
    rc, bl, _ = await cli(harness, "blocked", "--json")
    assert [x["pattern"] for x in bl["entries"]] == ["+1800*", "+19005551234"]
    assert bl["entries"][1]["reason"] == "spam" and bl["cause"] == 21
    rc, _, _ = await cli(harness, "unblock", "+1800*")
    assert rc == 0
    rc, _, _ = await cli(harness, "unblock", "+1800*")
    assert rc == 3

    rc, sim, _ = await cli(harness, "simulate", "--did", "+15550100", "--from", "+15550000001",
                           "--at", "2026-12-06 22:00", "--json")  # a Sunday night: closed
    assert rc == 0 and sim["path"] == ["hours", "sales", "bye"], sim
    assert sim["ring_order"] == ["alice", "bob"]
    rc, sim, _ = await cli(harness, "simulate", "--did", "+15550100", "--from", BLOCKED_CALLER,
                           "--json")
    assert rc == 0 and sim["result"] == "blocked" and sim["path"] == []
    rc, sim, _ = await cli(harness, "simulate", "--did", "nope", "--json")
    assert rc == 2 and sim["field"] == "did"
    # --busy: alice's phone answers 486, so her alternate (set live) rings for her at once
    rc, _, _ = await cli(harness, "users", "alternate", "alice", "+15550109999")
    assert rc == 0
    rc, sim, _ = await cli(harness, "simulate", "--did", "+15550100", "--at",
                           "2026-12-06 22:00", "--busy", "alice", "--json")
    assert rc == 0 and sim["ring_order"] == ["alice", "alice", "bob"], sim
    assert [(t["role"], t["address"], t["outcome"]) for t in sim["trace"]
            if t["kind"] == "leg"][:2] == [("primary", "agent1", "busy"),
                                           ("alternate", "+15550109999", "no_answer")]
    rc, out, _ = await cli(harness, "simulate", "--did", "+15550100", "--busy", "alice,bob")
    assert rc == 0 and "result:" in out
    rc, err, _ = await cli(harness, "simulate", "--did", "+15550100", "--busy", "a;b", "--json")
    assert rc == 2 and err["field"] == "busy[0]", err
    rc, _, _ = await cli(harness, "users", "alternate", "alice", "--clear")
    assert rc == 0

    # a draft flow set (not published) is simulated as it is
    draft = tmp_path / "draft"
    draft.mkdir()
    (draft / "flows.yaml").write_text(textwrap.dedent(FLOW).replace("closed: sales",
                                                                    "closed: support"))
    rc, sim, _ = await cli(harness, "simulate", "--did", "+15550100", "--at",
                           "2026-12-06 22:00", "--flows", str(draft), "--json")
    assert rc == 0 and sim["draft"] is True and sim["path"] == ["hours", "support", "bye"]
    (draft / "flows.yaml").write_text("flows: {main: {entry: 7}}\n")
    rc, _, stderr = await cli(harness, "simulate", "--did", "+15550100", "--flows", str(draft))
    assert rc == 1 and "flows.yaml:" in stderr


async def test_opt_out_via_cli_then_next_call_skips_the_user_without_publish(
        harness: Harness, phones: PhoneBank, tmp_path: Path) -> None:
    alice = await phones.start("agent1", "answer", ring_ms=200)
    bob = await phones.start("agent2", "answer", ring_ms=200)
    version = await harness.publish(FLOW, tmp_path)
    # Sunday 22:00: closed -> sales (alice, then bob) with no prompt
    await harness.start(clock=lambda: datetime(2026, 12, 6, 22, 0, tzinfo=UTC))

    rc, _, _ = await cli(harness, "users", "opt-out", "on", "alice")
    assert rc == 0
    result = await harness.call("+15550100", hold_ms=1500)
    rec = await harness.record()
    assert result.final_status() == 200, rec
    assert rec["answered_by"] == "bob", rec
    assert alice.invites() == 0, alice.messages()
    assert bob.invites() == 1
    assert [(t["user"], t["reason"]) for t in rec["trace"] if t["kind"] == "skip"] == [
        ("alice", "opted_out")]
    assert int(await harness.redis.get(f"{harness.prefix}flows:live")) == version

    # the call is in the log, with its trace and events, and counted for bob only
    rc, detail, _ = await cli(harness, "call", rec["call_id"], "--json")
    assert rc == 0 and detail["call"]["answered_by"] == "bob"
    assert any(e["text"] == "skip alice: opted_out" for e in detail["events"])
    rc, calls, _ = await cli(harness, "calls", "--since", "5m", "--json")
    assert [c["call_id"] for c in calls] == [rec["call_id"]]
    assert calls[0]["rang"] == [{"user": "bob", "address": "agent2", "role": "primary",
                                 "outcome": "answered", "cause": None}]
    rc, csv_text, _ = await cli(harness, "calls", "--format", "csv")
    assert rc == 0 and rec["call_id"] in csv_text and "bob:answered" in csv_text
    rc, depts, _ = await cli(harness, "departments", "--json")
    sales = by_id(depts)["sales"]
    assert (sales["calls"], sales["answered"], sales["missed"]) == (1, 1, 0)
    assert sales["agents"] == [{"id": "bob", "answered": 1, "missed": 0}]  # alice opted out
    assert [m["opted_out"] for m in sales["members"]] == [True, False]

    # opting back in also takes effect on the next call
    rc, _, _ = await cli(harness, "users", "opt-out", "off", "alice")
    assert rc == 0
    await harness.call("+15550100", hold_ms=1500)
    rec = await harness.record()
    assert rec["answered_by"] == "alice", rec
    await until(lambda: alice.invites() == 1, 5, "alice's phone got the INVITE")


async def test_blocked_caller_rejected_before_any_prompt_logged_and_counted(
        harness: Harness, phones: PhoneBank, tmp_path: Path) -> None:
    agent = await phones.start("agent1", "answer", ring_ms=200)
    await harness.publish(FLOW, tmp_path)
    ctl = await harness.start(clock=lambda: MONDAY_10)  # open: the menu prompt would play
    rc, _, _ = await cli(harness, "block", "+1900*", "--reason", "premium spam")
    assert rc == 0
    await until(lambda: ctl.blocklist.match(BLOCKED_CALLER) == "+1900*", 5,
                "the controller's blocklist cache has the new entry")

    # sent as 0019005551234: normalised to +19005551234 before matching
    result = await harness.call("+15550100", caller="00" + BLOCKED_CALLER[1:], hold_ms=1000)
    rec = await harness.record()

    assert result.final_status() == 403, result.trace[-1500:]  # cause 21, call rejected
    assert "200 OK" not in result.trace.split("SIP/2.0 403")[0]  # never answered: no prompt
    assert rec["result"] == "blocked" and rec["blocked_by"] == "+1900*"
    assert rec["caller"] == BLOCKED_CALLER and rec["path"] == []
    assert agent.invites() == 0
    rc, bl, _ = await cli(harness, "blocked", "--json")
    assert bl["blocked_calls"] == 1 and bl["entries"][0]["blocked_calls"] == 1
    rc, calls, _ = await cli(harness, "calls", "--json")
    assert calls[0]["call_id"] == rec["call_id"] and calls[0]["result"] == "blocked"
    rc, detail, _ = await cli(harness, "call", rec["call_id"], "--json")
    assert rc == 0 and detail["events"][0]["text"].startswith("caller blocked by +1900*")

    # unblocked: the same caller reaches the flow again
    rc, _, _ = await cli(harness, "unblock", "+1900*")
    assert rc == 0
    await until(lambda: ctl.blocklist.match(BLOCKED_CALLER) is None, 5, "cache updated")
    result = await harness.call("+15550100", caller=BLOCKED_CALLER, digits=[(300, "1")],
                                hold_ms=1500)
    rec = await harness.record()
    assert result.final_status() == 200 and rec["answered_by"] == "alice", rec


async def test_simulate_agrees_with_a_real_call(
        harness: Harness, phones: PhoneBank, tmp_path: Path) -> None:
    carol = await phones.start("agent3", "answer", ring_ms=200)
    dave = await phones.start("agent4", "answer", ring_ms=300)
    await harness.publish(FLOW, tmp_path)
    await harness.start(clock=lambda: MONDAY_10)
    rc, _, _ = await cli(harness, "users", "opt-out", "on", "carol")
    assert rc == 0

    rc, sim, _ = await cli(harness, "simulate", "--did", "+15550100", "--from", "+15550000007",
                           "--at", "2026-12-07 10:00", "--digits", "2", "--answer", "first",
                           "--json")
    assert rc == 0, sim
    result = await harness.call("+15550100", caller="+15550000007", digits=[(300, "2")],
                                hold_ms=1500)
    rec = await harness.record()

    assert result.final_status() == 200
    assert sim["path"] == rec["path"] == ["hours", "menu", "support"], (sim, rec)
    real_first = next(t for t in rec["trace"] if t["kind"] == "leg")
    assert sim["first_ring"]["user"] == real_first["user"] == "dave"
    assert sim["first_ring"]["address"] == real_first["address"] == "agent4"
    assert sim["answered_by"] == rec["answered_by"] == "dave"
    assert [s["user"] for s in sim["skips"]] == [
        t["user"] for t in rec["trace"] if t["kind"] == "skip"] == ["carol"]
    assert carol.invites() == 0 and dave.invites() == 1


async def test_live_calls_and_missed_counts(
        harness: Harness, phones: PhoneBank, tmp_path: Path) -> None:
    alice = await phones.start("agent1", "noanswer")
    bob = await phones.start("agent2", "noanswer")
    await harness.publish(FLOW, tmp_path)
    await harness.start(clock=lambda: datetime(2026, 12, 6, 22, 0, tzinfo=UTC))

    call = asyncio.create_task(harness.call("+15550100", hold_ms=15000))
    live: list[Any] = []

    async def shows_live() -> bool:
        rc, rows, _ = await cli(harness, "calls", "--live", "--json")
        live[:] = rows if rc == 0 else []
        return bool(live)

    await until(shows_live, 10, "`callctl calls --live` lists the call")
    assert live[0]["did"] == "+15550100" and live[0]["result"] == "live"
    rec = await harness.record()
    await call
    assert rec["call_id"] == live[0]["call_id"]
    assert rec["answered_by"] is None and rec["path"] == ["hours", "sales", "bye"]
    assert alice.invites() == 1 and bob.invites() == 1
    rc, depts, _ = await cli(harness, "departments", "--json")
    sales = by_id(depts)["sales"]
    assert rc == 0 and (sales["calls"], sales["answered"], sales["missed"]) == (1, 0, 1)
    assert sales["agents"] == [{"id": "alice", "answered": 0, "missed": 1},
                               {"id": "bob", "answered": 0, "missed": 1}]
    rc, users, _ = await cli(harness, "users", "--json")
    assert rc == 0
    assert (by_id(users)["alice"]["missed"], by_id(users)["carol"]["missed"]) == (1, 0)
    rc, rows, _ = await cli(harness, "calls", "--live", "--json")
    assert rc == 0 and rows == []


async def test_failover_test_operations(harness: Harness, tmp_path: Path) -> None:
    from controller.adapters.redis import RedisStore
    from controller.ops.context import Context
    from controller.ops.errors import OpsError
    from controller.ops.failover import start_test, stop_test, test_status

    await harness.publish(FLOW, tmp_path)
    store = RedisStore(harness.settings.redis_url, harness.prefix)
    ops = Context(store, harness.settings)
    try:
        try:
            await start_test(ops, "+15559999", 60, by="tester")
            raise AssertionError("an unknown line was accepted")
        except OpsError as e:
            assert (e.status, e.field) == (404, "line")
        res = await start_test(ops, "sales", 60, by="tester")
        assert res["line"] == "sales" and res["until"] > 0
        st = await test_status(ops)
        assert set(st["active"]) == {"sales"} and st["events"][0]["by"] == "tester"
        assert (await stop_test(ops, "sales", by="tester"))["stopped"] is True
        assert (await test_status(ops))["active"] == {}
    finally:
        await store.close()
