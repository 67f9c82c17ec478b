"""Values as people type them in a flow file: phone numbers, durations, time zones.

The shared parsers and checks of the directory's validators (users, departments, settings).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict

from controller.core.model import valid_e164
from controller.core.patterns import MAILBOX_RE, PHONE_JUNK

__all__ = [
    "MODEL_CONFIG",
    "check_e164",
    "check_mailbox",
    "check_timezone",
    "entry_with_id",
    "normalise_phone",
    "parse_duration",
]

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhms]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)


def check_mailbox(value: str, default: str = "") -> str:
    """A mailbox the runtime and the outage path can record into (``voicemail/<mailbox>/``),
    or ValueError. ``default`` names where the value came from when it was not given."""
    if not MAILBOX_RE.fullmatch(value):
        where = f" ({default})" if default else ""
        raise ValueError(f"invalid mailbox {value!r}{where}: use at most 64 lower-case "
                         "letters, digits, '_' and '-', starting with a letter or digit")
    return value


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def normalise_phone(value: Any) -> Any:
    """Normalise a phone number as typed (or as YAML parsed it); validation is separate."""
    if isinstance(value, bool):
        return value  # let the str type check reject it
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return PHONE_JUNK.sub("", value)
    return value



def check_e164(number: str) -> str:
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



def entry_with_id(key: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    body = dict(body or {})
    if "id" in body and body["id"] != key:
        raise ValueError(f"id {body['id']!r} does not match its key {key!r}")
    body["id"] = key
    return body

