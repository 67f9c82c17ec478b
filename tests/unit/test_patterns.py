"""One rule per validated value (controller/core/patterns.py), and the mailbox rule end to end:
what the flow validation accepts as a mailbox, the live call and the outage path record into.

The live call checks ``Record.mailbox`` against ``controller.shell.call.MAILBOX_RE`` before it
records (``Call._record`` raises otherwise, and the call ends as "error"); the dialplan's outage
path re-checks the AstDB mailbox with its own REGEX before ``Record()``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core import patterns
from controller.core.flows.departments import Department, Failover, department_mailbox
from controller.core.flows.directory import User
from controller.core.flows.loader import load_text
from controller.core.flows.schema import FlowSet, line_failover, outage_targets
from controller.core.nodes.voicemail import VoicemailNode
from controller.ops import calls, dryrun
from controller.shell import call

ROOT = Path(__file__).resolve().parents[2]
DIALPLAN = ROOT / "dialplan" / "callctl-dialplan.conf"


def _outage_mailbox_regex() -> re.Pattern[str]:
    """The REGEX the outage path checks the AstDB mailbox (FO_BOX) with before Record()."""
    found = re.findall(r'REGEX\("([^"]+)" \$\{FO_BOX\}\)', DIALPLAN.read_text())
    assert len(found) == 1, found
    return re.compile(found[0])


def test_the_call_and_the_outage_path_check_the_one_mailbox_rule() -> None:
    assert call.MAILBOX_RE is patterns.MAILBOX_RE
    assert _outage_mailbox_regex().pattern == patterns.MAILBOX_RE.pattern


def test_one_dtmf_set_and_its_subsets() -> None:
    assert call.DTMF is patterns.DTMF_DIGITS and dryrun.DTMF_DIGITS is patterns.DTMF_DIGITS
    assert calls.CALL_ID_RE is patterns.CALL_ID_RE
    assert patterns.KEYPAD_KEYS == patterns.DTMF_DIGITS - set("ABCD")
    assert set(patterns.MENU_KEYS) == patterns.KEYPAD_KEYS - {"0", "*", "#"}


@pytest.mark.parametrize("build", [
    lambda box: User(id="alice", endpoint="a1", mailbox=box),
    lambda box: Department(id="sales", members=[], mailbox=box),
    lambda box: Failover(mailbox=box),
    lambda box: FlowSet.model_validate({"users": {"alice": {"endpoint": "a1", "mailbox": box}}}),
    lambda box: FlowSet.model_validate(
        {"departments": {"sales": {"members": [], "failover": {"mailbox": box}}}}),
], ids=["user", "department", "failover", "flowset user", "flowset failover"])
@pytest.mark.parametrize("box", ["Alice.Box", "alice@home", "a" * 65])
def test_the_directory_refuses_a_mailbox_the_call_cannot_record_into(build: Any,
                                                                      box: str) -> None:
    with pytest.raises(ValidationError) as exc:
        build(box)
    (err,) = exc.value.errors()
    assert err["loc"][-1] == "mailbox"
    assert f"invalid mailbox {box!r}" in err["msg"] and "lower-case" in err["msg"]


def test_a_flow_file_gets_the_error_at_the_mailbox() -> None:
    res = load_text("users: {alice: {endpoint: a1, mailbox: Alice.Box}}\n", "f.yaml")
    (p,) = res.errors
    assert (p.file, p.line, p.path, p.value) == ("f.yaml", 1, "users.alice.mailbox", "Alice.Box")
    assert p.message.startswith("invalid mailbox 'Alice.Box': use at most 64 lower-case")


def test_a_long_user_id_names_the_default_mailbox() -> None:
    with pytest.raises(ValidationError, match="the user id, the default"):
        User(id="a" * 65, endpoint="a1")


# ---------------------------------------------------------------------------------------------
# The property: a flow set the loader accepts records only into mailboxes the call path takes.

_ID = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,7}", fullmatch=True)
_ODD = st.one_of(
    st.integers(60, 70).map(lambda n: "x" * n),  # an id, but a mailbox only up to 64
    st.text(alphabet="abz09_-.@A :/é", min_size=1, max_size=6),
    st.sampled_from(["Alice.Box", "a@b", "failover"]),
)


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``odd`` one time in eight (so that most flow sets load), else ``usual``."""
    return st.tuples(st.integers(0, 7), usual, odd).map(lambda t: t[2] if t[0] == 0 else t[1])


_NAME = _mostly(_ID, _ODD)
_BOX = _mostly(st.none() | _ID, _ODD)
BLOCK = object()
"""A failover block without a mailbox (the mailbox defaults to an id)."""


def _flowset_text(uid: str, did: str, fid: str, user_box: str | None, dept_box: str | None,
                  dept_fo: Any, line_fo: Any, vm: str) -> str:
    def box(value: str | None) -> dict[str, str]:
        return {} if value is None else {"mailbox": value}

    def failover(value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        return {"failover": {} if value is BLOCK else {"mailbox": value}}

    data = {
        "users": {uid: {"endpoint": "a1", **box(user_box)}},
        "departments": {did: {"members": [uid], **box(dept_box), **failover(dept_fo)}},
        "flows": {fid: {"dids": ["+15550100"], "entry": "ring", **failover(line_fo),
                        "nodes": {"ring": {"type": "department", "department": did,
                                           "fallback": "vm"},
                                  "vm": {"type": "voicemail", "mailbox": vm}}}},
    }
    return json.dumps(data)  # JSON is YAML


def _recorded_into(fs: FlowSet) -> set[str]:
    """Every mailbox a call on ``fs`` may record into, live or on the outage path."""
    boxes = {u.mailbox or u.id for u in fs.users.values()}  # extension nodes, phones
    boxes |= {department_mailbox(d) for d in fs.departments.values()}
    for flow in fs.flows.values():
        plan = line_failover(fs, flow)  # failover tests of the line
        if plan.mailbox is not None:
            boxes.add(plan.mailbox)
        boxes |= {n.resolve_mailbox(fs) for n in flow.nodes.values()
                  if isinstance(n, VoicemailNode)}
    boxes |= {box for _number, box in outage_targets(fs).values() if box}
    return boxes


@settings(max_examples=200, deadline=None)
@given(uid=_NAME, did=_NAME, fid=_NAME,
       user_box=_BOX, dept_box=_BOX, dept_fo=st.just(BLOCK) | _BOX,
       line_fo=st.just(BLOCK) | _BOX,
       vm=st.sampled_from(["user:", "department:", ""]), vm_name=_NAME)
@example(uid="alice", did="d" * 65, fid="main", user_box=None, dept_box=None, dept_fo=None,
         line_fo=None, vm="", vm_name="sales")
@example(uid="alice", did="sales", fid="f" * 65, user_box=None, dept_box=None, dept_fo=None,
         line_fo=BLOCK, vm="", vm_name="sales")
@example(uid="alice", did="sales", fid="main", user_box="Alice.Box", dept_box=None,
         dept_fo=None, line_fo=None, vm="user:", vm_name="alice")
def test_what_validation_accepts_as_a_mailbox_the_call_path_records_into(
    uid: str, did: str, fid: str, user_box: str | None, dept_box: str | None, dept_fo: Any,
    line_fo: Any, vm: str, vm_name: str,
) -> None:
    target = {"user:": f"user:{uid}", "department:": f"department:{did}", "": vm_name}[vm]
    res = load_text(_flowset_text(uid, did, fid, user_box, dept_box, dept_fo, line_fo, target))
    if not res.ok:
        return
    assert res.flowset is not None
    outage = _outage_mailbox_regex()
    for box in _recorded_into(res.flowset):
        assert call.MAILBOX_RE.fullmatch(box), f"the live call refuses {box!r}"
        assert outage.fullmatch(box), f"the outage path refuses {box!r}"
