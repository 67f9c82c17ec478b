"""Calls from registered phones: who is calling, and where the dialled number goes. Pure.

The dialplan (``from-agents``, the phones' context) hands a phone's call to the Stasis app as
``internal,<dialled>,<endpoint>``: the dialled number already checked there (an optional '+'
and 2 to 20 digits; anything else arrives as ``""``), the endpoint being the PJSIP endpoint
Asterisk authenticated (``${CHANNEL(endpoint)}``, never the From header). :func:`route` decides,
against the published flow set, in this order:

1. a user's ``extension`` -> ring that user as an extension node does (opt-out,
   availability, busy, alternate, then their voicemail): ``extension``;
2. a flow's DID (``+`` optional) -> run that flow, as for a carrier call: ``did``;
3. an emergency number (:data:`~controller.core.flows.directory.RESERVED_NUMBERS`) -> out through
   the PSTN trunk, whatever ``phones_external`` says: ``emergency``;
4. an external number (``+`` then E.164, ``00`` then E.164, or more than 6 digits) -> out
   through the PSTN trunk when ``settings.phones_external`` is on: ``external``; off:
   refused with cause 21 (SIP 403), result ``external_refused``;
5. anything else (an unknown extension, a malformed number): cause 1 (SIP 404), result
   ``no_route``.

The caller the callee sees is the calling user's extension and name (:func:`caller_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.core.flows.directory import RESERVED_NUMBERS
from controller.core.flows.schema import FlowSet
from controller.core.model import valid_e164
from controller.core.patterns import EXTENSION_RE

__all__ = ["NO_ROUTE_CAUSE", "REFUSED_CAUSE", "Caller", "Route", "caller_of", "route"]

NO_ROUTE_CAUSE = 1
"""Q.850 unallocated number: SIP 404 to the phone."""
REFUSED_CAUSE = 21
"""Q.850 call rejected: SIP 403 to the phone (external calls are off)."""

Kind = Literal["extension", "did", "emergency", "external", "refused", "no_route"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a phone's call goes. ``target``: the user id (extension), the DID (did), the
    number to dial (emergency, external); ``cause``: what a refused/no_route call is hung up
    with; ``result``: its call log result."""

    kind: Kind
    target: str = ""
    cause: int | None = None
    result: str | None = None

    @property
    def rejected(self) -> bool:
        return self.kind in ("refused", "no_route")


@dataclass(frozen=True, slots=True)
class Caller:
    """The calling phone's user: ``number`` (their extension, '' if none), ``name``,
    ``user`` (id; None for a phone no user of the flow set has)."""

    number: str = ""
    name: str = ""
    user: str | None = None


def caller_of(fs: FlowSet | None, endpoint: str) -> Caller:
    user = fs.user_for_endpoint(endpoint) if fs is not None and endpoint else None
    if user is None:
        return Caller()
    return Caller(user.extension or "", user.name or user.id, user.id)


def _external_number(dialled: str) -> str | None:
    """The number to dial for an external-looking ``dialled``, or None if it is not one."""
    if dialled.startswith("+"):
        return dialled
    if dialled.startswith("00") and len(dialled) > 4:
        return "+" + dialled[2:]
    if len(dialled) > 6:
        return dialled
    return None


def route(fs: FlowSet | None, dialled: str) -> Route:
    """Where ``dialled`` (as checked by the dialplan; "" when it was malformed) goes."""
    no_route = Route("no_route", dialled, NO_ROUTE_CAUSE, "no_route")
    if fs is None or not dialled:
        return no_route
    if EXTENSION_RE.fullmatch(dialled):
        user = fs.user_for_extension(dialled)
        if user is not None:
            return Route("extension", user.id)
    if fs.flow_for_did(dialled) is not None:
        return Route("did", dialled)
    if dialled in RESERVED_NUMBERS:
        return Route("emergency", dialled)
    number = _external_number(dialled)
    if number is None or not valid_e164(number):
        return no_route
    if not fs.settings.phones_external:
        return Route("refused", number, REFUSED_CAUSE, "external_refused")
    return Route("external", number)
