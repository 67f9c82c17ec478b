"""Digit collection (controller.core.collect.Collector): pure, no event loop."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core import waits
from controller.core.collect import (
    Check,
    Collector,
    Done,
    GaveUp,
    Lost,
    Stop,
    Trace,
    Waiting,
)
from controller.core.model import Digits, Prompt

PB = "c1-P1"
T0 = 1000.0


def menu(**kw: Any) -> Prompt:
    return Prompt(media=("sound:beep",), **{"max_digits": 1, "timeout": 5.0, **kw})


def started(cmd: Prompt, *, playing: bool = True, bound: float = 4.0) -> Collector:
    c = Collector(cmd, PB if playing else None, T0, bound)
    assert c.start() == []
    return c


def done(actions: list[Any]) -> Digits | None:
    return next((a.digits for a in actions if isinstance(a, Done)), None)


# ------------------------------------------------------------------------------ play only


def test_a_play_only_prompt_ends_with_its_playback_and_ignores_keys() -> None:
    c = started(Prompt(media=("sound:hello",)))
    assert c.digit("1", T0 + 1) == []
    assert c.played(T0 + 2) == [Done(Digits("", "played"))]
    assert c.done and c.deadline is None


def test_a_prompt_with_nothing_to_play_and_no_keys_is_done_at_once() -> None:
    c = Collector(Prompt(media=()), None, T0)
    assert c.start() == [Done(Digits("", "played"))]


def test_nothing_to_play_then_the_first_key_timeout_runs_at_once() -> None:
    c = started(Prompt(media=(), max_digits=2, timeout=5.0), playing=False)
    assert c.deadline == T0 + 5.0
    assert c.expired(T0 + 5.0) == [Done(Digits("", "timeout"))]


# ------------------------------------------------------------------------------ keys


def test_the_first_key_is_awaited_timeout_s_after_the_playback() -> None:
    c = started(menu(timeout=7.0))
    assert c.deadline == T0 + 4.0  # the playback's bound
    c.played(T0 + 2.0)
    assert c.deadline == T0 + 9.0
    assert c.expired(T0 + 9.0) == [Done(Digits("", "timeout"))]


def test_max_digits_ends_the_input() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=3, timeout=5.0))
    c.played(T0 + 1)
    assert c.digit("1", T0 + 2) == [Trace("dtmf", {"digit": "1"})]
    c.digit("2", T0 + 3)
    assert c.digit("3", T0 + 4) == [Trace("dtmf", {"digit": "3"}), Done(Digits("123", "max"))]


def test_the_inter_digit_timeout_gives_what_was_typed() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=4, timeout=5.0, inter_digit_timeout=2.0))
    c.played(T0 + 1)
    c.digit("4", T0 + 3)
    assert c.deadline == T0 + 5.0  # inter-digit, not the first key's timeout
    c.digit("2", T0 + 4)
    assert c.deadline == T0 + 6.0
    assert c.expired(T0 + 6.0) == [Done(Digits("42", "timeout"))]


def test_the_terminator_ends_the_input_and_is_not_part_of_it() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=6, timeout=5.0, terminator="#"))
    c.played(T0)
    for k in "12":
        c.digit(k, T0)
    assert done(c.digit("#", T0)) == Digits("12", "terminator")


def test_a_lone_terminator_gives_empty_input() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=6, timeout=5.0, terminator="#"))
    c.played(T0)
    assert done(c.digit("#", T0)) == Digits("", "terminator")


def test_after_the_playback_finished_a_key_after_the_first_uses_inter_digit() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=3, timeout=9.0, inter_digit_timeout=1.0))
    c.digit("1", T0 + 0.5)  # barge-in
    assert c.deadline == T0 + 1.5
    c.played(T0 + 0.6)  # the stopped playback's end: changes nothing
    assert c.deadline == T0 + 1.5


# ------------------------------------------------------------------------------ barge-in


def test_a_key_during_the_playback_stops_it_and_counts() -> None:
    c = started(menu())
    assert c.digit("2", T0 + 1) == [Stop(PB), Trace("dtmf", {"digit": "2"}),
                                    Done(Digits("2", "max"))]


def test_without_barge_in_keys_during_the_playback_are_ignored() -> None:
    c = started(menu(barge_in=False))
    assert c.digit("2", T0 + 1) == []
    c.played(T0 + 2)
    assert done(c.digit("3", T0 + 3)) == Digits("3", "max")


def test_a_duplicate_playback_end_is_ignored() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=2, timeout=5.0))
    assert c.played(T0 + 1) == []
    deadline = c.deadline
    assert c.played(T0 + 2) == [] and c.deadline == deadline


# ------------------------------------------------------------------------------ sensitive


def test_a_sensitive_prompt_never_puts_a_key_in_the_trace() -> None:
    c = started(Prompt(media=("sound:pin",), max_digits=4, timeout=5.0, sensitive=True))
    actions = [a for k in "1234" for a in c.digit(k, T0)]
    traces = [a for a in actions if isinstance(a, Trace)]
    assert traces == [Trace("dtmf", {"masked": True})] * 4
    assert done(actions) == Digits("1234", "max")  # the node gets them, the trace does not


# ------------------------------------------------------------------------------ lost end event


def test_at_the_bound_the_playback_is_checked_gone_counts_as_finished() -> None:
    c = started(menu(timeout=5.0), bound=4.0)
    assert c.expired(T0 + 4.0) == [Check(PB)]
    assert c.deadline is None  # no second check while the first is asked
    assert c.expired(T0 + 4.0) == []
    assert c.checked("gone", T0 + 4.1) == [Lost(PB)]
    assert not c.playing and c.deadline == T0 + 4.1 + 5.0


def test_still_going_at_the_bound_waits_recheck_s_more_then_gives_up() -> None:
    c = started(Prompt(media=("sound:x",), max_digits=0), bound=4.0)
    now = T0 + 4.0
    for _ in range(waits.MAX_RECHECKS):
        assert c.expired(now) == [Check(PB)]
        assert c.checked("still going", now) == [Waiting(PB, "still going", waits.RECHECK_S)]
        assert c.deadline == now + waits.RECHECK_S
        now += waits.RECHECK_S
    assert c.expired(now) == [Check(PB)]
    after = waits.MAX_RECHECKS * waits.RECHECK_S
    assert c.checked("not known (HTTP 500)", now) == [
        GaveUp(PB, "not known (HTTP 500)", after),
        Trace("media_stopped", {"media": "playback", "id": PB, "reason": "no end event"}),
        Stop(PB), Done(Digits("", "played"))]


def test_a_late_answer_to_a_check_after_the_playback_ended_is_ignored() -> None:
    c = started(menu())
    c.expired(T0 + 4.0)
    c.played(T0 + 4.1)  # its end came after all
    assert c.checked("gone", T0 + 4.2) == []


def test_keys_during_a_pending_check_still_count() -> None:
    c = started(menu())
    c.expired(T0 + 4.0)
    assert done(c.digit("5", T0 + 4.1)) == Digits("5", "max")
    assert c.checked("still going", T0 + 4.2) == []


# ------------------------------------------------------------------------------ after done


def test_once_done_nothing_is_collected() -> None:
    c = started(menu())
    c.digit("1", T0)
    assert c.result == Digits("1", "max")
    for out in (c.digit("2", T0), c.played(T0), c.expired(T0), c.checked("gone", T0)):
        assert out == []
    assert c.result == Digits("1", "max") and c.digits == "1"


@pytest.mark.parametrize("key", ["*", "#", "A", "0"])
def test_any_dtmf_key_is_a_digit_unless_it_is_the_terminator(key: str) -> None:
    c = started(menu())
    assert done(c.digit(key, T0)) == Digits(key, "max")


# ------------------------------------------------------------------------------ properties

events = st.lists(st.one_of(
    st.tuples(st.just("digit"), st.sampled_from(list("0123456789*#A")), st.floats(0, 3)),
    st.tuples(st.just("played"), st.just(""), st.floats(0, 3)),
    st.tuples(st.just("expired"), st.just(""), st.floats(0, 3)),
    st.tuples(st.just("checked"), st.sampled_from(["gone", "still going", "not known (x)"]),
              st.floats(0, 3)),
), max_size=40)
prompts = st.builds(
    Prompt, media=st.sampled_from([(), ("sound:x",), ("sound:x", "digits:12")]),
    max_digits=st.integers(0, 6), timeout=st.floats(0, 10), inter_digit_timeout=st.floats(0, 5),
    terminator=st.sampled_from(["", "#", "*"]), barge_in=st.booleans(),
    sensitive=st.booleans())


@settings(max_examples=500, deadline=None)
@given(cmd=prompts, evs=events)
def test_any_event_order_ends_with_one_result_and_nothing_after(
        cmd: Prompt, evs: list[tuple[str, str, float]]) -> None:
    c = Collector(cmd, PB if cmd.media else None, T0, 4.0)
    now = T0
    results = [a for a in c.start() if isinstance(a, Done)]
    typed = ""

    def feed(kind: str, arg: str) -> list[Any]:
        nonlocal typed
        before = c.done
        out = {"digit": lambda: c.digit(arg, now), "played": lambda: c.played(now),
               "expired": lambda: c.expired(now), "checked": lambda: c.checked(arg, now)}[kind]()
        if before:
            assert out == []  # never collects (nor acts) after done
        if kind == "digit" and any(isinstance(a, Trace) and a.kind == "dtmf" for a in out):
            typed += arg
        return out

    for kind, arg, dt in evs:
        now += dt
        results += [a for a in feed(kind, arg) if isinstance(a, Done)]
    # then nothing more happens but time: the deadlines run out, every check says still going
    for _ in range(2 * waits.MAX_RECHECKS + 4):
        if c.done:
            break
        if c.deadline is not None:
            now = max(now, c.deadline)
        results += [a for a in feed("expired", "") if isinstance(a, Done)]
        results += [a for a in feed("checked", "still going") if isinstance(a, Done)]
    assert c.done, "collection never ended"
    assert len(results) == 1 and results[0].digits == c.result  # exactly one result
    got = c.result
    assert got is not None and len(got.digits) <= max(cmd.max_digits, 0)
    assert typed.startswith(got.digits) and (cmd.max_digits > 0 or got.digits == "")
    if cmd.terminator:
        assert cmd.terminator not in got.digits
