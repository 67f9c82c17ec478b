"""Ring plans: which users ring together (a wave), in which order, for how long. Pure.

Every strategy module exposes the same :class:`Planner` signature::

    plan(dept, eligible, facts, *, cursor=None, roster=None,
         max_simultaneous=5, rounds=None) -> RingPlan

``eligible`` is the set of members that may ring now (see ``controller.core.eligibility``); the
planners always order by ``dept.members`` (ids outside the department are ignored), so the
caller may pass ``eligible`` in any order. ``rounds`` defaults to ``dept.rounds``: the whole
round (all waves) is repeated that many times. ``RingPlan.skipped`` holds only the users the
*strategy* left out (e.g. ``cap_reached``); ineligible users are the caller's to report.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts

__all__ = [
    "CAP_REACHED",
    "Planner",
    "RingPlan",
    "Wave",
    "in_member_order",
    "one_by_one",
]

CAP_REACHED = "cap_reached"
"""Skipped: simultaneous already rings ``max_simultaneous`` users."""


@dataclass(frozen=True, slots=True)
class Wave:
    """Users rung at once (one RingGroup) for ``timeout`` seconds."""

    users: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class RingPlan:
    waves: tuple[Wave, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (user, reason)

    @property
    def users(self) -> tuple[str, ...]:
        """Every user the plan rings, first appearance order, each once."""
        return tuple(dict.fromkeys(u for w in self.waves for u in w.users))

    def repeated(self, rounds: int) -> RingPlan:
        return RingPlan(self.waves * max(rounds, 1), self.skipped)


class Planner(Protocol):
    def __call__(
        self,
        dept: Department,
        eligible: Collection[str],
        facts: Mapping[str, UserFacts],
        *,
        cursor: int | None = None,
        roster: Sequence[str] | None = None,
        max_simultaneous: int = MAX_SIMULTANEOUS,
        rounds: int | None = None,
    ) -> RingPlan: ...


def in_member_order(dept: Department, eligible: Collection[str]) -> list[str]:
    ok = set(eligible)
    return [m for m in dept.members if m in ok]


def one_by_one(users: Sequence[str], ring_time: float) -> tuple[Wave, ...]:
    """Serial waves: each user alone for ``ring_time``."""
    return tuple(Wave((u,), ring_time) for u in users)
