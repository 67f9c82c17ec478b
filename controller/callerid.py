"""Caller ID normalisation: caller-controlled data, validated before any use."""

from __future__ import annotations

import re

_STRIP = re.compile(r"[\s().\-]")
_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
_DID = re.compile(r"^\+?[0-9]{2,20}$")


def normalise(raw: str | None) -> str:
    """A caller number as digits with an optional leading '+', or '' if withheld/invalid.

    Spaces, dots, dashes and parentheses are dropped; a ``00`` international prefix becomes
    ``+``. Anything else (letters, SIP URIs, control characters, 21+ digits) yields ''.
    """
    if not raw:
        return ""
    s = _STRIP.sub("", raw.strip())
    if s.startswith("00") and len(s) > 4:
        s = "+" + s[2:]
    return s if _NUMBER.fullmatch(s) else ""


def valid_did(did: str) -> bool:
    return bool(_DID.fullmatch(did))


def presentable(number: str) -> str | None:
    """A caller id string safe to pass to ARI originate (``"<+1555>"`` form), or None."""
    n = normalise(number)
    return f"<{n}>" if n else None
