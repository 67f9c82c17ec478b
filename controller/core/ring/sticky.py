"""Sticky agent, a layer over any strategy (as in MyOperator).

A returning caller's last agent (``GetSticky``) rings alone first for ``ring_time`` if they
are an eligible member; then the department's strategy runs without them. With ``rounds`` > 1
the whole sequence repeats (the sticky agent leads each round). An ineligible sticky agent
(opted out, off hours, busy) is simply not rung: the strategy runs as if there were none."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring.base import Planner, RingPlan, Wave


def plan(
    dept: Department,
    eligible: Collection[str],
    facts: Mapping[str, UserFacts],
    *,
    sticky_user: str | None,
    base: Planner,
    cursor: int | None = None,
    roster: Sequence[str] | None = None,
    max_simultaneous: int = MAX_SIMULTANEOUS,
    rounds: int | None = None,
) -> RingPlan:
    rounds = rounds or dept.rounds
    first = sticky_user if sticky_user in dept.members and sticky_user in eligible else None
    rest = [u for u in eligible if u != first]
    inner = base(dept, rest, facts, cursor=cursor, roster=roster,
                 max_simultaneous=max_simultaneous, rounds=1)
    if first is None:
        return inner.repeated(rounds)
    return RingPlan((Wave((first,), dept.ring_time), *inner.waves), inner.skipped).repeated(
        rounds
    )
