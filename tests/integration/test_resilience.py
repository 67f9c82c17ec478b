"""Issue 7: resilience under real faults, on the real stack (loopback only, bounded, each
test stops by itself and leaves nothing behind).

- ``kill -9`` of a real ``callctl run`` right at the answers of its calls (it is frozen as
  they come in, a third of them bridged, and killed once every agent answered) and with calls
  ringing: bridged calls keep talking (media never passes through the controller) and no
  agent who answered is hung up; the restarted controller adopts the live calls from ARI +
  Redis (controller.cluster.manager): bridged ones are supervised again, half-connected or
  answered-but-unrecorded ones are connected, ringing ones re-run their flow and are answered
  within 2 s; nothing is left afterwards. How many: ``CALLCTL_RES_BRIDGED`` (default 50) and
  ``CALLCTL_RES_RINGING`` (default 10).
- SIGTERM the same way (right at the answers): the calls are handed over, all kept.
- The ARI websocket cut during load: reconnect + resync within 1 s, every call completes.
- Redis stopped during load: calls keep being routed from memory (round-robin continues
  locally), ringback is heard; Redis back -> the state written meanwhile is re-synced.
- Asterisk restarted: the controller reconnects by itself and routes the next call.
- Malformed caller ids and SIP headers: no crash, no leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import NotFound
from controller.adapters.ari.events import StasisStart
from controller.adapters.ari.parse import parse_channel
from controller.config import PROJECT_ROOT, Settings
from controller.core import waits
from controller.core.backoff import ConstantBackoff
from controller.tools import stack
from controller.tools.stack import procs

from integration.conftest import SIP_PORT, TEST_ENV, Harness, PhoneBank, until
from integration.runproc import RunProcess, clean_env
from sippctl import (
    SDP,
    SIPP,
    UAC_EARLY,
    UAC_OK_TO_BYE,
    Phone,
    _media_ports,
    free_udp_port,
    sip_messages,
    uac_failures,
    uac_request,
)

N_BRIDGED = int(os.environ.get("CALLCTL_RES_BRIDGED", "50"))
N_RINGING = int(os.environ.get("CALLCTL_RES_RINGING", "10"))

BRIDGED_DID = "+1555800"
RINGING_DID = "+1555810"


def did(prefix: str, n: int) -> str:
    return f"{prefix}{n:04d}"


def many_lines(n_bridged: int, n_ringing: int) -> str:
    """One DID -> department -> user per call (a user on a call is busy, so concurrent calls
    need their own users): bNNNN ring agent1, rNNNN ring agent2. All lines fail over to
    the PSTN phone."""
    out = ["settings: {timezone: UTC}", "users:"]
    out += [f"  b{n:04d}: {{name: B{n}, endpoint: agent1}}" for n in range(n_bridged)]
    out += [f"  r{n:04d}: {{name: R{n}, endpoint: agent2}}" for n in range(n_ringing)]
    out.append("departments:")
    out += [f"  db{n:04d}: {{strategy: serial, members: [b{n:04d}], ring_time: 20}}"
            for n in range(n_bridged)]
    out += [f"  dr{n:04d}: {{strategy: serial, members: [r{n:04d}], ring_time: 20}}"
            for n in range(n_ringing)]
    out.append("flows:")
    for prefix, kind, count in ((BRIDGED_DID, "b", n_bridged), (RINGING_DID, "r", n_ringing)):
        for n in range(count):
            out += [f"  {kind}{n:04d}:", f'    dids: ["{did(prefix, n)}"]', "    entry: ring",
                    f"    nodes: {{ring: {{type: department, department: d{kind}{n:04d}}}}}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- SIPp callers

def _uac(hold_ms: int, answer_ms: int, frm: str) -> str:
    """Each call from the injection file's line: DID (field 0), an extra header line (field
    1). A final error fails the call at once (a last wait that times out makes SIPp count it
    failed)."""
    frm = f"{frm};tag=[call_number]"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl resilience caller">
{uac_request("INVITE", "[field0]", frm, cseq=1, contact="<sip:caller@[local_ip]:[local_port]>",
             extra="[field1]", sdp=SDP, in_dialog=False, send='<send retrans="500">')}
{UAC_EARLY}
{uac_failures("failed", (403, 404, 480, 486, 487, 500, 503, 603))}
  <recv response="200" rtd="true" timeout="{answer_ms}"/>
{uac_request("ACK", "[field0]", frm, cseq=1)}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
{UAC_OK_TO_BYE}
  <label id="hangup"/>
{uac_request("BYE", "[field0]", frm, cseq=2, send='<send retrans="500">')}
  <recv response="200" timeout="10000" next="end"/>
  <label id="failed"/>
{uac_request("ACK", "[field0]", frm, cseq=1)}
  <recv response="999" timeout="1"/>
  <label id="end"/>
</scenario>
"""


@dataclass
class Callers:
    """One SIPp process placing calls, each from the next line of ``lines``: (DID, an extra
    header line or "", and, with ``frm="[field2]"``, the From header)."""

    proc: asyncio.subprocess.Process
    work: Path
    calls: int

    async def wait(self, timeout: float) -> tuple[int, int, str]:
        """(successful, failed, SIPp's error log) once SIPp has finished every call."""
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        ok = failed = 0
        stat = self.work / "stat.csv"
        if stat.exists():
            rows = [r.split(";") for r in stat.read_text().splitlines() if r]
            head, last = rows[0], rows[-1]
            ok = int(last[head.index("SuccessfulCall(C)")])
            failed = int(last[head.index("FailedCall(C)")])
        # SIPp's error log, without the expected "hold time over: hang up" timeouts
        errors = "\n".join(
            "\n".join(ln for ln in p.read_text(errors="replace").split("\n20")
                      if "jumping to label" not in ln)[-3000:]
            for p in self.work.glob("*errors.log"))
        return ok, failed, errors

    def received(self, method: str) -> int:
        """Requests ``method`` (e.g. "BYE") the callers received so far (``trace=True``)."""
        trace = self.work / "messages.log"
        if not trace.exists():
            return 0
        blocks = trace.read_text(errors="replace").split("message received")[1:]
        return sum(1 for b in blocks
                   if any(ln.startswith(f"{method} sip:") for ln in b.splitlines()[1:4]))

    def kill(self) -> None:
        """Stop SIPp if it still runs, and remove its files (every test ends with this)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.work, ignore_errors=True)


async def callers(lines: list[tuple[str, ...]], *, rate: float, hold_ms: int,
                  answer_ms: int = 30_000,
                  frm: str = '"Caller" <sip:+15551230[call_number]@[local_ip]:[local_port]>',
                  trace: bool = False) -> Callers:
    """``trace``: SIPp writes every message to ``messages.log`` (``Callers.received``)."""
    work = Path(tempfile.mkdtemp(prefix="callctl-res-"))
    (work / "uac.xml").write_text(_uac(hold_ms, answer_ms, frm))
    (work / "calls.csv").write_text("SEQUENTIAL\n" + "".join(
        ";".join(fields) + "\n" for fields in lines))
    argv = [SIPP, f"127.0.0.1:{SIP_PORT}", "-sf", str(work / "uac.xml"), "-inf",
            str(work / "calls.csv"), "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mp", str(next(_media_ports)), "-r", f"{rate:g}", "-m", str(len(lines)),
            "-nostdin", "-nd", "-aa", "-trace_stat", "-stf", str(work / "stat.csv"),
            "-fd", "1", "-trace_err", "-timeout", "180s", "-timeout_error",
            "-max_invite_retrans", "3",  # an INVITE Asterisk drops fails in 3.5 s, not 32 s
            "-default_behaviors", "-abortunexp,-bye"]
    if trace:
        argv += ["-trace_msg", "-message_file", str(work / "messages.log")]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=work, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    return Callers(proc, work, len(lines))


# ---------------------------------------------------------------------------- controller process

class CtlProcess(RunProcess):
    """``callctl run`` as a real process on the slot's stack and the test's Redis prefix; each
    start logs to a file of its own."""

    def __init__(self, prefix: str, logdir: Path) -> None:
        super().__init__(clean_env(**TEST_ENV, CALLCTL_REDIS_PREFIX=prefix,
                                   CALLCTL_CONTROLLER_ID="resilience", CALLCTL_ADMIN="off",
                                   CALLCTL_LOG_FORMAT="json"), logdir / "controller-0.log")
        self.logdir = logdir
        self.runs = 0

    @property
    def log(self) -> Path:
        return self.logdir / f"controller-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        super().start()


# ---------------------------------------------------------------------------- helpers

async def bridged_pairs(ari: AriClient) -> int:
    return sum(1 for b in await ari.list_bridges() or [] if len(b["channels"]) == 2)


async def ringing_legs(ari: AriClient) -> int:
    return sum(1 for c in await ari.list_channels() or []
               if "-L" in c["id"] and c["state"] == "Ringing")


async def call_keys(h: Harness) -> list[str]:
    """Redis keys of live calls (state, leases, indexes, busy marks): none once all ended."""
    out: list[str] = []
    for pattern in ("call:*", "lease:call:*", "busy:*", "calls:*"):
        out += [k async for k in h.redis.scan_iter(match=f"{h.prefix}{pattern}")]
    return out


async def nothing_left(h: Harness, ari: AriClient) -> bool:
    return not (await ari.list_channels() or await ari.list_bridges() or await call_keys(h))


# ---------------------------------------------------------------------------- kill -9

async def _controller_up(harness: Harness, phones: PhoneBank, tmp_path: Path, nb: int,
                         nr: int, on_stop: str = "handover",
                         ring_ms: int = 100) -> CtlProcess:
    """agent1 answers after ``ring_ms`` (the ``nb`` bridged lines), agent2 never does (the
    ``nr`` ringing ones); a ``callctl run`` process started on them."""
    await phones.start("agent1", "answer", ring_ms=ring_ms)
    await phones.start("agent2", "noanswer")
    await harness.publish(many_lines(nb, nr), tmp_path)
    ctl = CtlProcess(harness.prefix, tmp_path)
    ctl.env["CALLCTL_ON_STOP"] = on_stop
    ctl.start()
    return ctl


async def _bridged_and_ringing(ctl: CtlProcess, ari: AriClient, group: list[Callers], nb: int,
                               nr: int, hold_ms: int, trace: bool = False) -> None:
    """``nb`` calls bridged (held ``hold_ms``), then ``nr`` ringing; their callers in
    ``group`` (the caller's cleanup kills them)."""
    await until(lambda: ctl.said("ARI events: connected"), 20, "controller connected")
    group.append(await callers([(did(BRIDGED_DID, n), "") for n in range(nb)], rate=25,
                               hold_ms=hold_ms, trace=trace))
    await until(lambda: bridged_pairs(ari), 5, "first call bridged")
    await until(lambda: _eq(bridged_pairs(ari), nb), 20, f"{nb} calls bridged")
    group.append(await callers([(did(RINGING_DID, n), "") for n in range(nr)], rate=20,
                               hold_ms=3000, answer_ms=60_000, trace=trace))
    await until(lambda: _eq(ringing_legs(ari), nr), 10, f"{nr} legs ringing")


async def agent_legs(ari: AriClient, endpoint: str, *, answered: bool = False) -> int:
    """``endpoint``'s legs (``answered``: only those up and waiting in the Stasis app)."""
    return sum(1 for c in await ari.list_channels() or []
               if "-L" in c["id"] and c["name"].startswith(f"PJSIP/{endpoint}-")
               and (not answered or (c["state"] == "Up" and
                                     (c.get("dialplan") or {}).get("app_name") == "Stasis")))


async def _answered_while_frozen(ctl: CtlProcess, ari: AriClient, group: list[Callers],
                                 nb: int, nr: int, hold_ms: int) -> int:
    """``nr`` calls left ringing (agent2), then ``nb`` calls that agent1 answers 2.5 s after
    it is rung: the controller is frozen (SIGSTOP) as the answers come in, once a third of the
    calls are bridged, and stays frozen until each of the ``nb`` agent legs has answered and
    waits in the app (its StasisStart unread). Hence calls in every stage of their connect:
    bridged, half-way (claimed, the caller answered or not, in the bridge or not) and
    answered with nothing recorded. Returns how many were bridged at the freeze. The callers
    trace their messages; ``group`` holds them (the caller's cleanup kills them)."""
    await until(lambda: ctl.said("ARI events: connected"), 20, "controller connected")
    group.append(await callers([(did(RINGING_DID, n), "") for n in range(nr)], rate=20,
                               hold_ms=3000, answer_ms=60_000, trace=True))
    await until(lambda: _eq(ringing_legs(ari), nr), 10, f"{nr} legs ringing")
    group.append(await callers([(did(BRIDGED_DID, n), "") for n in range(nb)], rate=25,
                               hold_ms=hold_ms, trace=True))

    async def answering() -> bool:
        return await agent_legs(ari, "agent1") == nb and await bridged_pairs(ari) >= nb // 3

    await until(answering, 20, f"{nb} agent legs, a third of them bridged")
    ctl.freeze()
    at_freeze = await bridged_pairs(ari)
    await until(lambda: _eq(agent_legs(ari, "agent1", answered=True), nb), 15,
                f"the {nb} agent legs answered, waiting in the app")
    return at_freeze


async def test_given_controller_killed_with_calls_bridged_and_ringing_then_restart_adopts_them(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    nb, nr = N_BRIDGED, N_RINGING
    ctl = await _controller_up(harness, phones, tmp_path, nb, nr, ring_ms=2500)
    group: list[Callers] = []
    try:
        # held long enough to outlive the kill, the restart and the checks below
        at_freeze = await _answered_while_frozen(ctl, ari, group, nb, nr, hold_ms=30_000)

        ctl.kill9()  # right at the answers: some calls bridged, others half-way or unrecorded
        killed = time.monotonic()
        # Nobody drives the calls now. The bridged ones go on talking in Asterisk, and every
        # agent who answered is still on the line, waiting: nobody was sent a BYE.
        await asyncio.sleep(1.0)
        assert await agent_legs(ari, "agent1", answered=True) == nb
        assert await bridged_pairs(ari) >= at_freeze
        assert byes(phones.phones["agent1"]) == 0

        # The agents of the ringing calls will answer the next time they are rung.
        await phones.start("agent2", "answer", ring_ms=200)
        ctl.start()
        await until(lambda: ctl.said("ARI events: connected"), 20, "controller back")
        back = time.monotonic()
        await until(lambda: _eq(bridged_pairs(ari), nb + nr), 2.0,
                    f"the {nb - at_freeze} half-connected calls connected and the {nr} "
                    "ringing calls answered within 2 s of the restart")
        print(f"{at_freeze}/{nb} bridged at the freeze; down {back - killed:.1f} s; all "
              f"{nb + nr} bridged {time.monotonic() - back:.2f} s after the restart")
        assert ctl.said("adopted from resilience/"), ctl.log.read_text()[-3000:]
        # no agent who answered was hung up, no caller of theirs got a BYE: none restarted
        assert byes(phones.phones["agent1"]) == 0
        assert group[1].received("BYE") == 0
        assert _restarted(ctl) == nr, ctl.log.read_text()[-3000:]  # only the ringing ones

        ok, failed, errors = await group[1].wait(90)
        assert (ok, failed) == (nb, 0), errors
        ok, failed, errors = await group[0].wait(60)
        assert (ok, failed) == (nr, 0), errors
        assert group[1].received("BYE") == 0  # each bridged caller hung up by itself
        # every agent leg is hung up by the adopted calls' teardown (its BYE follows the
        # caller's by a few ms)
        await until(lambda: byes(phones.phones["agent1"]) == nb, 5,
                    f"a BYE to each of the {nb} bridged agent legs")
        await until(lambda: nothing_left(harness, ari), 15,
                    "no channel, bridge or call state left")
        recs = await _records(harness, nb + nr)
        assert Counter(r["result"] for r in recs)["completed"] == nb + nr, recs[:3]
        assert sum(1 for r in recs if r["answered_by"] and r["answered_by"].startswith("b"))\
            == nb, recs[:3]
    finally:
        for g in group:
            g.kill()
        ctl.stop()


def byes(phone: Phone) -> int:
    """Dialogs of this phone's own calls it received a BYE in (a BYE retransmitted to its
    port for a call of an earlier test does not count)."""
    ours = set(phone.calls())
    return len({m.header("call-id")[0] for m in sip_messages(phone.messages())
                if m.received and m.first.startswith("BYE ") and m.header("call-id")
                and m.header("call-id")[0] in ours})


def _restarted(ctl: CtlProcess) -> int:
    """Calls the (restarted) controller adopted in their flow and sent through it again."""
    return sum(1 for r in ctl.lines() if "mid-flow: restarting its flow" in str(r.get("msg")))


async def _eq(aw: Any, want: int) -> bool:
    return bool(await aw == want)


async def _records(h: Harness, n: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The call log's records (written by the controller process), once there are ``n``."""
    key = f"{h.prefix}calllog"

    async def enough() -> bool:
        return int(await h.redis.xlen(key)) >= n

    await until(enough, timeout, f"{n} call records")
    rows = await h.redis.xrange(key)
    return [json.loads(f["record"]) for _, f in rows]


# ---------------------------------------------------------------------------- SIGTERM

N_HANDOVER = int(os.environ.get("CALLCTL_RES_HANDOVER", "10"))


async def _keys(h: Harness, pattern: str) -> list[str]:
    return [k async for k in h.redis.scan_iter(match=f"{h.prefix}{pattern}")]


async def test_given_controller_stopped_with_calls_bridged_and_ringing_then_restart_adopts_them(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """SIGTERM (a restart, a deploy) right at the answers hands the calls over: the calls
    whose agent answered finish connecting first, nothing is hung up, the state is in Redis
    and every lease released, and the restarted controller adopts them at once."""
    nb, nr = N_HANDOVER, 3
    ctl = await _controller_up(harness, phones, tmp_path, nb, nr, ring_ms=2500)
    group: list[Callers] = []
    try:
        at_freeze = await _answered_while_frozen(ctl, ari, group, nb, nr, hold_ms=20_000)
        (old,) = [await harness.redis.get(k) for k in await _keys(harness, "lease:node:*")]

        t0 = time.monotonic()
        assert ctl.term() == 0  # a clean stop, by itself (it wakes up with the SIGTERM)
        stop_s = time.monotonic() - t0
        # Handed over: the calls whose agent answered were connected first (their
        # StasisStarts were waiting), so they count as bridged; the calls' state is in Redis
        # (the bridged ones with their leg and bridge), and no lease nor presence is left.
        assert ctl.said(f"stop: {nb + nr} calls handed over ({nb} bridged, {nr} in their "
                        "flow)"), ctl.log.read_text()[-3000:]
        live = await harness.redis.zrange(f"{harness.prefix}calls:live", 0, -1)
        assert len(live) == nb + nr, live
        states = [await harness.redis.hgetall(f"{harness.prefix}call:{c}") for c in live]
        bridged = [st for st in states if st.get("state") == "connected"]
        assert len(bridged) == nb and all(st["leg"] and st["bridge"] for st in bridged), states
        for pattern in ("lease:*", "controller:*"):
            assert not await _keys(harness, pattern), await _keys(harness, pattern)
        # Nobody drives the calls now; the bridged ones go on talking: every bridge still
        # holds its caller and agent, both up, and nobody was sent a BYE.
        await asyncio.sleep(1.0)
        assert await bridged_pairs(ari) == nb
        assert await agent_legs(ari, "agent1", answered=True) == nb
        assert byes(phones.phones["agent1"]) == 0
        assert group[0].received("BYE") == 0 and group[1].received("BYE") == 0

        await phones.start("agent2", "answer", ring_ms=200)  # rung again, they answer
        ctl.start()
        restarted = time.monotonic()

        async def adopted() -> bool:
            owners = [await harness.redis.get(f"{harness.prefix}lease:call:{c}") for c in live]
            return all(o and o.startswith("resilience/") and o != old for o in owners)

        await until(adopted, 20, f"the {nb + nr} calls adopted by the restarted controller")
        took = time.monotonic() - restarted
        await until(lambda: ctl.said("ARI events: connected"), 5, "controller connected")
        await until(lambda: _eq(bridged_pairs(ari), nb + nr), 10,
                    f"the {nr} ringing calls answered after the restart")
        print(f"SIGTERM handover ({at_freeze}/{nb} bridged at the freeze): the stop took "
              f"{stop_s:.2f} s; {nb + nr} calls adopted {took:.2f} s after the restart "
              f"(process start included); ringing ones bridged "
              f"{time.monotonic() - restarted:.2f} s after it; lease time 5 s")
        assert ctl.said("adopted from resilience/"), ctl.log.read_text()[-3000:]
        assert _restarted(ctl) == nr  # only the ringing ones ran their flow again
        assert byes(phones.phones["agent1"]) == 0

        ok, failed, errors = await group[1].wait(60)
        assert (ok, failed) == (nb, 0), errors
        ok, failed, errors = await group[0].wait(60)
        assert (ok, failed) == (nr, 0), errors
        # every bridged call lasted until its caller hung up: no caller ever got a BYE
        assert group[1].received("BYE") == 0
        await until(lambda: byes(phones.phones["agent1"]) == nb, 5,
                    f"a BYE to each of the {nb} bridged agent legs")
        await until(lambda: nothing_left(harness, ari), 15,
                    "no channel, bridge or call state left")
        recs = await _records(harness, nb + nr)
        assert len(recs) == nb + nr and {r["call_id"] for r in recs} == set(live), recs[:3]
        assert Counter(r["result"] for r in recs)["completed"] == nb + nr, recs[:3]
    finally:
        for g in group:
            g.kill()
        ctl.stop()


async def test_given_redis_down_at_sigterm_then_the_stop_leaves_calls_up_for_later_adoption(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    """Redis away at the stop: the controller just stops (bounded), touching no call; the
    calls' state and leases stay as they were and the next controller adopts them."""
    n = 2
    await phones.start("agent1", "answer", ring_ms=100)
    await harness.publish(many_lines(n, 0), tmp_path)
    ctl = CtlProcess(harness.prefix, tmp_path)
    ctl.start()
    load: Callers | None = None
    redis_down = False
    try:
        await until(lambda: ctl.said("ARI events: connected"), 20, "controller connected")
        load = await callers([(did(BRIDGED_DID, i), "") for i in range(n)], rate=10,
                             hold_ms=15_000, trace=True)
        await until(lambda: _eq(bridged_pairs(ari), n), 10, f"{n} calls bridged")
        live = await harness.redis.zrange(f"{harness.prefix}calls:live", 0, -1)

        async def saved() -> bool:  # the bridged state is written off the call's path
            return all([await harness.redis.hget(f"{harness.prefix}call:{c}", "state")
                        == "connected" for c in live])

        await until(saved, 5, "the bridged calls' state in Redis")
        await _redis_down(test_settings)
        redis_down = True
        t0 = time.monotonic()
        assert ctl.term() == 0
        stop_s = time.monotonic() - t0
        print(f"stop with Redis down took {stop_s:.2f} s")
        assert ctl.said("handover: Redis unavailable"), ctl.log.read_text()[-3000:]
        assert await bridged_pairs(ari) == n
        assert load.received("BYE") == 0
        assert "BYE sip:" not in phones.phones["agent1"].messages()

        await asyncio.to_thread(stack.up, test_settings, asterisk=False)
        redis_down = False
        await harness.redis.connection_pool.disconnect()  # the test's connections died too
        ctl.start()

        async def adopted() -> bool:
            owners = [await harness.redis.get(f"{harness.prefix}lease:call:{c}") for c in live]
            return all(o and o.startswith("resilience/") for o in owners) and \
                ctl.said("adopted from resilience/")

        await until(adopted, 20, "the calls adopted by the restarted controller")
        ok, failed, errors = await load.wait(30)
        assert (ok, failed) == (n, 0), errors
        assert load.received("BYE") == 0  # the callers hung up themselves
        await until(lambda: nothing_left(harness, ari), 10,
                    "no channel, bridge or call state left")
        recs = await _records(harness, n)
        assert Counter(r["result"] for r in recs) == {"completed": n}, recs[:3]
    finally:
        if load is not None:
            load.kill()
        ctl.stop()
        if redis_down:
            await asyncio.to_thread(stack.up, test_settings, asterisk=False)
            await harness.redis.connection_pool.disconnect()


async def test_given_on_stop_hangup_then_sigterm_hangs_the_calls_up(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    nb, nr = 3, 2
    ctl = await _controller_up(harness, phones, tmp_path, nb, nr, on_stop="hangup")
    group: list[Callers] = []
    try:
        await _bridged_and_ringing(ctl, ari, group, nb, nr, hold_ms=30_000, trace=True)
        bridged, ringing = group
        assert ctl.term() == 0
        ok, failed, errors = await bridged.wait(10)  # a BYE ends each caller's call
        assert (ok, failed) == (nb, 0), errors
        assert bridged.received("BYE") == nb
        ok, failed, errors = await ringing.wait(10)  # a final error ends each unanswered one
        assert (ok, failed) == (0, nr), errors
        agent1, agent2 = phones.phones["agent1"], phones.phones["agent2"]
        await until(lambda: agent1.messages().count("BYE sip:") == nb, 5,
                    "a BYE to each agent leg")
        await until(lambda: agent2.messages().count("CANCEL sip:") == nr, 5,
                    "a CANCEL to each ringing leg")
        assert not ctl.said("calls handed over")
        recs = await _records(harness, nb + nr)
        # the unanswered calls were ended by the stop, not by their callers
        assert Counter(r["result"] for r in recs) == {"completed": nb,
                                                      "controller_stopped": nr}, recs[:5]
        await until(lambda: nothing_left(harness, ari), 10,
                    "no channel, bridge or call state left")
    finally:
        for c in group:
            c.kill()
        ctl.stop()


# ---------------------------------------------------------------------------- websocket cut

BALANCED = """
settings: {timezone: UTC}
users:
  alice: {name: Alice, endpoint: agent1}
  bob: {name: Bob, endpoint: agent2}
departments:
  team: {strategy: balanced, members: [alice, bob], ring_time: 10}
flows:
  main:
    dids: ["+15550700"]
    entry: ring
    failover: {number: "+15559990000", voicemail: false}
    nodes:
      ring: {type: department, department: team, fallback: bye}
      bye: {type: hangup}
"""


async def test_given_websocket_cut_during_load_then_resync_within_1s_and_no_call_stuck(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    await phones.start("agent1", "answer", ring_ms=300)
    await phones.start("pstn", "answer", ring_ms=100)  # the outage path, for any call that
    n = 40                                              # arrives while we are disconnected
    await harness.publish(many_lines(n, 0), tmp_path)
    ctl = await harness.start()
    started = time.monotonic()
    load = await callers([(did(BRIDGED_DID, i), "") for i in range(n)], rate=10,
                         hold_ms=1500, answer_ms=20_000)
    try:
        gaps = []
        for _ in range(3):  # three cuts while calls arrive, ring and talk (each connection
            await asyncio.sleep(1.1)  # lives > 1 s, so the reconnect backoff starts over)
            before = ctl.stream.reconnects
            cut = time.monotonic()
            await ctl.stream.drop()
            await until(lambda b=before: ctl.stream.reconnects > b and ctl.stream.connected,
                        1.0, "websocket reconnected within 1 s")
            gaps.append(time.monotonic() - cut)
        ok, failed, errors = await load.wait(60)
        took = time.monotonic() - started
        print(f"reconnected after {', '.join(f'{g * 1000:.0f} ms' for g in gaps)}; "
              f"{ok} of {n} calls answered, {failed} lost, all ended after {took:.1f} s")
        # No call is stuck: every one ended (answered, or refused at once) well before the
        # callers' 20 s answer timeout. A leg that answers in the instant the websocket is
        # down is hung up by Asterisk (no app to enter); its call then ends unanswered.
        assert ok + failed == n and took < n / 10 + 10, errors
        assert failed <= n // 10, errors
        await until(lambda: not ctl.calls, 10, "no call left in the controller")
        await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")
    finally:
        load.kill()


# ---------------------------------------------------------------------------- Redis down

def _merged(*texts: str) -> str:
    """Flow files merged into one (each section's ids together; the first settings)."""
    out: dict[str, Any] = {}
    for text in texts:
        for section, body in yaml.safe_load(text).items():
            if section == "settings":
                out.setdefault(section, body)
            else:
                out.setdefault(section, {}).update(body)
    return yaml.safe_dump(out, sort_keys=False)


async def _record_for(h: Harness, did_: str, timeout: float = 30) -> dict[str, Any]:
    """The next finished call's record for ``did_`` (others' records are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        rec = await h.record(max(0.1, deadline - time.monotonic()))
        if rec["did"] == did_:
            return rec

async def _redis_down(settings: Settings) -> None:
    pidfile = settings.run_dir / "run" / "redis.pid"
    assert await asyncio.to_thread(procs.stop_pid, pidfile), "redis was not ours to stop"


async def test_given_redis_stopped_then_calls_keep_routing_round_robin_and_state_resyncs(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    await phones.start("agent1", "answer", ring_ms=200)
    await phones.start("agent2", "answer", ring_ms=200)
    n = 20  # calls of other lines arriving all the while
    await harness.publish(_merged(BALANCED, many_lines(n, 0)), tmp_path)
    ctl = await harness.start()
    first = await harness.call("+15550700", hold_ms=500)  # learns the users' state
    assert first.final_status() == 200
    await harness.record()

    await _redis_down(test_settings)
    load: Callers | None = None
    try:
        load = await callers([(did(BRIDGED_DID, i), "") for i in range(n)], rate=8,
                             hold_ms=1000, answer_ms=10_000)
        answered = []
        for _ in range(3):
            res = await harness.call("+15550700", hold_ms=400)
            rec = await _record_for(harness, "+15550700")
            assert res.final_status() == 200, res.trace[-1500:]
            assert "SIP/2.0 180 Ringing" in res.trace  # ringback: never silence
            answered.append(rec["answered_by"])
        # balanced round-robin went on from a local cursor: the agents alternate
        assert answered in (["alice", "bob", "alice"], ["bob", "alice", "bob"]), answered
        # a call to a number with no flow is refused from memory; its record waits
        nf = await harness.call("+15550999", hold_ms=200)
        assert nf.final_status() == 404, nf.trace[-1500:]
        ok, failed, errors = await load.wait(60)
        assert (ok, failed) == (n, 0), errors  # the load was routed from memory too
        assert ctl.store_degraded
        # one call still up when Redis returns: its state must be written back. The load's
        # callers are done, but their calls may still be tearing down: wait them out, and
        # pick the held call by its number (not "the one call left").
        await until(lambda: not ctl.calls, 10, "the load's calls torn down")
        held = asyncio.ensure_future(harness.call("+15550700", hold_ms=6000))

        def bridged() -> list[str]:
            return [c.id for c in ctl.calls.values()
                    if c.ctx.did == "+15550700" and c.result == "connected"]

        await until(lambda: bridged(), 10, "a call bridged while Redis is down")
        live_id = bridged()[0]
        assert ctl.store_degraded and live_id not in ctl.cluster._leased  # memory only
    finally:
        if load is not None:
            load.kill()
        await asyncio.to_thread(stack.up, test_settings, asterisk=False)
    await until(lambda: not ctl.store_degraded, 10, "re-synced after Redis came back")
    await harness.redis.connection_pool.disconnect()  # the test's own connections died too
    live = ctl.calls.get(live_id)
    assert await harness.redis.exists(f"{harness.prefix}call:{live_id}"), (
        "the bridged call's state was not written back", live is not None and
        (live.result, live.ending, live_id in ctl.cluster._leased))
    busy = [k async for k in harness.redis.scan_iter(match=f"{harness.prefix}busy:*")]
    assert len(busy) == 1, busy
    logged = {json.loads(f["record"])["call_id"]
              for _, f in await harness.redis.xrange(f"{harness.prefix}calllog")}
    assert len(logged) >= 3 + n, logged  # the calls of the outage were logged after it
    refused = [r for _, f in await harness.redis.xrange(f"{harness.prefix}calllog")
               if (r := json.loads(f["record"]))["did"] == "+15550999"]
    assert [r["result"] for r in refused] == ["no_flow"], refused  # written once, after it
    assert (await held).final_status() == 200
    await harness.record()
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


STICKY_SERIAL = BALANCED.replace(
    "team: {strategy: balanced, members: [alice, bob], ring_time: 10}",
    "team: {strategy: serial, members: [alice, bob], ring_time: 3, sticky: {ttl: 1h}}")
STICKY_CALLER = "+15557770002"


async def test_given_redis_stopped_then_a_sticky_agent_set_meanwhile_is_used_and_written_back(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    a = await phones.start("agent1", "busy")
    await phones.start("agent2", "answer", ring_ms=200)
    await harness.publish(STICKY_SERIAL, tmp_path)
    ctl = await harness.start()
    await harness.call("+15550700", caller="+15557770099", hold_ms=300)  # learns the users
    assert (await harness.record())["answered_by"] == "bob"
    key = f"{harness.prefix}sticky:team:{STICKY_CALLER}"
    await _redis_down(test_settings)
    try:
        # alice is busy (486), bob answers: STICKY_CALLER is bob's, known only in memory
        await harness.call("+15550700", caller=STICKY_CALLER, hold_ms=300)
        rec = await harness.record()
        assert rec["answered_by"] == "bob" and ctl.store_degraded
        await until(lambda: ctl.pending_writes() >= 2, 5, "the end and the sticky agent wait")
        # alice free now: the returning caller still gets bob first, and alice never rings
        a = await phones.start("agent1", "answer", ring_ms=200)
        await harness.call("+15550700", caller=STICKY_CALLER, hold_ms=300)
        rec = await harness.record()
        assert rec["answered_by"] == "bob", rec["trace"]
        assert [t["user"] for t in rec["trace"] if t["kind"] == "sticky"] == ["bob"]
        assert a.invites() == 0
    finally:
        await asyncio.to_thread(stack.up, test_settings, asterisk=False)
    await until(lambda: not ctl.store_degraded, 10, "re-synced after Redis came back")
    await harness.redis.connection_pool.disconnect()  # the test's own connections died too
    assert await harness.redis.get(key) == "bob"
    assert 3000 < await harness.redis.ttl(key) <= 3600
    assert ctl.pending_writes() == 0
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


# ---------------------------------------------------------------------------- Asterisk restart

async def test_given_asterisk_restarted_then_controller_reconnects_by_itself(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        test_settings: Settings) -> None:
    await harness.publish(BALANCED, tmp_path)
    ctl = await harness.start()
    before = ctl.stream.reconnects
    pidfile = test_settings.run_dir / "run" / "asterisk.pid"
    assert await asyncio.to_thread(procs.stop_pid, pidfile), "asterisk was not ours to stop"
    await until(lambda: not ctl.stream.connected, 5, "controller saw Asterisk go")
    await asyncio.to_thread(stack.up, test_settings, redis=False)
    await until(lambda: ctl.stream.reconnects > before and ctl.stream.connected, 15,
                "controller reconnected by itself")
    await phones.start("agent1", "answer", ring_ms=100)
    await phones.start("agent2", "answer", ring_ms=100)
    res = await harness.call("+15550700", hold_ms=500)
    rec = await harness.record()
    assert res.final_status() == 200, res.trace[-1500:]
    assert rec["answered_by"] in ("alice", "bob")
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


# ---------------------------------------------------------------------------- bad input

BAD_FROM = [
    '"Robert\'); DROP TABLE--" <sip:+15551230001@127.0.0.1>',
    '"x" <sip:+1555%00123@127.0.0.1>',
    '<sip:' + "9" * 120 + '@127.0.0.1>',
    '"\\"\\\\<>" <sip:abc,def@127.0.0.1>',
    '"Anonymous" <sip:anonymous@anonymous.invalid>',
    '<sip:127.0.0.1>',
    '"' + "A" * 300 + '" <sip:+15551230002@127.0.0.1>',
    '<sip:+1555${EXTEN}@127.0.0.1>',
    '<sip:+15551230003;user=phone@127.0.0.1>',
]
BAD_HEADERS = [
    "P-Asserted-Identity: <sip:' OR 1=1@x>",
    'Remote-Party-ID: "" <sip:;;;@>;privacy=full',
    "X-Weird: " + "\u00e9" * 50,
    "P-Asserted-Identity: " + "<" * 200,
]


async def test_given_malformed_caller_ids_and_headers_then_routed_or_rejected_no_leak(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """Every malformed From with every odd header: one call each, all at once."""
    await phones.start("agent1", "answer", ring_ms=100)
    combos = [(f, h) for f in BAD_FROM for h in BAD_HEADERS]
    await harness.publish(many_lines(len(combos), 0), tmp_path)
    ctl = await harness.start()
    lines = [(did(BRIDGED_DID, i), h, f) for i, (f, h) in enumerate(combos)]
    load = await callers(lines, rate=20, hold_ms=500, answer_ms=10_000, frm="[field2]")
    try:
        ok, failed, errors = await load.wait(60)
        print(f"{ok} of {len(lines)} malformed calls answered, {failed} refused")
        assert ok + failed == len(lines), errors
        # Asterisk may refuse a malformed INVITE itself; whatever reaches us is routed
        recs = [await harness.record(10) for _ in range(ok)]
        assert ok >= len(lines) // 2, errors  # most of them are well-formed enough for SIP
        assert all(r["result"] == "completed" for r in recs), recs
        await asyncio.sleep(0.5)
        assert harness.records.empty()  # the refused ones never reached the controller
        for r in recs:  # what we kept of the caller is a clean number or nothing
            assert r["caller"] == "" or r["caller"].lstrip("+").isdigit(), r["caller"]
        assert ctl.stream.connected and not ctl.calls
        await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")
    finally:
        load.kill()


# ---------------------------------------------------------------------------- missed StasisStart

async def test_given_stasisstart_lost_with_the_websocket_then_resync_routes_the_call(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """A StasisStart Asterisk wrote to a websocket that was going away: here a stand-in
    connection for our app hears it and disappears; the controller's (re)connect resync must
    find the caller waiting in the app and route it, not leave it ringing forever."""
    await phones.start("agent1", "answer", ring_ms=100)
    await harness.publish(many_lines(1, 0), tmp_path)
    stand_in = await ari.connect_events()
    call = asyncio.ensure_future(harness.call(did(BRIDGED_DID, 0), hold_ms=1500))
    try:
        msg = await asyncio.wait_for(stand_in.receive(), 10)
        assert json.loads(msg.data)["type"] == "StasisStart", msg.data
    finally:
        await stand_in.close()
    await harness.start()  # connects, resyncs: the caller is in the app, unknown to it
    res = await call
    rec = await harness.record()
    assert res.final_status() == 200, res.trace[-1500:]
    assert rec["answered_by"] == "b0000"
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


async def test_given_a_late_duplicate_stasisstart_then_the_call_is_routed_once(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """The resync routes a caller whose StasisStart looked lost; if the event comes after
    all, the caller must not get a second Call (it rang the same leg id, got 409 and played
    the failover greeting while the first one rang: seen in the websocket-cut test)."""
    agent = await phones.start("agent1", "answer", ring_ms=1000)
    await harness.publish(many_lines(1, 0), tmp_path)
    ctl = await harness.start()
    call = asyncio.ensure_future(harness.call(did(BRIDGED_DID, 0), hold_ms=1000))
    await until(lambda: _eq(ringing_legs(ari), 1), 10, "the leg ringing")
    (cid,) = list(ctl.calls)
    first = ctl.calls[cid]
    ch = await ari.get_channel(cid)
    assert ch is not None
    ctl.on_node_event(first.node, StasisStart(parse_channel(ch),
                                              ("inbound", did(BRIDGED_DID, 0))))
    assert ctl.calls[cid] is first
    res = await call
    rec = await harness.record()
    assert res.final_status() == 200, res.trace[-1500:]
    assert rec["answered_by"] == "b0000" and rec["result"] == "completed", rec
    assert agent.invites() == 1
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


# ---------------------------------------------------------------------------- lost media ends

LOST_PROMPT = """
settings: {timezone: UTC}
users:
  alice: {name: Alice, endpoint: agent1}
departments:
  team: {strategy: serial, members: [alice], ring_time: 10}
flows:
  main:
    dids: ["+15550720"]
    entry: hello
    nodes:
      hello: {type: message, prompt: choose-language, next: ring}
      ring: {type: department, department: team, fallback: bye}
      bye: {type: hangup}
"""


async def _gone(ari: AriClient, playback_id: str) -> bool:
    try:
        await ari.get_playback(playback_id)
    except NotFound:
        return True
    return False


async def test_given_websocket_cut_while_a_prompt_ends_then_the_resync_delivers_its_end(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The websocket is down when the prompt ends: its PlaybackFinished goes nowhere. The
    (re)connect resync asks ARI about every playback a call waits on and delivers the end
    of those that are gone; the call goes on at once (it waited with no end before). The
    prompt's bound is moved far away here, so only the resync can end the wait."""
    await phones.start("agent1", "answer", ring_ms=100)
    await harness.publish(LOST_PROMPT, tmp_path)
    ctl = await harness.start()
    monkeypatch.setattr(waits, "PROMPT_MARGIN_S", 60.0)
    secs = waits.media_seconds(f"sound:{PROJECT_ROOT / 'prompts' / 'en' / 'choose-language'}")
    assert secs is not None and secs > 4
    call = asyncio.ensure_future(harness.call("+15550720", hold_ms=9000))
    try:
        await until(lambda: any(c.waiting_on for c in ctl.calls.values()), 10, "the prompt")
        (waiting,) = [c.waiting_on for c in ctl.calls.values()]
        assert waiting is not None and waiting[0] == "playback"
        ctl.stream.backoff = ConstantBackoff(secs + 1.5)  # back after the prompt's end
        cut = time.monotonic()
        await ctl.stream.drop()
        await until(lambda: _gone(ari, waiting[1]), secs + 5, "the prompt played out")
        assert ctl.stream.reconnects == 0, "reconnected before the prompt ended"
        await until(lambda: ctl.stream.reconnects == 1 and ctl.stream.connected, 10,
                    "the websocket back")
        back = time.monotonic() - cut
        res = await call
    finally:
        await asyncio.gather(call, return_exceptions=True)
    rec = await _record_for(harness, "+15550720")
    lost = [t for t in rec["trace"] if t["kind"] == "media_event_lost"]
    print(f"websocket down {back:.2f} s over the prompt's end; lost end found by "
          f"{[t['found_by'] for t in lost]}; call {rec['result']}, answered by "
          f"{rec['answered_by']}")
    assert res.final_status() == 200, res.trace[-1500:]
    assert [(t["media"], t["found_by"]) for t in lost] == [("playback", "resync")], rec
    assert rec["answered_by"] == "alice" and rec["result"] == "completed", rec
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")


# ---------------------------------------------------------------------------- ApplicationReplaced

async def test_given_another_websocket_takes_our_app_then_health_fails_and_it_is_taken_back(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    """Another connection registers our Stasis app on the node (a second controller
    misconfigured with our app name, a debugging tool): Asterisk sends it every event and us
    none, and leaves our socket open (measured: deaf, no close). The controller notices the
    ApplicationReplaced, logs an error, reconnects (taking the app back: the intruder gets
    the ApplicationReplaced now), /health says ``ari_replaced`` (503) and the metric counts
    it; the next call is routed."""
    await phones.start("agent1", "answer", ring_ms=100)
    await harness.publish(many_lines(1, 0), tmp_path)
    harness.settings = dataclasses.replace(harness.settings, admin="on", admin_port=0)
    ctl = await harness.start()
    admin = ctl.services.admin
    assert admin is not None
    s = harness.settings
    intruder = AriClient(s.ari_url, s.ari_user, s.ari_password, s.app)
    http = aiohttp.ClientSession()
    try:
        ws = await intruder.connect_events()
        taken = time.monotonic()
        await until(lambda: ctl.stream.replaced == 1 and ctl.stream.reconnects == 1 and
                    ctl.stream.connected, 10, "the controller noticed and reconnected")
        msg = await asyncio.wait_for(ws.receive(), 10)
        back = time.monotonic() - taken
        assert json.loads(msg.data)["type"] == "ApplicationReplaced", msg.data  # taken back
        async with http.get(f"{admin.url}/health") as resp:
            health = await resp.json()
            assert resp.status == 503, health
        assert health["failing"] == ["ari_replaced"], health
        assert "taken over by another websocket 1 time(s)" in \
            health["checks"]["ari_replaced"]["error"]
        async with http.get(f"{admin.url}/metrics",
                            headers={"Authorization": f"Bearer {s.admin_token}"}) as resp:
            text = await resp.text()
        assert "callctl_ari_app_replaced_total 1\n" in text, text
        res = await harness.call(did(BRIDGED_DID, 0), hold_ms=1000)  # heard and routed
        rec = await _record_for(harness, did(BRIDGED_DID, 0))
        print(f"app taken back {back * 1000:.0f} ms after the intruder took it; /health "
              f"{health['failing']}; next call {rec['result']}")
        assert res.final_status() == 200, res.trace[-1500:]
        assert rec["answered_by"] == "b0000" and rec["result"] == "completed", rec
        await ws.close()
    finally:
        await http.close()
        await intruder.close()
    await until(lambda: nothing_left(harness, ari), 10, "no channel, bridge or call state")
