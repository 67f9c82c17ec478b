"""May this user be rung right now? Pure.

Precedence (the first that applies is the reason; MyOperator: "opt-out takes precedence over
business-hour rules"):

1. ``opted_out``      receive_calls is off (runtime override, else the flow's value)
2. ``outside_window`` not inside any availability window, in the user's time zone
                      (``user.timezone``, else ``settings.timezone``); no windows = always
3. ``busy``           the user is on a call (live state)
4. ``no_endpoint``    no usable PJSIP endpoint

Effective values: a runtime override in :class:`~controller.core.model.UserFacts` wins when it is
not None, else the published flow's value. A runtime ``availability`` override of ``()`` means
"always available"; an override that does not parse as windows is ignored (the flow's windows
apply). A naive ``at`` is taken as UTC.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.core.flows.directory import User, Window, normalise_alternate
from controller.core.flows.settings import Settings
from controller.core.model import UserFacts, valid_endpoint

__all__ = [
    "BUSY",
    "NO_ENDPOINT",
    "OPTED_OUT",
    "OUTSIDE_WINDOW",
    "REASONS",
    "Eligibility",
    "available_at",
    "check",
    "effective_alternate",
    "effective_receive_calls",
    "effective_windows",
    "user_zone",
]

OPTED_OUT = "opted_out"
OUTSIDE_WINDOW = "outside_window"
BUSY = "busy"
NO_ENDPOINT = "no_endpoint"
REASONS = (OPTED_OUT, OUTSIDE_WINDOW, BUSY, NO_ENDPOINT)
"""In precedence order."""


@dataclass(frozen=True, slots=True)
class Eligibility:
    ok: bool
    reason: str | None = None


ELIGIBLE = Eligibility(True)


def effective_receive_calls(user: User, facts: UserFacts | None) -> bool:
    if facts is not None and facts.receive_calls is not None:
        return facts.receive_calls
    return user.receive_calls


def effective_windows(user: User, facts: UserFacts | None) -> tuple[Window, ...]:
    if facts is not None and facts.availability is not None:
        try:
            return tuple(
                w if isinstance(w, Window) else Window.model_validate(w)
                for w in facts.availability
            )
        except (ValueError, TypeError):
            pass  # an unusable override: fall back to the published windows
    return tuple(user.availability)


def user_zone(user: User, settings: Settings,
              facts: UserFacts | None = None) -> zoneinfo.ZoneInfo:
    """The zone windows are read in: the override's (with an availability override), else
    the user's, else the settings'."""
    if facts is not None and facts.availability is not None and facts.timezone:
        try:
            return zoneinfo.ZoneInfo(facts.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return zoneinfo.ZoneInfo(user.timezone or settings.timezone)


def available_at(windows: Iterable[Window], at: datetime, tz: zoneinfo.ZoneInfo) -> bool:
    """Inside any of ``windows`` at instant ``at``, read on a wall clock in ``tz``?
    No windows at all = always available."""
    windows = tuple(windows)
    if not windows:
        return True
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(tz)
    return any(w.contains(local) for w in windows)


def check(user: User, facts: UserFacts | None, at: datetime, settings: Settings) -> Eligibility:
    if not effective_receive_calls(user, facts):
        return Eligibility(False, OPTED_OUT)
    if not available_at(effective_windows(user, facts), at, user_zone(user, settings, facts)):
        return Eligibility(False, OUTSIDE_WINDOW)
    if facts is not None and facts.busy:
        return Eligibility(False, BUSY)
    if not user.endpoint or not valid_endpoint(user.endpoint):
        return Eligibility(False, NO_ENDPOINT)
    return ELIGIBLE


def effective_alternate(user: User, facts: UserFacts | None) -> str | None:
    """The alternate spec to use: the runtime override if set ("" clears it), else the flow's.

    An override that is not a valid spec yields None (we never ring a guess)."""
    if facts is not None and facts.alternate is not None:
        return normalise_alternate(facts.alternate)
    return user.alternate
