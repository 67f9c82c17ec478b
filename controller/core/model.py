"""The shared language of the pure core and the I/O shell.

The flow engine, nodes and ring logic are *sans-IO generators*: they ``yield`` a Command and
receive its Result back through ``send()``. The runtime executes commands against ARI/Redis and
feeds results in; unit tests drive the same generators with scripted results, no event loop.

    def run(node, call) -> Generator[Command, Result, Outcome]:
        res = yield Prompt(media=("sound:beep",), max_digits=1, timeout=5)
        ...
        return Continue("1")

When the caller hangs up, the runtime calls ``generator.close()`` (GeneratorExit): generators
must not yield from a ``finally`` block. Everything a generator learns goes into ``CallContext``
(trace, variables) so it survives that close.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from controller.core.patterns import E164_RE, ENDPOINT_RE

# ---------------------------------------------------------------------------------------------
# Validation shared by everything that builds a dial string (caller data never reaches one raw):
# the patterns are in controller.core.patterns.


def valid_endpoint(name: str) -> bool:
    return bool(ENDPOINT_RE.fullmatch(name))


def valid_e164(number: str) -> bool:
    return bool(E164_RE.fullmatch(number))


# ---------------------------------------------------------------------------------------------
# Commands: engine -> runtime. Each one documents the Result type it is answered with.



Role = Literal["primary", "alternate", "failover"]
"""Whom a ringing leg is for: the member, their alternate, or a failover number."""

@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the caller's channel (idempotent: a no-op when already answered). -> None"""


@dataclass(frozen=True, slots=True)
class Indicate:
    """Send ringing to the unanswered caller while we ring agents. -> None"""

    what: Literal["ringing"] = "ringing"


@dataclass(frozen=True, slots=True)
class Prompt:
    """Play media, optionally collecting DTMF. -> Digits

    ``media`` are resolved Asterisk media URIs (``sound:/abs/path/no-ext``, ``sound:beep``,
    ``digits:123``, ``tone:ring``). The runtime answers the channel first if needed.
    With ``max_digits == 0`` it only plays (``Digits("", "played")``). With barge_in, a digit
    during playback stops the playback and counts as the first digit. After playback it waits
    ``timeout`` s for the first digit and ``inter_digit_timeout`` s between digits.
    """

    media: tuple[str, ...]
    max_digits: int = 0
    timeout: float = 0.0
    inter_digit_timeout: float = 3.0
    terminator: str = ""
    barge_in: bool = True
    sensitive: bool = False  # the keys are masked in the call trace (a PIN, an account)


@dataclass(frozen=True, slots=True)
class DialTarget:
    """Something we can ring. ``address`` is validated at construction."""

    kind: Literal["sip", "pstn"]
    address: str  # sip: PJSIP endpoint name; pstn: E.164-ish digits, dialled via the trunk
    user: str | None = None  # the user this target belongs to (None for shared-line failover)
    role: Role = "primary"
    alternate: DialTarget | None = None  # rung at once if this leg fails with an alternate cause

    def __post_init__(self) -> None:
        ok = valid_endpoint(self.address) if self.kind == "sip" else valid_e164(self.address)
        if not ok:
            raise ValueError(f"invalid {self.kind} address {self.address!r}")


@dataclass(frozen=True, slots=True)
class RingGroup:
    """Ring these targets at once for ``timeout`` s; first answer wins. -> RingResult

    On the first answer the runtime books the answering user for the call (controller.core.ringrace:
    a lost claim rings on), cancels every other leg (cause 26), answers the caller and bridges
    the two; the flow is then over for the engine (it records and returns). ``caller_id`` is
    the number to present (already validated), None to keep the caller's own.
    """

    targets: tuple[DialTarget, ...]
    timeout: float
    caller_id: str | None = None
    alternate_causes: frozenset[int] = frozenset()
    """Q.850 causes that make the runtime ring a failed leg's ``alternate`` at once (decided by
    ``controller.core.outcomes`` from the configured taxonomy; the runtime only matches numbers)."""
    alternate_on_no_contact: bool = True  # the endpoint had no contact: counts as unreachable
    alternate_on_timeout: bool = False  # the flow opted in to failover on no-answer
    alternate_caller_id: str | None = None  # caller id presented on alternate legs


@dataclass(frozen=True, slots=True)
class Record:
    """Record the caller into ``mailbox`` (after the beep). -> Recorded"""

    mailbox: str
    max_seconds: int = 120
    beep: bool = True
    terminate_on: str = "#"


@dataclass(frozen=True, slots=True)
class HttpPost:
    """POST ``payload`` as JSON to a URL from the (validated) flow. -> HttpResponse"""

    url: str
    payload: dict[str, Any]
    timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up the caller with a Q.850 cause. -> None (the generator is closed after it)."""

    cause: int = 16


@dataclass(frozen=True, slots=True)
class LoadFacts:
    """Fetch the live state of users from the store. -> dict[str, UserFacts]"""

    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NextCursor:
    """Atomically advance a round-robin cursor; returns the value *before* the advance. -> int"""

    key: str


@dataclass(frozen=True, slots=True)
class GetSticky:
    """Who last answered this caller for this department? -> str | None (user id)"""

    department: str
    caller: str


@dataclass(frozen=True, slots=True)
class SetSticky:
    """Remember who answered this caller. -> None"""

    department: str
    caller: str
    user: str
    ttl: int


Command = (Answer | Indicate | Prompt | RingGroup | Record | HttpPost | Hangup
           | LoadFacts | NextCursor | GetSticky | SetSticky)

# ---------------------------------------------------------------------------------------------
# Results: runtime -> engine.


@dataclass(frozen=True, slots=True)
class Digits:
    digits: str
    reason: Literal["played", "max", "terminator", "timeout"]


@dataclass(frozen=True, slots=True)
class LegResult:
    """How one ringing leg ended. Classify with ``controller.core.outcomes``, never from
    dialstatus."""

    target: DialTarget
    answered: bool
    cause: int | None  # ChannelDestroyed.cause (Q.850); None if answered or never created
    timed_out: bool = False  # we cancelled it at the ring timeout
    cancelled: bool = False  # we cancelled it because another leg answered
    no_contact: bool = False  # the endpoint had no reachable contact (channel never created)
    started: float = 0.0  # epoch seconds: the leg started ringing
    ended: float = 0.0  # it stopped ringing: answered, cancelled, timed out or failed
    via_alternate: bool = False  # this leg was an alternate rung after its primary failed
    claimed_elsewhere: bool = False  # answered, but its user was booked by another call: busy


@dataclass(frozen=True, slots=True)
class RingResult:
    answered: DialTarget | None
    legs: tuple[LegResult, ...]


@dataclass(frozen=True, slots=True)
class Recorded:
    mailbox: str
    name: str  # recording name as stored by Asterisk
    duration: float
    reason: str


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int  # 0 when the request failed (timeout, refused)
    body: Any = None  # parsed JSON, or None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class UserFacts:
    """Live, shared (Redis) state of one user. Overrides beat the published flow's values."""

    busy: bool = False
    last_call_end: float | None = None  # epoch seconds, for longest-idle
    receive_calls: bool | None = None  # runtime opt-out override (None: use the flow's value)
    alternate: str | None = None  # runtime alternate override ("" clears the flow's value)
    availability: tuple[Any, ...] | None = None  # runtime override of windows
    timezone: str | None = None  # zone of the availability override (None: the user's)


Result = None | Digits | RingResult | Recorded | HttpResponse | dict[str, Any] | int | str

# ---------------------------------------------------------------------------------------------
# Node outcomes (Kazoo-style closed set).


@dataclass(frozen=True, slots=True)
class Continue:
    """Take the node's branch named ``key`` (a digit, 'next', 'no_input', 'fallback', ...)."""

    key: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The flow is over: ``reason`` is 'connected', 'hangup', 'voicemail', ..."""

    reason: str


Outcome = Continue | Stop

# ---------------------------------------------------------------------------------------------
# Per-call context and decision trace.


@dataclass(slots=True)
class TraceEntry:
    """One decision, for the call's trace: who rang or was skipped, and why."""

    at: float
    kind: str  # 'node', 'skip', 'ring', 'leg', 'answer', 'failover', 'digits', 'error', ...
    data: dict[str, Any]


@dataclass(slots=True)
class CallContext:
    """What a node may read and write. Pure data plus an injectable clock."""

    call_id: str
    did: str
    caller: str  # normalised caller number ('' if withheld/invalid)
    flowset: Any  # the published FlowSet snapshot this call runs on (fixed for its life)
    now: Callable[[], datetime]
    language: str = "en"
    vars: dict[str, str] = field(default_factory=dict)
    trace: list[TraceEntry] = field(default_factory=list)
    answered_by: str | None = None
    path: list[str] = field(default_factory=list)  # node ids visited, in order
    failover_tests: frozenset[str] = frozenset()
    """Lines (DIDs, department ids) under a failover test: their calls go to failover."""
    caller_name: str = ""
    """The name presented with ``caller`` on the legs rung (an internal caller's name)."""
    target: tuple[str, str] | None = None
    """A registered phone's call that is not a flow (controller.core.internal): ``("extension",
    <user id>)``, ``("external", <number>)`` or ``("emergency", <number>)``; None: run the
    flow of ``did``."""
    record: dict[str, Any] = field(default_factory=dict)
    """Fields added to the call's record (an internal call: origin, from, dialled, route)."""

    def log(self, kind: str, **data: Any) -> None:
        self.trace.append(TraceEntry(self.now().timestamp(), kind, data))


NodeGen = Generator[Command, Any, Outcome]
