"""Departments: a team, how its members ring, and what happens when nobody answers.

Pure pydantic v2 models (``extra="forbid"``, ``frozen=True``); cross-references (members
exist, simultaneous size) are checked by :func:`department_problems`, which the flow linter
calls and prefixes with the department's path. ``Department.mailbox`` has no default here (the
failover falls back to ``failover.mailbox`` > ``department.mailbox`` > department id:
:func:`department_mailbox`). The failover plan (:class:`FailoverPlan`) is shared by the live
path and the outage path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from controller.core.flows.directory import User
from controller.core.flows.settings import MAX_SIMULTANEOUS, Settings
from controller.core.flows.values import (
    MODEL_CONFIG,
    check_e164,
    check_mailbox,
    entry_with_id,
    normalise_phone,
    parse_duration,
)
from controller.core.patterns import ID_RE
from controller.core.prompts import check_prompt_name

__all__ = [
    "DEFAULT_FAILOVER_GREETING",
    "DEFAULT_FAILOVER_PROMPT",
    "FAILOVER_UNAVAILABLE_CAUSE",
    "Department",
    "Failover",
    "FailoverPlan",
    "Sticky",
    "department_mailbox",
    "department_problems",
    "department_warnings",
    "departments_from_mapping",
    "failover_plan",
]

DEFAULT_FAILOVER_GREETING = (
    "No one is available to take your call. Please leave a message after the tone."
)
"""What the default failover greeting (prompt name ``failover-greeting``) says."""
DEFAULT_FAILOVER_PROMPT = "failover-greeting"
FAILOVER_UNAVAILABLE_CAUSE = 19
"""Q.850 cause a failover hangs up with when its number did not answer and its voicemail is
off: SIP 480 Temporarily Unavailable (never a 503, which a carrier or the dispatcher takes
as "this server is down, try another")."""


class Sticky(BaseModel):
    """Sticky agent: a returning caller rings the agent who last answered them first."""

    model_config = MODEL_CONFIG

    ttl: int = Field(default=2592000, gt=0)
    """Seconds the caller -> agent memory lasts (accepts '30d', '12h', '90m', '45s')."""

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> int:
        return parse_duration(v)


class Failover(BaseModel):
    """What happens when nobody in a department answers: a number, then voicemail."""

    model_config = MODEL_CONFIG

    number: str | None = None
    voicemail: bool = True
    greeting: str | None = None
    """Prompt name; None = ``failover-greeting`` (:data:`DEFAULT_FAILOVER_GREETING`)."""
    mailbox: str | None = None

    @field_validator("number", mode="before")
    @classmethod
    def _number_norm(cls, v: Any) -> Any:
        return None if v in (None, "") else normalise_phone(v)

    @field_validator("number")
    @classmethod
    def _number(cls, v: str | None) -> str | None:
        return None if v is None else check_e164(v)

    @field_validator("greeting")
    @classmethod
    def _greeting(cls, v: str | None) -> str | None:
        return None if v is None else check_prompt_name(v)

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        return None if v is None else check_mailbox(v)


class Department(BaseModel):
    model_config = MODEL_CONFIG

    id: str = Field(pattern=ID_RE.pattern)
    name: str = ""
    strategy: Literal["serial", "simultaneous", "balanced", "longest_idle"] = "serial"
    sticky: Sticky | None = None
    """A layer on top of ``strategy``: the returning caller's last agent rings alone first."""
    members: list[str]
    """User ids, in order, unique."""
    ring_time: int = Field(default=20, ge=1, le=600)
    """Seconds per user (serial, balanced, longest idle) or per wave (simultaneous)."""
    total_timeout: int | None = Field(default=None, ge=1, le=3600)
    """Seconds for the whole department (all waves, all rounds); None = no limit."""
    rounds: int = Field(default=1, ge=1, le=10)
    alternate_on_no_answer: bool = False
    """Also ring a member's alternate when the member does not answer in time."""
    failover: Failover | None = None
    mailbox: str | None = None

    @field_validator("sticky", mode="before")
    @classmethod
    def _sticky(cls, v: Any) -> Any:
        # ``sticky: true`` = defaults; ``sticky: false`` = off; ``sticky: 30d`` = ttl.
        if v is True:
            return {}
        if v is False:
            return None
        if isinstance(v, int | str):
            return {"ttl": v}
        return v

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for m in v:
            if not ID_RE.fullmatch(m):
                raise ValueError(f"invalid user id {m!r}")
            if m in seen:
                raise ValueError(f"member {m!r} is listed twice")
            seen.add(m)
        return v

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        return None if v is None else check_mailbox(v)


def department_mailbox(dept: Department) -> str:
    """The mailbox a department's failover records into: failover > department > its id."""
    fo = dept.failover
    return (fo.mailbox if fo else None) or dept.mailbox or dept.id


@dataclass(frozen=True, slots=True)
class FailoverPlan:
    """What a failover does, in order: ring ``number`` (if any; 60 s), then play ``greeting``
    and record into ``mailbox``; ``mailbox`` None = voicemail off: hang up with
    :data:`FAILOVER_UNAVAILABLE_CAUSE`. The live path (``nodes.department.run_failover``) and
    the outage path (AstDB, ``flows.schema.outage_targets``) both carry out this plan."""

    number: str | None
    mailbox: str | None
    greeting: str


def failover_plan(fo: Failover | None, mailbox: str) -> FailoverPlan:
    """The plan of one failover block (None: the default, voicemail into ``mailbox``)."""
    fo = fo or Failover()
    return FailoverPlan(fo.number, mailbox if fo.voicemail else None,
                        fo.greeting or DEFAULT_FAILOVER_PROMPT)



def departments_from_mapping(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Department]:
    return {did: Department.model_validate(entry_with_id(did, body)) for did, body in data.items()}



# ---------------------------------------------------------------------------------------------
# Cross-reference checks (pure). Paths are relative to the object ("members[2]"); the caller
# prefixes them ("departments.sales.members[2]").


def department_problems(
    dept: Department, users: Mapping[str, User], settings: Settings | None = None
) -> list[tuple[str, str]]:
    """Errors: unknown members, simultaneous larger than the cap, an unreachable failover."""
    problems: list[tuple[str, str]] = []
    for i, m in enumerate(dept.members):
        if m not in users:
            problems.append((f"members[{i}]", f"unknown user {m!r}"))
    cap = settings.max_simultaneous if settings else MAX_SIMULTANEOUS
    if dept.strategy == "simultaneous" and len(dept.members) > cap:
        problems.append(
            ("members", f"simultaneous rings at most {cap} users; {len(dept.members)} members")
        )
    if dept.total_timeout is not None and dept.total_timeout < dept.ring_time:
        problems.append(
            (
                "total_timeout",
                f"total_timeout ({dept.total_timeout}s) is shorter than ring_time "
                f"({dept.ring_time}s)",
            )
        )
    return problems


def department_warnings(
    dept: Department, users: Mapping[str, User]
) -> list[tuple[str, str]]:
    """Legal but probably unintended configurations."""
    warnings: list[tuple[str, str]] = []
    if not dept.members:
        warnings.append(("members", "department has no members: every call goes to fallback"))
    known = [users[m] for m in dept.members if m in users]
    if known and not any(u.receive_calls for u in known):
        warnings.append(("members", "every member has opted out of receiving calls"))
    fo = dept.failover
    if fo is not None and fo.number is None and not fo.voicemail:
        warnings.append(("failover", "failover has no number and voicemail is off: it hangs up"))
    if dept.alternate_on_no_answer and not any(u.alternate for u in known):
        warnings.append(("alternate_on_no_answer", "no member has an alternate"))
    return warnings

