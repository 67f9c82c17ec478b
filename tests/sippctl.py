"""SIPp as real SIP phones: callers (UAC) and agent phones (UAS), generated scenarios.

An agent phone listens on 127.0.0.1:<port> (agentN <-> base+N, the PSTN trunk <-> base+20;
see tests/integration/conftest.py) and
behaves as told: answer (after a ring delay), busy (486), unavailable (480), decline (603), or
never answer (180 until CANCEL). Every SIP message it sees is traced, so tests count the
INVITEs a phone really received. SIPp answers OPTIONS (-aa), so Asterisk's qualify sees it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{}.pcap"
_SLOT = int(os.environ.get("CALLCTL_TEST_SLOT", "0"))
# SIPp media ports: a private cycle per test slot (below the kernel's ephemeral range).
_media_ports = itertools.cycle(range(25000 + 1000 * _SLOT, 26000 + 1000 * _SLOT, 4))

SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pcap_for(digit: str) -> str:
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    return DTMF_PCAP.format(name)


def uac_scenario(*, caller: str, hold_ms: int, digits: list[tuple[int, str]]) -> str:
    """A caller: INVITE, wait for answer (or a final error), play DTMF, hang up after hold_ms
    unless the far end hangs up first. ``digits`` = [(pause_ms_before, digit), ...]."""
    dtmf = []
    for pause, d in digits:
        dtmf.append(f'  <pause milliseconds="{pause}"/>')
        dtmf.append(f'  <nop><action><exec play_pcap_audio="{_pcap_for(d)}"/></action></nop>')
        dtmf.append('  <pause milliseconds="300"/>')
    dtmf_xml = "\n".join(dtmf)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="404" optional="true" next="rejected"/>
  <recv response="480" optional="true" next="rejected"/>
  <recv response="486" optional="true" next="rejected"/>
  <recv response="503" optional="true" next="rejected"/>
  <recv response="603" optional="true" next="rejected"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
{dtmf_xml}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
  <send next="end">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:{caller}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="end"/>
  <label id="rejected"/>
  <send next="end">
    <![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"""


_RESP_HDRS = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]-[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""
# In-dialog responses: the request's To already carries our tag.
_DLG_HDRS = _RESP_HDRS.replace(";tag=[pid]-[call_number]", "")


def uas_scenario(behaviour: str, ring_ms: int = 0, hangup_after_ms: int = 0) -> str:
    """An agent phone. behaviour: answer | busy | unavailable | decline | noanswer."""
    final = {"busy": "486 Busy Here", "unavailable": "480 Temporarily Unavailable",
             "decline": "603 Decline"}
    # The INVITE's CSeq is kept for the 487 after a CANCEL (SIPp refuses unused variables).
    keep_cseq = "" if behaviour in final else (
        '\n    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
        "</action>")
    head = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl phone {behaviour}">
  <recv request="INVITE" crlf="true">{keep_cseq}
  </recv>
  <send>
    <![CDATA[
SIP/2.0 100 Trying
{_RESP_HDRS}
Content-Length: 0

    ]]>
  </send>
"""
    if behaviour in final:
        return head + f"""  <send>
    <![CDATA[
SIP/2.0 {final[behaviour]}
{_RESP_HDRS}
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""
    ringing = f"""  <send>
    <![CDATA[
SIP/2.0 180 Ringing
{_RESP_HDRS}
Content-Length: 0

    ]]>
  </send>
"""
    cancel_wait = 3_600_000 if behaviour == "noanswer" else max(ring_ms, 1)
    cancelled = f"""  <recv request="CANCEL" timeout="{cancel_wait}" ontimeout="answer"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
{_RESP_HDRS}
Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]-[call_number]
[last_Call-ID:]
CSeq: [$cseq] INVITE
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" next="end"/>
  <label id="answer"/>
"""
    # While talking, a re-INVITE (Asterisk's connected-line update) is answered like a phone
    # would, instead of being left to retransmit.
    if hangup_after_ms:
        after = f"""  <label id="talk"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE" timeout="{hangup_after_ms}" ontimeout="bye"/>
  <send next="end">
    <![CDATA[
SIP/2.0 200 OK
{_DLG_HDRS}
Content-Length: 0

    ]]>
  </send>
  <label id="bye"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="end"/>
"""
    else:
        after = f"""  <label id="talk"/>
  <recv request="INVITE" optional="true" next="reinvite"/>
  <recv request="BYE"/>
  <send next="end">
    <![CDATA[
SIP/2.0 200 OK
{_DLG_HDRS}
Content-Length: 0

    ]]>
  </send>
"""
    after += f"""  <label id="reinvite"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv request="ACK" next="talk"/>
"""
    return head + ringing + cancelled + f"""  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
{_RESP_HDRS}
Content-Type: application/sdp
Content-Length: [len]

{SDP}
    ]]>
  </send>
  <recv request="ACK" rtd="true" crlf="true"/>
""" + after + """  <label id="end"/>
</scenario>
"""


@dataclass
class Phone:
    """A SIPp UAS playing one agent phone. Start/stop it; count what it received."""

    name: str
    port: int
    behaviour: str = "answer"
    ring_ms: int = 200
    hangup_after_ms: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callctl-ph-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def trace(self) -> Path:
        return self.workdir / "messages.log"

    def start(self) -> Phone:
        scen = self.workdir / "uas.xml"
        scen.write_text(uas_scenario(self.behaviour, self.ring_ms, self.hangup_after_ms))
        self.trace.unlink(missing_ok=True)
        argv = [SIPP, "-sf", str(scen), "-i", "127.0.0.1", "-p", str(self.port),
                "-mp", str(next(_media_ports)), "-aa", "-nostdin",
                "-trace_msg", "-message_file", str(self.trace), "-trace_err",
                "-error_file", str(self.workdir / "errors.log"), "-max_recv_loops", "100",
                "-nd", "-default_behaviors", "-abortunexp,-bye"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.workdir,
                                     start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # listening once the trace file exists
            if self.trace.exists() or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp phone {self.name} exited at start (port {self.port})")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self, behaviour: str | None = None, **kw: int) -> Phone:
        self.stop()
        if behaviour:
            self.behaviour = behaviour
        for k, v in kw.items():
            setattr(self, k, v)
        return self.start()

    def messages(self) -> str:
        try:
            return self.trace.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def invites(self) -> int:
        """INVITE requests this phone received (SIPp traces each received message)."""
        return len(self.calls())

    def calls(self) -> list[str]:
        """Call-IDs of the initial INVITEs received (re-INVITEs and retransmissions excluded)."""
        seen: list[str] = []
        for block in self.messages().split("UDP message received")[1:]:
            lines = block.split("\n-----", 1)[0].splitlines()[1:]  # this message only
            req = next((ln for ln in lines if ln.strip()), "")
            if not req.startswith("INVITE sip:"):
                continue
            hdr = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                   for ln in lines if ":" in ln and not ln.startswith(" ")}
            if "tag=" in hdr.get("to", "") or hdr.get("call-id") in seen:
                continue
            seen.append(hdr.get("call-id", ""))
        return seen

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class CallResult:
    rc: int
    stdout: str
    stderr: str
    elapsed: float
    trace: str

    def final_status(self) -> int | None:
        """The final response the caller received for its INVITE (the first one >= 200)."""
        for line in self.trace.splitlines():
            if line.startswith("SIP/2.0 ") and int(line.split()[1]) >= 200:
                return int(line.split()[1])
        return None


def place_call(did: str, *, caller: str = "+15551230001", hold_ms: int = 2000,
               digits: list[tuple[int, str]] | None = None, sip_port: int = 5060,
               timeout: float = 60.0) -> CallResult:
    """Run one SIPp caller to completion (blocking: run it in a thread from async tests)."""
    work = Path(tempfile.mkdtemp(prefix="callctl-uac-"))
    try:
        scen = work / "uac.xml"
        scen.write_text(uac_scenario(caller=caller, hold_ms=hold_ms, digits=digits or []))
        trace = work / "messages.log"
        argv = [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(scen), "-s", did, "-i", "127.0.0.1",
                "-p", str(free_udp_port()), "-mp", str(next(_media_ports)), "-m", "1",
                "-nostdin", "-trace_msg", "-message_file", str(trace), "-timeout",
                f"{int(timeout)}s", "-timeout_error", "-aa", "-nd",
                "-default_behaviors", "-abortunexp,-bye"]
        t0 = time.monotonic()
        res = subprocess.run(argv, capture_output=True, text=True, cwd=work,
                             timeout=timeout + 10)
        elapsed = time.monotonic() - t0
        text = trace.read_text(errors="replace") if trace.exists() else ""
        return CallResult(res.returncode, res.stdout[-2000:], res.stderr[-2000:], elapsed, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)
