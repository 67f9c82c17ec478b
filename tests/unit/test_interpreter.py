"""The command interpreter (controller.core.interpreter) on a scripted Port: the decisions
that used to live in the live call's I/O shell, now testable without an event loop."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from drive import ScriptedPort, make_ctx, one_flow, step

from controller.core import waits
from controller.core.interpreter import Interpreter
from controller.core.model import (
    GetSticky,
    Hangup,
    LoadFacts,
    NextCursor,
    Prompt,
    Record,
    Recorded,
    Stop,
    UserFacts,
)
from controller.core.port import CallGone, RecordingEnded, Signal, Unavailable

CTX = make_ctx(one_flow({"h": {"type": "hangup"}}))


@dataclass
class Port(ScriptedPort):
    """A scripted call whose store is away (``down``), whose caller may hang up at a time
    (``gone_at``), and which says what media checks answer."""

    down: bool = False
    gone_at: float | None = None
    media: str = "gone"
    busy: set[str] = field(default_factory=set)
    failed: int = 0
    lost: list[tuple[str, str, str]] = field(default_factory=list)
    hung_up: list[int] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    async def next_event(self, deadline: float | None) -> Signal | None:
        if self.gone_at is not None and (deadline is None or self.gone_at <= deadline) and \
                not (self._pending and self._pending[0][0] < self.gone_at):
            self.t, self.gone_at = max(self.t, self.gone_at), None
            raise CallGone
        return await super().next_event(deadline)

    async def facts(self, users: tuple[str, ...]) -> dict[str, UserFacts]:
        if self.down:
            raise Unavailable("redis: ConnectionError")
        return {u: UserFacts(last_call_end=1.0) for u in users}

    async def next_cursor(self, key: str) -> int:
        if self.down:
            raise Unavailable("redis: ConnectionError")
        return 7

    async def get_sticky(self, department: str, caller: str) -> str | None:
        if self.down:
            raise Unavailable("redis: ConnectionError")
        return "alice"

    def store_failed(self) -> None:
        self.failed += 1

    def local_busy(self) -> set[str]:
        return self.busy

    def local_cursor(self, key: str) -> int:
        return 42

    async def media_state(self, kind: str, ident: str) -> str:
        return self.media

    def media_lost(self, kind: str, ident: str, found_by: str) -> None:
        self.lost.append((kind, ident, found_by))

    async def hangup(self, cause: int) -> None:
        self.hung_up.append(cause)

    def stop_recording(self, name: str) -> None:
        self.stopped.append(name)

    async def record(self, name: str, *, max_seconds: int, beep: bool,
                     terminate_on: str) -> None:
        return None  # its end is scripted by each test


def run(port: Port, cmd: Any) -> Any:
    return step(Interpreter(port, CTX).execute(cmd))


def port(**kw: Any) -> Port:
    return Port(start=1000.0, **kw)


# ------------------------------------------------------------------------------ Redis down


def test_store_away_facts_are_the_last_read_with_busy_from_this_controllers_calls() -> None:
    p = port()
    assert run(p, LoadFacts(("alice", "bob"))) == {
        "alice": UserFacts(last_call_end=1.0), "bob": UserFacts(last_call_end=1.0)}
    p.remembered["alice"] = UserFacts(busy=True, last_call_end=5.0)  # a stale busy mark
    p.down, p.busy = True, {"bob"}
    got = run(p, LoadFacts(("alice", "bob", "carol")))
    assert got == {"alice": UserFacts(busy=False, last_call_end=5.0),
                   "bob": UserFacts(busy=True, last_call_end=1.0),
                   "carol": UserFacts(busy=False)}
    assert p.failed == 1


def test_store_away_round_robin_goes_on_locally_and_no_sticky_agent() -> None:
    p = port()
    assert run(p, NextCursor("rr:sales")) == 7 and run(p, GetSticky("sales", "+1555")) == "alice"
    p.down = True
    assert run(p, NextCursor("rr:sales")) == 42
    assert run(p, GetSticky("sales", "+1555")) is None
    assert p.failed == 2


# ------------------------------------------------------------------------------ recording


def test_a_recording_ends_with_its_event() -> None:
    p = port()
    p.at(7.0, RecordingEnded("voicemail/box/m1", duration=6.5))
    assert run(p, Record("box")) == Recorded("box", "voicemail/box/m1", 6.5, "finished")
    assert p.waiting_on is None


def test_a_failed_recording_says_so() -> None:
    p = port()
    p.at(1.0, RecordingEnded("voicemail/box/m1", failed=True))
    assert run(p, Record("box")).reason == "failed"


def test_a_recording_whose_end_is_lost_ends_at_its_bound() -> None:
    p = port()
    rec = run(p, Record("box", max_seconds=30))
    assert rec == Recorded("box", "voicemail/box/m1", 0.0, "finished")
    assert p.t == 1000.0 + waits.record_bound(30)
    assert p.lost == [("recording", "voicemail/box/m1", "bound")]


def test_a_recording_still_going_long_past_its_bound_is_stopped() -> None:
    p = port(media="still going")
    rec = run(p, Record("box", max_seconds=30))
    assert rec.reason == "finished" and p.stopped == ["voicemail/box/m1"]
    assert p.t == 1000.0 + waits.record_bound(30) + waits.MAX_RECHECKS * waits.RECHECK_S


def test_a_caller_hanging_up_ends_the_message_and_the_call_is_a_voicemail() -> None:
    p = port(gone_at=1004.0)
    p.at(4.5, RecordingEnded("voicemail/box/m1", duration=4.0))  # Asterisk still reports it
    assert run(p, Record("box")) == Recorded("box", "voicemail/box/m1", 4.0, "hangup")
    assert p.result == "voicemail"


def test_hung_up_and_no_end_event_the_message_is_kept_without_its_length() -> None:
    p = port(gone_at=1004.0)
    assert run(p, Record("box")) == Recorded("box", "voicemail/box/m1", 0.0, "hangup")
    assert p.t == 1004.0 + 2.0


# ------------------------------------------------------------------------------ the flow


def test_a_hangup_hangs_up_the_caller_and_closes_the_flow() -> None:
    closed = []

    def flow() -> Generator[Any, Any, Stop]:
        try:
            yield Hangup(21)
            yield Prompt(media=("sound:never",))
        finally:
            closed.append(True)
        return Stop("never")

    p = port()
    assert step(Interpreter(p, CTX).run(flow())) == Stop("hangup")
    assert p.hung_up == [21] and closed == [True]


def test_a_prompt_waits_on_its_playback_then_on_nothing() -> None:
    seen = []

    @dataclass
    class Watch(Port):
        async def next_event(self, deadline: float | None) -> Signal | None:
            seen.append(self.waiting_on)
            return await super().next_event(deadline)

    p = Watch(start=1000.0, keys=lambda _: "1")
    p.observe(Prompt(media=("sound:x",), max_digits=2, timeout=5))
    res = step(Interpreter(p, CTX).execute(Prompt(media=("sound:x",), max_digits=2,
                                                   timeout=5)))
    assert res.digits == "1" and seen[0] == ("playback", "simulation-P1") and seen[-1] is None
    assert p.waiting_on is None
