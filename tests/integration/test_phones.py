"""Issue 14 items 3 and 4: registered phones call extensions, DIDs and (if allowed) external
numbers; a phone that vanished is found by the qualify and its alternate rings at once.

The softphones are SIPp: a REGISTER run answering Asterisk's digest challenge with the
password from the run's secrets.env, then a UAS on the registered address (answers INVITEs
and the qualify's OPTIONS), and for the phone's own calls a UAC whose INVITE is challenged and
re-sent with credentials (tests/sippctl.py). Everything runs through the real Asterisk
dialplan (from-agents), an in-process controller and Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.ari.client import AriClient
from controller.config import PROJECT_ROOT, Settings, ensure_secrets
from controller.tools import stack

from integration.conftest import PHONE_BASE, SIP_PORT, TEST_ENV, Harness, PhoneBank, until
from sippctl import CallResult, Phone, phone_call, register

HOSTILE = ["205,1", "205,ok", "+1/x", "205?x:y", "$%7BEXTEN%7D", "+1" + "5" * 20]
"""Request-URI user parts a phone may send ('{' '}' escaped: PJSIP unescapes them)."""
AUTH = (401,)
"""A phone's INVITE is first challenged (401): the call's own final response comes after."""
SOFTPHONE_PORTS = {f"phone{n}": PHONE_BASE + 30 + n for n in (1, 2, 3)}

FLOW = """
settings:
  timezone: UTC
  phones_external: {external}
  phones_caller_id: "+15550199"
users:
  alice: {{name: Alice Adams, endpoint: phone1, extension: "201"}}
  erin: {{name: Erin Evans, endpoint: phone2, extension: "205", alternate: "user:bob"}}
  bob: {{name: Bob Brown, endpoint: agent1, extension: "202"}}
  carol: {{name: Carol Chen, endpoint: agent2, extension: "203", receive_calls: false}}
  dave:
    name: Dave Diaz
    endpoint: agent3
    extension: "204"
    receive_calls: false
    voicemail: false
departments:
  desk: {{strategy: serial, members: [erin], ring_time: 20}}
  sales: {{strategy: serial, members: [bob], ring_time: 10}}
flows:
  desk:
    dids: ["+15550180"]
    entry: ring
    nodes:
      ring: {{type: department, department: desk, fallback: bye}}
      bye: {{type: hangup}}
  sales:
    dids: ["+15550181"]
    entry: ring
    failover: {{number: "+15557770311", voicemail: false}}  # the outage path's (AstDB)
    nodes:
      ring: {{type: department, department: sales, fallback: bye}}
      bye: {{type: hangup}}
"""


class Softphones:
    """Registered SIPp softphones phone1..3: register, listen, call, vanish; cleaned up
    (UAS stopped, registration removed) at the end."""

    def __init__(self, settings: Settings) -> None:
        self.bank = PhoneBank(settings)  # for its qualify-aware wait_status
        self.secrets = ensure_secrets(settings.secrets_path)
        self.uas: dict[str, Phone] = {}
        self.registered: set[str] = set()

    def password(self, name: str) -> str:
        return self.secrets[f"{name.upper()}_PASSWORD"]

    async def register(self, name: str, behaviour: str = "answer") -> Phone:
        """Register ``name`` at its port, then answer there as ``behaviour``."""
        port = SOFTPHONE_PORTS[name]
        res = await asyncio.to_thread(register, name, self.password(name), port=port,
                                      sip_port=SIP_PORT)
        assert res.rc == 0, f"REGISTER {name} failed:\n{res.trace[-3000:]}"
        self.registered.add(name)
        ph = Phone(name, port, behaviour, ring_ms=200)
        self.uas[name] = ph
        await asyncio.to_thread(ph.start)
        await self.bank.wait_status(name, "Avail", since=time.monotonic())
        return ph

    async def vanish(self, name: str) -> None:
        """The phone's process dies (no unregister): only the qualify can notice."""
        self.uas[name].stop()

    async def call(self, name: str, dialled: str, *, hold_ms: int = 1500,
                   timeout: float = 40.0) -> CallResult:
        return await asyncio.to_thread(phone_call, name, self.password(name), dialled,
                                       sip_port=SIP_PORT, hold_ms=hold_ms, timeout=timeout)

    async def cleanup(self) -> None:
        for ph in self.uas.values():
            ph.cleanup()
        for name in self.registered:  # expires=0: the contact is gone, not left Unavail
            await asyncio.to_thread(register, name, self.password(name),
                                    port=SOFTPHONE_PORTS[name], sip_port=SIP_PORT, expires=0)


@pytest.fixture
async def softphones(test_settings: Settings) -> AsyncIterator[Softphones]:
    sp = Softphones(test_settings)
    try:
        yield sp
    finally:
        await sp.cleanup()


async def _publish(h: Harness, tmp_path: Path, *, external: bool = False) -> None:
    await h.publish(FLOW.format(external="true" if external else "false"), tmp_path)


async def _nothing_live(h: Harness, ari: AriClient) -> bool:
    return not (h.ctl and h.ctl.calls) and not await ari.list_channels()


def _from_header(ph: Phone) -> str:
    """The From of the first INVITE ``ph`` received."""
    for block in ph.messages().split("UDP message received")[1:]:
        lines = [ln for ln in block.splitlines()[1:] if ln.strip()]
        if lines and lines[0].startswith("INVITE "):
            return next((ln for ln in lines if ln.startswith("From:")), "")
    return ""


def _legs(rec: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(leg["user"], leg["role"], leg["outcome"]) for leg in rec["rang"]]


async def cli(h: Harness, *args: str) -> tuple[int, Any, str]:
    env = {**os.environ, **TEST_ENV, "CALLCTL_REDIS_PREFIX": h.prefix,
           "PYTHONPATH": str(PROJECT_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, env=env, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    try:
        data: Any = json.loads(out.decode())
    except ValueError:
        data = out.decode()
    assert proc.returncode is not None
    return proc.returncode, data, err.decode()


async def _device(h: Harness, uid: str) -> dict[str, Any]:
    rc, rows, err = await cli(h, "users", "--json")
    assert rc == 0, err
    return next(r for r in rows if r["id"] == uid)["device"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------- item 3

async def test_given_a_registered_phone_when_it_dials_an_extension_then_that_user_answers(
        harness: Harness, softphones: Softphones, ari: AriClient, tmp_path: Path) -> None:
    await softphones.register("phone1")
    erin = await softphones.register("phone2", "answer")
    await _publish(harness, tmp_path)
    await harness.start()

    calling = asyncio.create_task(softphones.call("phone1", "205", hold_ms=2000))
    # On the phone, the caller is busy for departments too (not only the callee).
    async def both_busy() -> bool:
        keys = (f"{harness.prefix}busy:alice", f"{harness.prefix}busy:erin")
        return await harness.redis.exists(*keys) == 2  # type: ignore[no-any-return]
    await until(both_busy, 10, "alice (the caller) and erin (the callee) marked busy")
    res = await calling
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert rec["result"] == "completed", rec
    assert not await harness.redis.exists(f"{harness.prefix}busy:alice")
    assert rec["answered_by"] == "erin" and _legs(rec) == [("erin", "primary", "answered")]
    assert (rec["origin"], rec["from_endpoint"], rec["from_user"]) == \
        ("internal", "phone1", "alice"), rec
    assert (rec["caller"], rec["did"], rec["route"]) == ("201", "205", "extension")
    assert rec["path"] == ["ext-205"] and rec["duration"] > 0
    # The callee sees the calling user's extension and name, not the phone's From.
    assert erin.invites() == 1
    assert '"Alice Adams" <sip:201@' in _from_header(erin), _from_header(erin)
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_opted_out_users_when_their_extension_is_dialled_then_never_rung(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    carol = await phones.start("agent2", "answer")
    dave = await phones.start("agent3", "answer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path)
    await harness.start()

    # Carol opted out, voicemail on: not rung, the caller records a message.
    res = await softphones.call("phone1", "203", hold_ms=8000)  # greeting, beep, message
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert rec["result"] == "voicemail", rec
    assert rec["rang"] == [] and rec["voicemail"]["mailbox"] == "carol", rec
    skips = [t for t in rec["trace"] if t["kind"] == "skip"]
    assert [(t["user"], t["reason"]) for t in skips] == [("carol", "opted_out")]
    wav = harness.settings.run_dir / "spool" / "recording" / \
        f"{rec['voicemail']['recording']}.wav"
    try:
        await until(wav.exists, 5, f"{wav} on disk")
    finally:
        wav.unlink(missing_ok=True)

    # Dave opted out, voicemail off: not rung, the phone hears 480 Temporarily Unavailable.
    res = await softphones.call("phone1", "204")
    rec = await harness.record()
    assert res.final_status(AUTH) == 480, res.trace[-3000:]
    assert rec["result"] == "hangup" and rec["rang"] == [] and rec["route"] == "extension"
    assert any(t["kind"] == "failover" and t.get("cause") == 19 for t in rec["trace"]), rec
    assert carol.invites() == 0 and dave.invites() == 0
    # A call over in a moment leaves its caller free (no busy mark outlives the call).
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
    assert not [k async for k in harness.redis.scan_iter(match=f"{harness.prefix}busy:*")]
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_a_registered_phone_when_it_dials_a_did_then_the_flow_runs(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    bob = await phones.start("agent1", "answer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path)
    await harness.start()

    res = await softphones.call("phone1", "+15550181")
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert rec["result"] == "completed" and rec["answered_by"] == "bob", rec
    assert (rec["did"], rec["caller"], rec["route"], rec["origin"]) == \
        ("+15550181", "201", "did", "internal")
    assert rec["path"] == ["ring"] and rec["flow_version"] >= 1
    assert '"Alice Adams" <sip:201@' in _from_header(bob), _from_header(bob)
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_external_calls_off_when_a_phone_dials_out_then_refused_and_logged(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    pstn = await phones.start("pstn", "answer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path)
    await harness.start()

    cases = [("+442079460000", 403, "external_refused", 21, "+442079460000"),
             ("299", 404, "no_route", 1, "299"),  # nobody's extension
             ("alice", 404, "no_route", 1, "")]  # malformed: never used, logged as ""
    # Caller-controlled dialplan syntax: never routed to 205, a label or an AstDB key.
    cases += [(hostile, 404, "no_route", 1, "") for hostile in HOSTILE]
    for dialled, status, result, cause, logged in cases:
        res = await softphones.call("phone1", dialled)
        rec = await harness.record()
        assert res.final_status(AUTH) == status, (dialled, res.trace[-2000:])
        assert (rec["result"], rec["did"]) == (result, logged), rec
        assert rec["trace"] == [{"at": rec["started"], "kind": result, "did": logged,
                                 "cause": cause}], rec
        assert (rec["origin"], rec["from_user"], rec["caller"]) == ("internal", "alice", "201")
    assert pstn.invites() == 0
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_external_calls_on_when_a_phone_dials_out_then_the_trunk_gets_it(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    pstn = await phones.start("pstn", "answer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path, external=True)
    await harness.start()

    res = await softphones.call("phone1", "+442079460000")
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert rec["result"] == "completed" and rec["route"] == "external", rec
    assert rec["answered_by"] == "+442079460000"
    assert _legs(rec) == [(None, "primary", "answered")]
    assert pstn.invites() == 1
    assert "INVITE sip:+442079460000@" in pstn.messages()
    assert "<sip:+15550199@" in _from_header(pstn), _from_header(pstn)  # phones_caller_id
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


# ------------------------------------------------------------------------------- item 4

async def test_given_a_phone_that_vanished_when_its_department_is_called_then_its_alternate_rings_at_once(  # noqa: E501
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    bob = await phones.start("agent1", "answer")
    erin = await softphones.register("phone2", "answer")
    await _publish(harness, tmp_path)
    await harness.start()
    assert (await _device(harness, "erin"))["state"] == "reachable"

    await softphones.vanish("phone2")  # killed: no unregister, the contact stays
    await softphones.bank.wait_status("phone2", "Unavail")  # the qualify noticed
    dev = await _device(harness, "erin")
    assert dev["state"] == "unreachable" and dev["contact"].startswith("sip:phone2@"), dev

    res = await harness.call("+15550180", hold_ms=1000)
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    # Erin's phone is never dialled (no contact to ring: unreachable, no ring time spent):
    # her alternate bob rang at once and answered.
    assert _legs(rec) == [("erin", "primary", "unreachable"), ("bob", "alternate", "answered")]
    assert rec["answered_by"] == "bob" and rec["result"] == "completed", rec
    assert erin.invites() == 0 and bob.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_the_controller_down_when_a_phone_calls_then_dids_take_the_outage_path(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path, test_settings: Settings) -> None:
    pstn = await phones.start("pstn", "answer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path)
    await harness.start()

    async def target_written() -> bool:
        out = await asyncio.to_thread(stack.asterisk_cli, test_settings, "database show")
        return "+15557770311|" in out
    await until(target_written, 10, "the line's outage target in AstDB")
    await harness.stop()

    # A DID: its line's outage path, as for the carrier's calls (the failover number).
    res = await softphones.call("phone1", "+15550181")
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert pstn.invites() == 1 and "INVITE sip:+15557770311@" in pstn.messages()
    # An extension lives in the controller: 480, at once.
    res = await softphones.call("phone1", "205")
    assert res.final_status(AUTH) == 480, res.trace[-3000:]
    assert pstn.invites() == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")


async def test_given_a_phone_call_ringing_when_the_controller_restarts_then_it_is_routed_again(
        harness: Harness, softphones: Softphones, phones: PhoneBank, ari: AriClient,
        tmp_path: Path) -> None:
    """A restarted controller adopts a call that was still ringing by sending it through the
    dialplan again (callctl-did): a phone's call goes back its own way (internal, the same
    phone and number), not as a carrier call to a DID "202"."""
    await phones.start("agent1", "noanswer")
    await softphones.register("phone1")
    await _publish(harness, tmp_path)
    await harness.start()

    calling = asyncio.create_task(softphones.call("phone1", "202", hold_ms=1000))

    async def ringing() -> bool:
        return any("-L" in c["id"] and c["state"] == "Ringing"
                   for c in await ari.list_channels() or [])
    await until(ringing, 10, "bob's phone ringing")
    await harness.stop()  # handover: the call is left up, its state in Redis
    bob = await phones.start("agent1", "answer")
    ctl = await harness.start()
    res = await calling
    rec = await harness.record()
    assert res.final_status(AUTH) == 200, res.trace[-3000:]
    assert rec["answered_by"] == "bob" and rec["result"] == "completed", rec
    assert (rec["origin"], rec["route"], rec["caller"], rec["from_endpoint"]) == \
        ("internal", "extension", "201", "phone1"), rec
    assert any(t["kind"] == "adopted" and t.get("restarted") for t in rec["trace"]), rec
    assert bob.invites() == 1 and ctl.calls_total == 1
    await until(lambda: _nothing_live(harness, ari), 5, "nothing left")
