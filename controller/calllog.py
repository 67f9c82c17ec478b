"""Call records and answered/missed counters: pure summaries of a finished call's trace.

:func:`summarise` adds to a call record what ops ask about (who rang and how each leg ended,
durations, failovers, voicemail); the runtime stores the result in the ``calllog`` stream.
:func:`call_counts` turns a trace into counter increments:

* per agent (``stats:agent:<user>`` hash): ``answered``, ``missed`` (the leg rang and was not
  answered: no answer or declined), ``busy``, ``unreachable``. A leg cancelled because a
  colleague answered counts for nobody. Alternate legs count for the user who owns them.
* per department (``stats:dept:<id>`` hash): ``calls`` (visits of a department node),
  ``answered`` (an agent answered during the visit), ``missed`` (nobody did), and
  ``<user>:answered`` / ``<user>:missed`` per agent within the department.

Users opted out when the call ends are left out (their counts never move): see
:func:`count_call`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("callctl.calllog")

__all__ = ["MISSED_OUTCOMES", "call_counts", "count_call", "iso", "summarise"]

MISSED_OUTCOMES = frozenset({"no_answer", "rejected"})
AGENT_FIELDS = ("answered", "missed", "busy", "unreachable")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")


def summarise(record: Mapping[str, Any], trace: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Fields derived from the trace: ``rang`` (each leg: user, address, role, outcome,
    cause), ``duration`` (s), ``talk`` (s after an agent/number answered), ``wait`` (s before
    that), ``failovers`` and ``voicemail`` (mailbox, recording, seconds) or None."""
    trace = list(trace)
    rang: list[dict[str, Any]] = []
    failovers: list[dict[str, Any]] = []
    voicemail: dict[str, Any] | None = None
    connected_at: float | None = None
    for t in trace:
        kind = t.get("kind")
        if kind == "leg":
            rang.append({k: t.get(k) for k in ("user", "address", "role", "outcome", "cause")})
        elif kind == "answer" and connected_at is None:
            connected_at = t.get("at")
        elif kind == "failover_test":
            failovers.append({"reason": "test", "line": t.get("line")})
        elif kind == "failover" and "number" in t:
            failovers.append({"reason": "failover", "number": t.get("number")})
        elif kind == "voicemail":
            voicemail = {"mailbox": t.get("mailbox"), "recording": t.get("recording"),
                         "seconds": None}
        elif kind == "recorded" and voicemail is not None:
            voicemail["recording"] = t.get("name") or voicemail.get("recording")
            voicemail["seconds"] = t.get("duration")
    started, ended = record.get("started"), record.get("ended")
    out: dict[str, Any] = {"rang": rang, "failovers": failovers, "voicemail": voicemail}
    if isinstance(started, int | float) and isinstance(ended, int | float):
        out["duration"] = round(ended - started, 3)
        if connected_at is not None:
            out["wait"] = round(connected_at - started, 3)
            out["talk"] = round(max(ended - connected_at, 0.0), 3)
    return out


def call_counts(trace: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{"agent:<user>": {field: +n}, "dept:<id>": {field: +n}}`` for one finished call."""
    inc: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    visit: dict[str, Any] | None = None

    def close_visit() -> None:
        if visit is not None:
            d = inc[f"dept:{visit['dept']}"]
            d["calls"] += 1
            d["answered" if visit["answered"] else "missed"] += 1

    for t in trace:
        kind = t.get("kind")
        if kind == "node":
            close_visit()
            visit = None
        elif kind == "department":
            close_visit()
            visit = {"dept": t.get("department"), "answered": False}
        elif kind == "leg":
            user, outcome = t.get("user"), t.get("outcome")
            if not user or t.get("role") == "failover" or outcome == "cancelled":
                continue
            if outcome == "answered":
                field = "answered"
            elif outcome in MISSED_OUTCOMES:
                field = "missed"
            elif outcome in ("busy", "unreachable"):
                field = str(outcome)
            else:
                continue
            inc[f"agent:{user}"][field] += 1
            if visit is not None:
                if field in ("answered", "missed"):
                    inc[f"dept:{visit['dept']}"][f"{user}:{field}"] += 1
                if field == "answered":
                    visit["answered"] = True
    close_visit()
    return {k: dict(v) for k, v in inc.items()}


def _users_of(counts: Mapping[str, Mapping[str, int]]) -> set[str]:
    users = {k[6:] for k in counts if k.startswith("agent:")}
    for k, fields in counts.items():
        if k.startswith("dept:"):
            users.update(f.rsplit(":", 1)[0] for f in fields if ":" in f)
    return users


def drop_users(counts: Mapping[str, Mapping[str, int]],
               excluded: set[str]) -> dict[str, dict[str, int]]:
    """``counts`` without anything of the ``excluded`` users."""
    out: dict[str, dict[str, int]] = {}
    for k, fields in counts.items():
        if k.startswith("agent:") and k[6:] in excluded:
            continue
        kept = {f: n for f, n in fields.items()
                if ":" not in f or f.rsplit(":", 1)[0] not in excluded}
        if kept:
            out[k] = kept
    return out


async def count_call(store: Any, trace: Iterable[Mapping[str, Any]], flowset: Any) -> None:
    """Add one finished call to the counters, leaving out users opted out right now
    (runtime override, else the published flow). Raises StoreUnavailable."""
    from controller.eligibility import effective_receive_calls

    counts = call_counts(trace)
    if not counts:
        return
    users = sorted(_users_of(counts))
    known = getattr(flowset, "users", {}) or {}
    facts = await store.facts(tuple(u for u in users if u in known))
    opted_out = {u for u in facts if not effective_receive_calls(known[u], facts[u])}
    counts = drop_users(counts, opted_out)
    if counts:
        await store.add_counts(counts)
