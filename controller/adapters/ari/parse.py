"""ARI websocket JSON -> the typed events of ``controller.adapters.ari.events``.

``parse_event`` never raises: unknown types, and known types missing required fields, come back
as ``UnknownEvent``. Optional fields missing from the JSON get neutral defaults ("" / None / 0).
Parsing is a dict lookup plus one plain function per type (no validation library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    _Playback,
    _Recording,
)

__all__ = ["channel_id_of", "parse_channel", "parse_event"]

_EMPTY: dict[str, Any] = {}


def parse_channel(d: dict[str, Any]) -> Channel:
    """A ``Channel`` from ARI channel JSON. Raises KeyError/TypeError if it has no ``id``."""
    caller = d.get("caller") or _EMPTY
    connected = d.get("connected") or _EMPTY
    dp = d.get("dialplan") or _EMPTY
    return Channel(
        d["id"],
        d.get("name", ""),
        d.get("state", ""),
        caller.get("number", ""),
        caller.get("name", ""),
        connected.get("number", ""),
        dp.get("context", ""),
        dp.get("exten", ""),
        dp.get("priority", 0),
        d.get("language", ""),
        d.get("creationtime", ""),
    )


def _opt_channel(d: dict[str, Any] | None) -> Channel | None:
    return parse_channel(d) if d else None


def _stasis_start(r: dict[str, Any], ts: str) -> Event:
    args = r.get("args")
    return StasisStart(parse_channel(r["channel"]), tuple(args) if args else (),
                       _opt_channel(r.get("replace_channel")), ts)


def _stasis_end(r: dict[str, Any], ts: str) -> Event:
    return StasisEnd(parse_channel(r["channel"]), ts)


def _channel_destroyed(r: dict[str, Any], ts: str) -> Event:
    return ChannelDestroyed(parse_channel(r["channel"]), r.get("cause", 0),
                            r.get("cause_txt", ""), ts)


def _channel_state_change(r: dict[str, Any], ts: str) -> Event:
    return ChannelStateChange(parse_channel(r["channel"]), ts)


def _channel_hangup_request(r: dict[str, Any], ts: str) -> Event:
    return ChannelHangupRequest(parse_channel(r["channel"]), r.get("cause"),
                                bool(r.get("soft", False)), ts)


def _channel_dtmf(r: dict[str, Any], ts: str) -> Event:
    return ChannelDtmfReceived(parse_channel(r["channel"]), r["digit"], r.get("duration_ms", 0), ts)


def _channel_varset(r: dict[str, Any], ts: str) -> Event:
    return ChannelVarset(_opt_channel(r.get("channel")), r["variable"], r.get("value", ""), ts)


def _dial(r: dict[str, Any], ts: str) -> Event:
    return Dial(parse_channel(r["peer"]), _opt_channel(r.get("caller")),
                r.get("dialstatus", ""), ts)


Parser = Callable[[dict[str, Any], str], Event]
"""An event type's parser: ``(message, timestamp) -> event``; raises on a malformed one."""


def _playback(cls: type[_Playback]) -> Parser:
    def parse(r: dict[str, Any], ts: str) -> Event:
        p = r["playback"]
        return cls(p["id"], p.get("target_uri", ""), p.get("media_uri", ""), p.get("state", ""), ts)
    return parse


def _recording(cls: type[_Recording]) -> Parser:
    def parse(r: dict[str, Any], ts: str) -> Event:
        rec = r["recording"]
        dur = rec.get("duration")
        return cls(rec["name"], rec.get("target_uri", ""), rec.get("state", ""),
                   None if dur is None else float(dur), rec.get("cause"), ts)
    return parse


def _entered_bridge(r: dict[str, Any], ts: str) -> Event:
    return ChannelEnteredBridge(r["bridge"]["id"], _opt_channel(r.get("channel")), ts)


def _left_bridge(r: dict[str, Any], ts: str) -> Event:
    return ChannelLeftBridge(r["bridge"]["id"], _opt_channel(r.get("channel")), ts)


def _bridge_destroyed(r: dict[str, Any], ts: str) -> Event:
    return BridgeDestroyed(r["bridge"]["id"], ts)


def _application_replaced(r: dict[str, Any], ts: str) -> Event:
    return ApplicationReplaced(r.get("application", ""), ts)


_PARSERS: dict[str, Parser] = {
    "StasisStart": _stasis_start,
    "StasisEnd": _stasis_end,
    "ChannelDestroyed": _channel_destroyed,
    "ChannelStateChange": _channel_state_change,
    "ChannelHangupRequest": _channel_hangup_request,
    "ChannelDtmfReceived": _channel_dtmf,
    "ChannelVarset": _channel_varset,
    "Dial": _dial,
    "PlaybackStarted": _playback(PlaybackStarted),
    "PlaybackContinuing": _playback(PlaybackContinuing),
    "PlaybackFinished": _playback(PlaybackFinished),
    "RecordingStarted": _recording(RecordingStarted),
    "RecordingFinished": _recording(RecordingFinished),
    "RecordingFailed": _recording(RecordingFailed),
    "ChannelEnteredBridge": _entered_bridge,
    "ChannelLeftBridge": _left_bridge,
    "BridgeDestroyed": _bridge_destroyed,
    "ApplicationReplaced": _application_replaced,
}


def parse_event(raw: Any) -> Event:
    """One websocket message (already ``json.loads``-ed) -> a typed event. Never raises."""
    if not isinstance(raw, dict):
        return UnknownEvent("", raw, "", True)
    etype = raw.get("type")
    ts = raw.get("timestamp", "")
    if not isinstance(ts, str):
        ts = ""
    if not isinstance(etype, str):
        return UnknownEvent("", raw, ts, True)
    parser = _PARSERS.get(etype)
    if parser is None:
        return UnknownEvent(etype, raw, ts)
    try:
        return parser(raw, ts)
    except (KeyError, TypeError, AttributeError, ValueError):
        return UnknownEvent(etype, raw, ts, True)


def channel_id_of(ev: Event) -> str | None:
    """The channel an event is about: its channel (Dial: the peer), or for playbacks and
    recordings the id in ``target_uri`` (``channel:<id>``). None for bridge/app/unknown events
    and for playbacks/recordings on a bridge."""
    ch = getattr(ev, "channel", None)  # a Channel, or None (or absent)
    if isinstance(ch, Channel):
        return ch.id
    target = getattr(ev, "target_uri", None)  # a str where present
    if isinstance(target, str):
        return target[8:] if target.startswith("channel:") else None
    peer = getattr(ev, "peer", None)  # Dial's Channel
    if isinstance(peer, Channel):
        return peer.id
    return None
