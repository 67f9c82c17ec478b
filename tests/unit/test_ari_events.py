"""ARI event parsing (Asterisk 16 JSON samples) and the event websocket (against a local fake)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.events import (
    ApplicationReplaced,
    BridgeDestroyed,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    ChannelVarset,
    Dial,
    Event,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFailed,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
    UnknownEvent,
)
from controller.adapters.ari.parse import channel_id_of, parse_event
from controller.adapters.ari.stream import EventStream
from controller.core.backoff import ConstantBackoff

TS = "2024-03-01T10:00:00.123+0000"

CHANNEL = {
    "id": "1709287200.42",
    "name": "PJSIP/pstn-0000002a",
    "state": "Ring",
    "protocol_id": "a84d3ff6-5d0e@10.0.0.1",
    "caller": {"name": "Alice", "number": "+15559870000"},
    "connected": {"name": "", "number": ""},
    "accountcode": "",
    "dialplan": {"context": "from-pstn", "exten": "+15551230000", "priority": 2,
                 "app_name": "Stasis", "app_data": "callctl,inbound,+15551230000"},
    "creationtime": "2024-03-01T10:00:00.100+0000",
    "language": "en",
}
LEG = {**CHANNEL, "id": "1709287200.42-L1", "name": "PJSIP/agent1-00000003", "state": "Up",
       "caller": {"name": "", "number": "+15559870000"},
       "connected": {"name": "", "number": "agent1"},
       "dialplan": {"context": "default", "exten": "s", "priority": 1, "app_name": "",
                    "app_data": ""}}
BRIDGE = {"id": "1709287200.42-B", "technology": "simple_bridge", "bridge_type": "mixing",
          "bridge_class": "stasis", "creator": "Stasis", "name": "",
          "channels": ["1709287200.42", "1709287200.42-L1"], "video_mode": "talker",
          "creationtime": TS}


def ev(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "timestamp": TS, "asterisk_id": "02:42:ac:11:00:02",
            "application": "callctl", **fields}


SAMPLES: dict[str, dict[str, Any]] = {
    "StasisStart": ev("StasisStart", args=["inbound", "+15551230000"], channel=CHANNEL),
    "StasisEnd": ev("StasisEnd", channel=CHANNEL),
    "ChannelDestroyed": ev("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                           channel={**CHANNEL, "state": "Up"}),
    "ChannelStateChange": ev("ChannelStateChange", channel={**CHANNEL, "state": "Up"}),
    "ChannelHangupRequest": ev("ChannelHangupRequest", cause=16, soft=True, channel=CHANNEL),
    "ChannelDtmfReceived": ev("ChannelDtmfReceived", digit="5", duration_ms=120,
                              channel=CHANNEL),
    "ChannelVarset": ev("ChannelVarset", variable="BRIDGEPEER",
                        value="PJSIP/agent1-00000003", channel=CHANNEL),
    "PlaybackStarted": ev("PlaybackStarted", playback={
        "id": "1709287200.42-P1", "media_uri": "sound:hello-world",
        "target_uri": "channel:1709287200.42", "language": "en", "state": "playing"}),
    "PlaybackContinuing": ev("PlaybackContinuing", playback={
        "id": "1709287200.42-P1", "media_uri": "sound:hello-world",
        "next_media_uri": "digits:123", "target_uri": "channel:1709287200.42",
        "language": "en", "state": "continuing"}),
    "PlaybackFinished": ev("PlaybackFinished", playback={
        "id": "1709287200.42-P1", "media_uri": "digits:123",
        "target_uri": "channel:1709287200.42", "language": "en", "state": "done"}),
    "RecordingStarted": ev("RecordingStarted", recording={
        "name": "voicemail/sales/20240301-100000-1709287200.42", "format": "wav",
        "state": "recording", "target_uri": "channel:1709287200.42"}),
    "RecordingFinished": ev("RecordingFinished", recording={
        "name": "voicemail/sales/20240301-100000-1709287200.42", "format": "wav",
        "state": "done", "target_uri": "channel:1709287200.42", "duration": 12,
        "talking_duration": 9, "silence_duration": 3}),
    "RecordingFailed": ev("RecordingFailed", recording={
        "name": "voicemail/sales/x", "format": "wav", "state": "failed",
        "target_uri": "channel:1709287200.42", "cause": "Hangup"}),
    "Dial": ev("Dial", dialstatus="ANSWER", dialstring="agent1", peer=LEG, caller=CHANNEL),
    "ChannelEnteredBridge": ev("ChannelEnteredBridge", bridge=BRIDGE, channel=LEG),
    "ChannelLeftBridge": ev("ChannelLeftBridge", bridge=BRIDGE, channel=LEG),
    "BridgeDestroyed": ev("BridgeDestroyed", bridge=BRIDGE),
    "ApplicationReplaced": ev("ApplicationReplaced"),
}

EXPECTED_CLASS: dict[str, type[Event]] = {
    "StasisStart": StasisStart, "StasisEnd": StasisEnd, "ChannelDestroyed": ChannelDestroyed,
    "ChannelStateChange": ChannelStateChange, "ChannelHangupRequest": ChannelHangupRequest,
    "ChannelDtmfReceived": ChannelDtmfReceived, "ChannelVarset": ChannelVarset,
    "PlaybackStarted": PlaybackStarted, "PlaybackContinuing": PlaybackContinuing,
    "PlaybackFinished": PlaybackFinished, "RecordingStarted": RecordingStarted,
    "RecordingFinished": RecordingFinished, "RecordingFailed": RecordingFailed, "Dial": Dial,
    "ChannelEnteredBridge": ChannelEnteredBridge, "ChannelLeftBridge": ChannelLeftBridge,
    "BridgeDestroyed": BridgeDestroyed, "ApplicationReplaced": ApplicationReplaced,
}


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_sample_parses_to_its_class_with_type_and_timestamp(name: str) -> None:
    e = parse_event(copy.deepcopy(SAMPLES[name]))
    assert type(e) is EXPECTED_CLASS[name]
    assert e.type == name
    assert e.timestamp == TS


@pytest.mark.parametrize("name", list(SAMPLES))
def test_events_are_frozen_and_slotted(name: str) -> None:
    e = parse_event(SAMPLES[name])
    assert not hasattr(e, "__dict__")
    field = dataclasses.fields(e)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(e, field, None)


def test_stasis_start_channel_fields_and_args() -> None:
    e = parse_event(SAMPLES["StasisStart"])
    assert isinstance(e, StasisStart)
    assert e.args == ("inbound", "+15551230000")
    assert e.replace_channel is None
    assert e.channel == Channel(
        id="1709287200.42", name="PJSIP/pstn-0000002a", state="Ring",
        caller_number="+15559870000", caller_name="Alice", connected_number="",
        context="from-pstn", exten="+15551230000", priority=2, language="en",
        creationtime="2024-03-01T10:00:00.100+0000")
    assert channel_id_of(e) == "1709287200.42"


def test_stasis_start_with_replace_channel_and_no_args() -> None:
    raw = ev("StasisStart", args=[], channel=LEG, replace_channel=CHANNEL)
    e = parse_event(raw)
    assert isinstance(e, StasisStart)
    assert e.args == ()
    assert e.replace_channel is not None and e.replace_channel.id == "1709287200.42"


def test_channel_destroyed_and_hangup_request_fields() -> None:
    d = parse_event(SAMPLES["ChannelDestroyed"])
    assert isinstance(d, ChannelDestroyed)
    assert (d.cause, d.cause_txt, d.channel.state) == (16, "Normal Clearing", "Up")
    h = parse_event(SAMPLES["ChannelHangupRequest"])
    assert isinstance(h, ChannelHangupRequest) and (h.cause, h.soft) == (16, True)


def test_dtmf_varset_dial_fields() -> None:
    d = parse_event(SAMPLES["ChannelDtmfReceived"])
    assert isinstance(d, ChannelDtmfReceived) and (d.digit, d.duration_ms) == ("5", 120)
    v = parse_event(SAMPLES["ChannelVarset"])
    assert isinstance(v, ChannelVarset)
    assert (v.variable, v.value) == ("BRIDGEPEER", "PJSIP/agent1-00000003")
    dial = parse_event(SAMPLES["Dial"])
    assert isinstance(dial, Dial)
    assert dial.dialstatus == "ANSWER" and dial.peer.id == "1709287200.42-L1"
    assert dial.caller is not None and dial.caller.id == "1709287200.42"
    assert dial.peer.connected_number == "agent1"
    assert channel_id_of(dial) == "1709287200.42-L1"


def test_playback_and_recording_fields_and_channel_of_target() -> None:
    p = parse_event(SAMPLES["PlaybackFinished"])
    assert isinstance(p, PlaybackFinished)
    assert (p.playback_id, p.target_uri, p.media_uri, p.state) == (
        "1709287200.42-P1", "channel:1709287200.42", "digits:123", "done")
    assert channel_id_of(p) == "1709287200.42"
    r = parse_event(SAMPLES["RecordingFinished"])
    assert isinstance(r, RecordingFinished)
    assert r.duration == 12.0 and isinstance(r.duration, float) and r.cause is None
    assert channel_id_of(r) == "1709287200.42"
    f = parse_event(SAMPLES["RecordingFailed"])
    assert isinstance(f, RecordingFailed) and (f.state, f.cause, f.duration) == (
        "failed", "Hangup", None)


def test_bridge_events() -> None:
    e = parse_event(SAMPLES["ChannelEnteredBridge"])
    assert isinstance(e, ChannelEnteredBridge)
    assert e.bridge_id == "1709287200.42-B" and e.channel is not None
    assert channel_id_of(e) == "1709287200.42-L1"
    left = parse_event(SAMPLES["ChannelLeftBridge"])
    assert isinstance(left, ChannelLeftBridge) and channel_id_of(left) == "1709287200.42-L1"
    b = parse_event(SAMPLES["BridgeDestroyed"])
    assert isinstance(b, BridgeDestroyed) and b.bridge_id == "1709287200.42-B"
    assert channel_id_of(b) is None
    a = parse_event(SAMPLES["ApplicationReplaced"])
    assert isinstance(a, ApplicationReplaced) and a.application == "callctl"
    assert channel_id_of(a) is None


def test_bridge_target_playback_has_no_channel() -> None:
    raw = ev("PlaybackStarted", playback={"id": "p", "media_uri": "sound:x",
                                          "target_uri": "bridge:b1", "state": "playing"})
    assert channel_id_of(parse_event(raw)) is None


# ---------------------------------------------------------------------------- missing/malformed


def test_minimal_channel_gets_defaults() -> None:
    e = parse_event({"type": "StasisEnd", "channel": {"id": "x"}})
    assert isinstance(e, StasisEnd)
    assert e.channel == Channel("x")
    assert e.timestamp == ""


def test_missing_optional_fields_get_neutral_values() -> None:
    h = parse_event({"type": "ChannelHangupRequest", "timestamp": TS, "channel": CHANNEL})
    assert isinstance(h, ChannelHangupRequest) and (h.cause, h.soft) == (None, False)
    d = parse_event({"type": "ChannelDestroyed", "channel": CHANNEL})
    assert isinstance(d, ChannelDestroyed) and (d.cause, d.cause_txt) == (0, "")
    s = parse_event({"type": "StasisStart", "channel": CHANNEL})
    assert isinstance(s, StasisStart) and s.args == ()
    v = parse_event({"type": "ChannelVarset", "variable": "GLOBAL_X", "value": "1"})
    assert isinstance(v, ChannelVarset) and v.channel is None and channel_id_of(v) is None
    dial = parse_event({"type": "Dial", "peer": LEG})
    assert isinstance(dial, Dial) and dial.caller is None and dial.dialstatus == ""
    p = parse_event({"type": "PlaybackStarted", "playback": {"id": "p1"}})
    assert isinstance(p, PlaybackStarted) and p.target_uri == "" and channel_id_of(p) is None
    r = parse_event({"type": "RecordingStarted", "recording": {"name": "n"}})
    assert isinstance(r, RecordingStarted) and r.duration is None
    eb = parse_event({"type": "ChannelEnteredBridge", "bridge": {"id": "b"}})
    assert isinstance(eb, ChannelEnteredBridge) and eb.channel is None
    dt = parse_event({"type": "ChannelDtmfReceived", "digit": "#", "channel": CHANNEL})
    assert isinstance(dt, ChannelDtmfReceived) and dt.duration_ms == 0
    ch = parse_event({"type": "StasisEnd", "channel": {"id": "x", "caller": None,
                                                       "dialplan": None}})
    assert isinstance(ch, StasisEnd) and ch.channel.caller_number == ""


@pytest.mark.parametrize("raw", [
    {"type": "ChannelTalkingStarted", "timestamp": TS, "channel": CHANNEL},
    {"type": "BridgeCreated", "bridge": BRIDGE},
    {"type": "SomethingFromAsterisk22"},
])
def test_unknown_types_become_unknown_event(raw: dict[str, Any]) -> None:
    e = parse_event(raw)
    assert isinstance(e, UnknownEvent)
    assert e.type == raw["type"] and e.raw is raw and not e.malformed
    assert e.timestamp == raw.get("timestamp", "")


@pytest.mark.parametrize("raw", [
    {"type": "StasisStart"},  # no channel
    {"type": "StasisStart", "channel": {}},  # channel without id
    {"type": "StasisStart", "channel": "1709287200.42"},  # wrong type
    {"type": "StasisStart", "channel": CHANNEL, "args": 5},  # args not a list
    {"type": "ChannelDtmfReceived", "channel": CHANNEL},  # no digit
    {"type": "PlaybackFinished"},
    {"type": "PlaybackFinished", "playback": []},
    {"type": "RecordingFinished", "recording": {"name": "n", "duration": "long"}},
    {"type": "BridgeDestroyed", "bridge": None},
    {"type": "Dial", "caller": CHANNEL},  # no peer
    {"type": "ChannelVarset", "channel": CHANNEL},  # no variable
])
def test_malformed_known_types_become_malformed_unknown_event(raw: dict[str, Any]) -> None:
    e = parse_event(raw)
    assert isinstance(e, UnknownEvent)
    assert e.type == raw["type"] and e.malformed


@pytest.mark.parametrize("raw", [None, [], "StasisStart", 42, {"no": "type"}, {"type": 7},
                                 {"type": None}, {"type": "StasisEnd", "timestamp": 1,
                                                  "channel": {"id": "x"}}])
def test_garbage_never_raises(raw: Any) -> None:
    e = parse_event(raw)
    assert isinstance(e, Event)
    assert isinstance(e.type, str) and isinstance(e.timestamp, str)


def test_synthetic_events_for_the_runtime() -> None:
    s = StasisEnd.synthetic("c1")
    assert s.type == "StasisEnd" and channel_id_of(s) == "c1"
    d = ChannelDestroyed.synthetic("c1-L1", 0)
    assert (d.cause, channel_id_of(d)) == (0, "c1-L1")


# ---------------------------------------------------------------------------- EventStream


class FakeEvents:
    """``/ari/events`` like Asterisk: checks auth and query, then pushes what a test queues."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.connections: list[web.WebSocketResponse] = []
        self.queries: list[dict[str, str]] = []
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.reject_with: int | None = None
        self.autoping = True
        self.connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.reject_with is not None:
            return web.json_response({"message": "nope"}, status=self.reject_with)
        self.queries.append(dict(request.query))
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        self.connections.append(ws)
        self.connected.set()
        if not self.autoping:  # a dead peer: never reads, never answers pings
            await asyncio.sleep(30)
            return ws
        sender = asyncio.create_task(self._send(ws))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.CLOSE:
                    break
        finally:
            sender.cancel()
        return ws

    async def _send(self, ws: web.WebSocketResponse) -> None:
        while True:
            text = await self.outbox.get()
            if text is None:
                await ws.close()
                return
            await ws.send_str(text)


@pytest.fixture
async def events_server() -> AsyncIterator[tuple[FakeEvents, AriClient]]:
    client = AriClient("http://127.0.0.1:1", "callctl", "s3cr3t-Pa55", "callctl-test",
                       timeout=0.5)
    fake = FakeEvents(client._headers["Authorization"])
    app = web.Application()
    app.router.add_get("/ari/events", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client.base_url = f"http://127.0.0.1:{server.port}"
    client.api_url = client.base_url + "/ari"
    try:
        yield fake, client
    finally:
        await client.close()
        for ws in fake.connections:
            await ws.close()
        await server.close()


class Collector:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.events: list[Event] = []
        self.got = asyncio.Event()
        self.connects = 0
        self.connect_seen = asyncio.Event()

    def on_event(self, e: Event) -> None:
        self.events.append(e)
        self.log.append(f"event:{e.type}")
        self.got.set()

    async def on_connect(self) -> None:
        self.connects += 1
        self.log.append("connect")
        self.connect_seen.set()

    async def wait_events(self, n: int) -> None:
        async def wait() -> None:
            while len(self.events) < n:
                self.got.clear()
                await self.got.wait()
        await asyncio.wait_for(wait(), 3)

    async def wait_connects(self, n: int) -> None:
        async def wait() -> None:
            while self.connects < n:
                self.connect_seen.clear()
                await self.connect_seen.wait()
        await asyncio.wait_for(wait(), 3)


async def _run(stream: EventStream) -> asyncio.Task[None]:
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.connected_event.wait(), 3)
    return task


async def test_stream_delivers_parsed_events_in_order_after_on_connect(
        events_server: tuple[FakeEvents, AriClient]) -> None:
    fake, client = events_server
    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect)
    for name in ("StasisStart", "ChannelDtmfReceived", "PlaybackFinished", "StasisEnd"):
        fake.outbox.put_nowait(json.dumps(SAMPLES[name]))
    fake.outbox.put_nowait("not json")  # ignored
    fake.outbox.put_nowait(json.dumps({"type": "ChannelTalkingStarted"}))
    task = await _run(stream)
    await col.wait_events(5)
    assert col.log == ["connect", "event:StasisStart", "event:ChannelDtmfReceived",
                       "event:PlaybackFinished", "event:StasisEnd",
                       "event:ChannelTalkingStarted"]
    assert isinstance(col.events[0], StasisStart)
    assert fake.queries == [{"app": "callctl-test", "subscribeAll": "false"}]
    assert stream.connected and stream.reconnects == 0
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)
    assert not stream.connected


async def test_stream_reconnects_and_resyncs_after_drop(
        events_server: tuple[FakeEvents, AriClient], caplog: pytest.LogCaptureFixture) -> None:
    fake, client = events_server
    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect,
                         backoff=ConstantBackoff(0.01))
    with caplog.at_level(logging.DEBUG):
        task = await _run(stream)
        await col.wait_connects(1)
        await stream.drop()
        await col.wait_connects(2)
        assert stream.reconnects == 1
        fake.outbox.put_nowait(json.dumps(SAMPLES["StasisEnd"]))
        await col.wait_events(1)
        await asyncio.wait_for(stream.stop(), 3)
        await asyncio.wait_for(task, 3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    assert "s3cr3t" not in caplog.text


async def test_stream_reconnects_when_asterisk_closes(
        events_server: tuple[FakeEvents, AriClient]) -> None:
    fake, client = events_server
    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect,
                         backoff=ConstantBackoff(0.01))
    task = await _run(stream)
    await col.wait_connects(1)
    fake.outbox.put_nowait(None)  # server closes the websocket
    await col.wait_connects(2)
    fake.outbox.put_nowait(json.dumps(SAMPLES["StasisStart"]))
    await col.wait_events(1)
    assert stream.reconnects == 1 and len(fake.connections) == 2
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)


async def test_stream_retries_with_backoff_while_rejected_and_logs_no_secret(
        events_server: tuple[FakeEvents, AriClient], caplog: pytest.LogCaptureFixture) -> None:
    fake, client = events_server
    fake.reject_with = 503
    computed: list[int] = []

    class Spy:
        def compute(self, failures: int) -> float:
            computed.append(failures)
            if len(computed) >= 3:
                fake.reject_with = None
            return 0.01

    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect, backoff=Spy())
    with caplog.at_level(logging.WARNING, logger="callctl.ari.events"):
        task = await _run(stream)
    assert computed == [0, 1, 2]  # failures counted up while nothing connects
    assert stream.reconnects == 0  # first successful connection
    assert sum("HTTP 503" in r.getMessage() for r in caplog.records) == 3
    assert all(r.exc_info is None for r in caplog.records)
    assert "s3cr3t" not in caplog.text
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)


async def test_stream_notices_dead_peer_by_heartbeat(
        events_server: tuple[FakeEvents, AriClient], caplog: pytest.LogCaptureFixture) -> None:
    fake, client = events_server
    fake.autoping = False
    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect,
                         backoff=ConstantBackoff(0.01), heartbeat=0.2)
    with caplog.at_level(logging.WARNING, logger="callctl.ari.events"):
        task = await _run(stream)
        fake.autoping = True  # the next connection is healthy
        await col.wait_connects(2)
    assert "heartbeat" in caplog.text
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)


async def test_stream_outlives_the_http_request_timeout(
        events_server: tuple[FakeEvents, AriClient]) -> None:
    fake, client = events_server  # client timeout is 0.5 s
    col = Collector()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect)
    task = await _run(stream)
    await asyncio.sleep(1.0)  # idle well beyond the request timeout
    fake.outbox.put_nowait(json.dumps(SAMPLES["StasisEnd"]))
    await col.wait_events(1)
    assert stream.reconnects == 0 and col.connects == 1
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)


async def test_stream_survives_a_failing_handler_and_on_connect(
        events_server: tuple[FakeEvents, AriClient], caplog: pytest.LogCaptureFixture) -> None:
    fake, client = events_server
    seen: list[str] = []
    got = asyncio.Event()

    def on_event(e: Event) -> None:
        if isinstance(e, StasisStart):
            raise RuntimeError("bug")
        seen.append(e.type)
        got.set()

    async def on_connect() -> None:
        raise RuntimeError("resync bug")

    stream = EventStream(client, on_event, on_connect=on_connect)
    fake.outbox.put_nowait(json.dumps(SAMPLES["StasisStart"]))
    fake.outbox.put_nowait(json.dumps(SAMPLES["StasisEnd"]))
    with caplog.at_level(logging.ERROR, logger="callctl.ari.events"):
        task = await _run(stream)
        await asyncio.wait_for(got.wait(), 3)
    assert seen == ["StasisEnd"] and stream.reconnects == 0
    assert "resync bug" in caplog.text and "on_event failed" in caplog.text
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)


async def test_stream_stop_while_waiting_to_reconnect_returns_promptly() -> None:
    client = AriClient("http://127.0.0.1:1", "u", "p", "app", timeout=0.5)  # nothing there
    waiting = asyncio.Event()

    class Long:
        def compute(self, failures: int) -> float:
            waiting.set()
            return 30.0

    stream = EventStream(client, lambda e: None, backoff=Long())
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(waiting.wait(), 3)
        await asyncio.wait_for(stream.stop(), 3)
        await asyncio.wait_for(task, 3)
        assert not stream.connected and stream.reconnects == 0
    finally:
        await client.close()


async def test_stream_cancellation_closes_cleanly(
        events_server: tuple[FakeEvents, AriClient]) -> None:
    _, client = events_server
    col = Collector()
    stream = EventStream(client, col.on_event)
    task = await _run(stream)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3)
    assert not stream.connected and stream._ws is None


async def test_stream_takes_its_app_back_when_another_websocket_replaces_it(
        events_server: tuple[FakeEvents, AriClient], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ApplicationReplaced leaves the socket open and deaf (measured on Asterisk 16.28):
    the stream logs an error, reconnects (which takes the app back), counts it for /health
    and the metrics, and does not reset its backoff for a connection taken over, so two
    listeners fighting over the app back off instead of spinning."""
    from controller.adapters.ari import stream as stream_mod

    monkeypatch.setattr(stream_mod, "_STABLE_AFTER", 0.0)  # any plain connection is stable

    class Recording:
        def __init__(self) -> None:
            self.failures: list[int] = []

        def compute(self, failures: int) -> float:
            self.failures.append(failures)
            return 0.01

    fake, client = events_server
    col = Collector()
    backoff = Recording()
    stream = EventStream(client, col.on_event, on_connect=col.on_connect, backoff=backoff)
    assert not stream.replaced_recently()
    replaced = json.dumps(SAMPLES["ApplicationReplaced"])
    with caplog.at_level(logging.ERROR, logger="callctl.ari.events"):
        task = await _run(stream)
        fake.outbox.put_nowait(replaced)
        await col.wait_connects(2)
        fake.outbox.put_nowait(replaced)  # taken again at once
        await col.wait_connects(3)
    assert stream.replaced == 2 and stream.reconnects == 2
    assert stream.replaced_recently() and not stream.replaced_recently(hold=0.0)
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 2
    assert "took our Stasis application callctl-test over" in caplog.text
    await stream.drop()  # a plain cut after that: the backoff starts over
    await col.wait_connects(4)
    assert backoff.failures == [0, 1, 0]
    fake.outbox.put_nowait(json.dumps(SAMPLES["StasisEnd"]))  # the app is heard again
    await col.wait_events(1)
    assert [e.type for e in col.events] == ["StasisEnd"]  # ApplicationReplaced not passed on
    await asyncio.wait_for(stream.stop(), 3)
    await asyncio.wait_for(task, 3)
