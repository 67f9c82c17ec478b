from __future__ import annotations

import pytest

from controller.core.flows.departments import Department
from controller.core.flows.settings import OutcomeMap, Settings
from controller.core.model import DialTarget, LegResult
from controller.core.outcomes import alternate_causes, alternate_on_timeout, classify

T = DialTarget("sip", "alice", user="alice")
OMAP = OutcomeMap()


def leg(cause: int | None = None, **flags: bool) -> LegResult:
    return LegResult(T, flags.pop("answered", False), cause, **flags)


def test_flags_beat_causes() -> None:
    assert classify(leg(answered=True), OMAP) == "answered"
    assert classify(leg(17, cancelled=True), OMAP) == "cancelled"
    assert classify(leg(None, timed_out=True), OMAP) == "no_answer"
    assert classify(leg(None, no_contact=True), OMAP) == "unreachable"


@pytest.mark.parametrize(
    ("cause", "expected"),
    [(17, "busy"), (19, "unreachable"), (21, "rejected"), (18, "unreachable"),
     (34, "unreachable"), (1, "unreachable"), (102, "unreachable"),
     # not in any class: attributed to the line, not the person
     (16, "unreachable"), (0, "unreachable"), (None, "unreachable")],
)
def test_default_mapping(cause: int | None, expected: str) -> None:
    assert classify(leg(cause), OMAP) == expected


def test_rejected_is_busy() -> None:
    assert classify(leg(21), OMAP, rejected_is_busy=True) == "busy"


def test_custom_map() -> None:
    omap = OutcomeMap(busy=[17, 21], rejected=[])
    assert classify(leg(21), omap) == "busy"


def test_alternate_causes() -> None:
    s = Settings()
    base = alternate_causes(s, None)
    assert base == frozenset({17, 1, 3, 18, 19, 20, 27, 34, 38, 41, 102})
    assert 21 not in base
    assert 21 in alternate_causes(Settings(rejected_is_busy=True), None)
    d = Department(id="s", members=[], alternate_on_no_answer=True)
    assert alternate_causes(s, d) == base  # no no-answer causes by default
    assert alternate_causes(Settings(forward_to_alternate=False), d) == frozenset()


@pytest.mark.parametrize(("sip", "cause"), [(480, 19), (408, 18), (503, 34), (404, 1)])
def test_unreachable_responses_ring_the_alternate_by_default(sip: int, cause: int) -> None:
    # The promise (README, MyOperator's Alternate Number): busy OR unreachable rings the
    # alternate at once. chan_pjsip maps these SIP responses to these Q.850 causes.
    assert classify(leg(cause), OMAP) == "unreachable", sip
    assert cause in alternate_causes(Settings(), None), sip
    assert classify(leg(None, no_contact=True), OMAP) == "unreachable"


def test_only_our_ring_timer_is_no_answer_by_default() -> None:
    assert OMAP.no_answer == []
    assert classify(leg(None, timed_out=True), OMAP) == "no_answer"


def test_the_old_480_as_no_answer_map_is_still_configurable() -> None:
    omap = OutcomeMap(unreachable=[1, 3, 18, 20, 27, 34, 38, 41, 102], no_answer=[19])
    s = Settings(outcomes=omap)
    assert classify(leg(19), omap) == "no_answer"
    assert 19 not in alternate_causes(s, None)
    d = Department(id="s", members=[], alternate_on_no_answer=True)
    assert 19 in alternate_causes(s, d)


def test_alternate_on_timeout() -> None:
    d = Department(id="s", members=[], alternate_on_no_answer=True)
    assert alternate_on_timeout(d)
    assert not alternate_on_timeout(Department(id="s", members=[]))
    assert not alternate_on_timeout(None)
    assert not alternate_on_timeout(d, Settings(forward_to_alternate=False))
