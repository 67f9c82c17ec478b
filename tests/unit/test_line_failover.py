"""A line's failover (issue 13 item 9): one rule for the outage path (AstDB, controller down)
and the live path (a failover test of the line), and the same plan run by both. Pure."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from drive import drive, flowset, make_ctx

from controller.core import engine
from controller.core.flows.departments import (
    FAILOVER_UNAVAILABLE_CAUSE,
    FailoverPlan,
    failover_plan,
)
from controller.core.flows.schema import (
    entry_department,
    line_failover,
    outage_extras,
    outage_targets,
)
from controller.core.model import Hangup, Record, RingGroup, Stop

DID = "+15550100"
LINE_NO = "+15557770310"
DEPT_NO = "+15557770999"
DEFAULT = "failover-greeting"

ENTRIES: dict[str, dict[str, Any]] = {
    # the department is the entry
    "department": {"entry": "team",
                   "nodes": {"team": {"type": "department", "department": "team"}}},
    # a greeting, then the department
    "message": {"entry": "hello", "nodes": {
        "hello": {"type": "message", "prompt": "welcome", "next": "team"},
        "team": {"type": "department", "department": "team", "fallback": "bye"},
        "bye": {"type": "hangup"}}},
    # a goto inside the flow, then a message, then the department
    "goto": {"entry": "jump", "nodes": {
        "jump": {"type": "goto", "node": "hello"},
        "hello": {"type": "message", "prompt": "welcome", "next": "team"},
        "team": {"type": "department", "department": "team"}}},
    # a goto into another flow whose entry is the department
    "goto-flow": {"entry": "jump", "nodes": {"jump": {"type": "goto", "flow": "other"}}},
    # a choice first: no entry department
    "menu": {"entry": "menu", "nodes": {
        "menu": {"type": "menu", "prompt": "p", "options": {"1": "team"}},
        "team": {"type": "department", "department": "team"}}},
    "time": {"entry": "hours", "nodes": {
        "hours": {"type": "time", "hours": [{"days": "mon-fri", "start": "09:00",
                                              "end": "17:00"}], "open": "team",
                  "closed": "bye"},
        "team": {"type": "department", "department": "team"},
        "bye": {"type": "hangup"}}},
    "hangup": {"entry": "bye", "nodes": {"bye": {"type": "hangup"}}},
    # a message that loops on itself never reaches a department
    "loop": {"entry": "a", "nodes": {"a": {"type": "message", "prompt": "p", "next": "b"},
                                      "b": {"type": "goto", "node": "a"}}},
}
REACHES_DEPT = {"department", "message", "goto", "goto-flow"}

LINE_FOS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "empty": {},
    "number": {"number": LINE_NO},
    "number-no-vm": {"number": LINE_NO, "voicemail": False},
    "no-vm": {"voicemail": False},
    "box-greeting": {"mailbox": "line-box", "greeting": "line-greeting"},
}
DEPT_FOS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "number": {"number": DEPT_NO},
    "number-no-vm": {"number": DEPT_NO, "voicemail": False},
    "no-vm": {"voicemail": False},
    "box-greeting": {"mailbox": "dept-fo-box", "greeting": "dept-greeting"},
}


def make_fs(entry: str, line_fo: dict[str, Any] | None, dept_fo: dict[str, Any] | None,
            dept_mailbox: str | None = None) -> Any:
    team: dict[str, Any] = {"members": ["u1"]}
    if dept_fo is not None:
        team["failover"] = dept_fo
    if dept_mailbox is not None:
        team["mailbox"] = dept_mailbox
    main: dict[str, Any] = {"dids": [DID], **ENTRIES[entry]}
    if line_fo is not None:
        main["failover"] = line_fo
    return flowset({
        "users": {"u1": {"endpoint": "agent1"}},
        "departments": {"team": team},
        "flows": {"main": main, "other": {
            "entry": "team", "nodes": {"team": {"type": "department", "department": "team"}}}},
    })


# ------------------------------------------------------------------------- the rule, by case

@pytest.mark.parametrize(("entry", "line", "dept", "dept_box", "want"), [
    # 1. the line's own failover block wins, whatever the department has
    ("department", "number", "number", None, FailoverPlan(LINE_NO, "main", DEFAULT)),
    ("department", "empty", "number", None, FailoverPlan(None, "main", DEFAULT)),
    ("department", "no-vm", "number", None, FailoverPlan(None, None, DEFAULT)),
    ("department", "number-no-vm", "none", None, FailoverPlan(LINE_NO, None, DEFAULT)),
    ("menu", "box-greeting", "number", None,
     FailoverPlan(None, "line-box", "line-greeting")),
    # 2. no line failover: the entry department's failover (the bug: it was ignored)
    ("department", "none", "number", None, FailoverPlan(DEPT_NO, "team", DEFAULT)),
    ("message", "none", "number", None, FailoverPlan(DEPT_NO, "team", DEFAULT)),
    ("goto", "none", "number", "team-box", FailoverPlan(DEPT_NO, "team-box", DEFAULT)),
    ("goto-flow", "none", "number", None, FailoverPlan(DEPT_NO, "team", DEFAULT)),
    # ... its voicemail switch too (the bug: voicemail in a box named after the flow)
    ("department", "none", "number-no-vm", None, FailoverPlan(DEPT_NO, None, DEFAULT)),
    ("department", "none", "no-vm", "team-box", FailoverPlan(None, None, DEFAULT)),
    # ... and its mailbox (failover > department > id) and greeting
    ("department", "none", "none", None, FailoverPlan(None, "team", DEFAULT)),
    ("department", "none", "none", "team-box", FailoverPlan(None, "team-box", DEFAULT)),
    ("message", "none", "box-greeting", "team-box",
     FailoverPlan(None, "dept-fo-box", "dept-greeting")),
    # 3. no line failover, no department before a choice: voicemail in the flow's box
    ("menu", "none", "number", None, FailoverPlan(None, "main", DEFAULT)),
    ("time", "none", "no-vm", None, FailoverPlan(None, "main", DEFAULT)),
    ("hangup", "none", "number", None, FailoverPlan(None, "main", DEFAULT)),
    ("loop", "none", "number", None, FailoverPlan(None, "main", DEFAULT)),
])
def test_line_failover_rule(entry: str, line: str, dept: str, dept_box: str | None,
                            want: FailoverPlan) -> None:
    fs = make_fs(entry, LINE_FOS[line], DEPT_FOS[dept], dept_box)
    assert line_failover(fs, fs.flows["main"]) == want


def test_entry_department() -> None:
    for entry in ENTRIES:
        fs = make_fs(entry, None, None)
        got = entry_department(fs, fs.flows["main"])
        assert (got is not None and got.id == "team") == (entry in REACHES_DEPT), entry


def test_failover_plan_of_a_block() -> None:
    assert failover_plan(None, "box") == FailoverPlan(None, "box", DEFAULT)
    fs = make_fs("department", None, {"number": DEPT_NO, "voicemail": False,
                                      "greeting": "g"})
    assert failover_plan(fs.departments["team"].failover, "box") == \
        FailoverPlan(DEPT_NO, None, "g")


# ------------------------------------------------- every combination: outage == live path

COMBOS = list(itertools.product(ENTRIES, LINE_FOS, DEPT_FOS, (None, "team-box")))


@pytest.mark.parametrize(("entry", "line", "dept", "dept_box"), COMBOS)
def test_outage_target_is_what_a_live_failover_test_of_the_line_does(
        entry: str, line: str, dept: str, dept_box: str | None) -> None:
    fs = make_fs(entry, LINE_FOS[line], DEPT_FOS[dept], dept_box)
    plan = line_failover(fs, fs.flows["main"])

    # The outage path: what the controller writes to AstDB for the DID.
    number, mailbox = outage_targets(fs)[DID]
    greeting, _ = outage_extras(fs)[DID]
    assert (number or None, mailbox or None, greeting) == \
        (plan.number, plan.mailbox, f"en/{plan.greeting}")

    # The live path: a failover test of the line, the failover number (if any) not answering.
    ctx = make_ctx(fs, DID)
    ctx.failover_tests = frozenset({DID})
    run = drive(engine.run_call(ctx))
    dialled = [t.address for rg in run.of(RingGroup) for t in rg.targets]
    assert dialled == ([plan.number] if plan.number else [])
    if plan.mailbox is None:
        assert run.of(Record) == [] and run.commands[-1] == Hangup(FAILOVER_UNAVAILABLE_CAUSE)
    else:
        assert run.of(Record) == [Record(plan.mailbox)] and run.result == Stop("voicemail")
        vm = [e.data for e in ctx.trace if e.kind == "voicemail"]
        assert vm == [{"mailbox": plan.mailbox, "greeting": plan.greeting},
                      {"mailbox": plan.mailbox, "recording": f"voicemail/{plan.mailbox}/m1"}]


def test_voicemail_off_hangs_up_480_on_the_live_path_too() -> None:
    # The department's own failover (members did not answer), voicemail off, number fails.
    fs = make_fs("department", None, DEPT_FOS["number-no-vm"])
    run = drive(engine.run_call(make_ctx(fs, DID)))
    assert [t.address for rg in run.of(RingGroup) for t in rg.targets] == ["agent1", DEPT_NO]
    assert run.commands[-1] == Hangup(19) and not run.of(Record)
