"""Caller ID normalisation: caller-controlled data, validated before any use."""

from __future__ import annotations

import re

from controller.core.patterns import DID_RE, PHONE_JUNK


def normalise(raw: str | None) -> str:
    """A caller number as digits with an optional leading '+', or '' if withheld/invalid.

    Spaces, dots, dashes and parentheses are dropped; a ``00`` international prefix becomes
    ``+``. Anything else (letters, SIP URIs, control characters, 21+ digits) yields ''.
    """
    if not raw:
        return ""
    s = PHONE_JUNK.sub("", raw.strip())
    if s.startswith("00") and len(s) > 4:
        s = "+" + s[2:]
    return s if DID_RE.fullmatch(s) else ""


def valid_did(did: str) -> bool:
    return bool(DID_RE.fullmatch(did))


_NAME_JUNK = re.compile(r"[^\w .,'&-]")
MAX_NAME = 40


def display_name(raw: str | None) -> str:
    """A caller name safe inside ``"..."``: letters (any script), digits, spaces and
    ``.,'&-`` only (quotes, angle brackets, backslashes and control characters dropped), at
    most :data:`MAX_NAME` characters."""
    if not raw:
        return ""
    return " ".join(_NAME_JUNK.sub("", raw).split())[:MAX_NAME].strip()


def presentable(number: str, name: str = "") -> str | None:
    """A caller id string safe to pass to ARI originate (``"<+1555>"`` form, with a name
    ``"Alice" <101>``), or None when the number is withheld/invalid."""
    n = normalise(number)
    if not n:
        return None
    shown = display_name(name)
    return f'"{shown}" <{n}>' if shown else f"<{n}>"
