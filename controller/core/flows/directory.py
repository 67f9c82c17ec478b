"""The directory: users, departments and global settings as they appear in a flow file.

Pure pydantic v2 models (``extra="forbid"``, ``frozen=True``). Field-level validation lives here;
cross-references (members exist, an alternate ``user:`` exists, simultaneous size) are checked by
the pure helpers :func:`department_problems` / :func:`user_problems`, which the flow linter calls
and prefixes with the object's path.

YAML friendliness (PyYAML is YAML 1.1):

* ``start: 9:30`` loads as the sexagesimal int 570 and ``end: 24:00`` as 1440: an int in
  0..1440 is read back as minutes since midnight (``"09:30"``, ``"24:00"``).
* ``number: +919876543210`` loads as an int: ints are turned back into digit strings.
* Phone numbers may contain spaces, dashes, dots and parentheses; they are stripped.

Semantics worth knowing:

* A :class:`Window` with ``end < start`` spans midnight; it belongs to the day it *starts* on
  (``fri 22:00-06:00`` covers Friday 22:00 to Saturday 06:00). ``start == end`` is rejected.
* ``User.mailbox`` defaults to the user id; ``Department.mailbox`` has no default here (the
  failover node falls back to ``failover.mailbox`` > ``department.mailbox`` > department id).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from controller.core.model import valid_e164, valid_endpoint

__all__ = [
    "DAYS",
    "DEFAULT_FAILOVER_GREETING",
    "DEFAULT_FAILOVER_PROMPT",
    "EXTENSION_RE",
    "FAILOVER_UNAVAILABLE_CAUSE",
    "ID_RE",
    "MAX_SIMULTANEOUS",
    "RESERVED_NUMBERS",
    "Department",
    "Failover",
    "FailoverPlan",
    "OutcomeMap",
    "Settings",
    "Sticky",
    "User",
    "Window",
    "check_alternate",
    "department_mailbox",
    "department_problems",
    "department_warnings",
    "departments_from_mapping",
    "duplicate_endpoints",
    "extension_problems",
    "failover_plan",
    "normalise_alternate",
    "parse_duration",
    "user_problems",
    "users_from_mapping",
]

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index == ``datetime.weekday()``."""

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAILBOX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
PROMPT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhms]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PHONE_JUNK = re.compile(r"[\s\-().]")
EXTENSION_RE = re.compile(r"^[0-9]{2,6}$")
"""A user's extension number: what a registered phone dials to reach them (2 to 6 digits;
anything longer, or starting with '+', is an external number)."""
RESERVED_NUMBERS = frozenset({"000", "112", "911", "999"})
"""Emergency numbers (112: every GSM phone and the EU; 911: North America; 999: UK; 000:
Australia) are never an extension: a phone dialling one must never ring a colleague.
Feature codes start with '*' and cannot collide with an all-digit extension."""

DEFAULT_FAILOVER_GREETING = (
    "No one is available to take your call. Please leave a message after the tone."
)
"""What the default failover greeting (prompt name ``failover-greeting``) says."""
DEFAULT_FAILOVER_PROMPT = "failover-greeting"
FAILOVER_UNAVAILABLE_CAUSE = 19
"""Q.850 cause a failover hangs up with when its number did not answer and its voicemail is
off: SIP 480 Temporarily Unavailable (never a 503, which a carrier or the dispatcher takes
as "this server is down, try another")."""

MAX_SIMULTANEOUS = 5

_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Small parsers shared by validators.


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def _phone(value: Any) -> Any:
    """Normalise a phone number as typed (or as YAML parsed it); validation is separate."""
    if isinstance(value, bool):
        return value  # let the str type check reject it
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _PHONE_JUNK.sub("", value)
    return value


def _extension_str(value: Any) -> Any:
    """``extension: 101`` is an int to YAML (the loader keeps ``0101`` a string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_e164(number: str) -> str:
    if not valid_e164(number):
        raise ValueError(f"{number!r} is not a valid external number (E.164: +<3-16 digits>)")
    return number


def parse_duration(value: int | str) -> int:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"600"`` or an int -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or like '30d', '12h', '90m'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _DURATION_RE.fullmatch(value.lower())
        if m:
            return int(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"invalid duration {value!r}: use seconds or e.g. '30d', '12h', '90m', '45s'")


def _expand_days(value: Any) -> Any:
    """Accept ``"mon-fri"``, ``"mon,wed"``, ``["mon-wed", "sat"]``, ranges wrapping the week
    (``"fri-mon"``). Returns the days deduplicated in week order."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return value
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            return value  # the Literal check reports it
        for part in item.split(","):
            part = part.strip().lower()
            if "-" in part:
                a, _, b = (s.strip() for s in part.partition("-"))
                if a not in DAYS or b not in DAYS:
                    raise ValueError(f"invalid day range {part!r}: use e.g. 'mon-fri'")
                i, j = DAYS.index(a), DAYS.index(b)
                span = (j - i) % 7
                seen.update(DAYS[(i + k) % 7] for k in range(span + 1))
            elif part in DAYS:
                seen.add(part)
            else:
                raise ValueError(f"invalid day {part!r}: use mon, tue, wed, thu, fri, sat, sun")
    return [d for d in DAYS if d in seen]


def _hhmm(value: Any, *, allow_24: bool) -> str:
    if isinstance(value, bool):
        raise ValueError("a time must be 'HH:MM'")
    if isinstance(value, int):  # YAML 1.1 sexagesimal: 9:30 -> 570
        if not 0 <= value <= 1440:
            raise ValueError(f"invalid time {value!r}: use 'HH:MM'")
        value = f"{value // 60:02d}:{value % 60:02d}"
    if not isinstance(value, str):
        raise ValueError("a time must be 'HH:MM'")
    m = _HHMM_RE.fullmatch(value.strip())
    if not m:
        raise ValueError(f"invalid time {value!r}: use 'HH:MM'")
    h, mi = int(m.group(1)), int(m.group(2))
    if (h, mi) == (24, 0):
        if not allow_24:
            raise ValueError("24:00 is only valid as an end time")
    elif h > 23 or mi > 59:
        raise ValueError(f"invalid time {value!r}: use 'HH:MM' (00:00-23:59)")
    return f"{h:02d}:{mi:02d}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


# ---------------------------------------------------------------------------------------------
# Models.


class Window(BaseModel):
    """An availability window in the user's local time. ``end < start`` spans midnight."""

    model_config = _MODEL_CONFIG

    days: list[Day] = Field(min_length=1)
    start: str
    end: str

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        return _expand_days(v)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: Any) -> str:
        return _hhmm(v, allow_24=False)

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, v: Any) -> str:
        return _hhmm(v, allow_24=True)

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.start == self.end:
            raise ValueError(f"window start and end are both {self.start}")
        return self

    @property
    def start_minute(self) -> int:
        return _minutes(self.start)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end)

    @property
    def overnight(self) -> bool:
        return self.end_minute < self.start_minute

    def contains(self, local: datetime) -> bool:
        """Is the wall-clock time ``local`` (already in the user's zone) inside the window?"""
        minute = local.hour * 60 + local.minute
        today = DAYS[local.weekday()]
        if not self.overnight:
            return today in self.days and self.start_minute <= minute < self.end_minute
        if today in self.days and minute >= self.start_minute:
            return True
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        return yesterday in self.days and minute < self.end_minute


class User(BaseModel):
    model_config = _MODEL_CONFIG

    id: str = Field(pattern=ID_RE.pattern)
    name: str = ""
    endpoint: str
    receive_calls: bool = True
    """False = opted out: never rung by any routed path (its alternate neither)."""
    availability: list[Window] = []
    """Empty = always available."""
    timezone: str | None = None
    """IANA zone for ``availability``; None = ``Settings.timezone``."""
    alternate: str | None = None
    """``+E164`` number, ``sip:<endpoint>`` or ``user:<user id>``."""
    mailbox: str | None = None
    """Defaults to the user id."""
    extension: Annotated[
        str | None, BeforeValidator(_extension_str, json_schema_input_type=str | int | None)
    ] = None
    """The number a registered phone dials to reach this user (2-6 digits, unique)."""
    voicemail: bool = True
    """False: a call that reaches this user's fallback ``failover`` (an extension node's,
    or a direct extension call's) is not recorded: the caller hears busy (486) or
    unavailable (480)."""

    @model_validator(mode="before")
    @classmethod
    def _default_mailbox(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mailbox") is None and isinstance(
            data.get("id"), str
        ):
            data = {**data, "mailbox": data["id"]}
        return data

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not valid_endpoint(v):
            raise ValueError(f"{v!r} is not a valid PJSIP endpoint name")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)

    @field_validator("extension")
    @classmethod
    def _extension(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not EXTENSION_RE.fullmatch(v):
            raise ValueError(f"invalid extension {v!r}: use 2 to 6 digits")
        if v in RESERVED_NUMBERS:
            raise ValueError(f"extension {v!r} is an emergency number: choose another")
        return v

    @field_validator("alternate", mode="before")
    @classmethod
    def _alternate(cls, v: Any) -> Any:
        if v is None or v == "":
            return None
        if isinstance(v, str) and (v.startswith("sip:") or v.startswith("user:")):
            return v.strip()
        return _phone(v)

    @field_validator("alternate")
    @classmethod
    def _alternate_check(cls, v: str | None) -> str | None:
        if v is not None:
            alternate_problem = check_alternate(v)
            if alternate_problem:
                raise ValueError(alternate_problem)
        return v

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        if v is not None and not MAILBOX_RE.fullmatch(v):
            raise ValueError(f"invalid mailbox {v!r}")
        return v


def normalise_alternate(value: str) -> str | None:
    """A runtime-supplied alternate spec, normalised like the flow's, or None if invalid."""
    value = value.strip()
    if not (value.startswith("sip:") or value.startswith("user:")):
        value = _PHONE_JUNK.sub("", value)
    return None if not value or check_alternate(value) else value


def check_alternate(value: str) -> str | None:
    """Problem with an alternate spec (``+E164`` / ``sip:<ep>`` / ``user:<id>``), or None.

    Used for the flow's value and for runtime overrides (``UserFacts.alternate``)."""
    if value.startswith("sip:"):
        ep = value[4:]
        return None if valid_endpoint(ep) else f"{ep!r} is not a valid PJSIP endpoint name"
    if value.startswith("user:"):
        uid = value[5:]
        return None if ID_RE.fullmatch(uid) else f"{uid!r} is not a valid user id"
    if valid_e164(value):
        return None
    return (
        f"invalid alternate {value!r}: use an external number (+E164), "
        "'sip:<endpoint>' or 'user:<user id>'"
    )


class Sticky(BaseModel):
    """Sticky agent: a returning caller rings the agent who last answered them first."""

    model_config = _MODEL_CONFIG

    ttl: int = Field(default=2592000, gt=0)
    """Seconds the caller -> agent memory lasts (accepts '30d', '12h', '90m', '45s')."""

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> int:
        return parse_duration(v)


class Failover(BaseModel):
    """What happens when nobody in a department answers: a number, then voicemail."""

    model_config = _MODEL_CONFIG

    number: str | None = None
    voicemail: bool = True
    greeting: str | None = None
    """Prompt name; None = ``failover-greeting`` (:data:`DEFAULT_FAILOVER_GREETING`)."""
    mailbox: str | None = None

    @field_validator("number", mode="before")
    @classmethod
    def _number_norm(cls, v: Any) -> Any:
        return None if v in (None, "") else _phone(v)

    @field_validator("number")
    @classmethod
    def _number(cls, v: str | None) -> str | None:
        return None if v is None else _check_e164(v)

    @field_validator("greeting")
    @classmethod
    def _greeting(cls, v: str | None) -> str | None:
        if v is not None and not PROMPT_RE.fullmatch(v):
            raise ValueError(f"invalid prompt name {v!r}")
        return v

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str | None) -> str | None:
        if v is not None and not MAILBOX_RE.fullmatch(v):
            raise ValueError(f"invalid mailbox {v!r}")
        return v


class Department(BaseModel):
    model_config = _MODEL_CONFIG

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
        if v is not None and not MAILBOX_RE.fullmatch(v):
            raise ValueError(f"invalid mailbox {v!r}")
        return v


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


class OutcomeMap(BaseModel):
    """Q.850 causes per outcome class (see ``controller.core.outcomes`` for the defaults' origin).

    19 (a phone's own ``480 Temporarily Unavailable``: DND, not registered, not taking calls)
    is ``unreachable``, so the user's alternate rings at once; ``no_answer`` is empty: a phone
    left ringing is our own ring timer (the ``timed_out`` flag), not a cause."""

    model_config = _MODEL_CONFIG

    busy: list[int] = [17]
    unreachable: list[int] = [1, 3, 18, 19, 20, 27, 34, 38, 41, 102]
    no_answer: list[int] = []
    rejected: list[int] = [21]

    @field_validator("busy", "unreachable", "no_answer", "rejected")
    @classmethod
    def _range(cls, v: list[int]) -> list[int]:
        for c in v:
            if not 0 <= c <= 127:
                raise ValueError(f"Q.850 cause {c} is out of range 0..127")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> OutcomeMap:
        owner: dict[int, str] = {}
        for cls_name in ("busy", "unreachable", "no_answer", "rejected"):
            for c in getattr(self, cls_name):
                if c in owner and owner[c] != cls_name:
                    raise ValueError(f"cause {c} is in both {owner[c]!r} and {cls_name!r}")
                owner[c] = cls_name
        return self


class Settings(BaseModel):
    model_config = _MODEL_CONFIG

    timezone: str = "UTC"
    forward_to_alternate: bool = True
    """Global switch: off = no alternate is ever rung."""
    alternate_caller_id: Literal["caller", "did"] = "caller"
    """Caller id shown on alternate (and failover) legs: the caller's, or the dialled DID."""
    rejected_is_busy: bool = False
    outcomes: OutcomeMap = OutcomeMap()
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")
    prompts_dir: str = "prompts"
    max_simultaneous: int = Field(default=MAX_SIMULTANEOUS, ge=1, le=MAX_SIMULTANEOUS)
    phones_external: bool = False
    """Registered phones may dial external numbers (``+E164``, or more than 6 digits) out
    through the PSTN trunk. Off: such calls are refused with 403 (cause 21) and logged."""
    phones_caller_id: str | None = None
    """The number presented on a phone's external calls (``+E164``); None: the calling
    user's extension and name."""

    @field_validator("phones_caller_id", mode="before")
    @classmethod
    def _phones_cid_norm(cls, v: Any) -> Any:
        return None if v in (None, "") else _phone(v)

    @field_validator("phones_caller_id")
    @classmethod
    def _phones_cid(cls, v: str | None) -> str | None:
        return None if v is None else _check_e164(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)


# ---------------------------------------------------------------------------------------------
# Loader helpers (optional: the flow engineer may build models directly).


def users_from_mapping(data: Mapping[str, Mapping[str, Any]]) -> dict[str, User]:
    """``{id: {...}}`` -> ``{id: User}``, the id taken from the key."""
    return {uid: User.model_validate(_with_id(uid, body)) for uid, body in data.items()}


def departments_from_mapping(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Department]:
    return {did: Department.model_validate(_with_id(did, body)) for did, body in data.items()}


def _with_id(key: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    body = dict(body or {})
    if "id" in body and body["id"] != key:
        raise ValueError(f"id {body['id']!r} does not match its key {key!r}")
    body["id"] = key
    return body


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


def user_problems(user: User, users: Mapping[str, User]) -> list[tuple[str, str]]:
    """Errors: ``user:`` alternate pointing at an unknown user or at the user themself."""
    problems: list[tuple[str, str]] = []
    alt = user.alternate
    if alt and alt.startswith("user:"):
        target = alt[5:]
        if target == user.id:
            problems.append(("alternate", "a user cannot be their own alternate"))
        elif target not in users:
            problems.append(("alternate", f"unknown user {target!r}"))
    return problems


def duplicate_endpoints(users: Iterable[User]) -> list[tuple[str, str]]:
    """Two users on one endpoint ring the same phone: usually a copy-paste mistake."""
    owner: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for u in users:
        if u.endpoint in owner:
            msg = f"endpoint {u.endpoint!r} is also {owner[u.endpoint]!r}'s"
            out.append((f"{u.id}.endpoint", msg))
        else:
            owner[u.endpoint] = u.id
    return out


def extension_problems(users: Iterable[User], dids: Iterable[str]) -> list[tuple[str, str]]:
    """Errors: an extension used by two users, or equal to a DID (``+`` ignored): a phone
    dialling it could mean either. Paths: ``<user id>.extension``."""
    taken = {d.lstrip("+") for d in dids}
    owner: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for u in users:
        ext = u.extension
        if ext is None:
            continue
        if ext in owner:
            out.append((f"{u.id}.extension", f"extension {ext} is also {owner[ext]!r}'s"))
        elif ext in taken:
            out.append((f"{u.id}.extension", f"extension {ext} is also a DID of a flow"))
        else:
            owner[ext] = u.id
    return out
