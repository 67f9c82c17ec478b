"""Call records and answered/missed counters: pure summaries of a finished call's trace.

:func:`build_record` makes every call log record (answered, missed, blocked, ``no_flow``...):
the same :data:`RECORD_FIELDS` whatever happened to the call, with what :func:`summarise`
derives from the trace (who rang and how each leg ended, durations, failovers, voicemail);
the runtime stores it in the ``calllog`` stream.
:func:`call_counts` turns a trace into counter increments:

* per agent (``stats:agent:<user>`` hash): ``answered``, ``missed`` (the leg rang and was not
  answered: no answer or declined), ``busy``, ``unreachable``. A leg cancelled because a
  colleague answered counts for nobody. Alternate legs count for the user who owns them.
* per department (``stats:dept:<id>`` hash): ``calls`` (visits of a department node),
  ``answered`` (an agent answered during the visit), ``missed`` (nobody did), and
  ``<user>:answered`` / ``<user>:missed`` per agent within the department.

Users opted out when the call ends are left out (their counts never move): see
:func:`counter_updates`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("callctl.calllog")

__all__ = ["MISSED_OUTCOMES", "RECORD_FIELDS", "build_record", "call_counts", "counted_users",
           "counter_updates", "iso", "summarise"]

MISSED_OUTCOMES = frozenset({"no_answer", "rejected"})
AGENT_FIELDS = ("answered", "missed", "busy", "unreachable")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")


RECORD_FIELDS = (
    "call_id", "did", "caller", "flow_version", "started", "ended", "answered_at", "result",
    "answered_by", "path", "node", "blocked_by", "failover_test",
    "origin", "from_user", "from_endpoint", "route",
    "rang", "failovers", "voicemail", "duration", "wait", "talk",
)
"""The keys of every call record (:func:`build_record`), in order."""


def build_record(*, call_id: str, did: str, caller: str, flow_version: int | None,
                 started: float, ended: float, result: str,
                 trace: Sequence[Mapping[str, Any]], answered_at: float | None = None,
                 answered_by: str | None = None, path: Sequence[str] = (),
                 node: str | None = None, blocked_by: str | None = None,
                 origin: str = "carrier", from_user: str | None = None,
                 from_endpoint: str | None = None, route: str | None = None,
                 ) -> dict[str, Any]:
    """The call log record of a finished call: the one place records are made, so a call
    rejected before its flow (blocked, ``no_flow``) has the same fields as one that rang
    (empty ``rang``, ``duration`` 0, ``wait``/``talk`` None). ``failover_test``: the line
    under test the call went to failover for (the first ``failover_test`` trace entry).
    ``origin``: ``carrier`` (a DID call) or ``internal`` (a registered phone's call, with
    the calling ``from_user``, ``from_endpoint`` and ``route``: controller.core.internal)."""
    tested = next((t.get("line") for t in trace if t.get("kind") == "failover_test"), None)
    record: dict[str, Any] = {
        "call_id": call_id, "did": did, "caller": caller, "flow_version": flow_version,
        "started": started, "ended": ended, "answered_at": answered_at, "result": result,
        "answered_by": answered_by, "path": list(path), "node": node,
        "blocked_by": blocked_by, "failover_test": tested, "origin": origin,
        "from_user": from_user, "from_endpoint": from_endpoint, "route": route,
    }
    record.update(summarise(record, trace))
    return record


def summarise(record: Mapping[str, Any], trace: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Fields derived from the trace: ``rang`` (each leg: user, address, role, outcome,
    cause), ``duration`` (s), ``talk`` (s after an agent/number answered), ``wait`` (s before
    that; both None when nobody answered), ``failovers`` and ``voicemail`` (mailbox,
    recording, seconds) or None."""
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
    out: dict[str, Any] = {"rang": rang, "failovers": failovers, "voicemail": voicemail,
                           "duration": None, "wait": None, "talk": None}
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


def counter_updates(counts: Mapping[str, Mapping[str, int]]) -> tuple[
        tuple[str, str, int, str | None], ...]:
    """:func:`call_counts` as ``(stats key, field, increment, user)`` rows: ``user`` is whose
    opt-out leaves the row out (the agent of ``agent:<user>``, the ``<user>:`` of a department
    field), None for a department's own counters. The store drops the rows of users opted out
    when the call ends, in the same atomic step that logs the call (FINISH_CALL)."""
    rows: list[tuple[str, str, int, str | None]] = []
    for key in sorted(counts):
        agent = key[6:] if key.startswith("agent:") else None
        for f in sorted(counts[key]):
            owner = agent if agent is not None else (f.rsplit(":", 1)[0] if ":" in f else None)
            rows.append((key, f, counts[key][f], owner))
    return tuple(rows)


def counted_users(rows: Iterable[tuple[str, str, int, str | None]]) -> set[str]:
    return {owner for _, _, _, owner in rows if owner}
