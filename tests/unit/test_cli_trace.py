"""`callctl call ID` rendering: outcome header, skip reasons, ring start/stop per leg. Pure."""

from __future__ import annotations

import time

from controller.tools.cli.calls import format_trace

T0 = time.mktime((2026, 3, 2, 14, 3, 7, 0, 0, -1)) + 0.25  # local 14:03:07.250

TRACE = [
    {"at": T0, "kind": "skip", "user": "alice", "reason": "opted_out"},
    {"at": T0, "kind": "skip", "user": "bob", "reason": "busy"},
    {"at": T0, "kind": "ring", "users": ["carol"], "timeout": 2.0, "wave": 0},
    {"at": T0 + 2, "kind": "leg", "user": "carol", "outcome": "no_answer", "cause": None,
     "started": T0, "ended": T0 + 2.0},
    {"at": T0 + 3, "kind": "leg", "user": "dave", "outcome": "answered", "cause": None,
     "started": T0 + 2.0, "ended": T0 + 2.5},
]
RECORD = {"call_id": "c1", "did": "+15550100", "caller": "+15551230001", "result": "completed",
          "answered_by": "dave", "started": T0 - 1, "ended": T0 + 30}


def test_given_record_and_trace_then_header_skips_and_leg_ring_times() -> None:
    out = format_trace("c1", RECORD, TRACE).splitlines()
    assert out[0].startswith("call c1  did=+15550100  caller=+15551230001  result=completed  "
                             "answered_by=dave")
    assert "duration=31.0s" in out[0]
    assert out[1] == "14:03:07.250  skip     user=alice reason=opted_out"
    assert out[2].endswith("user=bob reason=busy")
    assert "started=14:03:07.250 ended=14:03:09.250 rang=2.00s" in out[4]
    assert "outcome=answered" in out[5] and "rang=0.50s" in out[5]


def test_given_no_record_then_says_so_and_still_prints_trace() -> None:
    out = format_trace("c2", None, TRACE[:1]).splitlines()
    assert out == ["call c2  (no call log record)",
                   "14:03:07.250  skip     user=alice reason=opted_out"]


def test_given_leg_that_never_stopped_then_no_ring_duration() -> None:
    leg = {"at": T0, "kind": "leg", "user": "x", "started": T0, "ended": 0.0}
    line = format_trace("c3", None, [leg]).splitlines()[1]
    assert "ended=-" in line and "rang=" not in line
