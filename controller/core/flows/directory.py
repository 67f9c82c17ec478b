"""The directory: users (people, their phones, availability and alternates) in a flow file.

Pure pydantic v2 models (``extra="forbid"``, ``frozen=True``). Field-level validation lives here;
cross-references (an alternate ``user:`` exists, extensions unique) are checked by the pure
helpers :func:`user_problems` / :func:`extension_problems`, which the flow linter calls and
prefixes with the object's path. Departments: :mod:`controller.core.flows.departments`;
settings and the outcome map: :mod:`controller.core.flows.settings`.

YAML friendliness (PyYAML is YAML 1.1):

* ``start: 9:30`` loads as the sexagesimal int 570 and ``end: 24:00`` as 1440: an int in
  0..1440 is read back as minutes since midnight (``"09:30"``, ``"24:00"``).
* ``number: +919876543210`` loads as an int: ints are turned back into digit strings.
* Phone numbers may contain spaces, dashes, dots and parentheses; they are stripped
  (:mod:`controller.core.flows.values`).

Semantics worth knowing:

* A :class:`Window` with ``end < start`` spans midnight; it belongs to the day it *starts* on
  (``fri 22:00-06:00`` covers Friday 22:00 to Saturday 06:00). ``start == end`` is rejected.
* ``User.mailbox`` defaults to the user id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from controller.core.flows.values import (
    MODEL_CONFIG,
    check_mailbox,
    check_timezone,
    entry_with_id,
    normalise_phone,
)
from controller.core.model import valid_e164, valid_endpoint
from controller.core.patterns import EXTENSION_RE, ID_RE, PHONE_JUNK

__all__ = [
    "DAYS",
    "RESERVED_NUMBERS",
    "User",
    "Window",
    "check_alternate",
    "duplicate_endpoints",
    "extension_problems",
    "normalise_alternate",
    "user_problems",
    "users_from_mapping",
]

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index == ``datetime.weekday()``."""

_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
RESERVED_NUMBERS = frozenset({"000", "112", "911", "999"})
"""Emergency numbers (112: every GSM phone and the EU; 911: North America; 999: UK; 000:
Australia) are never an extension: a phone dialling one must never ring a colleague.
Feature codes start with '*' and cannot collide with an all-digit extension."""


# ---------------------------------------------------------------------------------------------
# Small parsers shared by validators.


def _extension_str(value: Any) -> Any:
    """``extension: 101`` is an int to YAML (the loader keeps ``0101`` a string)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


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

    model_config = MODEL_CONFIG

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
    model_config = MODEL_CONFIG

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
        return None if v is None else check_timezone(v)

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
        return normalise_phone(v)

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
    def _mailbox(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        return check_mailbox(v, "the user id, the default" if v == info.data.get("id") else "")


def normalise_alternate(value: str) -> str | None:
    """A runtime-supplied alternate spec, normalised like the flow's, or None if invalid."""
    value = value.strip()
    if not (value.startswith("sip:") or value.startswith("user:")):
        value = PHONE_JUNK.sub("", value)
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


# ---------------------------------------------------------------------------------------------
# Loader helpers (optional: the flow engineer may build models directly).


def users_from_mapping(data: Mapping[str, Mapping[str, Any]]) -> dict[str, User]:
    """``{id: {...}}`` -> ``{id: User}``, the id taken from the key."""
    return {uid: User.model_validate(entry_with_id(uid, body)) for uid, body in data.items()}


# ---------------------------------------------------------------------------------------------
# Cross-reference checks (pure). Paths are relative to the object ("members[2]"); the caller
# prefixes them ("departments.sales.members[2]").


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
