"""The Port: what the call interpreter needs from the outside world, and what it hears.

The interpreter (:mod:`controller.core.interpreter`, with the prompt driver of
:mod:`controller.core.collect` and the ring driver of :mod:`controller.core.ringrace`) makes
every decision of a call; a Port only moves bytes. Three Ports exist: the live call
(``controller.shell.call``: ARI and Redis), the simulation (``controller.ops.simulate``:
scripted digits and answers, a virtual clock) and the unit tests' scripted port
(``tests/unit/drive.py``).

A Port reports what happened as :data:`Signal` values (``next_event``), in the order it
happened; deadlines are absolute times of the Port's own clock (``now``), enforced by the
Port. Pure: no I/O here, no event loop (``async def`` only awaits the Port).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from controller.core.model import DialTarget, HttpResponse, UserFacts

__all__ = [
    "CallGone",
    "Dtmf",
    "LegAnswered",
    "LegEnded",
    "LegLeft",
    "Originate",
    "PlaybackEnded",
    "Port",
    "RecordingEnded",
    "Signal",
    "Unavailable",
    "Winner",
]


# ------------------------------------------------------------------------------ signals


@dataclass(frozen=True, slots=True)
class Dtmf:
    """The caller pressed a key (one of 0-9 * # A-D: a Port drops anything else)."""

    digit: str


@dataclass(frozen=True, slots=True)
class PlaybackEnded:
    """A playback of the call is over (played out, stopped, or found gone)."""

    playback_id: str


@dataclass(frozen=True, slots=True)
class RecordingEnded:
    name: str
    failed: bool = False
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """A ringing leg answered (it entered our application)."""

    leg: str


@dataclass(frozen=True, slots=True)
class LegEnded:
    """A leg is ending with a Q.850 ``cause``: ``final`` when its channel is destroyed,
    else its hangup was requested (a 486 arrives as a request with cause 17 some 0.2 ms
    before the channel is gone: the ring race acts on the first)."""

    leg: str
    cause: int | None
    final: bool = True


@dataclass(frozen=True, slots=True)
class LegLeft:
    """A leg left our application (the bridged agent hung up)."""

    leg: str


Signal = Dtmf | PlaybackEnded | RecordingEnded | LegAnswered | LegEnded | LegLeft


class CallGone(Exception):
    """The caller's channel is gone (hung up, or we hung it up). Raised by the Port."""


class Unavailable(Exception):
    """The shared store (Redis) does not answer: the interpreter falls back (degraded)."""


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class Originate:
    """Ring ``target`` on the new channel ``leg_id`` for ``timeout`` s (a ring race action)."""

    leg_id: str
    target: DialTarget
    caller_id: str | None
    timeout: float


class Winner(NamedTuple):
    """The leg that answered and is being (or was) connected: what its durable connected
    state says (controller.cluster.manager: ``connected_fields``)."""

    leg: str
    target: DialTarget
    started: float  # the leg started ringing
    at: float  # it answered
    via_alternate: bool = False


# ------------------------------------------------------------------------------ the port


class Port(Protocol):
    """The I/O of one call. Methods raise :class:`CallGone` when the caller is gone and
    :class:`Unavailable` when the store does not answer (only those that say so)."""

    @property
    def call_id(self) -> str: ...

    result: str
    """What the call's record will say: "unknown" until known ("voicemail", "hangup"...)."""
    leg_seq: int
    """Legs rung so far: leg ids are ``<call>-L<n>``, never reused within the call."""
    waiting_on: tuple[str, str] | None
    """The media whose end the call waits for now: ("playback", id) or ("recording",
    name) (a reconnect checks it: its end event may be lost)."""
    @property
    def remembered(self) -> dict[str, UserFacts]:
        """The last user facts read (shared by the calls of this controller): degraded
        mode."""

    def now(self) -> float:
        """Epoch seconds (the Port's clock: virtual in a simulation)."""

    async def next_event(self, deadline: float | None) -> Signal | None:
        """The next signal, or None once ``deadline`` (``now()`` time) passed."""

    # the caller
    async def answer(self) -> None:
        """Answer the caller (idempotent)."""

    def ringing(self) -> None:
        """Send ringback to the unanswered caller once legs ring."""

    async def hangup(self, cause: int) -> None:
        """Hang up the caller with ``cause``."""

    # media
    async def play(self, media: Sequence[str], language: str) -> str:
        """Start playing ``media`` to the caller; returns the playback id."""

    def stop_playback(self, playback_id: str) -> None:
        """Stop a playback (off the call's path: never waited for)."""

    def recording_name(self, mailbox: str) -> str:
        """Where a message for ``mailbox`` is recorded (ValueError: invalid mailbox)."""

    async def record(self, name: str, *, max_seconds: int, beep: bool,
                     terminate_on: str) -> None:
        """Start recording the caller into ``name``."""

    def stop_recording(self, name: str) -> None:
        """Stop a recording (off the call's path)."""

    async def media_state(self, kind: str, ident: str) -> str:
        """Is playback/recording ``ident`` still going? "gone", else what is known ("still
        going", "not known (<why>)": logged as said)."""

    def media_lost(self, kind: str, ident: str, found_by: str) -> None:
        """Its end event never came (logged on the call and counted)."""

    # ringing
    async def originate(self, legs: Sequence[Originate]) -> list[bool]:
        """Ring these legs at once; per leg: could it be created (False: no contact)."""

    async def cancel(self, legs: Sequence[tuple[str, int | None]], wait: float) -> None:
        """Hang up these (leg id, Q.850 cause) legs, waiting up to ``wait`` s for Asterisk
        to confirm (0: not at all)."""

    def busy_here(self) -> set[str]:
        """Users on this controller's other calls (busy as far as it knows itself)."""

    async def claim(self, winner: Winner) -> bool:
        """Book the winner's user for this call and record the call as connected, in one
        store step. False: the user is on another call. Raises Unavailable."""

    def claimed(self, winner: Winner, won: bool) -> None:
        """The claim's final outcome (after the degraded-mode fallback)."""

    async def connect(self, leg: str) -> None:
        """Answer the caller and bridge it with the claimed ``leg``."""

    def connected_with(self, target: DialTarget) -> None:
        """The call is connected with ``target`` (live observers)."""

    # the store
    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]: ...

    async def next_cursor(self, key: str) -> int: ...

    async def get_sticky(self, department: str, caller: str) -> str | None: ...

    def set_sticky(self, department: str, caller: str, user: str, ttl: int) -> None: ...

    def store_failed(self) -> None:
        """A store operation failed: the controller enters degraded mode."""

    def local_busy(self) -> set[str]:
        """Users on a call of this controller."""

    def local_cursor(self, key: str) -> int:
        """A round-robin cursor kept in memory (degraded mode)."""

    async def http_post(self, url: str, payload: dict[str, object],
                        timeout: float) -> HttpResponse: ...
