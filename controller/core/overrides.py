"""A user's runtime overrides (the ``user:<id>`` Redis hash) and live state as UserFacts. Pure.

The one parser for them (``RedisStore.facts`` on every call, ``controller.ops.users`` for the CLI
and the admin API). Fields, as ``controller.ops.users`` writes them:

- ``receive_calls``: ``"1"`` or ``"0"``
- ``alternate``: an alternate spec (``+E164``, ``sip:<endpoint>``, ``user:<id>``) or ``""``
  (clears the flow's alternate)
- ``availability``: a JSON list of windows (``[]``: always available)
- ``timezone``: an IANA zone, for the availability override

A stored value that does not parse is skipped, so the published value applies, and logged
(once per key, field and value; the value truncated): bad data in Redis never ends a call.
"""

from __future__ import annotations

import json
import logging
import zoneinfo
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from controller.core.flows.directory import Window, normalise_alternate
from controller.core.model import UserFacts

__all__ = ["user_facts"]

log = logging.getLogger("callctl.store")

_REPORTED: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_REPORTED_MAX = 1024
"""Bad values already logged (the newest ones): a bad value is read on every call."""
_SHOW = 80
"""At most this many characters of a bad value in the log."""


def user_facts(busy: Any, last: Any, over: Mapping[str, str] | None,
               key: str = "user:?") -> UserFacts:
    """UserFacts from the raw Redis values: ``busy`` (EXISTS ``busy:<id>``), ``last`` (ZSCORE
    in ``lastcall``), ``over`` (HGETALL ``key``). Never raises on bad stored data."""
    over = over or {}
    rc = over.get("receive_calls")
    receive_calls = None
    if rc is not None:
        if rc in ("1", "0"):
            receive_calls = rc == "1"
        else:
            _bad(key, "receive_calls", rc, 'not "1" or "0"')
    alternate = over.get("alternate")
    if alternate and normalise_alternate(alternate) is None:
        _bad(key, "alternate", alternate, "not an alternate (+E164, sip:<ep>, user:<id>)")
        alternate = None
    tz = over.get("timezone") or None
    if tz is not None and not _zone_ok(tz):
        _bad(key, "timezone", tz, "not a known time zone")
        tz = None
    return UserFacts(
        busy=bool(busy),
        last_call_end=_float(last, key),
        receive_calls=receive_calls,
        alternate=alternate,
        availability=_windows(over.get("availability"), key),
        timezone=tz,
    )


def _windows(raw: str | None, key: str) -> tuple[Window, ...] | None:
    if not raw:
        return None
    try:
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return tuple(Window.model_validate(w) for w in items)
    except Exception as e:  # whatever the data: never an exception out of here
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        _bad(key, "availability", raw, f"not a list of windows ({why})")
        return None


def _zone_ok(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _float(raw: Any, key: str) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        _bad(key, "(lastcall score)", str(raw), "not a number")
        return None


def _bad(key: str, field: str, value: str, why: str) -> None:
    seen = (key, field, value)
    if seen in _REPORTED:
        return
    _REPORTED[seen] = None
    if len(_REPORTED) > _REPORTED_MAX:
        _REPORTED.popitem(last=False)
    shown = repr(value[:_SHOW]) + (f"... ({len(value)} chars)" if len(value) > _SHOW else "")
    log.warning("bad stored value skipped (the published value applies): %s field %s = %s: "
                "%s", key, field, shown, why)
