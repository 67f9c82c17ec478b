"""Issue 13 items 13 and 14: what reaches a flow from SIP (real Asterisk, Redis, SIPp).

13. The Request-URI's user part (the DID, ``${EXTEN}``) is validated in the dialplan before
    any Goto, Stasis or AstDB use: ``+15557000100,1`` used to be routed as ``+15557000100``,
    ``1555,ok`` jumped to a label past the DID check, and with the controller down such calls
    were answered into voicemail, reading AstDB keys the caller chose (``+1/x``). Each one is
    now rejected with 404 (cause 1), controller up or down: nothing answered, nothing
    recorded, AstDB unchanged.
14. The carrier is identified by source address only: an INVITE with ``From: carrier`` (or
    the name of a static test agent, or of the pstn trunk) from another address gets
    Asterisk's 401 challenge and never reaches a flow; the carrier's address still works;
    softphones still register with their password, and nobody can register as a static agent.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path

import pytest

from controller.adapters.ari.client import AriClient
from controller.config import Settings, ensure_secrets
from controller.tools import stack

from integration.conftest import SIP_PORT, Harness, PhoneBank, until
from sippctl import SIPP, free_udp_port, uac_request

DID = "+15557000100"
LINE_FO = "+15557770310"
OTHER_ADDRESS = "127.0.0.2"  # any loopback address but the carrier's (127.0.0.1)

FLOWS = f"""
users:
  alice: {{name: Alice, endpoint: agent1}}
departments:
  sales: {{members: [alice], ring_time: 5}}
flows:
  main:
    dids: ["{DID}"]
    entry: sales
    failover: {{number: "{LINE_FO}", mailbox: main}}
    nodes:
      sales: {{type: department, department: sales, fallback: failover}}
"""

# Request-URI user parts a hostile carrier-side caller may send ('{' '}' must be escaped in
# a SIP URI; PJSIP unescapes them, so the dialplan sees "${EXTEN}").
HOSTILE = [
    f"{DID},1",          # an extra Goto argument: was routed as the DID
    "15557000100,ok",    # a Goto label: was sent straight to Stasis, past the DID check
    f"{DID},ok",
    "+1/x",              # an AstDB key path
    "+1/x,ok",           # ... through the label: the outage path read callctl_failover/+1/x
    "+1999700001,ok",    # the bench numbers' own door
    "$%7BEXTEN%7D",      # ${EXTEN}: no extension matches at all
    "+1$%7BEXTEN%7D",
    "+1" + "5" * 20,     # 21 digits: too long
]


async def astdb_dump(settings: Settings) -> str:
    return await asyncio.to_thread(stack.asterisk_cli, settings, "database show")


def voicemail_files(settings: Settings) -> set[Path]:
    root = settings.run_dir / "spool" / "recording" / "voicemail"
    return set(root.rglob("*")) if root.exists() else set()


async def app_registered(settings: Settings) -> bool:
    out = await asyncio.to_thread(stack.asterisk_cli, settings, "ari show apps")
    return settings.app in out.split()


async def nothing_live(h: Harness, ari: AriClient) -> bool:
    chans = await ari.list_channels() or []
    return not chans and await h.redis.zcard(f"{h.prefix}calls:live") == 0


def invites(trace: str) -> list[str]:
    return [ln for ln in trace.splitlines() if ln.startswith("INVITE sip:")]


async def assert_all_rejected(h: Harness) -> None:
    for user in HOSTILE:
        res = await h.call(user, hold_ms=500, timeout=15)
        assert res.final_status() == 404, (user, res.trace[-1500:])
        assert "SIP/2.0 200" not in res.trace, user  # nothing answered


async def test_malformed_dids_rejected_with_404_controller_up_and_down(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    agent, pstn = await asyncio.gather(phones.start("agent1", "answer", ring_ms=100),
                                       phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(FLOWS, tmp_path)
    await harness.start()

    async def target_written() -> bool:
        return f"{LINE_FO}|main|" in await astdb_dump(test_settings)
    await until(target_written, 10, "the line's outage target in AstDB")
    db_before, vm_before = await astdb_dump(test_settings), voicemail_files(test_settings)

    # 1. controller up: rejected by the dialplan, never handed to the controller
    await assert_all_rejected(harness)
    assert agent.invites() == 0 and pstn.invites() == 0
    ok = await harness.call(DID, hold_ms=1000)  # the real DID still works
    rec = await harness.record()
    assert ok.final_status() == 200 and rec["answered_by"] == "alice", rec
    assert rec["did"] == DID and harness.records.empty(), "a hostile call reached Stasis"

    # 2. controller down: the outage path is never reached by them either
    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")
    await assert_all_rejected(harness)
    assert pstn.invites() == 0 and agent.invites() == 1
    ok = await harness.call(DID, hold_ms=1000)  # the real DID takes the outage path
    assert ok.final_status() == 200, ok.trace[-1500:]
    await until(lambda: pstn.invites() == 1, 5, "the line's failover number rung")

    assert await astdb_dump(test_settings) == db_before
    assert voicemail_files(test_settings) == vm_before
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


async def _not(f: object, *a: object) -> bool:
    return not await f(*a)  # type: ignore[operator]


# ------------------------------------------------------------------------------ item 14

@pytest.mark.parametrize("claimed", ["carrier", "agent1", "pstn"])
async def test_request_from_another_address_is_never_the_carrier(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        claimed: str) -> None:
    agent, pstn = await asyncio.gather(phones.start("agent1", "answer", ring_ms=100),
                                       phones.start("pstn", "answer", ring_ms=100))
    await harness.publish(FLOWS, tmp_path)
    await harness.start()

    res = await harness.call(DID, caller=claimed, local_ip=OTHER_ADDRESS, hold_ms=500,
                             timeout=15)
    assert res.final_status() == 401, res.trace[-1500:]  # a challenge it cannot answer
    assert "SIP/2.0 200" not in res.trace
    # From the carrier's address the same From is just a caller: routed as usual.
    ok = await harness.call(DID, caller=claimed, hold_ms=1000)
    rec = await harness.record()
    assert ok.final_status() == 200 and rec["answered_by"] == "alice", rec
    assert harness.records.empty(), "the call from another address reached a flow"
    assert agent.invites() == 1 and pstn.invites() == 0
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")


REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
{register}
  <recv response="100" optional="true"/>
  <recv response="401" optional="true" auth="true" next="{on_401}"/>
  <recv response="403" optional="true" next="end"/>
  <recv response="404" optional="true" next="end"/>
  <recv response="200" next="{on_200}"/>
  <label id="auth"/>
{register_auth}
  <recv response="100" optional="true"/>
  <recv response="200" next="unregister"/>
  <label id="unregister"/>
{unregister}
  <recv response="100" optional="true"/>
  <recv response="401" optional="true" auth="true" next="unregister_auth"/>
  <recv response="200" next="end"/>
  <label id="unregister_auth"/>
{unregister_auth}
  <recv response="100" optional="true"/>
  <recv response="200" next="end"/>
  <label id="end"/>
</scenario>
"""


def register(user: str, password: str | None, local_ip: str) -> tuple[list[int], str]:
    """REGISTER as ``user`` (answering the challenge when ``password`` is given), then
    unregister (Expires: 0). Returns the final statuses received, in order."""
    frm = f"<sip:{user}@[remote_ip]>;tag=[call_number]"
    contact = f"<sip:{user}@[local_ip]:[local_port]>"

    def req(cseq: int, expires: int, auth: bool) -> str:
        extra = f"Expires: {expires}"
        if auth:
            extra += f"\n[authentication username={user} password={password}]"
        return uac_request("REGISTER", user, frm, cseq=cseq, contact=contact, extra=extra,
                           in_dialog=False, send='<send retrans="500">')

    scen = REGISTER.format(register=req(1, 60, False), register_auth=req(2, 60, True),
                           unregister=req(3, 0, False), unregister_auth=req(4, 0, True),
                           on_401="auth" if password else "end",
                           on_200="unregister")
    with tempfile.TemporaryDirectory(prefix="callctl-reg-") as work:
        path = Path(work) / "reg.xml"
        path.write_text(scen)
        trace = Path(work) / "m.log"
        subprocess.run([SIPP, f"127.0.0.1:{SIP_PORT}", "-sf", str(path), "-i", local_ip,
                        "-p", str(free_udp_port()), "-m", "1", "-nostdin", "-trace_msg",
                        "-message_file", str(trace), "-timeout", "15s", "-timeout_error",
                        "-nd"], capture_output=True, text=True, cwd=work, timeout=30)
        text = trace.read_text(errors="replace") if trace.exists() else ""
    codes = [int(ln.split()[1]) for ln in text.splitlines()
             if ln.startswith("SIP/2.0 ") and int(ln.split()[1]) >= 200]
    return codes, text


async def contacts(settings: Settings, endpoint: str) -> list[str]:
    out = await asyncio.to_thread(stack.asterisk_cli, settings,
                                  f"pjsip show contacts like {endpoint}")
    return [ln for ln in out.splitlines() if "Contact:" in ln and endpoint in ln]


async def test_nobody_registers_as_a_static_agent_but_softphones_do_with_their_password(
        test_settings: Settings) -> None:
    # agent9 has no contact (an unreachable phone in the tests) and no password: nobody may
    # take its calls by registering as it, from any address (from the carrier's, the request
    # is the carrier's, which has no such AOR: 403; from elsewhere, nobody's: 401).
    for where, refused in (("127.0.0.1", 403), (OTHER_ADDRESS, 401)):
        codes, trace = await asyncio.to_thread(register, "agent9", None, where)
        assert codes[:1] == [refused] and 200 not in codes, trace[-1500:]
    assert await contacts(test_settings, "agent9") == []

    # A softphone: refused without its password, registered with it (then unregistered).
    codes, trace = await asyncio.to_thread(register, "phone1", None, OTHER_ADDRESS)
    assert codes[:1] == [401] and 200 not in codes, trace[-1500:]
    password = ensure_secrets(test_settings.secrets_path)["PHONE1_PASSWORD"]
    codes, trace = await asyncio.to_thread(register, "phone1", password, OTHER_ADDRESS)
    assert codes[:2] == [401, 200] and codes[-1] == 200, codes
    assert await contacts(test_settings, "phone1") == []  # unregistered again


async def test_outage_path_passes_on_only_a_clean_caller_number(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    # The outage path's Dial to the failover number carries the caller id: like the
    # controller (controller/core/callerid.py) it passes on a number only, and no name.
    pstn = await phones.start("pstn", "answer", ring_ms=100)
    await harness.publish(FLOWS, tmp_path)
    await harness.start()

    async def target_written() -> bool:
        return f"{LINE_FO}|main|" in await astdb_dump(test_settings)
    await until(target_written, 10, "the line's outage target in AstDB")
    await harness.stop()
    await until(lambda: _not(app_registered, test_settings), 5, "Stasis app gone")

    for caller in ("+15551230001", "12ab34"):
        res = await harness.call(DID, caller=caller, hold_ms=800)
        assert res.final_status() == 200, res.trace[-1500:]
    await until(lambda: pstn.invites() == 2, 5, "both calls at the failover number")
    froms = [ln for ln in pstn.messages().splitlines() if ln.startswith("From:")]
    assert len(froms) >= 2 and "sip:+15551230001@" in froms[0], froms
    assert not any("12ab34" in f or "Test Caller" in f for f in froms), froms
    await until(lambda: nothing_live(harness, ari), 5, "nothing live")
