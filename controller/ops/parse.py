"""Parsing and validation of operators' input (pure): windows, alternates, times."""

from __future__ import annotations

import re
import time
import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from controller.core.flows.directory import DAYS, User, Window, normalise_alternate
from controller.core.model import valid_endpoint
from controller.core.patterns import ID_RE
from controller.ops.errors import OpsError

_BY_JUNK = re.compile(r"[^\w.@:+-]")
_HHMM_RANGE = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$")


def clean_by(by: str | None) -> str:
    """Who made a change, safe to store and print (``$SUDO_USER``, ``$USER``, token name)."""
    s = _BY_JUNK.sub("", (by or "").strip())[:64]
    return s or "unknown"


def window_text(w: Window) -> str:
    """``mon-fri 09:00-17:00`` (consecutive days as a range)."""
    idx = sorted(DAYS.index(d) for d in w.days)
    parts: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        a, b = DAYS[idx[i]], DAYS[idx[j]]
        parts.append(a if i == j else (f"{a},{b}" if j == i + 1 else f"{a}-{b}"))
        i = j + 1
    return f"{','.join(parts)} {w.start}-{w.end}"


def parse_slots(slots: Sequence[str | Mapping[str, Any]],
                field: str = "windows") -> list[Window]:
    """Availability windows from CLI words or API objects.

    Words: a day spec (``mon-fri``, ``sat``, ``mon,wed``) followed by one or more ranges
    (``09:00-12:00 13:00-17:00``); several groups may follow each other, and one word may hold
    a whole group (``"mon-fri 09:00-17:00"``). Objects: ``{"days", "start", "end"}``."""
    windows: list[Window] = []
    days: str | None = None
    pending = False  # a day spec without a range yet

    def no_range(where: str) -> OpsError:
        return OpsError(400, f"day spec {days!r} has no time range (e.g. 09:00-17:00)", where)

    for i, s in enumerate(slots):
        if isinstance(s, Mapping):
            if pending:
                raise no_range(f"{field}[{i}]")
            try:
                windows.append(Window.model_validate(dict(s)))
            except ValidationError as e:
                err = e.errors()[0]
                loc = ".".join(str(x) for x in err.get("loc", ()))
                raise OpsError(400, _clean_msg(err.get("msg", "invalid window")),
                               f"{field}[{i}]" + (f".{loc}" if loc else "")) from None
            continue
        if not isinstance(s, str):
            raise OpsError(400, "a window is a string like 'mon-fri 09:00-17:00' or an object "
                           "{days, start, end}", f"{field}[{i}]")
        for w in s.split():
            m = _HHMM_RANGE.fullmatch(w)
            if m is None:
                if pending:
                    raise no_range(f"{field}[{i}]")
                days, pending = w.lower(), True
                continue
            if days is None:
                raise OpsError(400, f"time range {w!r} needs days before it "
                               f"(e.g. 'mon-fri {w}')", f"{field}[{i}]")
            try:
                windows.append(Window.model_validate(
                    {"days": days, "start": m.group(1), "end": m.group(2)}))
            except ValidationError as e:
                raise OpsError(400, _clean_msg(e.errors()[0].get("msg", "invalid window")),
                               f"{field}[{i}]") from None
            pending = False
    if pending:
        raise no_range(field)
    return windows


def _clean_msg(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def validate_alternate(spec: str, uid: str, users: Mapping[str, User]) -> str:
    """A runtime alternate for ``uid``: an external number (E.164-ish, normalised), ``sip:<ep>``
    or a known user (``user:<id>`` or a bare user id). Raises OpsError(400, field="alternate")."""
    s = (spec or "").strip()
    if not s:
        raise OpsError(400, "empty alternate (use --clear to remove it)", "alternate")
    if not s.startswith(("+", "sip:", "user:")) and s in users:
        s = "user:" + s
    if s.startswith("user:"):
        other = s[5:]
        if other == uid:
            raise OpsError(400, "a user cannot be their own alternate", "alternate")
        if not ID_RE.fullmatch(other) or other not in users:
            raise OpsError(400, f"unknown user {other!r}", "alternate")
        return s
    if s.startswith("sip:"):
        if not valid_endpoint(s[4:]):
            raise OpsError(400, f"{s[4:]!r} is not a valid PJSIP endpoint name", "alternate")
        return s
    norm = normalise_alternate(s)
    if norm is None or norm.startswith(("sip:", "user:")):
        raise OpsError(400, f"{spec!r} is not an external number (+E.164, e.g. +919876543210) "
                       "or a known user", "alternate")
    return norm


def parse_zone(name: str | None, field: str = "tz") -> zoneinfo.ZoneInfo | None:
    """An IANA zone (None for none), or OpsError(400) naming ``field``."""
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise OpsError(400, f"unknown time zone {name!r}", field) from None


def parse_at(text: str | None, tz: str, *, now: datetime | None = None) -> datetime:
    """``'2026-12-06 22:00'`` (read in ``tz``), an ISO time with an offset, or ``now``."""
    zone = parse_zone(tz) or zoneinfo.ZoneInfo("UTC")
    if text is None or text.strip().lower() in ("", "now"):
        return (now or datetime.now(UTC)).astimezone(zone)
    s = text.strip().replace("T", " ")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise OpsError(400, f"{text!r} is not a time like '2026-12-06 22:00'", "at") from None
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt


_DUR = re.compile(r"^(\d+)\s*([smhdw]?)$")
_DUR_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``15m``/``2h``/``7d`` (ago), an ISO date/time (local time unless it
    has an offset) or epoch seconds."""
    now = time.time() if now is None else now
    s = (text or "").strip().lower()
    m = _DUR.fullmatch(s)
    if m and (m.group(2) or len(s) < 9):
        return now - int(m.group(1)) * _DUR_UNITS[m.group(2)]
    try:
        return float(s) if s.replace(".", "", 1).isdigit() else \
            datetime.fromisoformat(text.strip().replace("T", " ")).timestamp()
    except ValueError:
        raise OpsError(400, f"{text!r} is not a time (e.g. 15m, 2h, 7d, '2026-12-06 08:00')",
                       "since") from None
