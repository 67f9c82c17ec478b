"""Issue 4: departments and ring strategies on real calls (Asterisk + Redis + SIPp phones).

Each test publishes a small flow with short ring times (2-3 s), places real SIPp calls and
checks what the phones themselves saw (INVITE / CANCEL / BYE in their SIPp traces), what
Asterisk holds while a call is bridged (ARI channel and bridge lists) and the call's decision
trace (who rang, who was skipped and why, ring start/stop, outcome).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.events import ChannelEnteredBridge, Event
from controller.config import PROJECT_ROOT
from controller.core.flows import loader
from controller.shell.runtime import EVENT_TYPES, Controller

from integration.conftest import TEST_ENV, Harness, PhoneBank, until
from sippctl import SipMessage, sip_messages

USERS = """
settings:
  timezone: UTC
users:
  alice: {endpoint: agent1}
  bob: {endpoint: agent2}
  carol: {endpoint: agent3}
"""


# ------------------------------------------------------------------------------------ helpers


def _flow(body: str) -> str:
    return USERS + body


def _legs(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in rec["trace"] if t["kind"] == "leg"]


def _leg_of(rec: dict[str, Any], user: str) -> list[dict[str, Any]]:
    return [t for t in _legs(rec) if t["user"] == user]


def _skips(rec: dict[str, Any]) -> dict[str, str]:
    return {t["user"]: t["reason"] for t in rec["trace"] if t["kind"] == "skip" and "user" in t}


def _rings(rec: dict[str, Any]) -> list[list[str]]:
    return [t["users"] for t in rec["trace"] if t["kind"] == "ring"]


def _dump(rec: dict[str, Any]) -> str:
    return json.dumps(rec, indent=1, default=str)


def _received(phone: Any, method: str) -> int:
    """How many ``method`` requests the SIPp phone received (from its own trace)."""
    n = 0
    for block in phone.messages().split("UDP message received")[1:]:
        lines = [ln for ln in block.split("\n-----", 1)[0].splitlines()[1:] if ln.strip()]
        if lines and lines[0].startswith(f"{method} sip:"):
            n += 1
    return n


def _answered_invites(phone: Any) -> int:
    """How many calls the phone answered: distinct Call-IDs it sent a 200 OK to INVITE for."""
    answered = set()
    for block in phone.messages().split("UDP message sent")[1:]:
        lines = [ln for ln in block.split("\n-----", 1)[0].splitlines()[1:] if ln.strip()]
        hdr = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip()
               for ln in lines[1:] if ":" in ln}
        if lines and lines[0].startswith("SIP/2.0 200") and \
                hdr.get("cseq", "").endswith(" INVITE"):
            answered.add(hdr.get("call-id"))
    return len(answered)


async def _nothing_live(h: Harness, ari: AriClient) -> bool:
    chans = await ari.list_channels() or []
    bridges = await ari.list_bridges() or []
    live = await h.redis.zcard(f"{h.prefix}calls:live")
    return not chans and not bridges and live == 0


async def _bridged(ari: AriClient) -> dict[str, Any] | None:
    for b in await ari.list_bridges() or []:
        if len(b.get("channels") or []) == 2:
            return b
    return None


async def _channels(ari: AriClient) -> list[dict[str, Any]]:
    return list(await ari.list_channels() or [])


def _names(chans: list[dict[str, Any]]) -> list[str]:
    return sorted(c["name"] for c in chans)


async def _cli_call(h: Harness, call_id: str) -> str:
    """Run the real `callctl call ID` against the test Redis and this test's prefix."""
    env = {**os.environ, **TEST_ENV, "CALLCTL_REDIS_PREFIX": h.prefix,
           "CALLCTL_LOG_FORMAT": "json"}
    argv = [sys.executable, "-m", "controller", "call", call_id]
    res = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                  env=env, cwd=PROJECT_ROOT, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout


# ------------------------------------------------------------------------------------ serial

SERIAL = _flow("""
departments:
  sales: {strategy: serial, members: [alice, bob], ring_time: 2}
flows:
  main:
    dids: ["+15550200"]
    entry: sales
    nodes:
      sales: {type: department, department: sales, fallback: bye}
      bye: {type: hangup}
""")


async def test_serial_given_first_does_not_answer_then_second_rings_and_is_bridged(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "noanswer")
    b = await phones.start("agent2", "answer", ring_ms=300)
    await harness.publish(SERIAL, tmp_path)
    await harness.start()

    t0 = time.time()
    call = asyncio.create_task(harness.call("+15550200", hold_ms=2500))
    # While B talks with the caller: exactly two channels (caller and B), A's leg is gone.
    await until(lambda: _bridged(ari), 10, "caller bridged with an agent")
    chans = await _channels(ari)
    assert len(chans) == 2, _names(chans)
    assert not any(c["name"].startswith("PJSIP/agent1-") for c in chans), _names(chans)
    assert any(c["name"].startswith("PJSIP/agent2-") for c in chans), _names(chans)
    bridged_after = time.time() - t0
    result = await call
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["result"] == "completed", _dump(rec)
    assert rec["answered_by"] == "bob"
    assert _rings(rec) == [["alice"], ["bob"]]  # one at a time, in the configured order
    (la,), (lb,) = _leg_of(rec, "alice"), _leg_of(rec, "bob")
    assert la["outcome"] == "no_answer" and lb["outcome"] == "answered", _dump(rec)
    assert 1.8 <= la["ended"] - la["started"] <= 2.7  # alice rang for her ring time only
    assert lb["started"] >= la["ended"] - 0.05  # bob rang after alice stopped
    assert 2.0 <= bridged_after < 6
    # A's phone: one INVITE, then a CANCEL (its leg is gone, not left ringing).
    await until(lambda: _received(a, "CANCEL") == 1, 5, "agent1 saw the CANCEL")
    assert a.invites() == 1 and b.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "no channel, bridge or live call")

    # `callctl call ID`: who rang, ring start/stop per leg, outcomes.
    out = await _cli_call(harness, rec["call_id"])
    lines = out.splitlines()
    assert any("ring" in ln and "alice" in ln for ln in lines), out
    leg_lines = [ln for ln in lines if ln.split()[1:2] == ["leg"]]
    assert len(leg_lines) == 2, out
    assert "user=alice" in leg_lines[0] and "outcome=no_answer" in leg_lines[0], out
    assert "user=bob" in leg_lines[1] and "outcome=answered" in leg_lines[1], out
    for ln in leg_lines:
        assert "started=" in ln and "ended=" in ln and "rang=" in ln, out
    assert "result=completed" in out and "answered_by=bob" in out, out


# ------------------------------------------------------------------------------ simultaneous

SIMULTANEOUS = _flow("""
departments:
  team: {strategy: simultaneous, members: [alice, bob, carol], ring_time: 3}
flows:
  main:
    dids: ["+15550210"]
    entry: team
    nodes:
      team: {type: department, department: team, fallback: bye}
      bye: {type: hangup}
""")


async def test_simultaneous_given_b_answers_then_a_and_c_cancelled_and_nobody_ringing(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "noanswer")
    b = await phones.start("agent2", "answer", ring_ms=1000)
    c = await phones.start("agent3", "noanswer")
    await harness.publish(SIMULTANEOUS, tmp_path)
    await harness.start()

    call = asyncio.create_task(harness.call("+15550210", hold_ms=2000))
    # All three ring together before anyone answers (Asterisk's view and the phones' own).
    await until(lambda: _ringing(ari, {"agent1", "agent2", "agent3"}), 5,
                "three legs ringing at once")
    await until(lambda: a.invites() == 1 and b.invites() == 1 and c.invites() == 1, 5,
                "all three phones got an INVITE")
    await until(lambda: _bridged(ari), 10, "caller bridged with an agent")
    # Nobody is left ringing: within a second only the caller and B remain.
    await until(lambda: _channels_are(ari, 2), 1.0, "only caller and agent2 left")
    chans = await _channels(ari)
    assert [n.split("-")[0] for n in _names(chans)].count("PJSIP/agent2") == 1, _names(chans)
    result = await call
    rec = await harness.record()

    assert rec["answered_by"] == "bob", _dump(rec)
    assert _rings(rec) == [["alice", "bob", "carol"]]
    legs = {t["user"]: t for t in _legs(rec)}
    assert {u: t["outcome"] for u, t in legs.items()} == {
        "alice": "cancelled", "bob": "answered", "carol": "cancelled"}, _dump(rec)
    starts = [t["started"] for t in legs.values()]
    assert max(starts) - min(starts) < 0.3  # rung together
    # The losers stopped ringing the moment B answered (~1 s in, well before the 3 s ring).
    answered_at = legs["bob"]["ended"]
    assert 0.8 < answered_at - legs["bob"]["started"] < 2.5, _dump(rec)
    for u in ("alice", "carol"):
        assert abs(legs[u]["ended"] - answered_at) < 0.2, _dump(rec)
    await until(lambda: _received(a, "CANCEL") == 1 and _received(c, "CANCEL") == 1, 5,
                "agent1 and agent3 saw a CANCEL")
    assert _received(b, "CANCEL") == 0
    # The losers' CANCELs say "answered elsewhere" (no missed call on the phones) and reach
    # them before the caller is answered (they stop ringing first). One clock: one host.
    answered = _first(sip_messages(result.trace), True, "SIP/2.0 200", "INVITE")
    for phone in (a, c):
        cancel = _first(sip_messages(phone.messages()), True, "CANCEL ", "CANCEL")
        assert "Q.850;cause=26" in cancel.header("reason"), cancel
        assert cancel.at < answered.at, (cancel, answered)
        print(f"{phone.name}: CANCEL {(answered.at - cancel.at).total_seconds() * 1000:.1f} ms "
              "before the caller's 200 OK")
    await until(lambda: _nothing_live(harness, ari), 5, "no channel, bridge or live call")


def _first(msgs: list[SipMessage], received: bool, first: str, cseq: str) -> SipMessage:
    """The first message received (or sent) starting with ``first`` for a CSeq method."""
    found = [m for m in msgs if m.received == received and m.first.startswith(first)
             and m.cseq_method == cseq]
    assert found, [(m.first, m.cseq_method) for m in msgs]
    return found[0]


async def _ringing(ari: AriClient, endpoints: set[str]) -> bool:
    chans = await _channels(ari)
    ringing = {c["name"].split("/", 1)[1].rsplit("-", 1)[0] for c in chans
               if c.get("state") == "Ringing" and c["name"].startswith("PJSIP/")}
    return ringing == endpoints


async def _channels_are(ari: AriClient, n: int) -> bool:
    return len(await _channels(ari)) == n


def test_simultaneous_given_six_members_then_lint_error(tmp_path: Path) -> None:
    text = """
users:
""" + "".join(f"  u{i}: {{endpoint: agent{i}}}\n" for i in range(1, 7)) + """
departments:
  big: {strategy: simultaneous, members: [u1, u2, u3, u4, u5, u6], ring_time: 3}
flows:
  main:
    dids: ["+15550219"]
    entry: big
    nodes:
      big: {type: department, department: big}
"""
    (tmp_path / "f.yaml").write_text(text)
    res = loader.load([tmp_path])
    msgs = [str(e) for e in res.errors]
    assert any("departments.big.members" in m and "at most 5" in m for m in msgs), msgs
    # five members are fine
    (tmp_path / "f.yaml").write_text(text.replace(", u6]", "]"))
    assert not loader.load([tmp_path]).errors


class _BridgeSpy(Controller):
    """The real controller, also noting every channel that ever entered a bridge."""

    event_types = (*EVENT_TYPES, "ChannelEnteredBridge")

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: dict[str, list[str]] = {}

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, ChannelEnteredBridge) and ev.channel is not None:
            self.entered.setdefault(ev.bridge_id, []).append(ev.channel.id)
        super().on_event(ev)


async def test_simultaneous_given_two_answer_at_once_then_only_one_gets_the_caller(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "answer", ring_ms=600)
    b = await phones.start("agent2", "answer", ring_ms=600)
    await harness.publish(SIMULTANEOUS.replace("[alice, bob, carol]", "[alice, bob]"),
                          tmp_path)
    ctl = _BridgeSpy(harness.settings)  # what harness.start() does, with the spy
    ctl.observers.append(harness.records.put_nowait)
    harness.ctl = ctl
    await ctl.start()
    await asyncio.wait_for(ctl.stream.connected_event.wait(), 10)

    double_answers = 0
    for i in range(3):
        before = (_answered_invites(a), _answered_invites(b))
        call = asyncio.create_task(harness.call("+15550210", hold_ms=1500))
        await until(lambda: _bridged(ari), 10, "caller bridged")
        # The loser is hung up at once: only the caller and the winner remain, in one bridge.
        await until(lambda: _channels_are(ari, 2), 1.0, "the second answerer hung up")
        assert len(await ari.list_bridges() or []) == 1
        await call
        rec = await harness.record()
        await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
        outcomes = {t["user"]: t["outcome"] for t in _legs(rec)}
        assert sorted(outcomes.values()) == ["answered", "cancelled"], _dump(rec)
        winner = rec["answered_by"]
        assert outcomes[winner] == "answered"
        assert len([t for t in rec["trace"] if t["kind"] == "answer"]) == 1, _dump(rec)
        # Nobody but the caller and the winner ever entered the call's bridge.
        entered = ctl.entered.pop(f"{rec['call_id']}-B", [])
        assert len(entered) == 2 and rec["call_id"] in entered, (entered, _dump(rec))
        # Did both phones really answer (200 OK) this time?
        await until(lambda n=i + 1: a.invites() == n and b.invites() == n,  # type: ignore[misc]
                    5, "invites seen")
        both = (_answered_invites(a) - before[0], _answered_invites(b) - before[1]) == (1, 1)
        double_answers += both
    assert double_answers >= 1, "the phones never answered in the same instant"


# ---------------------------------------------------------------------------------- balanced

BALANCED = _flow("""
departments:
  rr: {strategy: balanced, members: [alice, bob, carol], ring_time: 2}
flows:
  main:
    dids: ["+15550220"]
    entry: rr
    nodes:
      rr: {type: department, department: rr, fallback: bye}
      bye: {type: hangup}
""")


async def test_balanced_given_six_calls_and_a_restart_then_two_each_in_order(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    bank = {u: await phones.start(ep, "answer", ring_ms=100)
            for u, ep in (("alice", "agent1"), ("bob", "agent2"), ("carol", "agent3"))}
    await harness.publish(BALANCED, tmp_path)
    await harness.start()

    got: list[str] = []
    for i in range(6):
        if i == 3:  # a new controller process state: only Redis remembers the cursor
            await harness.stop()
            await harness.start()
        res = await harness.call("+15550220", hold_ms=300)
        rec = await harness.record()
        assert res.final_status() == 200, _dump(rec)
        got.append(rec["answered_by"])
        assert _rings(rec)[0] == [got[-1]]  # the first to ring is the one who answered
        await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
    assert got == ["alice", "bob", "carol", "alice", "bob", "carol"]
    assert {u: p.invites() for u, p in bank.items()} == {"alice": 2, "bob": 2, "carol": 2}
    assert await harness.redis.get(f"{harness.prefix}rr:rr") == "6"


# ------------------------------------------------------------------------------------ sticky

STICKY = _flow("""
departments:
  care: {strategy: serial, members: [alice, bob], ring_time: 2, sticky: {ttl: 1h}}
flows:
  main:
    dids: ["+15550230"]
    entry: care
    nodes:
      care: {type: department, department: care, fallback: bye}
      bye: {type: hangup}
""")
CALLER_X = "+15557770001"


async def test_sticky_given_returning_caller_then_last_agent_first_unless_opted_out(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "busy")
    b = await phones.start("agent2", "answer", ring_ms=200)
    await harness.publish(STICKY, tmp_path)
    ctl = await harness.start()

    # 1. X calls: alice is busy (486), bob answers -> X is remembered as bob's.
    await harness.call("+15550230", caller=CALLER_X, hold_ms=300)
    rec = await harness.record()
    assert rec["answered_by"] == "bob", _dump(rec)
    assert _rings(rec) == [["alice"], ["bob"]]
    assert _leg_of(rec, "alice")[0]["outcome"] == "busy"
    key = f"{harness.prefix}sticky:care:{CALLER_X}"
    await until(lambda: _get(harness, key, "bob"), 3, "sticky mapping written")
    ttl = await harness.redis.ttl(key)
    assert 3500 < ttl <= 3600
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")

    # 2. X calls again, alice now free: bob still rings first (and answers); alice never rings.
    a = await phones.start("agent1", "answer", ring_ms=200)
    await harness.call("+15550230", caller=CALLER_X, hold_ms=300)
    rec = await harness.record()
    assert rec["answered_by"] == "bob", _dump(rec)
    assert _rings(rec) == [["bob"]]
    sticky = [t for t in rec["trace"] if t["kind"] == "sticky"]
    assert sticky and sticky[0]["user"] == "bob" and sticky[0]["used"] is True
    assert a.invites() == 0 and b.invites() == 2
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")

    # 3. bob opts out: the strategy runs without him; his phone gets no INVITE.
    await ctl.store.set_user_override("bob", "receive_calls", "0")
    await harness.call("+15550230", caller=CALLER_X, hold_ms=300)
    rec = await harness.record()
    assert rec["answered_by"] == "alice", _dump(rec)
    assert _skips(rec).get("bob") == "opted_out"
    assert _rings(rec) == [["alice"]]
    assert a.invites() == 1 and b.invites() == 2
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def _get(h: Harness, key: str, want: str) -> bool:
    return await h.redis.get(key) == want


async def _hget(h: Harness, key: str, field: str, want: str) -> bool:
    return await h.redis.hget(h.prefix + key, field) == want


# ----------------------------------------------------------------------------------- opt-out

OPT_OUT = """
settings:
  timezone: UTC
users:
  alice: {endpoint: agent1, receive_calls: false}
  bob: {endpoint: agent2}
departments:
  sup: {strategy: simultaneous, members: [alice, bob], ring_time: 3}
flows:
  line:
    dids: ["+15550240"]
    entry: sup
    nodes:
      sup: {type: department, department: sup, fallback: bye}
      bye: {type: hangup}
  direct:
    dids: ["+15550241"]
    entry: alice
    nodes:
      alice: {type: extension, user: alice, ring_time: 3, fallback: vm}
      vm: {type: voicemail, mailbox: "user:alice", greeting: null, max_seconds: 10}
"""


async def test_opt_out_given_opted_out_user_then_never_invited_but_voicemail_records(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "answer", ring_ms=100)
    b = await phones.start("agent2", "answer", ring_ms=300)
    await harness.publish(OPT_OUT, tmp_path)
    await harness.start()

    # Through the department: bob rings alone, alice is skipped.
    await harness.call("+15550240", hold_ms=300)
    rec = await harness.record()
    assert rec["answered_by"] == "bob", _dump(rec)
    assert _skips(rec) == {"alice": "opted_out"}
    assert _rings(rec) == [["bob"]]
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
    # Counters move for bob, never for alice.
    await until(lambda: _hget(harness, "stats:agent:bob", "answered", "1"), 3, "bob counted")
    assert not await harness.redis.hgetall(f"{harness.prefix}stats:agent:alice")

    # Straight to her extension: skipped at once, her voicemail still records.
    res = await harness.call("+15550241", hold_ms=8000, digits=[(2500, "#")])
    rec = await harness.record()
    assert res.final_status() == 200
    assert _skips(rec) == {"alice": "opted_out"}, _dump(rec)
    assert not _legs(rec) and rec["path"] == ["alice", "vm"]
    vms = [t for t in rec["trace"] if t["kind"] == "voicemail" and "recording" in t]
    assert vms and vms[0]["mailbox"] == "alice", _dump(rec)
    name = vms[0]["recording"]
    assert name.startswith("voicemail/alice/") and rec["call_id"] in name
    wav = harness.settings.run_dir / "spool" / "recording" / f"{name}.wav"
    try:
        await until(wav.exists, 5, f"{wav} on disk")
        assert wav.stat().st_size >= 44  # a WAV header at least
    finally:
        wav.unlink(missing_ok=True)
    # Her phone never saw an INVITE, on either path; her counters never moved.
    assert a.invites() == 0, a.messages()[-2000:]
    assert not await harness.redis.hgetall(f"{harness.prefix}stats:agent:alice")
    assert b.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


# ------------------------------------------------------------------- availability and busy

WINDOW_BUSY = _flow("""
departments:
  ops: {strategy: serial, members: [alice, bob, carol], ring_time: 2}
flows:
  ops:
    dids: ["+15550250"]
    entry: ops
    nodes:
      ops: {type: department, department: ops, fallback: bye}
      bye: {type: hangup}
  bob-direct:
    dids: ["+15550251"]
    entry: bob
    nodes:
      bob: {type: extension, user: bob, ring_time: 3, fallback: bye}
      bye: {type: hangup}
""")


def _window_not_now() -> str:
    """An availability override (every day, one hour) that certainly excludes now (UTC)."""
    start = datetime.now(UTC) + timedelta(hours=6)
    end = start + timedelta(hours=1)
    return json.dumps([{"days": "mon-sun", "start": start.strftime("%H:%M"),
                        "end": end.strftime("%H:%M")}])


async def test_availability_and_busy_given_skips_then_reasons_in_trace(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "answer", ring_ms=100)
    b = await phones.start("agent2", "answer", ring_ms=100)
    c = await phones.start("agent3", "answer", ring_ms=300)
    await harness.publish(WINDOW_BUSY, tmp_path)
    ctl = await harness.start()
    await ctl.store.set_user_override("alice", "availability", _window_not_now())

    # bob is on a real call (bridged, in progress) ...
    first = asyncio.create_task(harness.call("+15550251", hold_ms=20000))
    await until(lambda: _get(harness, f"{harness.prefix}busy:bob", _call_on(ctl, "+15550251")),
                10, "bob marked busy by his live call")
    assert 0 < await harness.redis.ttl(f"{harness.prefix}busy:bob") <= 4 * 3600  # crash-safe
    # ... when the department rings: alice is off hours, bob busy, carol answers.
    await harness.call("+15550250", hold_ms=300)
    rec = await harness.record()
    assert rec["did"] == "+15550250", _dump(rec)
    assert rec["answered_by"] == "carol", _dump(rec)
    assert _skips(rec) == {"alice": "outside_window", "bob": "busy"}, _dump(rec)
    assert _rings(rec) == [["carol"]]
    assert a.invites() == 0 and b.invites() == 1 and c.invites() == 1

    # End bob's call: his busy mark goes, his last call end is stamped.
    await ari.hangup(_call_on(ctl, "+15550251"))
    await first
    rec1 = await harness.record()
    assert rec1["answered_by"] == "bob" and rec1["result"] == "completed", _dump(rec1)
    assert await harness.redis.get(f"{harness.prefix}busy:bob") is None
    assert await harness.redis.zscore(f"{harness.prefix}lastcall", "bob") is not None
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")

    out = await _cli_call(harness, rec["call_id"])
    assert "user=alice reason=outside_window" in out, out
    assert "user=bob reason=busy" in out, out
    assert "user=carol" in out and "outcome=answered" in out, out


ONE_AGENT = _flow("""
departments:
  solo: {strategy: serial, members: [alice], ring_time: 5}
  backup: {strategy: serial, members: [bob], ring_time: 5}
flows:
  main:
    dids: ["+15550255"]
    entry: solo
    nodes:
      solo: {type: department, department: solo, fallback: backup}
      backup: {type: department, department: backup, fallback: bye}
      bye: {type: hangup}
""")


async def test_busy_given_two_calls_answered_by_one_agent_at_once_then_one_books_her(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """Both calls find alice free and ring her phone, which answers both (a phone with two
    lines): she is booked atomically when a leg answers, so only one call gets her; the
    other's leg is hung up at once and that call goes on to its next member (bob)."""
    a = await phones.start("agent1", "answer", ring_ms=800)
    b = await phones.start("agent2", "answer", ring_ms=300)
    await harness.publish(ONE_AGENT, tmp_path)
    ctl = await harness.start()

    calls = [asyncio.create_task(harness.call("+15550255", caller=f"+1555123000{i}",
                                              hold_ms=3000)) for i in (1, 2)]
    await until(lambda: a.invites() == 2, 5, "both calls ring alice's phone")

    async def one_each() -> bool:
        names = [n.split("-")[0] for n in _names(await _channels(ari))]
        return names.count("PJSIP/agent1") == 1 and names.count("PJSIP/agent2") == 1 and \
            len([b for b in await ari.list_bridges() or [] if len(b["channels"]) == 2]) == 2

    await until(one_each, 10, "one call bridged with alice, the other with bob")
    alice_calls = [c.id for c in ctl.calls.values() if c.ctx.answered_by == "alice"]
    assert len(alice_calls) == 1, [(c.id, c.ctx.answered_by) for c in ctl.calls.values()]
    assert await harness.redis.get(f"{harness.prefix}busy:alice") == alice_calls[0]
    # her phone answered both calls; the call that lost her hung its leg up (a BYE) at once
    assert _answered_invites(a) == 2
    assert _received(a, "BYE") == 1
    results = await asyncio.gather(*calls)
    assert [r.final_status() for r in results] == [200, 200]
    recs = [await harness.record(), await harness.record()]
    by = {r["answered_by"]: r for r in recs}
    assert set(by) == {"alice", "bob"}, [_dump(r) for r in recs]
    assert [(t["user"], t["outcome"]) for t in _legs(by["bob"])] == [
        ("alice", "busy"), ("bob", "answered")], _dump(by["bob"])
    assert [(t["user"], t["outcome"]) for t in _legs(by["alice"])] == [
        ("alice", "answered")], _dump(by["alice"])
    assert b.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
    assert await harness.redis.get(f"{harness.prefix}busy:alice") is None


def _call_on(ctl: Any, did: str) -> str:
    ids = [c.id for c in ctl.calls.values() if c.ctx.did == did]
    return ids[0] if ids else "?"


# ------------------------------------------------------------------------------ longest idle

IDLE = _flow("""
departments:
  idle: {strategy: longest_idle, members: [alice, bob, carol], ring_time: 2}
flows:
  main:
    dids: ["+15550260"]
    entry: idle
    nodes:
      idle: {type: department, department: idle, fallback: bye}
      bye: {type: hangup}
""")


async def test_longest_idle_given_last_call_ends_then_most_idle_first(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    for ep in ("agent1", "agent2", "agent3"):
        await phones.start(ep, "answer", ring_ms=100)
    await harness.publish(IDLE, tmp_path)
    await harness.start()
    now = time.time()
    # alice finished a call 5 s ago, bob 60 s ago, carol has had none (the most idle).
    await harness.redis.zadd(f"{harness.prefix}lastcall", {"alice": now - 5, "bob": now - 60})

    got = []
    for _ in range(4):
        await harness.call("+15550260", hold_ms=300)
        rec = await harness.record()
        got.append(rec["answered_by"])
        assert _rings(rec)[0] == [got[-1]], _dump(rec)
        await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
    # Each answered call stamps its end; the next call goes to whoever waited longest.
    assert got == ["carol", "bob", "alice", "carol"]


# ------------------------------------------------------- rounds, total timeout and fallback

ROUNDS = _flow("""
departments:
  sales: {strategy: serial, members: [alice, bob], ring_time: 2, rounds: 2, total_timeout: 6}
flows:
  main:
    dids: ["+15550270"]
    entry: sales
    nodes:
      sales: {type: department, department: sales, fallback: closed}
      closed: {type: hangup, cause: 17}
""")


async def test_rounds_given_total_timeout_then_last_wave_cut_short_and_fallback_taken(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    a = await phones.start("agent1", "noanswer")
    b = await phones.start("agent2", "noanswer")
    await harness.publish(ROUNDS, tmp_path)
    await harness.start()

    await harness.call("+15550270", hold_ms=1000)
    rec = await harness.record()

    assert rec["answered_by"] is None and rec["path"] == ["sales", "closed"], _dump(rec)
    # Round 1: alice, bob (2 s each); round 2: alice for what is left of the 6 s; bob cut.
    assert _rings(rec) == [["alice"], ["bob"], ["alice"]], _dump(rec)
    legs = _legs(rec)
    rang = [round(t["ended"] - t["started"], 1) for t in legs]
    assert [t["outcome"] for t in legs] == ["no_answer"] * 3
    assert 1.9 <= rang[0] <= 2.4 and 1.9 <= rang[1] <= 2.4 and 1.2 <= rang[2] <= 2.1, rang
    assert legs[2]["ended"] - legs[0]["started"] <= 6.3
    cut = [t for t in rec["trace"] if t["kind"] == "skip" and t.get("reason") == "total_timeout"]
    assert cut and cut[0]["users"] == ["bob"], _dump(rec)
    await until(lambda: _received(a, "CANCEL") == 2 and _received(b, "CANCEL") == 1, 5,
                "every ringing leg cancelled")
    assert a.invites() == 2 and b.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
