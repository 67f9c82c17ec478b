"""SIPp for benchmarks: a load caller (UAC) and agent phones (UAS), with message traces.

SIPp's ``-trace_msg`` log stamps every message with the wall clock in microseconds; all SIPp
processes run on this machine, so a caller's sent INVITE and an agent's received INVITE are
on the same clock. Calls are matched across phones by the caller number, which is unique per
call (``+1444<call number>``) and is what both the controller and Dial() present to agents.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.env import SLOT
from controller.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from sippctl import SDP, UAC_EARLY, free_udp_port, uac_request, uas_scenario

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
# SIPp media ports: the bench slot's own range (as tests/sippctl.py does per test slot).
_media = itertools.cycle(range(25000 + 1000 * SLOT, 26000 + 1000 * SLOT, 4))


def uac_load_scenario(hold_ms: int, answer_ms: int = 5000) -> str:
    """INVITE the DID in the injection file's field 0, answer-wait, hold, BYE. Any final
    error, or no answer within ``answer_ms``, fails the call (SIPp counts it)."""
    frm = '"Bench" <sip:+1444[call_number]@[local_ip]:[local_port]>;tag=[call_number]'
    contact = "sip:+1444[call_number]@[local_ip]:[local_port]"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl bench caller">
{uac_request("INVITE", "[field0]", frm, cseq=1, contact=contact, sdp=SDP, in_dialog=False,
             send='<send retrans="500">')}
{UAC_EARLY}
  <recv response="200" rtd="true" timeout="{answer_ms}"/>
{uac_request("ACK", "[field0]", frm, cseq=1, contact=contact)}
  <pause milliseconds="{hold_ms}"/>
{uac_request("BYE", "[field0]", frm, cseq=2, contact=contact, send='<send retrans="500">')}
  <recv response="200" timeout="10000"/>
</scenario>
"""


# ---------------------------------------------------------------------------- traces

_STAMP = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$")


@dataclass
class Message:
    at: float
    sent: bool
    first: str
    headers: dict[str, str]


def read_trace(path: Path) -> list[Message]:
    """Every message of a SIPp ``-message_file`` (timestamps as epoch seconds)."""
    out: list[Message] = []
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return out
    at = 0.0
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _STAMP.match(lines[i])
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            i += 1
            continue
        ln = lines[i]
        if ln.startswith("UDP message sent") or ln.startswith("UDP message received"):
            sent = ln.startswith("UDP message sent")
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            first = lines[i] if i < len(lines) else ""
            hdr: dict[str, str] = {}
            i += 1
            while i < len(lines) and lines[i].strip() and not _STAMP.match(lines[i]):
                if ":" in lines[i]:
                    k, v = lines[i].split(":", 1)
                    hdr.setdefault(k.strip().lower(), v.strip())
                i += 1
            out.append(Message(at, sent, first, hdr))
            continue
        i += 1
    return out


_NUM = re.compile(r"sip:(\+?\d+)@")


def caller_of(msg: Message) -> str | None:
    m = _NUM.search(msg.headers.get("from", ""))
    return m.group(1) if m else None


def first_invites(msgs: list[Message], *, sent: bool) -> dict[str, float]:
    """Caller number -> time of the first initial INVITE sent (or received) for it."""
    out: dict[str, float] = {}
    for m in msgs:
        if m.sent is sent and m.first.startswith("INVITE ") and \
                "tag=" not in m.headers.get("to", ""):
            num = caller_of(m)
            if num and num not in out:
                out[num] = m.at
    return out


def first_responses(msgs: list[Message], code: int) -> dict[str, float]:
    """Caller number -> time this phone first sent a final ``code`` response for it."""
    out: dict[str, float] = {}
    for m in msgs:
        if m.sent and m.first.startswith(f"SIP/2.0 {code} "):
            num = caller_of(m)
            if num and num not in out:
                out[num] = m.at
    return out


# ---------------------------------------------------------------------------- processes

@dataclass
class Agent:
    """A SIPp UAS playing an agent phone (answer / busy ...), optionally tracing messages."""

    name: str
    port: int
    behaviour: str = "answer"
    trace: bool = False
    ring_ms: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callctl-bn-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "messages.log"

    def start(self) -> Agent:
        self.stop()
        scen = self.workdir / "uas.xml"
        scen.write_text(uas_scenario(self.behaviour, self.ring_ms))
        self.log.unlink(missing_ok=True)
        argv = [SIPP, "-sf", str(scen), "-i", "127.0.0.1", "-p", str(self.port),
                "-mp", str(next(_media)), "-aa", "-nostdin", "-nd", "-max_recv_loops", "1000",
                "-max_sched_loops", "1000", "-default_behaviors", "-abortunexp,-bye",
                "-trace_err", "-error_file", str(self.workdir / "errors.log")]
        if self.trace:
            argv += ["-trace_msg", "-message_file", str(self.log)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.workdir,
                                     start_new_session=True)
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp agent {self.name} exited at start (port {self.port})")
        return self

    def retrace(self, trace: bool) -> None:
        """Restart with tracing on/off (and an empty trace)."""
        self.trace = trace
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def messages(self) -> list[Message]:
        return read_trace(self.log)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class LoadResult:
    calls: int
    ok: int
    failed: int
    elapsed: float
    rc: int
    trace: Path | None
    workdir: Path

    @property
    def complete(self) -> bool:
        return self.calls > 0 and self.ok == self.calls and self.failed == 0

    def messages(self) -> list[Message]:
        return read_trace(self.trace) if self.trace else []


async def load(sip_port: int, dids: list[str], *, rate: float, calls: int, hold_ms: int,
               trace: bool = False, timeout: float = 120.0) -> LoadResult:
    """Place ``calls`` calls at ``rate`` calls/s, each to the next DID of ``dids`` in turn."""
    work = Path(tempfile.mkdtemp(prefix="callctl-bl-"))
    scen = work / "uac.xml"
    scen.write_text(uac_load_scenario(hold_ms))
    inf = work / "dids.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{d};\n" for d in dids))
    stat = work / "stat.csv"
    msg = work / "messages.log"
    argv = [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(scen), "-inf", str(inf), "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-mp", str(next(_media)), "-r", f"{rate:g}",
            "-m", str(calls), "-nostdin", "-nd", "-aa", "-trace_stat", "-stf", str(stat),
            "-fd", "3600", "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-max_recv_loops", "1000", "-max_sched_loops", "1000",
            "-default_behaviors", "-abortunexp,-bye"]
    if rate < 1:  # SIPp's rate is per period: keep it a whole number of calls
        argv[argv.index("-r") + 1] = "1"
        argv[argv.index("-r"):argv.index("-r")] = ["-rp", f"{int(1000 / rate)}"]
    if trace:
        argv += ["-trace_msg", "-message_file", str(msg)]
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=work, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        rc = await asyncio.wait_for(proc.wait(), timeout + 30)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = await proc.wait()
    elapsed = time.monotonic() - t0
    ok, failed = _final_counts(stat)
    return LoadResult(calls, ok, failed, elapsed, rc, msg if trace else None, work)


def _final_counts(stat: Path) -> tuple[int, int]:
    try:
        rows = list(csv.reader(stat.read_text().splitlines(), delimiter=";"))
    except FileNotFoundError:
        return 0, 0
    if len(rows) < 2:
        return 0, 0
    head, last = rows[0], rows[-1]
    try:
        return (int(last[head.index("SuccessfulCall(C)")]),
                int(last[head.index("FailedCall(C)")]))
    except (ValueError, IndexError):
        return 0, 0
