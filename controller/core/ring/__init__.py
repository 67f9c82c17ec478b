"""Ring strategies: pure planners turning a department and live facts into a RingPlan.

``plan_for`` is the entry point: the department's strategy, with the sticky layer on top when
the department has ``sticky`` set and a sticky agent is known."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring import balanced, longest_idle, serial, simultaneous, sticky
from controller.core.ring.base import CAP_REACHED, Planner, RingPlan, Wave

__all__ = ["CAP_REACHED", "STRATEGIES", "Planner", "RingPlan", "Wave", "plan_for"]

STRATEGIES: dict[str, Planner] = {
    "serial": serial.plan,
    "simultaneous": simultaneous.plan,
    "balanced": balanced.plan,
    "longest_idle": longest_idle.plan,
}


def plan_for(
    dept: Department,
    eligible: Collection[str],
    facts: Mapping[str, UserFacts],
    *,
    cursor: int | None = None,
    sticky_user: str | None = None,
    roster: Sequence[str] | None = None,
    max_simultaneous: int = MAX_SIMULTANEOUS,
    rounds: int | None = None,
) -> RingPlan:
    base = STRATEGIES[dept.strategy]
    if dept.sticky is not None and sticky_user:
        return sticky.plan(dept, eligible, facts, sticky_user=sticky_user, base=base,
                           cursor=cursor, roster=roster, max_simultaneous=max_simultaneous,
                           rounds=rounds)
    return base(dept, eligible, facts, cursor=cursor, roster=roster,
                max_simultaneous=max_simultaneous, rounds=rounds)
