"""Balanced (round robin): each call starts with the next member, then goes on serially.

The department's cursor (``NextCursor("rr:<dept>")``, one increment per call) picks the start:
the rotation list is rotated to begin at ``cursor % len(rotation)``, then members that cannot
ring now are dropped, and the rest ring one by one.

What the rotation list is decides fairness, so it is explicit (``roster``):

* default (``roster=None``): the *full* ordered member list. A member's slot never moves
  when others come and go; an ineligible member's turn passes to the next member in order.
* the department node passes the *on-duty* members: eligible now, or ineligible only because
  they are **busy**. Busy is short-lived (minutes): a busy member keeps their slot and their
  turn passes to the next member, so nobody's position shifts call to call. Opted-out,
  out-of-hours and unknown members are off the roster (hours-long states): otherwise the member
  after a long-absent one would take every one of their turns (a double share). With members
  ``[a, b, x, c]`` and ``x`` opted out, six calls start at a, b, c, a, b, c.

When the roster itself changes (someone opts in or out), the rotation restarts at the same
cursor value over the new list: a one-off jump, after which the shares are equal again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from controller.core.flows.departments import Department
from controller.core.flows.settings import MAX_SIMULTANEOUS
from controller.core.model import UserFacts
from controller.core.ring.base import RingPlan, one_by_one


def rotation(members: Sequence[str], cursor: int) -> list[str]:
    if not members:
        return []
    k = cursor % len(members)
    return [*members[k:], *members[:k]]


def plan(
    dept: Department,
    eligible: Collection[str],
    facts: Mapping[str, UserFacts],
    *,
    cursor: int | None = None,
    roster: Sequence[str] | None = None,
    max_simultaneous: int = MAX_SIMULTANEOUS,
    rounds: int | None = None,
) -> RingPlan:
    base = list(dept.members if roster is None else roster)
    ok = set(eligible)
    order = [u for u in rotation(base, cursor or 0) if u in ok]
    # eligible members not on the roster (caller's inconsistency) still ring, last
    order += [m for m in dept.members if m in ok and m not in order]
    return RingPlan(one_by_one(order, dept.ring_time)).repeated(rounds or dept.rounds)
