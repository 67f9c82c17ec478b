from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from typing import Any

import pytest
from drive import Clock, Driver, make_ctx, trace

from controller.core.flows.departments import Department, departments_from_mapping
from controller.core.flows.directory import users_from_mapping
from controller.core.flows.settings import Settings
from controller.core.model import (
    CallContext,
    Continue,
    DialTarget,
    GetSticky,
    Indicate,
    LoadFacts,
    NextCursor,
    Prompt,
    Record,
    RingGroup,
    SetSticky,
    Stop,
    UserFacts,
)
from controller.core.nodes import department, extension
from controller.core.nodes.ringing import ring_users

USERS = {
    "alice": {"endpoint": "alice"},
    "bob": {"endpoint": "bob"},
    "carol": {"endpoint": "carol"},
    "dave": {"endpoint": "dave", "alternate": "+15550100004"},
    "erin": {"endpoint": "erin", "receive_calls": False, "alternate": "+15550100005"},
    "frank": {"endpoint": "frank", "alternate": "user:bob"},
    "gina": {"endpoint": "gina", "alternate": "user:erin"},
    "hank": {"endpoint": "hank", "alternate": "sip:hank-desk"},
}


@pytest.fixture(autouse=True)
def prompts_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate from the flow engineer's prompt resolver."""
    mod = types.ModuleType("controller.core.prompts")
    mod.resolve_prompt = lambda name, ctx: f"sound:/prompts/{ctx.language}/{name}"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "controller.core.prompts", mod)


def flowset(depts: Mapping[str, Mapping[str, Any]], users: Mapping[str, Any] = USERS,
            **settings: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(users=users_from_mapping(users),
                                 departments=departments_from_mapping(depts),
                                 settings=Settings(**settings))


def dept_call(depts: Mapping[str, Mapping[str, Any]], *, fallback: str | None = "failover",
              caller: str = "+15550001111", **settings: Any
              ) -> tuple[CallContext, types.SimpleNamespace, Clock]:
    clock = Clock()
    ctx = make_ctx(flowset(depts, **settings), "+15559990000", caller=caller, clock=clock)
    node = types.SimpleNamespace(id="n1", department=next(iter(depts)), fallback=fallback)
    return ctx, node, clock


def rung(d: Driver) -> list[list[str | None]]:
    return [[t.user for t in rg.targets] for rg in d.of(RingGroup)]


# ------------------------------------------------------------------ strategies end to end


def test_serial_order_ring_time_and_fallback() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["alice", "bob", "carol"],
                                            "ring_time": 15}}, fallback="after-hours")
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Continue("fallback")
    assert isinstance(d.commands[0], Indicate)
    assert d.commands[1] == LoadFacts(("alice", "bob", "carol"))
    assert rung(d) == [["alice"], ["bob"], ["carol"]]
    assert [rg.timeout for rg in d.of(RingGroup)] == [15, 15, 15]
    # facts are reloaded before each wave after the first
    assert d.kinds() == ["Indicate", "LoadFacts", "RingGroup", "LoadFacts", "RingGroup",
                         "LoadFacts", "RingGroup"]
    assert [e["outcome"] for e in trace(ctx, "leg")] == ["no_answer"] * 3


def test_serial_second_user_answers() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["alice", "bob", "carol"]}})
    d = Driver(ctx, clock=clock, ring=[{}, {"bob": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert rung(d) == [["alice"], ["bob"]]
    assert ctx.answered_by == "bob"


def test_user_busy_since_last_wave_is_skipped() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["alice", "bob", "carol"]}})
    loads = 0

    def facts(cmd: LoadFacts) -> dict[str, UserFacts]:
        nonlocal loads
        loads += 1
        return {"bob": UserFacts(busy=loads > 1)}

    d = Driver(ctx, clock=clock, facts=facts)
    d.run(department.run(node, ctx))
    assert rung(d) == [["alice"], ["carol"]]
    assert {"user": "bob", "reason": "busy", "wave": 1} in trace(ctx, "skip")


def test_rounds_and_total_timeout_clip_last_wave() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["alice", "bob"], "ring_time": 20,
                                            "rounds": 2, "total_timeout": 50}})
    d = Driver(ctx, clock=clock)
    d.run(department.run(node, ctx))
    assert rung(d) == [["alice"], ["bob"], ["alice"]]
    assert [rg.timeout for rg in d.of(RingGroup)] == [20, 20, 10]
    assert trace(ctx, "skip")[-1]["reason"] == "total_timeout"


def test_simultaneous_one_wave_capped_at_five() -> None:
    members = ["alice", "bob", "carol", "dave", "frank", "hank"]
    ctx, node, clock = dept_call({"sales": {"strategy": "simultaneous", "members": members}})
    d = Driver(ctx, clock=clock, ring=[{"carol": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert rung(d) == [members[:5]]
    assert {"user": "hank", "reason": "cap_reached"} in trace(ctx, "skip")
    assert ctx.answered_by == "carol"


def test_balanced_six_calls_with_opted_out_member() -> None:
    depts = {"sales": {"strategy": "balanced", "members": ["alice", "erin", "bob", "carol"]}}
    firsts = []
    for cursor in range(6):
        ctx, node, clock = dept_call(depts, fallback=None)
        d = Driver(ctx, clock=clock, cursor=cursor)
        d.run(department.run(node, ctx))
        assert NextCursor("rr:sales") in d.commands
        assert all("erin" not in users for users in rung(d))
        firsts.append(rung(d)[0][0])
    assert firsts == ["alice", "bob", "carol", "alice", "bob", "carol"]


def test_balanced_rotation_passes_busy_turn_to_next() -> None:
    depts = {"sales": {"strategy": "balanced", "members": ["alice", "bob", "carol"]}}
    ctx, node, clock = dept_call(depts, fallback=None)
    d = Driver(ctx, clock=clock, cursor=1, facts={"bob": UserFacts(busy=True)})
    d.run(department.run(node, ctx))
    assert rung(d) == [["carol"], ["alice"]]


def test_longest_idle_order() -> None:
    depts = {"sales": {"strategy": "longest_idle", "members": ["alice", "bob", "carol"]}}
    ctx, node, clock = dept_call(depts, fallback=None)
    facts = {"alice": UserFacts(last_call_end=2000.0), "bob": UserFacts(last_call_end=1000.0)}
    d = Driver(ctx, clock=clock, facts=facts)
    d.run(department.run(node, ctx))
    assert rung(d) == [["carol"], ["bob"], ["alice"]]


# ------------------------------------------------------------------ sticky agent


def test_sticky_agent_first_then_strategy_and_remembered() -> None:
    depts = {"sales": {"members": ["alice", "bob", "carol"], "sticky": "12h"}}
    ctx, node, clock = dept_call(depts)
    d = Driver(ctx, clock=clock, sticky="carol", ring=[{}, {"alice": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert GetSticky("sales", "+15550001111") in d.commands
    assert rung(d) == [["carol"], ["alice"]]
    assert d.of(SetSticky) == [SetSticky("sales", "+15550001111", "alice", 43200)]


def test_sticky_agent_opted_out_is_not_rung() -> None:
    depts = {"sales": {"members": ["alice", "erin", "bob"], "sticky": True}}
    ctx, node, clock = dept_call(depts, fallback=None)
    d = Driver(ctx, clock=clock, sticky="erin")
    d.run(department.run(node, ctx))
    assert rung(d) == [["alice"], ["bob"]]
    assert {"user": "erin", "reason": "opted_out"} in trace(ctx, "skip")


def test_no_sticky_lookup_without_caller_number() -> None:
    depts = {"sales": {"members": ["alice"], "sticky": True}}
    ctx, node, clock = dept_call(depts, caller="")
    d = Driver(ctx, clock=clock, ring=[{"alice": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert not d.of(GetSticky) and not d.of(SetSticky)


def test_nobody_eligible_goes_straight_to_fallback() -> None:
    depts = {"sales": {"strategy": "balanced", "members": ["erin"], "sticky": True}}
    ctx, node, clock = dept_call(depts, fallback="next")
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Continue("fallback")
    assert d.kinds() == ["Indicate", "LoadFacts"]  # no sticky read, no cursor advance


# ------------------------------------------------------------------ alternates


def test_alternate_built_when_forwarding_on() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["dave"]}}, fallback=None)
    d = Driver(ctx, clock=clock)
    d.run(department.run(node, ctx))
    rg = d.of(RingGroup)[0]
    assert rg.targets == (DialTarget("sip", "dave", user="dave", alternate=DialTarget(
        "pstn", "+15550100004", user="dave", role="alternate")),)
    assert 17 in rg.alternate_causes and 34 in rg.alternate_causes
    assert rg.alternate_caller_id is None and not rg.alternate_on_timeout


def test_no_alternate_when_forwarding_off() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["dave"]}}, fallback=None,
                                 forward_to_alternate=False)
    d = Driver(ctx, clock=clock)
    d.run(department.run(node, ctx))
    rg = d.of(RingGroup)[0]
    assert rg.targets[0].alternate is None and rg.alternate_causes == frozenset()


def test_alternate_of_opted_out_user_never_rung() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["erin", "alice"]}}, fallback=None)
    d = Driver(ctx, clock=clock)
    d.run(department.run(node, ctx))
    addresses = [t.address for rg in d.of(RingGroup) for t in rg.targets]
    alternates = [t.alternate for rg in d.of(RingGroup) for t in rg.targets]
    assert addresses == ["alice"] and alternates == [None]


def test_failed_primary_and_failed_alternate_then_next_user() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["dave", "alice"]}}, fallback=None)
    d = Driver(ctx, clock=clock, ring=[{"dave": (17, 34)}, {"alice": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert rung(d) == [["dave"], ["alice"]]
    legs = trace(ctx, "leg")
    assert [(e["user"], e["role"], e["outcome"], e["cause"]) for e in legs] == [
        ("dave", "primary", "busy", 17), ("dave", "alternate", "unreachable", 34),
        ("alice", "primary", "answered", None)]
    assert ctx.answered_by == "alice"


def test_alternate_answers_for_unreachable_primary() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["dave"], "sticky": True}},
                                 fallback=None, alternate_caller_id="did")
    d = Driver(ctx, clock=clock, ring=[{"dave": ("no_contact", "answer")}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert ctx.answered_by == "dave"
    assert d.of(RingGroup)[0].alternate_caller_id == "+15559990000"
    assert d.of(SetSticky)[0].user == "dave"


def test_alternate_on_no_answer_opt_in() -> None:
    depts = {"sales": {"members": ["dave"], "alternate_on_no_answer": True}}
    ctx, node, clock = dept_call(depts, fallback=None)
    d = Driver(ctx, clock=clock, ring=[{"dave": ("timeout", "answer")}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    rg = d.of(RingGroup)[0]
    assert rg.alternate_on_timeout and 19 in rg.alternate_causes


def test_rejected_does_not_ring_alternate_unless_busy() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["dave"]}}, fallback=None)
    d = Driver(ctx, clock=clock, ring=[{"dave": (21, "answer")}])
    assert d.run(department.run(node, ctx)) == Continue("fallback")
    assert trace(ctx, "leg")[0]["outcome"] == "rejected"
    ctx, node, clock = dept_call({"sales": {"members": ["dave"]}}, fallback=None,
                                 rejected_is_busy=True)
    d = Driver(ctx, clock=clock, ring=[{"dave": (21, "answer")}])
    assert d.run(department.run(node, ctx)) == Stop("connected")


def test_user_and_sip_alternates() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["frank", "hank"]}}, fallback=None)
    d = Driver(ctx, clock=clock, ring=[{}, {"hank": (17, "answer")}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert d.commands[1] == LoadFacts(("frank", "hank", "bob"))  # bob: frank's alternate
    frank, hank = (rg.targets[0] for rg in d.of(RingGroup))
    assert frank.alternate == DialTarget("sip", "bob", user="bob", role="alternate")
    assert hank.alternate == DialTarget("sip", "hank-desk", user="hank", role="alternate")


def test_user_alternate_answer_sticks_to_the_member() -> None:
    depts = {"sales": {"members": ["frank"], "sticky": True}}
    ctx, node, clock = dept_call(depts, fallback=None)
    d = Driver(ctx, clock=clock, ring=[{"frank": (17, "answer")}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert ctx.answered_by == "bob"  # the person who talks to the caller
    assert d.of(SetSticky)[0].user == "frank"  # the department member whose turn it was


def test_user_alternate_opted_out_or_busy_not_rung() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["gina", "frank"]}}, fallback=None)
    d = Driver(ctx, clock=clock, facts={"bob": UserFacts(busy=True)})
    d.run(department.run(node, ctx))
    assert [t.alternate for rg in d.of(RingGroup) for t in rg.targets] == [None, None]
    skips = trace(ctx, "skip")
    assert {"user": "erin", "role": "alternate", "of": "gina", "reason": "opted_out"} in skips
    assert {"user": "bob", "role": "alternate", "of": "frank", "reason": "busy"} in skips


def test_runtime_alternate_override() -> None:
    ctx, node, clock = dept_call({"sales": {"members": ["alice", "dave"]}}, fallback=None)
    d = Driver(ctx, clock=clock, facts={"alice": UserFacts(alternate="user:carol"),
                                        "dave": UserFacts(alternate="")})
    d.run(department.run(node, ctx))
    assert LoadFacts(("carol",)) in d.commands  # override named a user not loaded yet
    alice, dave = (rg.targets[0] for rg in d.of(RingGroup))
    assert alice.alternate == DialTarget("sip", "carol", user="carol", role="alternate")
    assert dave.alternate is None


# ------------------------------------------------------------------ failover


def test_all_fail_then_failover_number_then_voicemail() -> None:
    depts = {"sales": {"members": ["alice", "dave"],
                       "failover": {"number": "+15550109999"}, "mailbox": "sales-vm"}}
    ctx, node, clock = dept_call(depts)
    d = Driver(ctx, clock=clock, ring=[{"alice": 17}, {"dave": (19, "timeout")},
                                       {"failover": 34}])
    assert d.run(department.run(node, ctx)) == Stop("voicemail")
    fo = d.of(RingGroup)[-1]
    assert fo.targets == (DialTarget("pstn", "+15550109999", role="failover"),)
    assert fo.timeout == 60 and fo.caller_id is None
    assert d.of(Prompt) == [Prompt(media=("sound:/prompts/en/failover-greeting",),
                                   max_digits=0)]
    assert d.of(Record) == [Record("sales-vm")]
    assert d.kinds()[-3:] == ["RingGroup", "Prompt", "Record"]


def test_failover_number_answers() -> None:
    depts = {"sales": {"members": ["alice"], "failover": {"number": "+15550109999"}}}
    ctx, node, clock = dept_call(depts, alternate_caller_id="did")
    d = Driver(ctx, clock=clock, ring=[{}, {"failover": "answer"}])
    assert d.run(department.run(node, ctx)) == Stop("connected")
    assert d.of(RingGroup)[-1].caller_id == "+15559990000"
    assert not d.of(Record)


def test_default_failover_is_voicemail_in_department_mailbox() -> None:
    ctx, node, clock = dept_call({"support": {"members": ["erin"]}})
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Stop("voicemail")
    assert not d.of(RingGroup)
    assert d.of(Record) == [Record("support")]


def test_custom_greeting_and_failover_mailbox() -> None:
    depts = {"sales": {"members": ["alice"], "mailbox": "dept-box",
                       "failover": {"greeting": "closed", "mailbox": "fo-box"}}}
    ctx, node, clock = dept_call(depts)
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Stop("voicemail")
    assert d.of(Prompt)[0].media == ("sound:/prompts/en/closed",)
    assert d.of(Record) == [Record("fo-box")]


def test_missing_greeting_still_records(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str, ctx: CallContext) -> str:
        raise LookupError(f"no prompt {name}")

    monkeypatch.setattr(sys.modules["controller.core.prompts"], "resolve_prompt", missing)
    ctx, node, clock = dept_call({"sales": {"members": ["erin"]}})
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Stop("voicemail")
    assert not d.of(Prompt) and d.of(Record) == [Record("sales")]


def test_failover_without_voicemail_hangs_up() -> None:
    depts = {"sales": {"members": ["alice"],
                       "failover": {"number": "+15550109999", "voicemail": False}}}
    ctx, node, clock = dept_call(depts)
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Stop("hangup")
    assert not d.of(Record)


def test_unknown_department_falls_back() -> None:
    ctx, _, clock = dept_call({"sales": {"members": ["alice"]}})
    node = types.SimpleNamespace(id="n9", department="nope", fallback="x")
    d = Driver(ctx, clock=clock)
    assert d.run(department.run(node, ctx)) == Continue("fallback")
    assert trace(ctx, "error")


# ------------------------------------------------------------------ extension node


def ext_call(user: str, **node_kw: Any) -> tuple[CallContext, types.SimpleNamespace, Clock]:
    clock = Clock()
    ctx = make_ctx(flowset({}), "+15559990000", caller="+15550001111", clock=clock)
    node = types.SimpleNamespace(id="x1", user=user, **{"fallback": None, **node_kw})
    return ctx, node, clock


def test_extension_rings_user_with_alternate() -> None:
    ctx, node, clock = ext_call("dave", ring_time=30)
    d = Driver(ctx, clock=clock, ring=[{"dave": (17, "answer")}])
    assert d.run(extension.run(node, ctx)) == Stop("connected")
    rg = d.of(RingGroup)[0]
    assert rg.timeout == 30 and rg.targets[0].alternate is not None
    assert not rg.alternate_on_timeout and 19 in rg.alternate_causes  # 480: unreachable
    assert not d.of(GetSticky) and not d.of(NextCursor)


def test_extension_default_ring_time_and_fallback() -> None:
    ctx, node, clock = ext_call("alice")
    d = Driver(ctx, clock=clock)
    assert d.run(extension.run(node, ctx)) == Continue("fallback")
    assert d.of(RingGroup)[0].timeout == 20


def test_extension_opted_out_is_skipped() -> None:
    ctx, node, clock = ext_call("erin")
    d = Driver(ctx, clock=clock)
    assert d.run(extension.run(node, ctx)) == Continue("fallback")
    assert not d.of(RingGroup)
    assert trace(ctx, "skip") == [{"user": "erin", "reason": "opted_out"}]


def test_extension_opted_out_can_still_get_voicemail() -> None:
    ctx, node, clock = ext_call("erin", fallback="failover")
    d = Driver(ctx, clock=clock)
    assert d.run(extension.run(node, ctx)) == Stop("voicemail")
    assert d.of(Record) == [Record("erin")]


def test_ring_users_without_department_serial() -> None:
    ctx, _, clock = ext_call("alice")
    d = Driver(ctx, clock=clock, ring=[{}, {"bob": "answer"}])
    assert d.run(ring_users(["alice", "ghost", "bob"], ctx, ring_time=12)) == "bob"
    assert rung(d) == [["alice"], ["bob"]]
    assert {"user": "ghost", "reason": "unknown_user"} in trace(ctx, "skip")


def test_department_model_is_usable_directly() -> None:
    # ring_users works with any Department object, not only the flowset's
    ctx, _, clock = ext_call("alice")
    dept = Department(id="adhoc", strategy="simultaneous", members=["alice", "bob"])
    d = Driver(ctx, clock=clock)
    assert d.run(ring_users(dept.members, ctx, dept=dept)) is None
    assert rung(d) == [["alice", "bob"]]
