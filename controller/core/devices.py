"""A user's phone as Asterisk sees it (``callctl users``, ``GET /users``). Pure.

The source is one AMI ``PJSIPShowEndpoints`` action for every endpoint at once (its
``EndpointList`` events: the endpoint's contacts, static or registered, and its device
state, which Asterisk derives from the contacts' qualify results and the endpoint's
channels); :func:`controller.ops.users.devices` caches it for :data:`DEVICE_CACHE_S` seconds.

States:

* ``reachable``: it has a contact that answers Asterisk's qualify (SIP OPTIONS; a
  registered phone every 30 s) - calls ring it; ``in_use`` says whether it is on a call;
* ``unreachable``: its contacts stopped answering the qualify (a phone that vanished):
  calls to it fail at once as unreachable, so its user's alternate rings at once;
* ``unregistered``: no contact at all (a softphone that is not registered);
* ``unknown``: Asterisk has no such endpoint, or AMI did not answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["DEVICE_CACHE_S", "DEVICE_STATES", "by_endpoint", "device_view"]

DEVICE_CACHE_S = 2.0
DEVICE_STATES = ("reachable", "unreachable", "unregistered", "unknown")
_IN_USE = frozenset({"In use", "Busy", "Ringing", "Ring+Inuse", "On Hold"})


def by_endpoint(rows: Iterable[Mapping[str, str]]) -> dict[str, Mapping[str, str]]:
    """``EndpointList`` events keyed by endpoint name."""
    return {r["ObjectName"]: r for r in rows if r.get("ObjectName")}


def device_view(row: Mapping[str, str] | None) -> dict[str, Any]:
    """``{"state", "in_use", "contact"}`` of one endpoint's ``EndpointList`` event (None:
    the endpoint is unknown to Asterisk, or AMI did not answer)."""
    if row is None:
        return {"state": "unknown", "in_use": False, "contact": None}
    contacts = [c.split("/", 1)[-1] for c in (row.get("Contacts") or "").split(",") if c]
    dev = row.get("DeviceState") or ""
    if not contacts:
        state = "unregistered"
    elif dev == "Unavailable":
        state = "unreachable"
    elif dev in ("Invalid", "Unknown", ""):
        state = "unknown"
    else:
        state = "reachable"
    return {"state": state, "in_use": dev in _IN_USE, "contact": contacts[0] if contacts
            else None}
