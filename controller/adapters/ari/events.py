"""Typed ARI events: websocket JSON (Asterisk 16, rest-api/events.json) -> frozen dataclasses.

``parse_event`` never raises: unknown types, and known types missing required fields, come back
as ``UnknownEvent``. Optional fields missing from the JSON get neutral defaults ("" / None / 0).
Parsing is a dict lookup plus one plain function per type (no validation library).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = [
    "ApplicationReplaced",
    "BridgeDestroyed",
    "Channel",
    "ChannelDestroyed",
    "ChannelDtmfReceived",
    "ChannelEnteredBridge",
    "ChannelHangupRequest",
    "ChannelLeftBridge",
    "ChannelStateChange",
    "ChannelVarset",
    "Dial",
    "Event",
    "PlaybackContinuing",
    "PlaybackFinished",
    "PlaybackStarted",
    "RecordingFailed",
    "RecordingFinished",
    "RecordingStarted",
    "StasisEnd",
    "StasisStart",
    "UnknownEvent",
    "channel_id_of",
    "parse_channel",
    "parse_event",
]

_EMPTY: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel snapshot (the fields the controller uses)."""

    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 0
    language: str = ""
    creationtime: str = ""


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


class Event:
    """Base of every event: ``.type`` (the ARI event name) and ``.timestamp`` (as sent)."""

    __slots__ = ()
    if TYPE_CHECKING:
        # A ClassVar on each event class, an instance field on UnknownEvent: to the type
        # checker a read-only attribute (which either may override), for Python nothing.
        @property
        def type(self) -> str: ...
    timestamp: str


# ---------------------------------------------------------------------------- channel events


@dataclass(frozen=True, slots=True)
class StasisStart(Event):
    type: ClassVar[str] = "StasisStart"
    channel: Channel
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class StasisEnd(Event):
    type: ClassVar[str] = "StasisEnd"
    channel: Channel
    timestamp: str = ""

    @classmethod
    def synthetic(cls, channel_id: str) -> StasisEnd:
        """A StasisEnd the controller makes itself (shutdown, channel gone while disconnected)."""
        return cls(Channel(channel_id))


@dataclass(frozen=True, slots=True)
class ChannelDestroyed(Event):
    type: ClassVar[str] = "ChannelDestroyed"
    channel: Channel
    cause: int = 0
    cause_txt: str = ""
    timestamp: str = ""

    @classmethod
    def synthetic(cls, channel_id: str, cause: int = 0, cause_txt: str = "") -> ChannelDestroyed:
        """A ChannelDestroyed the controller makes itself (channel vanished while disconnected)."""
        return cls(Channel(channel_id), cause, cause_txt)


@dataclass(frozen=True, slots=True)
class ChannelStateChange(Event):
    type: ClassVar[str] = "ChannelStateChange"
    channel: Channel
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelHangupRequest(Event):
    type: ClassVar[str] = "ChannelHangupRequest"
    channel: Channel
    cause: int | None = None
    soft: bool = False
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelDtmfReceived(Event):
    type: ClassVar[str] = "ChannelDtmfReceived"
    channel: Channel
    digit: str
    duration_ms: int = 0
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelVarset(Event):
    """``channel`` is None for a global variable."""

    type: ClassVar[str] = "ChannelVarset"
    channel: Channel | None
    variable: str
    value: str = ""
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class Dial(Event):
    """``peer`` is the dialled channel; ``dialstatus`` is "" while ringing starts."""

    type: ClassVar[str] = "Dial"
    peer: Channel
    caller: Channel | None = None
    dialstatus: str = ""
    timestamp: str = ""


# ---------------------------------------------------------------------------- playbacks/recordings


@dataclass(frozen=True, slots=True)
class _Playback(Event):
    playback_id: str
    target_uri: str = ""
    media_uri: str = ""
    state: str = ""
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class PlaybackStarted(_Playback):
    type: ClassVar[str] = "PlaybackStarted"


@dataclass(frozen=True, slots=True)
class PlaybackContinuing(_Playback):
    type: ClassVar[str] = "PlaybackContinuing"


@dataclass(frozen=True, slots=True)
class PlaybackFinished(_Playback):
    """``state`` is "done" normally, "failed" if the media could not be played."""

    type: ClassVar[str] = "PlaybackFinished"


@dataclass(frozen=True, slots=True)
class _Recording(Event):
    name: str
    target_uri: str = ""
    state: str = ""
    duration: float | None = None
    cause: str | None = None
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class RecordingStarted(_Recording):
    type: ClassVar[str] = "RecordingStarted"


@dataclass(frozen=True, slots=True)
class RecordingFinished(_Recording):
    type: ClassVar[str] = "RecordingFinished"


@dataclass(frozen=True, slots=True)
class RecordingFailed(_Recording):
    type: ClassVar[str] = "RecordingFailed"


# ---------------------------------------------------------------------------- bridges, app


@dataclass(frozen=True, slots=True)
class ChannelEnteredBridge(Event):
    type: ClassVar[str] = "ChannelEnteredBridge"
    bridge_id: str
    channel: Channel | None = None  # optional in Asterisk 16's events.json
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ChannelLeftBridge(Event):
    type: ClassVar[str] = "ChannelLeftBridge"
    bridge_id: str
    channel: Channel | None = None
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class BridgeDestroyed(Event):
    type: ClassVar[str] = "BridgeDestroyed"
    bridge_id: str
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class ApplicationReplaced(Event):
    """Another websocket registered our application name: this connection gets no more events."""

    type: ClassVar[str] = "ApplicationReplaced"
    application: str = ""
    timestamp: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """Any other event type, or a malformed event (``malformed`` True); ``raw`` is the input."""

    type: str
    raw: Any
    timestamp: str = ""
    malformed: bool = False


# ---------------------------------------------------------------------------- parsers


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
