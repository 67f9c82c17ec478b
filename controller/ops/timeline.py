"""A call's decision trace in words (``callctl call ID``, the admin API, simulate's steps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["call_events", "describe"]


def describe(t: Mapping[str, Any]) -> str:
    """One trace entry in words."""
    k = t.get("kind")
    g = t.get
    if k == "flow":
        return f"enter flow {g('flow')}"
    if k == "node":
        return f"node {g('id')} ({g('type')})"
    if k == "time":
        return f"time check at {g('node')}: {g('result')} (local {g('local')})"
    if k == "digits":
        res = f" -> {g('result')}" if g("result") else ""
        return f"key {g('digits') or '(none)'!s} at {g('node')}{res}"
    if k == "dtmf":
        return f"caller pressed {g('digit')}"
    if k == "department":
        return (f"department {g('department')}: {g('strategy')}"
                + (" + sticky" if g("sticky") else ""))
    if k == "skip":
        who = g("user") or ",".join(g("users") or [])
        alt = f" (alternate of {g('of')})" if g("of") else ""
        return f"skip {who}{alt}: {g('reason')}"
    if k == "sticky":
        return f"sticky agent {g('user')} ({'rings first' if g('used') else 'not available'})"
    if k == "ring":
        return f"ring {', '.join(g('users') or [])} for {g('timeout'):g} s (wave {g('wave')})"
    if k == "leg":
        cause = f" cause {g('cause')}" if g("cause") is not None else ""
        who = g("user") or g("address")
        return f"leg {who} [{g('role')} {g('tech')}/{g('address')}]: {g('outcome')}{cause}"
    if k == "answer":
        return f"answered by {g('user') or g('address')} ({g('role')})"
    if k == "fallback":
        return f"nobody answered at {g('node')}: fallback"
    if k == "failover":
        return f"failover: ring {g('number')}" if g("number") else f"failover: {g('result')}"
    if k == "failover_test":
        return f"failover test active on {g('line')}: straight to failover"
    if k == "voicemail":
        return f"voicemail to mailbox {g('mailbox')}"
    if k == "recorded":
        return f"message recorded ({g('duration')} s)"
    if k == "http":
        return f"POST {g('url')}: {g('status') or g('error')}"
    if k == "hangup":
        return f"hang up at {g('node')} (cause {g('cause')})"
    if k == "stop":
        return f"end at {g('node')}: {g('reason')}"
    if k == "blocked":
        return f"caller blocked by {g('pattern')}: rejected with cause {g('cause')}"
    if k == "no_flow":
        cause = f": rejected with cause {g('cause')}" if g("cause") is not None else ""
        return f"no published flow for DID {g('did')}{cause}"
    if k == "prompt":  # each media item as the file(s) played, else as its URI
        files = [str(f) for f in g("files") or []]
        shown = []
        for m in g("media") or []:
            name = str(m).removeprefix("sound:").rsplit("/", 1)[-1]
            mine = [f for f in files if f.rsplit("/", 1)[-1].rpartition(".")[0] == name]
            shown.append(" | ".join(mine) if mine else str(m))
        where = f" at {g('node')}" if g("node") else ""
        return f"play{where}: {', '.join(shown)}"
    rest = " ".join(f"{a}={b}" for a, b in t.items() if a not in ("at", "kind"))
    return f"{k} {rest}".strip()


def call_events(trace: Sequence[Mapping[str, Any]],
                started: float | None = None) -> list[dict[str, Any]]:
    """The trace as a timeline: ``{at, t (s since start), kind, text}``."""
    t0 = started if started is not None else (trace[0].get("at") if trace else None)
    out = []
    for t in trace:
        at = t.get("at")
        rel = round(at - t0, 3) if isinstance(at, int | float) and t0 is not None else None
        out.append({"at": at, "t": rel, "kind": t.get("kind"), "text": describe(t)})
    return out
