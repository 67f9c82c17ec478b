"""Issue 5: failover on real calls (Asterisk + Redis + SIPp phones; a SIPp UAS plays the PSTN).

Alternates ring at once on busy/unreachable (never on no-answer by default, never when the
global switch is off), departments continue when primary and alternate fail, then fail over
to their PSTN number or failover voicemail. With the controller (and Redis) down the dialplan
reads the DID's failover target from AstDB and still reaches the failover number or records a
message. Failover tests route a line to its failover until stopped or expired.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.ari.client import AriClient
from controller.config import PROJECT_ROOT, Settings
from controller.core.flows import loader
from controller.tools import stack
from controller.tools.stack import probes, procs

from integration.conftest import TEST_ENV, Harness, PhoneBank, until
from sippctl import Phone

CALLER = "+15551230001"
ALT = "+15557770001"  # alice's external alternate (through the pstn trunk)
DEPT_FO = "+15557770999"  # the department's failover number
LINE_FO = "+15557770310"  # the main line's (DID's) failover number, used by the dialplan
DID = "+15550300"

# Separator SIPp writes before each traced message: 47 dashes, a space, a local timestamp.
_SEP = "-" * 47 + " "


@dataclass(frozen=True)
class SipMsg:
    at: datetime
    received: bool
    first: str
    headers: dict[str, str]


def sip_log(phone: Phone) -> list[SipMsg]:
    """Every SIP message in a phone's SIPp trace, with SIPp's own timestamp."""
    out = []
    for block in phone.messages().split(_SEP)[1:]:
        lines = block.splitlines()
        if len(lines) < 3:
            continue
        try:
            at = datetime.strptime(lines[0].strip(), "%Y-%m-%d %H:%M:%S.%f")
        except ValueError:
            continue
        body = [ln for ln in lines[2:] if ln.strip()]
        if not body:
            continue
        hdrs: dict[str, str] = {}
        for ln in body[1:]:
            if ":" in ln and not ln.startswith(" "):
                k, v = ln.split(":", 1)
                hdrs.setdefault(k.strip().lower(), v.strip())
        out.append(SipMsg(at, "received" in lines[1], body[0], hdrs))
    return out


def initial_invites(phone: Phone) -> list[SipMsg]:
    """Initial INVITEs a phone received (no To tag, first per Call-ID)."""
    seen: set[str] = set()
    out = []
    for m in sip_log(phone):
        if m.received and m.first.startswith("INVITE ") and "tag=" not in m.headers.get("to", ""):
            cid = m.headers.get("call-id", "")
            if cid not in seen:
                seen.add(cid)
                out.append(m)
    return out


def invited_numbers(phone: Phone) -> list[str]:
    """The user parts of the Request-URIs of the initial INVITEs (the numbers dialled)."""
    return [m.first.split()[1].removeprefix("sip:").split("@")[0] for m in initial_invites(phone)]


def sent(phone: Phone, status: int) -> list[SipMsg]:
    return [m for m in sip_log(phone) if not m.received and m.first.startswith(f"SIP/2.0 {status}")]


def flows(*, alt: str | None = ALT, bob: bool = True, forward: bool = True,
          caller_id: str = "caller", dept_fo: str = f'{{number: "{DEPT_FO}"}}',
          alice_ep: str = "agent1", bob_alt: str | None = None, alice_opted_out: bool = False,
          line_fo: str = f'{{number: "{LINE_FO}", mailbox: main}}') -> str:
    alice_alt = f', alternate: "{alt}"' if alt else ""
    alice_alt += ", receive_calls: false" if alice_opted_out else ""
    bob_alt_s = f', alternate: "{bob_alt}"' if bob_alt else ""
    bob_line = f"  bob: {{name: Bob, endpoint: agent2{bob_alt_s}}}\n" if bob else ""
    members = "[alice, bob]" if bob else "[alice]"
    return f"""
settings:
  timezone: UTC
  forward_to_alternate: {str(forward).lower()}
  alternate_caller_id: {caller_id}
users:
  alice: {{name: Alice, endpoint: {alice_ep}{alice_alt}}}
{bob_line}departments:
  sales:
    strategy: serial
    members: {members}
    ring_time: 2
    failover: {dept_fo}
flows:
  main:
    dids: ["{DID}"]
    entry: sales
    failover: {line_fo}
    nodes:
      sales: {{type: department, department: sales, fallback: failover}}
"""


def legs(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in rec["trace"] if t["kind"] == "leg"]


async def nothing_live(h: Harness, ari: AriClient) -> bool:
    chans = await ari.list_channels() or []
    bridges = await ari.list_bridges() or []
    return not chans and not bridges and await h.redis.zcard(f"{h.prefix}calls:live") == 0


def caller_number_of(m: SipMsg, header: str) -> str:
    """The user part of a From / Remote-Party-ID / P-Asserted-Identity header."""
    value = m.headers.get(header, "")
    return value.split("sip:", 1)[1].split("@", 1)[0] if "sip:" in value else ""


# ---------------------------------------------------------------------------- alternates

@pytest.mark.parametrize("caller_id", ["caller", "did"])
async def test_busy_primary_rings_external_alternate_at_once_and_bridges(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        caller_id: str) -> None:
    primary, bob, pstn = await asyncio.gather(
        phones.start("agent1", "busy"), phones.start("agent2", "answer"),
        phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(caller_id=caller_id), tmp_path)
    await harness.start()

    result = await harness.call(DID, caller=CALLER, hold_ms=2500)
    rec = await harness.record()

    assert result.final_status() == 200, result.trace[-1500:]
    assert rec["result"] == "completed" and rec["answered_by"] == "alice", rec
    answer = [t for t in rec["trace"] if t["kind"] == "answer"]
    assert answer and answer[0]["role"] == "alternate" and answer[0]["address"] == ALT
    outcomes = [(t["address"], t["outcome"], t["cause"], t["via_alternate"]) for t in legs(rec)]
    assert outcomes[0] == ("agent1", "busy", 17, False), outcomes
    assert outcomes[1][:2] == (ALT, "answered") and outcomes[1][3], outcomes
    assert bob.invites() == 0  # the call never went on to the next user

    await until(lambda: len(sent(primary, 486)) == 1 and len(initial_invites(pstn)) == 1
                and "BYE" in pstn.messages(), 5, "486 and the alternate's INVITE traced")
    invite = initial_invites(pstn)[0]
    assert invited_numbers(pstn) == [ALT]
    gap = (invite.at - sent(primary, 486)[0].at).total_seconds()
    print(f"\n486 from the primary -> INVITE at the alternate: {gap * 1000:.1f} ms "
          f"(alternate_caller_id={caller_id})")
    # Sequential (the primary is gone before the alternate rings), and no audible delay.
    assert 0 < gap < 0.5, gap

    # Caller id on the alternate leg, as the carrier sees it.
    want = CALLER if caller_id == "caller" else DID
    assert caller_number_of(invite, "from") == want, invite.headers
    rpid = invite.headers.get("remote-party-id") or invite.headers.get("p-asserted-identity")
    assert rpid is not None and f"sip:{want}@" in rpid, invite.headers
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_primary_480_unavailable_rings_alternate_at_once(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    # Issue 13 item 8: a phone answering 480 Temporarily Unavailable (cause 19: DND, offline)
    # is unreachable by default, so the alternate rings at once, as busy does.
    primary, bob, pstn = await asyncio.gather(
        phones.start("agent1", "unavailable"), phones.start("agent2", "answer"),
        phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(), tmp_path)
    await harness.start()

    result = await harness.call(DID, caller=CALLER, hold_ms=2000)
    rec = await harness.record()

    assert result.final_status() == 200, result.trace[-1500:]
    assert rec["answered_by"] == "alice", legs(rec)
    assert [(t["address"], t["outcome"], t["cause"], t["via_alternate"]) for t in legs(rec)][:1] \
        == [("agent1", "unreachable", 19, False)], legs(rec)
    assert [(t["address"], t["outcome"]) for t in legs(rec)][1:] == [(ALT, "answered")]
    assert bob.invites() == 0  # the call never went on to the next user
    await until(lambda: len(sent(primary, 480)) == 1 and invited_numbers(pstn) == [ALT], 5,
                "480 and the alternate's INVITE traced")
    # At once: right after the 480, not when alice's ring time (2 s) ran out; she was never
    # cancelled (the 480 ended her leg).
    gap = (initial_invites(pstn)[0].at - sent(primary, 480)[0].at).total_seconds()
    assert 0 < gap < 2, gap
    assert not [m for m in sip_log(primary) if m.received and m.first.startswith("CANCEL")]
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_primary_not_listening_rings_alternate(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    await phones.stop("agent1")  # nothing listens there: qualify marks the contact Unavail
    pstn, _ = await asyncio.gather(phones.start("pstn", "answer", ring_ms=100),
                                   phones.start("agent2", "answer"))
    await harness.publish(flows(), tmp_path)
    await harness.start()

    result = await harness.call(DID, hold_ms=2000)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["answered_by"] == "alice", rec
    assert [(t["address"], t["outcome"]) for t in legs(rec)] == [
        ("agent1", "unreachable"), (ALT, "answered")], legs(rec)
    await until(lambda: invited_numbers(pstn) == [ALT], 5, "alternate INVITE traced")
    # "at once": no SIP timer B (32 s) wait on a dead phone
    assert rec["answered_at"] - rec["started"] < 2.0, rec
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_primary_without_contact_rings_alternate(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    pstn, _ = await asyncio.gather(phones.start("pstn", "answer", ring_ms=100),
                                   phones.start("agent2", "answer"))
    await harness.publish(flows(alice_ep="agent9"), tmp_path)  # agent9: no contact at all
    await harness.start()

    result = await harness.call(DID, hold_ms=2000)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["answered_by"] == "alice", rec
    assert [(t["address"], t["outcome"]) for t in legs(rec)] == [
        ("agent9", "unreachable"), (ALT, "answered")], legs(rec)
    await until(lambda: invited_numbers(pstn) == [ALT], 5, "alternate INVITE traced")
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_primary_never_answers_goes_to_next_user_not_alternate(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    primary, bob, pstn = await asyncio.gather(
        phones.start("agent1", "noanswer"), phones.start("agent2", "answer", ring_ms=100),
        phones.start("pstn", "answer"))
    await harness.publish(flows(), tmp_path)
    await harness.start()

    result = await harness.call(DID, hold_ms=1500)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["answered_by"] == "bob", legs(rec)
    assert [(t["address"], t["outcome"]) for t in legs(rec)] == [
        ("agent1", "no_answer"), ("agent2", "answered")], legs(rec)
    await until(lambda: "CANCEL" in primary.messages() and bob.invites() == 1, 5,
                "primary cancelled, bob rung")
    assert pstn.invites() == 0, pstn.messages()
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_global_switch_off_rings_no_alternate(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    _, bob, agent3, pstn = await asyncio.gather(
        phones.start("agent1", "busy"), phones.start("agent2", "busy"),
        phones.start("agent3", "answer"), phones.start("pstn", "answer"))
    # Both users have alternates (external and SIP); the department has no failover number
    # and its voicemail is off, so with the switch off the call simply ends.
    await harness.publish(flows(forward=False, bob_alt="sip:agent3",
                                dept_fo="{voicemail: false}"), tmp_path)
    await harness.start()

    await harness.call(DID, hold_ms=4000)
    rec = await harness.record()

    assert rec["answered_by"] is None, rec
    assert [(t["address"], t["outcome"]) for t in legs(rec)] == [
        ("agent1", "busy"), ("agent2", "busy")], legs(rec)
    await until(lambda: bob.invites() == 1, 5, "bob's INVITE traced")
    assert pstn.invites() == 0 and agent3.invites() == 0
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_opted_out_user_alternate_not_rung(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    alice, bob, pstn = await asyncio.gather(
        phones.start("agent1", "answer"), phones.start("agent2", "answer", ring_ms=100),
        phones.start("pstn", "answer"))
    await harness.publish(flows(alice_opted_out=True), tmp_path)
    await harness.start()

    result = await harness.call(DID, hold_ms=1500)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["answered_by"] == "bob", legs(rec)
    assert [t["address"] for t in legs(rec)] == ["agent2"], legs(rec)
    await until(lambda: bob.invites() == 1, 5, "bob's INVITE traced")
    assert alice.invites() == 0 and pstn.invites() == 0
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_primary_and_alternate_busy_then_department_continues(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    primary, pstn, bob = await asyncio.gather(
        phones.start("agent1", "busy"), phones.start("pstn", "busy"),
        phones.start("agent2", "answer", ring_ms=100))
    await harness.publish(flows(), tmp_path)
    await harness.start()

    result = await harness.call(DID, hold_ms=1500)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["answered_by"] == "bob", legs(rec)
    assert [(t["address"], t["outcome"], t["via_alternate"]) for t in legs(rec)] == [
        ("agent1", "busy", False), (ALT, "busy", True), ("agent2", "answered", False)]
    await until(lambda: bob.invites() == 1 and len(sent(pstn, 486)) == 1, 5, "traces")
    # one after the other: primary busy -> alternate busy -> next user
    t_alt, t_bob = initial_invites(pstn)[0].at, initial_invites(bob)[0].at
    assert sent(primary, 486)[0].at <= t_alt <= sent(pstn, 486)[0].at <= t_bob
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_everyone_fails_then_department_failover_number(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    _, agent3, _, pstn = await asyncio.gather(
        phones.start("agent1", "busy"),
        phones.start("agent3", "busy"),  # alice's alternate: also busy
        phones.start("agent2", "busy"), phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(alt="sip:agent3"), tmp_path)
    await harness.start()

    result = await harness.call(DID, hold_ms=2000)
    rec = await harness.record()

    assert result.final_status() == 200
    assert rec["result"] == "completed", rec
    assert [(t["address"], t["outcome"], t["role"]) for t in legs(rec)] == [
        ("agent1", "busy", "primary"), ("agent3", "busy", "alternate"),
        ("agent2", "busy", "primary"), (DEPT_FO, "answered", "failover")], legs(rec)
    assert agent3.invites() == 1
    await until(lambda: invited_numbers(pstn) == [DEPT_FO], 5, "failover INVITE traced")
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_no_failover_number_then_failover_voicemail_records(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    _, pstn = await asyncio.gather(phones.start("agent1", "busy"),
                                   phones.start("pstn", "busy"))
    box = f"fo-{uuid.uuid4().hex[:8]}"
    box_dir = test_settings.run_dir / "spool" / "recording" / "voicemail" / box
    await harness.publish(flows(bob=False, dept_fo=f"{{voicemail: true, mailbox: {box}}}"),
                          tmp_path)
    await harness.start()
    try:
        # greeting (~4.9 s) + beep, then the caller speaks for ~3 s and hangs up
        result = await harness.call(DID, speak_after_ms=5500, hold_ms=3000)
        rec = await harness.record()

        assert result.final_status() == 200
        assert rec["result"] == "voicemail", rec
        assert [(t["address"], t["outcome"]) for t in legs(rec)] == [
            ("agent1", "busy"), (ALT, "busy")], legs(rec)
        vm = [t for t in rec["trace"] if t["kind"] == "voicemail"]
        assert vm and vm[0]["mailbox"] == box and vm[0].get("greeting") == "failover-greeting"
        recorded = [t for t in rec["trace"] if t["kind"] == "recorded"]
        assert recorded and recorded[0]["reason"] == "hangup", rec["trace"]
        assert recorded[0]["duration"] >= 1, recorded
        files = list(box_dir.glob("*.wav"))
        assert len(files) == 1 and files[0].stat().st_size > 8000, files  # > 1 s of audio
        assert pstn.invites() == 1  # the alternate; no failover number was dialled
        await until(lambda: nothing_live(harness, ari), 5, "nothing live")
    finally:
        shutil.rmtree(box_dir, ignore_errors=True)


def test_external_alternate_that_is_not_e164_is_rejected(tmp_path: Path) -> None:
    # letters, a leading 0 (national/international prefix), too short, too long, a SIP URI
    # trick: never spliced into PJSIP/<number>@pstn
    for bad in ("12ab34", "0044123456", "+1", "+15551234567890123", "+1555@evil", "1555;x=y"):
        d = tmp_path / f"flows-{uuid.uuid4().hex[:6]}"
        d.mkdir()
        (d / "flows.yaml").write_text(flows(alt=bad))
        res = loader.load([d])
        assert res.errors and any("alice" in str(e) and "alternate" in str(e)
                                  for e in res.errors), (bad, res.errors)
    d = tmp_path / "good"
    d.mkdir()
    (d / "flows.yaml").write_text(flows(alt="+44 20 7946-0000"))
    assert not loader.load([d]).errors


# ---------------------------------------------------------------------------- outages

async def astdb_get(settings: Settings, did: str) -> str | None:
    out = await asyncio.to_thread(stack.asterisk_cli, settings,
                                  f"database get callctl_failover {did}")
    return out.split("Value:", 1)[1].strip() if "Value:" in out else None


async def app_registered(settings: Settings) -> bool:
    out = await asyncio.to_thread(stack.asterisk_cli, settings, "ari show apps")
    return settings.app in out.split()


async def written_to_astdb(h: Harness, did: str, value: str) -> None:
    async def ok() -> bool:
        return await astdb_get(h.settings, did) == value
    await until(ok, 10, f"AstDB callctl_failover/{did} = {value}")


async def _not(f: Any, *a: Any) -> bool:
    return not await f(*a)


def redis_pidfile(settings: Settings) -> Path:
    return stack.Paths(settings.run_dir).pids / "redis.pid"


async def test_controller_and_redis_down_then_dialplan_reaches_failover_number(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    agent, pstn = await asyncio.gather(phones.start("agent1", "answer", ring_ms=100),
                                       phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(alt=None, bob=False, caller_id="did"), tmp_path)
    await harness.start()  # publishes -> the controller writes the target through AMI
    await written_to_astdb(harness, DID, f"{LINE_FO}|main|en/failover-greeting|did")
    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")
    redis_stopped = False
    try:
        # 1. controller down: the dialplan dials the line's failover number
        result = await harness.call(DID, hold_ms=1500)
        assert result.final_status() == 200, result.trace[-1500:]
        await until(lambda: invited_numbers(pstn) == [LINE_FO] and "BYE" in pstn.messages(),
                    5, "failover INVITE at the trunk")
        assert agent.invites() == 0
        # alternate_caller_id: did holds on the outage path too (the dialplan presents it)
        assert caller_number_of(initial_invites(pstn)[0], "from") == DID

        # 2. Redis down too: the same (the target lives in AstDB)
        assert procs.stop_pid(redis_pidfile(test_settings))
        redis_stopped = True
        assert not probes.redis_ping(test_settings.redis_url)
        result = await harness.call(DID, hold_ms=1500)
        assert result.final_status() == 200, result.trace[-1500:]
        await until(lambda: invited_numbers(pstn) == [LINE_FO, LINE_FO], 5,
                    "second failover INVITE at the trunk")
        assert agent.invites() == 0
    finally:
        if redis_stopped:
            await asyncio.to_thread(stack.up, test_settings, asterisk=False)
            await harness.redis.connection_pool.disconnect()  # drop the dead connections
    # 3. everything back: normal routing resumes
    await harness.start()
    result = await harness.call(DID, hold_ms=1500)
    rec = await harness.record()
    assert result.final_status() == 200
    assert rec["answered_by"] == "alice" and rec["result"] == "completed", rec
    assert agent.invites() == 1 and len(invited_numbers(pstn)) == 2
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_controller_down_then_outage_voicemail_records_a_file(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    box = f"out-{uuid.uuid4().hex[:8]}"
    box_dir = test_settings.run_dir / "spool" / "recording" / "voicemail" / box
    assert not box_dir.exists()
    await harness.publish(flows(alt=None, bob=False, line_fo=f"{{mailbox: {box}}}"), tmp_path)
    await harness.start()
    await written_to_astdb(harness, DID, f"|{box}|en/failover-greeting|")
    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")
    try:
        # greeting (~4.9 s) + beep, then the caller speaks for ~3 s and hangs up
        result = await harness.call(DID, speak_after_ms=5500, hold_ms=3000)
        assert result.final_status() == 200, result.trace[-1500:]
        files: list[Path] = []

        def recorded() -> bool:
            files[:] = list(box_dir.glob("outage-*.wav"))
            return bool(files)

        await until(recorded, 5, f"a recording in {box_dir}")
        assert len(files) == 1 and files[0].stat().st_size > 8000, files  # > 1 s of audio
        await until(lambda: nothing_live(harness, ari), 5, "nothing live")
    finally:
        shutil.rmtree(box_dir, ignore_errors=True)


async def test_controller_down_line_without_failover_rings_entry_department_failover_number(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    # Issue 13 item 9: the line has no failover block of its own; its entry department has a
    # failover number. With the controller down that number rings (it used to record into a
    # voicemail box named after the flow), as a live failover test of the line does.
    agent, pstn = await asyncio.gather(phones.start("agent1", "answer", ring_ms=100),
                                       phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(alt=None, bob=False, line_fo="null"), tmp_path)
    await harness.start()
    await written_to_astdb(harness, DID, f"{DEPT_FO}|sales|en/failover-greeting|")
    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")

    result = await harness.call(DID, hold_ms=1500)
    assert result.final_status() == 200, result.trace[-1500:]
    await until(lambda: invited_numbers(pstn) == [DEPT_FO] and "BYE" in pstn.messages(), 5,
                "the department's failover number rung by the dialplan")
    assert agent.invites() == 0
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def test_department_voicemail_off_means_no_outage_voicemail(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    # Issue 13 item 9: the line has no failover; its entry department has no number and
    # `voicemail: false`. Live, nobody answering ends the call with 480; with the controller
    # down the dialplan does the same (it used to answer into voicemail box "main").
    _, pstn = await asyncio.gather(phones.start("agent1", "busy"), phones.start("pstn"))
    box_dir = test_settings.run_dir / "spool" / "recording" / "voicemail" / "main"
    before = set(box_dir.glob("*")) if box_dir.exists() else set()
    await harness.publish(flows(alt=None, bob=False, line_fo="null",
                                dept_fo="{voicemail: false}"), tmp_path)
    await harness.start()
    await written_to_astdb(harness, DID, "||en/failover-greeting|")

    live = await harness.call(DID, hold_ms=1500)
    rec = await harness.record()
    assert live.final_status() == 480, live.trace[-1500:]
    assert rec["result"] == "hangup" and rec["answered_by"] is None, rec

    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")
    outage = await harness.call(DID, hold_ms=1500)
    assert outage.final_status() == 480, outage.trace[-1500:]
    assert "SIP/2.0 200" not in outage.trace  # never answered
    assert pstn.invites() == 0
    assert (set(box_dir.glob("*")) if box_dir.exists() else set()) == before
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


# ---------------------------------------------------------------------------- failover tests

def callctl(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **TEST_ENV, "CALLCTL_REDIS_PREFIX": h.prefix}
    exe = PROJECT_ROOT / ".venv" / "bin" / "callctl"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "controller"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=30)


async def test_failover_test_start_stop_and_expiry(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    agent, pstn = await asyncio.gather(phones.start("agent1", "answer", ring_ms=100),
                                       phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(flows(alt=None, bob=False), tmp_path)
    ctl = await harness.start()

    async def call_goes_to(where: str) -> dict[str, Any]:
        result = await harness.call(DID, hold_ms=1200)
        rec = await harness.record()
        assert result.final_status() == 200, result.trace[-1500:]
        if where == "failover":
            assert rec.get("failover_test") == DID, rec
            assert [t["address"] for t in legs(rec)] == [LINE_FO], legs(rec)
        else:
            assert rec.get("failover_test") is None and rec["answered_by"] == "alice", rec
        return rec

    cp = await asyncio.to_thread(callctl, harness, "failover", "test", "start", DID)
    assert cp.returncode == 0, cp.stderr
    await until(lambda: DID in ctl.flows.failover_tests, 3, "test seen by the controller")
    await call_goes_to("failover")
    await until(lambda: invited_numbers(pstn) == [LINE_FO], 5, "failover INVITE")

    cp = await asyncio.to_thread(callctl, harness, "failover", "test", "stop", DID)
    assert cp.returncode == 0 and "stopped" in cp.stdout, (cp.stdout, cp.stderr)
    await until(lambda: not ctl.flows.failover_tests, 3, "test end seen")
    await call_goes_to("normal")
    assert agent.invites() == 1

    cp = await asyncio.to_thread(callctl, harness, "failover", "test", "start", DID, "--for", "2s")
    assert cp.returncode == 0, cp.stderr
    await until(lambda: DID in ctl.flows.failover_tests, 3, "second test seen")
    await call_goes_to("failover")
    await until(lambda: not ctl.flows.failover_tests, 6, "test expired")
    await call_goes_to("normal")
    assert agent.invites() == 2 and invited_numbers(pstn) == [LINE_FO, LINE_FO]

    cp = await asyncio.to_thread(callctl, harness, "failover", "status", "--json")
    assert cp.returncode == 0, cp.stderr
    status = json.loads(cp.stdout)
    assert status["active"] == {}
    events = [e["event"] for e in reversed(status["events"])]
    assert events == ["start", "call", "stop", "start", "call", "expired"], events
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")
