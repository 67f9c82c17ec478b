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
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{}.pcap"
SPEECH_PCAP = "/usr/share/sip-tester/g711a.pcap"
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


def dtmf_pcap(digit: str, index: int, out: Path) -> Path:
    """A copy of SIPp's RFC 4733 pcap for ``digit`` as the ``index``-th key of one call.

    The stock pcaps each carry one fixed RTP sequence number and timestamp (per digit). Asterisk
    drops a telephone-event whose timestamp it has already seen ended (a retransmitted end), so
    the same pcap played twice in one call delivers the digit only once, and a digit whose stock
    timestamp is lower than the previous one's may be lost too. Here every key of a call gets
    its own increasing sequence numbers and timestamp, like a real phone sends.
    """
    data = bytearray(Path(_pcap_for(digit)).read_bytes())
    if data[:4] != b"\xd4\xc3\xb2\xa1" or struct.unpack_from("<I", data, 20)[0] != 1:
        raise ValueError(f"unexpected pcap format for digit {digit!r}")
    off, first_seq = 24, None
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = off + 16
        udp = pkt + 14 + (data[pkt + 14] & 0x0F) * 4  # Ethernet, then IPv4 (IHL words)
        rtp = udp + 8
        seq = struct.unpack_from(">H", data, rtp + 2)[0]
        first_seq = seq if first_seq is None else first_seq
        struct.pack_into(">H", data, rtp + 2, (1000 + 50 * index + seq - first_seq) & 0xFFFF)
        struct.pack_into(">I", data, rtp + 4, 160_000 + 16_000 * index)  # 2 s apart
        struct.pack_into(">H", data, udp + 6, 0)  # UDP checksum: none (IPv4 allows it)
        off = pkt + incl
    path = out / f"dtmf-{index}-{digit.replace('*', 'star').replace('#', 'pound')}.pcap"
    path.write_bytes(bytes(data))
    return path


def uac_request(method: str, ruri: str, frm: str, *, cseq: int,
                contact: str | None = None, extra: str | None = None, sdp: str | None = None,
                in_dialog: bool = True, send: str = "<send>") -> str:
    """A caller's request as a SIPp ``<send>`` block, shared by every UAC scenario here and
    in bench/sipp.py. ``ruri`` is the dialled user ("[service]", or "[field0]" from an
    injection file); ``frm`` the whole From value (tag included); ``extra`` a header line
    (e.g. "[field1]"); ``sdp`` makes it an offer; ``in_dialog`` adds the To tag."""
    target = f"sip:{ruri}@[remote_ip]:[remote_port]"
    lines = [f"{method} {target} SIP/2.0",
             "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
             f"From: {frm}",
             f"To: <{target}>" + ("[peer_tag_param]" if in_dialog else ""),
             "Call-ID: [call_id]",
             f"CSeq: {cseq} {method}"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines.append("Max-Forwards: 70")
    if extra is not None:
        lines.append(extra)
    if sdp is None:
        lines += ["Content-Length: 0", ""]
    else:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", sdp]
    body = "\n".join(lines)
    return f"  {send}\n    <![CDATA[\n{body}\n    ]]>\n  </send>"


UAC_OK_TO_BYE = """  <send next="end">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>"""
"""A caller's 200 OK to the far end's BYE."""

UAC_EARLY = """  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>"""
"""What a caller accepts before the answer."""


def uac_failures(label: str,
                 codes: tuple[int, ...] = (401, 403, 404, 407, 480, 486, 503, 603)) -> str:
    """Final errors that jump to ``label`` (instead of waiting for a 200 that never comes)."""
    return "\n".join(f'  <recv response="{c}" optional="true" next="{label}"/>' for c in codes)


def uac_scenario(*, caller: str, hold_ms: int, digits: list[tuple[int, str]],
                 pcap_dir: Path | None = None, speak_after_ms: int | None = None) -> str:
    """A caller: INVITE, wait for answer (or a final error), play DTMF, hang up after hold_ms
    unless the far end hangs up first. ``digits`` = [(pause_ms_before, digit), ...].
    With ``pcap_dir``, each key plays a per-call rewritten pcap (see :func:`dtmf_pcap`), so
    repeated digits all arrive; without it the stock pcaps are played as they are.
    With ``speak_after_ms``, the caller also offers PCMA and, that long after the answer,
    "speaks": SIPp's ~7 s G.711 a-law sample (for voicemail tests; hold_ms counts after it)."""
    dtmf = []
    sdp = SDP
    if speak_after_ms is not None:
        sdp = SDP.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101").replace(
            "a=rtpmap:0 PCMU/8000\n", "a=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n")
        dtmf.append(f'  <pause milliseconds="{speak_after_ms}"/>')
        dtmf.append(f'  <nop><action><exec play_pcap_audio="{SPEECH_PCAP}"/></action></nop>')
    for i, (pause, d) in enumerate(digits):
        pcap = str(dtmf_pcap(d, i, pcap_dir)) if pcap_dir is not None else _pcap_for(d)
        dtmf.append(f'  <pause milliseconds="{pause}"/>')
        dtmf.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>')
        dtmf.append('  <pause milliseconds="300"/>')
    dtmf_xml = "\n".join(dtmf)
    frm = f'"Test Caller" <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]'
    contact = f"sip:{caller}@[local_ip]:[local_port]"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl caller">
{uac_request("INVITE", "[service]", frm, cseq=1, contact=contact, sdp=sdp, in_dialog=False,
             send='<send retrans="500">')}
{UAC_EARLY}
{uac_failures("rejected")}
  <recv response="200" rtd="true"/>
{uac_request("ACK", "[service]", frm, cseq=1, contact=contact)}
{dtmf_xml}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
{UAC_OK_TO_BYE}
  <label id="hangup"/>
{uac_request("BYE", "[service]", frm, cseq=2, contact=contact, send='<send retrans="500">')}
  <recv response="200" next="end"/>
  <label id="rejected"/>
{uac_request("ACK", "[service]", frm, cseq=1, send='<send next="end">')}
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
{_DLG_HDRS}
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


@dataclass(frozen=True)
class SipMessage:
    """One message of a SIPp message trace (``-trace_msg``): when SIPp logged it, whether it
    was received, its first line and headers (lower-case names; repeated ones joined)."""

    at: datetime
    received: bool
    first: str
    headers: dict[str, list[str]]

    def header(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])

    @property
    def cseq_method(self) -> str:
        return (self.header("cseq") or [" "])[0].split()[-1]


def sip_messages(trace: str) -> list[SipMessage]:
    """Parse a SIPp message trace: its blocks start with a dashed line and a timestamp."""
    out: list[SipMessage] = []
    for block in trace.split("-----------------------------------------------")[1:]:
        lines = block.splitlines()
        try:
            at = datetime.strptime(lines[0].strip(), "%Y-%m-%d %H:%M:%S.%f")
        except (ValueError, IndexError):
            continue
        if len(lines) < 2 or "message" not in lines[1]:
            continue
        body = [ln for ln in lines[2:] if ln.strip()]
        if not body:
            continue
        headers: dict[str, list[str]] = {}
        for ln in body[1:]:
            name, sep, value = ln.partition(":")
            if sep and not ln.startswith(" "):
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        out.append(SipMessage(at, "received" in lines[1], body[0], headers))
    return out


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

    def final_status(self, ignore: tuple[int, ...] = ()) -> int | None:
        """The final response the caller received for its INVITE (the first one >= 200 not
        in ``ignore``: a phone's call skips the 401 digest challenge)."""
        for line in self.trace.splitlines():
            if line.startswith("SIP/2.0 ") and int(line.split()[1]) >= 200 and \
                    int(line.split()[1]) not in ignore:
                return int(line.split()[1])
        return None


def place_call(did: str, *, caller: str = "+15551230001", hold_ms: int = 2000,
               digits: list[tuple[int, str]] | None = None, sip_port: int = 5060,
               timeout: float = 60.0, speak_after_ms: int | None = None,
               local_ip: str = "127.0.0.1") -> CallResult:
    """Run one SIPp caller to completion (blocking: run it in a thread from async tests).
    ``local_ip``: the address it sends from (any 127.x.y.z works on Linux loopback)."""
    work = Path(tempfile.mkdtemp(prefix="callctl-uac-"))
    try:
        scen = work / "uac.xml"
        scen.write_text(uac_scenario(caller=caller, hold_ms=hold_ms, digits=digits or [],
                                     pcap_dir=work, speak_after_ms=speak_after_ms))
        trace = work / "messages.log"
        argv = [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(scen), "-s", did, "-i", local_ip,
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


# --------------------------------------------------------------------------- registered phones
# A softphone (phone1..3 in asterisk-conf: digest auth, dynamic contact) as SIPp: a REGISTER
# run (challenged with 401, answered with the password), then a UAS on the registered port
# (the Phone above) that answers INVITEs and Asterisk's qualify OPTIONS, and for its own
# calls a UAC whose INVITE is challenged and re-sent with credentials, as a softphone does.

def register_scenario(user: str, password: str, expires: int = 3600) -> str:
    """REGISTER ``user``'s contact (this SIPp's address); ``expires=0`` removes it."""
    aor = f"sip:{user}@[remote_ip]:[remote_port]"
    def req(cseq: int, auth: bool) -> str:
        lines = ["REGISTER sip:[remote_ip]:[remote_port] SIP/2.0",
                 "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
                 f"From: <{aor}>;tag=reg[pid]", f"To: <{aor}>", "Call-ID: [call_id]",
                 f"CSeq: {cseq} REGISTER", f"Contact: <sip:{user}@[local_ip]:[local_port]>",
                 f"Expires: {expires}", "Max-Forwards: 70"]
        if auth:
            lines.append(f"[authentication username={user} password={password}]")
        lines += ["Content-Length: 0", ""]
        body = "\n".join(lines)
        return f'  <send retrans="500">\n    <![CDATA[\n{body}\n    ]]>\n  </send>'

    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl register">
{req(1, False)}
  <recv response="401" auth="true"/>
{req(2, True)}
  <recv response="200"/>
</scenario>
"""


def phone_uac_scenario(user: str, password: str, *, hold_ms: int) -> str:
    """A registered phone's call: INVITE, 401 challenge, INVITE with credentials, then as
    :func:`uac_scenario` (answer -> hold -> BYE, or a final error)."""
    frm = f'"{user}" <sip:{user}@[remote_ip]:[remote_port]>;tag=[call_number]'
    contact = f"sip:{user}@[local_ip]:[local_port]"
    auth = f"[authentication username={user} password={password}]"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callctl phone caller">
{uac_request("INVITE", "[service]", frm, cseq=1, contact=contact, sdp=SDP, in_dialog=False,
             send='<send retrans="500">')}
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
{uac_request("ACK", "[service]", frm, cseq=1, send="<send>").replace("[branch]", "[branch-2]")}
{uac_request("INVITE", "[service]", frm, cseq=2, contact=contact, sdp=SDP, in_dialog=False,
             extra=auth, send='<send retrans="500">')}
{UAC_EARLY}
{uac_failures("rejected")}
  <recv response="200" rtd="true"/>
{uac_request("ACK", "[service]", frm, cseq=2, contact=contact)}
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
{UAC_OK_TO_BYE}
  <label id="hangup"/>
{uac_request("BYE", "[service]", frm, cseq=3, contact=contact, send='<send retrans="500">')}
  <recv response="200" next="end"/>
  <label id="rejected"/>
{uac_request("ACK", "[service]", frm, cseq=2, send='<send next="end">')}
  <label id="end"/>
</scenario>
"""


def _run_uac(scenario: str, target: str, *, sip_port: int, port: int | None = None,
             timeout: float = 60.0) -> CallResult:
    work = Path(tempfile.mkdtemp(prefix="callctl-uac-"))
    try:
        scen = work / "uac.xml"
        scen.write_text(scenario)
        trace = work / "messages.log"
        argv = [SIPP, f"127.0.0.1:{sip_port}", "-sf", str(scen), "-s", target, "-i",
                "127.0.0.1", "-p", str(port or free_udp_port()), "-mp",
                str(next(_media_ports)), "-m", "1", "-nostdin", "-trace_msg", "-message_file",
                str(trace), "-timeout", f"{int(timeout)}s", "-timeout_error", "-aa", "-nd",
                "-default_behaviors", "-abortunexp,-bye"]
        t0 = time.monotonic()
        res = subprocess.run(argv, capture_output=True, text=True, cwd=work,
                             timeout=timeout + 10)
        elapsed = time.monotonic() - t0
        text = trace.read_text(errors="replace") if trace.exists() else ""
        return CallResult(res.returncode, res.stdout[-2000:], res.stderr[-2000:], elapsed, text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(user: str, password: str, *, port: int, sip_port: int,
             expires: int = 3600) -> CallResult:
    """Register ``user``'s contact at 127.0.0.1:``port`` (blocking; rc 0 when accepted)."""
    return _run_uac(register_scenario(user, password, expires), user, sip_port=sip_port,
                    port=port, timeout=10)


def phone_call(user: str, password: str, dialled: str, *, sip_port: int,
               hold_ms: int = 2000, timeout: float = 60.0) -> CallResult:
    """``user`` (a registered softphone) dials ``dialled`` (blocking)."""
    return _run_uac(phone_uac_scenario(user, password, hold_ms=hold_ms), dialled,
                    sip_port=sip_port, timeout=timeout)
