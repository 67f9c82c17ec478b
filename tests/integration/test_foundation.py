"""Issue 2: a real call through Asterisk, the controller and SIPp phones; nothing leaks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from controller.adapters.ari.client import AriClient
from controller.config import Settings

from integration.conftest import Harness, PhoneBank, until

FLOW = """
settings:
  timezone: UTC
users:
  alice:
    name: Alice
    endpoint: agent1
flows:
  main:
    dids: ["+15550100"]
    entry: hello
    nodes:
      hello:
        type: message
        prompts: [beep]
        next: ring
      ring:
        type: extension
        user: alice
        fallback: bye
      bye:
        type: hangup
"""


async def _nothing_live(h: Harness, ari: AriClient) -> bool:
    chans = await ari.list_channels() or []
    bridges = await ari.list_bridges() or []
    live = await h.redis.zcard(f"{h.prefix}calls:live")
    call_keys = [k async for k in h.redis.scan_iter(match=f"{h.prefix}call:*")]
    return not chans and not bridges and live == 0 and not call_keys


async def test_given_agent_answers_then_bridged_and_nothing_left(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    agent = await phones.start("agent1", "answer", ring_ms=300)
    await harness.publish(FLOW, tmp_path)
    await harness.start()

    # The caller talks for ~2 s after the agent answers, then hangs up.
    result = await harness.call("+15550100", hold_ms=3500)
    rec = await harness.record()

    assert result.final_status() == 200, result.trace[-2000:]
    # "completed": answered, bridged, then a side hung up.
    assert rec["result"] == "completed", json.dumps(rec, indent=1)
    assert rec["answered_by"] == "alice"
    assert rec["path"] == ["hello", "ring"]
    answered = [t for t in rec["trace"] if t["kind"] == "answer"]
    assert answered and answered[0]["address"] == "agent1"
    assert agent.invites() == 1, agent.messages()
    assert "BYE sip:" in agent.messages()  # the agent's leg was hung up too
    await until(lambda: _nothing_live(harness, ari), 5, "no channel, bridge or live call")
    assert await harness.redis.get(f"{harness.prefix}busy:alice") is None


async def test_given_agent_busy_then_call_ends_cleanly(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    agent = await phones.start("agent1", "busy")
    await harness.publish(FLOW, tmp_path)
    await harness.start()

    result = await harness.call("+15550100", hold_ms=10000)
    rec = await harness.record()

    assert rec["answered_by"] is None
    assert rec["path"] == ["hello", "ring", "bye"]
    legs = [t for t in rec["trace"] if t["kind"] == "leg"]
    assert len(legs) == 1 and legs[0]["cause"] == 17  # 486 Busy Here -> Q.850 17
    assert agent.invites() == 1
    assert result.rc == 0  # the caller saw a clean BYE from us
    await until(lambda: _nothing_live(harness, ari), 5, "no channel, bridge or live call")


async def test_given_no_flow_for_did_then_rejected_with_404(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    await harness.publish(FLOW, tmp_path)
    await harness.start()

    result = await harness.call("+15550999", hold_ms=1000)
    rec = await harness.record()

    assert result.final_status() == 404  # cause 1, unallocated number
    assert rec["result"] == "no_flow" and rec["did"] == "+15550999"
    await until(lambda: _nothing_live(harness, ari), 5, "no channel left")


async def test_given_websocket_cut_then_reconnects_and_next_call_works(
        harness: Harness, phones: PhoneBank, ari: AriClient, tmp_path: Path) -> None:
    await phones.start("agent1", "answer", ring_ms=100)
    await harness.publish(FLOW, tmp_path)
    ctl = await harness.start()
    before = ctl.stream.reconnects

    await ctl.stream.drop()
    await until(lambda: ctl.stream.reconnects > before and ctl.stream.connected, 10,
                "websocket reconnected")

    result = await harness.call("+15550100", hold_ms=1500)
    rec = await harness.record()
    assert result.final_status() == 200
    assert rec["answered_by"] == "alice"
    await until(lambda: _nothing_live(harness, ari), 5, "no channel left")


QUERY_VALUES = [
    "PJSIP/agent3", '"Name" <+1555>', "sound:hello,sound:bye", "leg,c1,a=b&c;d",
    "50% #1 x%41", "ü ñ € 日本", "~!$'()*[]{}|\\^`", "a@b:c/d?e", " lead and trail ", "1+1 2",
]


def _sockets(client: AriClient) -> tuple[int, int]:
    """(open, idle) REST sockets of ``client``'s transport."""
    rest: Any = client._rest
    assert rest is not None
    conn = rest._session.connector
    idle = sum(len(v) for v in conn._conns.values())
    return idle + len(conn._acquired), idle


async def test_query_values_round_trip_through_asterisk_on_kept_connections(
        test_settings: Settings) -> None:
    """The REST transport: tricky query values survive Asterisk's query parsing (a global
    variable set and read back), sequential requests share one keep-alive socket, and
    concurrent ones share the pool."""
    s = test_settings
    ari = AriClient(s.ari_url, s.ari_user, s.ari_password, s.app)
    name = "CALLCTL_TEST_QUERY"
    try:
        for value in QUERY_VALUES:
            await ari.request("POST", "/asterisk/variable",
                              params={"variable": name, "value": value})
            got = await ari.request("GET", "/asterisk/variable", params={"variable": name})
            assert got == {"value": value}
        assert _sockets(ari) == (1, 1)  # 20 requests, one socket
        infos = await asyncio.gather(*(ari.asterisk_info() for _ in range(50)))
        assert all(i and i["system"]["version"] for i in infos)
        opened, idle = _sockets(ari)
        assert 1 <= opened <= 50 and idle == opened
    finally:
        await ari.request("POST", "/asterisk/variable", params={"variable": name, "value": ""})
        await ari.close()
