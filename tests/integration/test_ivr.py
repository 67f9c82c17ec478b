"""Issue 3: YAML call flows and the IVR engine on real calls (Asterisk + Redis + SIPp callers).

Callers are SIPp UACs that send RFC 4733 DTMF (per-call rewritten copies of SIPp's pcaps, see
``sippctl.dtmf_pcap``). What Asterisk did is checked with an independent observer: a second
ARI application subscribed to every event source (``subscribeAll``), so it sees the caller's
channel, the DTMF Asterisk received and the playbacks the controller started, in Asterisk's
order, without going through the controller under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controller.adapters.ari.client import AriClient
from controller.config import PROJECT_ROOT, Settings
from controller.core import waits
from controller.core.flows import loader
from controller.shell.runtime import Controller

from integration.conftest import TEST_ENV, Harness, PhoneBank, until

# Short stock sounds (seconds): beep 0.44, beeperr 0.36, descending-2tone 0.2, vm-goodbye 0.88,
# hello 0.8, removed 0.88, added 0.74. Distinct prompts per node, so the observer can tell
# from Asterisk's playbacks which node the call was in.
IVR = """
users:
  alice: {name: Alice, endpoint: agent1}
departments:
  sales: {strategy: serial, members: [alice], ring_time: 3}
flows:
  main:
    dids: ["+15550100", "+15550101"]
    entry: menu
    nodes:
      menu:
        type: menu
        prompt: beep
        options: {"1": sales, "2": support-menu}
        timeout: 1
        retries: 2
        invalid_prompt: descending-2tone
        no_input: no-input
        invalid: wrong-key
      support-menu:
        type: menu
        prompt: beeperr
        options: {"1": sales, "2": notice}
        timeout: 3
        retries: 0
        fallback: bye
      notice: {type: message, prompt: vm-goodbye, next: bye}
      no-input: {type: message, prompt: hello, next: bye}
      wrong-key: {type: message, prompt: removed, next: bye}
      sales: {type: department, department: sales, fallback: bye}
      bye: {type: hangup}
"""

TIMED = """
settings: {timezone: UTC}
flows:
  main:
    dids: ["+15550100"]
    entry: hours
    nodes:
      hours:
        type: time
        timezone: America/New_York
        hours: [{days: mon-fri, start: "09:00", end: "17:00"}]
        holidays: [{date: 2025-12-25, name: Christmas}]
        open: open-msg
        closed: closed-msg
      open-msg: {type: message, prompt: hello, next: bye}
      closed-msg: {type: message, prompt: removed, next: bye}
      bye: {type: hangup}
"""

VERSIONED = """
flows:
  main:
    dids: ["+15550100"]
    entry: menu
    nodes:
      menu:
        type: menu
        prompt: beep
        options: {"1": %(target)s}
        timeout: 5
        retries: 0
        fallback: bye
      %(target)s: {type: message, prompt: %(prompt)s, next: bye}
      bye: {type: hangup}
"""
V1 = VERSIONED % {"target": "old-msg", "prompt": "hello"}
V2 = VERSIONED % {"target": "new-msg", "prompt": "added"}

# Tuesday 2025-01-07 in New York (UTC-5): 15:00 UTC is 10:00 local, 23:30 UTC is 18:30 local.
IN_HOURS = datetime(2025, 1, 7, 15, 0, tzinfo=UTC)
AFTER_HOURS = datetime(2025, 1, 7, 23, 30, tzinfo=UTC)


def sound(name: str) -> str:
    """The media URI of an Asterisk stock sound as the controller plays it."""
    return f"sound:{name}"


def prompt_uri(name: str, lang: str = "en") -> str:
    """The media URI of one of the project's example prompts."""
    return f"sound:{PROJECT_ROOT / 'prompts' / lang / name}"


class Observer:
    """Every ARI event of the test Asterisk, seen by a second application (``subscribeAll``)."""

    def __init__(self, settings: Settings) -> None:
        self.client = AriClient(settings.ari_url, settings.ari_user, settings.ari_password,
                                f"{settings.app}-observer")
        self.events: list[tuple[float, dict[str, Any]]] = []  # (monotonic receipt, event)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ws = await self.client.connect_events(subscribe_all=True)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.events.append((time.monotonic(), json.loads(msg.data)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ws is not None:
            await asyncio.wait_for(self._ws.close(), 5)
        await self.client.close()

    def of(self, cid: str) -> list[dict[str, Any]]:
        """Events about channel ``cid``: its own, and those of playbacks on it."""
        out = []
        for _, ev in self.events:
            if ev.get("channel", {}).get("id") == cid or \
                    ev.get("playback", {}).get("target_uri") == f"channel:{cid}":
                out.append(ev)
        return out

    def played(self, cid: str) -> list[str]:
        """Media Asterisk started playing to ``cid``, in order (a playback of several media
        reports PlaybackStarted for each)."""
        return [ev["playback"]["media_uri"] for ev in self.of(cid)
                if ev["type"] == "PlaybackStarted"]

    def digits(self, cid: str) -> str:
        """The DTMF Asterisk received on ``cid``."""
        return "".join(ev["digit"] for ev in self.of(cid) if ev["type"] == "ChannelDtmfReceived")

    def when(self, cid: str, pred: Callable[[dict[str, Any]], bool]) -> float | None:
        """Monotonic time the first event on ``cid`` matching ``pred`` arrived."""
        for at, ev in self.events:
            if ev.get("channel", {}).get("id") == cid and pred(ev):
                return at
        return None

    def destroyed(self, cid: str) -> dict[str, Any] | None:
        return next((ev for ev in self.of(cid) if ev["type"] == "ChannelDestroyed"), None)


@pytest.fixture
async def observer(test_settings: Settings) -> AsyncIterator[Observer]:
    obs = Observer(test_settings)
    await obs.start()
    yield obs
    await obs.close()


def kinds(rec: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [t for t in rec["trace"] if t["kind"] == kind]


async def ended(obs: Observer, cid: str) -> dict[str, Any]:
    """Wait until the observer saw ``cid`` destroyed; return that event."""
    await until(lambda: obs.destroyed(cid) is not None, 5, f"ChannelDestroyed of {cid}")
    ev = obs.destroyed(cid)
    assert ev is not None
    return ev


async def callctl(*args: str, prefix: str) -> subprocess.CompletedProcess[str]:
    """Run the ``callctl`` CLI in a subprocess against the test stack's Redis under ``prefix``
    (in a thread: the controller under test keeps running meanwhile)."""
    env = {**os.environ, **TEST_ENV, "CALLCTL_REDIS_PREFIX": prefix}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "controller", *args], capture_output=True,
        text=True, env=env, cwd=PROJECT_ROOT, timeout=30)


def write_flows(tmp: Path, text: str, name: str = "flows.yaml") -> Path:
    d = tmp / f"src-{time.monotonic_ns()}"
    d.mkdir()
    (d / name).write_text(textwrap.dedent(text))
    return d


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the ``occurrence``-th ``needle`` in ``text``."""
    idx = -1
    for _ in range(occurrence):
        idx = text.index(needle, idx + 1)
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


# ------------------------------------------------------------------------------ menus

async def test_given_two_dids_on_one_flow_then_both_reach_its_menu(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(IVR, tmp_path)
    await harness.start()

    for did in ("+15550100", "+15550101"):
        result = await harness.call(did, hold_ms=700)  # hangs up while the menu waits
        rec = await harness.record()
        assert result.final_status() == 200, result.trace[-1500:]
        assert rec["did"] == did
        assert rec["path"] == ["menu"] and rec["result"] == "caller_hangup", rec
        assert kinds(rec, "flow")[0]["flow"] == "main"
        await ended(observer, rec["call_id"])
        assert observer.played(rec["call_id"])[:1] == [sound("beep")]


async def test_given_key_1_then_department_rings_and_agent_answers(
        harness: Harness, observer: Observer, phones: PhoneBank, tmp_path: Path) -> None:
    agent = await phones.start("agent1", "answer", ring_ms=200)
    await harness.publish(IVR, tmp_path)
    await harness.start()

    result = await harness.call("+15550100", digits=[(200, "1")], hold_ms=1500)
    rec = await harness.record()

    cid = rec["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == "1"  # Asterisk received the RFC 4733 key
    assert rec["path"] == ["menu", "sales"], rec
    assert rec["answered_by"] == "alice" and rec["result"] == "completed", rec
    assert agent.invites() == 1, agent.messages()
    bridged = [ev for ev in observer.of(cid) if ev["type"] == "ChannelEnteredBridge"]
    assert len(bridged) == 1
    assert result.rc == 0


async def test_given_key_2_in_sub_menu_then_message_plays_then_hangup(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(IVR, tmp_path)
    await harness.start()

    result = await harness.call("+15550100", digits=[(200, "2"), (700, "2")], hold_ms=8000)
    rec = await harness.record()

    cid = rec["call_id"]
    gone = await ended(observer, cid)
    assert observer.digits(cid) == "22"
    assert rec["path"] == ["menu", "support-menu", "notice", "bye"], rec
    assert rec["result"] == "hangup"
    # What Asterisk did, in its order: the sub-menu prompt, then the message played to its end,
    # then (only then) the channel was hung up with normal clearing.
    played = observer.played(cid)
    assert played[-2:] == [sound("beeperr"), sound("vm-goodbye")], played
    evs = observer.of(cid)
    done = [i for i, ev in enumerate(evs) if ev["type"] == "PlaybackFinished"
            and ev["playback"]["media_uri"] == sound("vm-goodbye")]
    assert len(done) == 1 and evs[done[0]]["playback"]["state"] == "done"
    hangup = next(i for i, ev in enumerate(evs) if ev["type"] == "ChannelHangupRequest")
    assert done[0] < hangup
    assert gone["cause"] == 16
    assert "BYE sip:" in result.trace and result.rc == 0  # the caller got our BYE


async def test_given_no_digits_then_menu_repeats_then_no_input_branch(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(IVR, tmp_path)
    await harness.start()

    result = await harness.call("+15550100", hold_ms=15000)
    rec = await harness.record()

    cid = rec["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == ""
    # 1 + retries (2) plays of the menu, then the no_input branch's message.
    assert observer.played(cid) == [sound("beep")] * 3 + [sound("hello")]
    assert rec["path"] == ["menu", "no-input", "bye"], rec
    tries = [t for t in kinds(rec, "digits") if t["node"] == "menu"]
    assert [(t["result"], t["attempt"]) for t in tries] == [
        ("no_input", 1), ("no_input", 2), ("no_input", 3)]
    # Each replay came after the menu's 1 s timeout, not at once.
    finished = [at for at, ev in observer.events if ev["type"] == "PlaybackFinished"
                and ev["playback"]["target_uri"] == f"channel:{cid}"]
    started = [at for at, ev in observer.events if ev["type"] == "PlaybackStarted"
               and ev["playback"]["target_uri"] == f"channel:{cid}"]
    gaps = [started[i + 1] - finished[i] for i in range(2)]
    assert all(0.9 <= g <= 3.0 for g in gaps), gaps
    assert result.rc == 0


async def test_given_wrong_keys_then_invalid_prompt_and_invalid_branch(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(IVR, tmp_path)
    await harness.start()

    result = await harness.call("+15550100", digits=[(200, "7"), (600, "7"), (600, "7")],
                                hold_ms=8000)
    rec = await harness.record()

    cid = rec["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == "777"  # the same key three times: all three arrived
    assert rec["path"] == ["menu", "wrong-key", "bye"], rec
    tries = [t for t in kinds(rec, "digits") if t["node"] == "menu"]
    assert [(t["digits"], t["result"], t["attempt"]) for t in tries] == [
        ("7", "invalid", 1), ("7", "invalid", 2), ("7", "invalid", 3)]
    played = observer.played(cid)
    assert played.count(sound("descending-2tone")) == 2, played  # "wrong key" before replays
    assert played[-1] == sound("removed")  # the invalid branch's message
    assert result.rc == 0


BARGE = """
flows:
  main:
    dids: ["+15550100"]
    entry: menu
    nodes:
      menu:
        type: menu
        prompt: vm-sorry          # 3.1 s
        options: {"2": notice}
        operator: operator
        repeat_key: "*"
        timeout: 3
        retries: 0
        fallback: bye
      notice: {type: message, prompt: beep, next: bye}
      operator: {type: message, prompt: beeperr, next: bye}
      bye: {type: hangup}
"""

PIN = """
flows:
  main:
    dids: ["+15550100"]
    entry: pin
    nodes:
      pin:
        type: input
        prompt: beep
        variable: pin
        digits: 6
        min_digits: 4
        terminator: "#"
        timeout: 3
        inter_digit_timeout: 2
        retries: 0
        sensitive: true
        no_input: bye
        next: thanks
      thanks: {type: message, prompt: vm-goodbye, next: bye}
      bye: {type: hangup}
"""


async def test_given_key_during_prompt_then_prompt_stops_at_once(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(BARGE, tmp_path)
    await harness.start()

    # 2 pressed 0.5 s into a 3.1 s prompt; then * (replay) and 0 (operator), both barging in.
    await harness.call("+15550100", digits=[(500, "2")], hold_ms=8000)
    first = await harness.record()
    await harness.call("+15550100", digits=[(500, "*"), (500, "0")], hold_ms=8000)
    second = await harness.record()

    cid = first["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == "2"
    assert first["path"] == ["menu", "notice", "bye"], first
    assert observer.played(cid) == [sound("vm-sorry"), sound("beep")]
    pb = [(at, ev) for at, ev in observer.events
          if ev.get("playback", {}).get("target_uri") == f"channel:{cid}"
          and ev["playback"]["media_uri"] == sound("vm-sorry")]
    t_start = next(at for at, ev in pb if ev["type"] == "PlaybackStarted")
    t_stop = next(at for at, ev in pb if ev["type"] == "PlaybackFinished")
    t_key = observer.when(cid, lambda ev: ev["type"] == "ChannelDtmfReceived")
    assert t_key is not None and t_start < t_key < t_stop
    # Stopped when the key came (its natural end was ~2.6 s after the key).
    assert t_stop - t_key < 1.0, "the prompt must stop when the key arrives"
    assert t_stop - t_start < 2.5, "stopped long before its 3.1 s end"

    cid = second["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == "*0"
    assert second["path"] == ["menu", "operator", "bye"], second
    assert observer.played(cid) == [sound("vm-sorry")] * 2 + [sound("beeperr")]
    tries = [(t["digits"], t.get("result")) for t in kinds(second, "digits")]
    assert tries == [("*", "repeat"), ("0", None)]


async def test_given_sensitive_input_then_digits_collected_and_masked_everywhere(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    await harness.publish(PIN, tmp_path)
    await harness.start()

    keys = [(200, "4"), (100, "3"), (100, "2"), (100, "1"), (100, "#")]
    await harness.call("+15550100", digits=keys, hold_ms=8000)
    rec = await harness.record()

    cid = rec["call_id"]
    await ended(observer, cid)
    assert observer.digits(cid) == "4321#"  # what Asterisk received
    assert rec["path"] == ["pin", "thanks", "bye"], rec  # 4 digits then '#': accepted
    assert kinds(rec, "input") and kinds(rec, "input")[-1]["digits"] == "****"
    dtmf = kinds(rec, "dtmf")
    assert len(dtmf) == 5 and all(t.get("masked") and "digit" not in t for t in dtmf), dtmf
    # Nor in the stored trace `callctl call` shows.
    shown = await callctl("call", cid, "--json", prefix=harness.prefix)
    assert shown.returncode == 0, shown.stderr
    stored = json.loads(shown.stdout)
    stored = stored["trace"] if isinstance(stored, dict) else stored
    assert [t["kind"] for t in stored] == [t["kind"] for t in rec["trace"]]
    assert "4321" not in shown.stdout and '"digit"' not in shown.stdout


# ------------------------------------------------------------------------------ time

async def test_given_time_node_then_clock_decides_open_or_closed(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    now = [AFTER_HOURS]
    await harness.publish(TIMED, tmp_path)
    await harness.start(clock=lambda: now[0])

    await harness.call("+15550100", hold_ms=8000)
    closed = await harness.record()
    now[0] = IN_HOURS
    await harness.call("+15550100", hold_ms=8000)
    opened = await harness.record()

    assert closed["path"] == ["hours", "closed-msg", "bye"], closed
    assert kinds(closed, "time")[0]["result"] == "closed"
    assert kinds(closed, "time")[0]["local"].startswith("2025-01-07T18:30")
    assert opened["path"] == ["hours", "open-msg", "bye"], opened
    for rec, media in ((closed, "removed"), (opened, "hello")):
        await ended(observer, rec["call_id"])
        assert observer.played(rec["call_id"]) == [sound(media)]


# ------------------------------------------------------------------------------ publish

async def test_given_publish_during_call_then_call_keeps_old_version_next_uses_new(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    v1 = await harness.publish(V1, tmp_path)
    ctl = await harness.start()
    assert ctl.flows.current is not None and ctl.flows.current[0] == v1

    # The caller waits 2.5 s in the menu before pressing 1; meanwhile version 2 goes live.
    first = asyncio.create_task(harness.call("+15550100", digits=[(2500, "1")], hold_ms=8000))
    await until(lambda: len(ctl.calls) == 1, 5, "the first call in the controller")
    cid = next(iter(ctl.calls))
    await until(lambda: sound("beep") in observer.played(cid), 5, "the menu playing")
    t0 = time.monotonic()
    v2 = await harness.publish(V2, tmp_path)
    await until(lambda: ctl.flows.current is not None and ctl.flows.current[0] == v2, 1.0,
                "the controller routing on the new version within a second")
    live_at = time.monotonic()
    await first
    rec1 = await harness.record()

    key_at = observer.when(cid, lambda ev: ev["type"] == "ChannelDtmfReceived")
    assert key_at is not None and key_at > live_at, "the key must come after the publish"
    assert rec1["call_id"] == cid and rec1["flow_version"] == v1
    assert rec1["path"] == ["menu", "old-msg", "bye"], rec1
    await ended(observer, cid)
    assert observer.played(cid)[-1] == sound("hello")

    await harness.call("+15550100", digits=[(200, "1")], hold_ms=8000)
    rec2 = await harness.record()
    assert rec2["flow_version"] == v2
    assert rec2["path"] == ["menu", "new-msg", "bye"], rec2
    await ended(observer, rec2["call_id"])
    assert observer.played(rec2["call_id"])[-1] == sound("added")
    print(f"publish -> controller routing on it: {live_at - t0:.3f} s")


async def test_given_broken_publish_then_rejected_with_position_and_live_unchanged(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    v1 = await harness.publish(V1, tmp_path)
    ctl = await harness.start()
    key = f"{harness.prefix}flows:"
    before = {k: await harness.redis.get(key + k) for k in ("live", "version")}

    # Two mistakes in two nodes, both reported in one run: a bad timeout (schema) and a
    # reference to a node that does not exist (lint).
    broken = textwrap.dedent(V1).replace("timeout: 5", "timeout: -1") \
        .replace("prompt: hello, next: bye}", "prompt: hello, next: bey}")
    src = write_flows(tmp_path, broken)
    res = await callctl("publish", str(src), prefix=harness.prefix)

    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    fname = src / "flows.yaml"
    line, col = position(broken, "bey}")
    assert re.search(rf"^{re.escape(str(fname))}:{line}:{col}: flows\.main\.nodes\.old-msg"
                     r"\.next: unknown node 'bey' .*\(did you mean 'bye'\?\)", out, re.M), out
    line, col = position(broken, "-1")
    assert re.search(rf"^{re.escape(str(fname))}:{line}:{col}: "
                     r"flows\.main\.nodes\.menu\.timeout: .*\(value: -1\)", out, re.M), out
    assert "2 error(s)" in out and "not published" in out
    assert {k: await harness.redis.get(key + k) for k in ("live", "version")} == before
    # The live version keeps running: the controller still routes calls on it.
    assert ctl.flows.current is not None and ctl.flows.current[0] == v1
    await harness.call("+15550100", digits=[(200, "1")], hold_ms=8000)
    rec = await harness.record()
    assert rec["flow_version"] == v1 and rec["path"] == ["menu", "old-msg", "bye"], rec
    await ended(observer, rec["call_id"])

    # The same CLI publishes a good flow, and rolls it back; the controller follows both.
    good = await callctl("publish", str(write_flows(tmp_path, V2)), prefix=harness.prefix)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"published version {v1 + 1}" in good.stdout
    await until(lambda: ctl.flows.current is not None and ctl.flows.current[0] == v1 + 1, 1.0,
                "the controller on the CLI-published version")
    back = await callctl("rollback", prefix=harness.prefix)
    assert back.returncode == 0 and f"version {v1} is live" in back.stdout, back.stderr
    await until(lambda: ctl.flows.current is not None and ctl.flows.current[0] == v1, 1.0,
                "the controller back on the first version")


async def test_given_missing_prompt_then_lint_warning_and_call_goes_on(
        harness: Harness, observer: Observer, tmp_path: Path) -> None:
    text = """
        flows:
          main:
            dids: ["+15550100"]
            entry: hello
            nodes:
              hello: {type: message, prompt: [no-such-prompt, beep], next: bye}
              bye: {type: hangup}
    """
    src = write_flows(tmp_path, text)
    res = await callctl("validate", str(src), prefix=harness.prefix)
    assert res.returncode == 0, res.stdout  # a warning does not stop a publish
    line, col = position(textwrap.dedent(text), "no-such-prompt")
    assert (f"{src / 'flows.yaml'}:{line}:{col}: flows.main.nodes.hello.prompt[0]: warning: "
            "prompt 'no-such-prompt' not found") in res.stdout
    assert "0 error(s)" in res.stdout or "1 warning(s)" in res.stdout

    await harness.publish(text, tmp_path)
    await harness.start()
    await harness.call("+15550100", hold_ms=8000)
    rec = await harness.record()
    # On a real call the gap is not silent: the call's trace names the missing prompt, and
    # Asterisk, which cannot play it, goes on with the next one; the call is not stuck.
    assert rec["path"] == ["hello", "bye"], rec
    assert kinds(rec, "prompt_missing") == [
        {"at": kinds(rec, "prompt_missing")[0]["at"], "kind": "prompt_missing",
         "prompt": "no-such-prompt", "language": "en"}]
    cid = rec["call_id"]
    await ended(observer, cid)
    assert observer.played(cid) == [sound("no-such-prompt"), sound("beep")]
    finished = [ev["playback"] for ev in observer.of(cid) if ev["type"] == "PlaybackFinished"]
    assert [(f["media_uri"], f["state"]) for f in finished] == [(sound("beep"), "done")]


# ------------------------------------------------------------------------------ lost media events

LOST_END = """
flows:
  main:
    dids: ["+15550100"]
    entry: hello
    nodes:
      hello: {type: message, prompt: goodbye, next: bye}
      bye: {type: hangup}
  vm:
    dids: ["+15550101"]
    entry: vm
    nodes:
      vm: {type: voicemail, mailbox: lost, greeting: null, max_seconds: 5}
"""


async def _deaf_to(harness: Harness, event_type: str) -> Controller:
    """A controller to which Asterisk never sends ``event_type`` (its app's event filter,
    set at its first connect): every such event is lost, as at a websocket cut, but
    deterministically."""
    harness.ctl = ctl = Controller(harness.settings)
    ctl.event_types = tuple(t for t in ctl.event_types if t != event_type)
    ctl.observers.append(harness.records.put_nowait)
    await ctl.start()
    await asyncio.wait_for(ctl.stream.connected_event.wait(), 10)
    return ctl


async def _waiting(ctl: Controller, ari: AriClient) -> tuple[tuple[str, str], dict[str, Any]]:
    """The media the (only) call waits on, and what ARI says of it meanwhile (the check
    made at the bound and at a resync, through %2F-encoded recording names too)."""
    await until(lambda: any(c.waiting_on for c in ctl.calls.values()), 10, "a media wait")
    (waiting,) = [c.waiting_on for c in ctl.calls.values()]
    get = ari.get_playback if waiting[0] == "playback" else ari.get_live_recording
    live = await get(waiting[1])
    assert live is not None
    return waiting, live


async def test_given_playbackfinished_lost_then_the_prompt_ends_at_its_bound(
        harness: Harness, observer: Observer, ari: AriClient, tmp_path: Path) -> None:
    """A prompt used to wait for its PlaybackFinished with no deadline: one lost event and
    the call stayed in the prompt until the caller gave up. Now the wait ends at the bound
    (the local file's duration + PROMPT_MARGIN_S); ARI says the playback is gone: it goes
    on."""
    await harness.publish(LOST_END, tmp_path)
    ctl = await _deaf_to(harness, "PlaybackFinished")
    uri = prompt_uri("goodbye")
    bound = waits.prompt_bound([waits.media_seconds(uri, "en")])
    assert bound == pytest.approx(0.885 + waits.PROMPT_MARGIN_S, abs=0.01)
    call = asyncio.ensure_future(harness.call("+15550100", hold_ms=20_000))  # would wait 20 s
    try:
        (kind, _), live = await _waiting(ctl, ari)
        assert kind == "playback" and live["state"] in ("queued", "playing"), live
    finally:
        await call
    rec = await harness.record()
    cid = rec["call_id"]
    await ended(observer, cid)
    assert rec["path"] == ["hello", "bye"] and rec["result"] == "hangup", rec
    assert [(t["media"], t["found_by"]) for t in kinds(rec, "media_event_lost")] == [
        ("playback", "bound")]
    pb = [(at, ev) for at, ev in observer.events
          if ev.get("playback", {}).get("target_uri") == f"channel:{cid}"]
    t_start = next(at for at, ev in pb if ev["type"] == "PlaybackStarted")
    t_done = next(at for at, ev in pb if ev["type"] == "PlaybackFinished")
    t_end = observer.when(cid, lambda ev: ev["type"] == "ChannelHangupRequest")
    assert t_end is not None
    print(f"prompt played {t_done - t_start:.2f} s; the call went on {t_end - t_start:.2f} s "
          f"after it started (bound {bound:.2f} s)")
    assert t_done < t_end < t_start + bound + 2.0  # the prompt played out; then the bound
    assert ctl.services.metrics.media_events_lost.get(media="playback", found_by="bound") == 1


async def test_given_recordingfinished_lost_then_the_recording_ends_at_its_bound(
        harness: Harness, observer: Observer, ari: AriClient, tmp_path: Path) -> None:
    """Likewise for a voicemail: the wait ends at max_seconds + RECORD_MARGIN_S, ARI has
    no live recording by that name any more (GET /recordings/live/{name}: 404), the message
    is kept and the call ends as a voicemail."""
    await harness.publish(LOST_END, tmp_path)
    ctl = await _deaf_to(harness, "RecordingFinished")
    bound = waits.record_bound(5)
    # the caller speaks at once (SIPp's 7 s sample), then would hold 30 s
    call = asyncio.ensure_future(harness.call("+15550101", hold_ms=30_000,
                                              speak_after_ms=200))
    try:
        (kind, _), live = await _waiting(ctl, ari)
        assert kind == "recording" and live["state"] in ("queued", "recording"), live
    finally:
        await call
    rec = await harness.record()
    cid = rec["call_id"]
    await ended(observer, cid)
    vm = next(t for t in rec["trace"] if t["kind"] == "voicemail" and "recording" in t)
    wav = harness.settings.run_dir / "spool" / "recording" / f"{vm['recording']}.wav"
    try:
        assert rec["result"] == "voicemail", rec
        assert [(t["media"], t["found_by"]) for t in kinds(rec, "media_event_lost")] == [
            ("recording", "bound")], rec["trace"]
        assert wav.exists() and wav.stat().st_size > 44  # the message is kept
        t_answer = observer.when(cid, lambda ev: ev["type"] == "ChannelStateChange"
                                 and ev["channel"]["state"] == "Up")
        t_end = observer.when(cid, lambda ev: ev["type"] == "ChannelHangupRequest")
        assert t_answer is not None and t_end is not None
        print(f"the call went on {t_end - t_answer:.2f} s after the answer (bound {bound} s)")
        assert 5 < t_end - t_answer < bound + 2.0
    finally:
        wav.unlink(missing_ok=True)


def test_schema_command_prints_the_committed_schema() -> None:
    res = subprocess.run([sys.executable, "-m", "controller", "schema"], capture_output=True,
                         text=True, cwd=PROJECT_ROOT, timeout=30)
    assert res.returncode == 0, res.stderr
    committed = (PROJECT_ROOT / "flows" / "examples" / "flow.schema.json").read_text()
    assert res.stdout == committed, "regenerate: callctl schema > flows/examples/flow.schema.json"


# ------------------------------------------------------------------------------ examples

async def test_given_example_flows_then_publish_clean_and_call_reaches_main_menu(
        harness: Harness, observer: Observer) -> None:
    examples = PROJECT_ROOT / "flows" / "examples"
    assert not loader.load([examples]).problems  # no error, no warning
    res = await callctl("publish", str(examples), prefix=harness.prefix)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 warning(s)" in res.stdout and "published version 1" in res.stdout
    await harness.start(clock=lambda: IN_HOURS)  # Tuesday 10:00 in New York: open

    # After the welcome (2.6 s) the main menu plays; 9 picks the language menu, 2 Spanish,
    # and the main menu plays again, now from prompts/es/.
    call = asyncio.create_task(
        harness.call("+15550100", digits=[(4000, "9"), (800, "2")], hold_ms=1500))
    ctl = harness.ctl
    assert ctl is not None
    await until(lambda: len(ctl.calls) == 1, 5, "the call in the controller")
    cid = next(iter(ctl.calls))
    await until(lambda: prompt_uri("main-menu") in observer.played(cid), 6,
                "the main menu prompt playing")
    await call
    rec = await harness.record()
    await ended(observer, cid)
    assert observer.digits(cid) == "92"
    assert rec["path"] == ["office-hours", "welcome", "main-menu", "choose-language",
                           "main-menu"], rec
    assert observer.played(cid) == [prompt_uri("welcome"), prompt_uri("main-menu"),
                                    prompt_uri("choose-language"),
                                    prompt_uri("main-menu", "es")]
    assert rec["result"] == "caller_hangup"
