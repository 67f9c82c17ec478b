"""Typed ARI events (Asterisk 16, rest-api/events.json) as frozen dataclasses.

The websocket JSON becomes these in ``controller.adapters.ari.parse``.
"""

from __future__ import annotations

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
]

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
