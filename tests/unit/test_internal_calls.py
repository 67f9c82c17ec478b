"""Issue 14 item 3, pure parts: extensions in the directory, where a registered phone's call
goes, what the engine does with it, the caller's name on the legs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from drive import Clock, Driver, trace
from flowschema import schema_errors
from pydantic import ValidationError

from controller.core import engine
from controller.core.callerid import display_name, presentable
from controller.core.calllog import RECORD_FIELDS, build_record
from controller.core.flows import loader
from controller.core.flows.directory import User
from controller.core.flows.loader import load_text
from controller.core.flows.schema import FlowSet
from controller.core.internal import Route, caller_of, route
from controller.core.model import CallContext, Hangup, Record, RingGroup, Stop, UserFacts

USERS = {
    "alice": {"name": "Alice Adams", "endpoint": "phone1", "extension": "201"},
    "bob": {"name": "Bob", "endpoint": "agent1", "extension": 202, "alternate": "user:carol"},
    "carol": {"endpoint": "agent2", "extension": "0203"},
    "dave": {"endpoint": "agent3", "extension": "204", "receive_calls": False,
             "voicemail": False},
    "erin": {"endpoint": "agent4", "extension": "205", "receive_calls": False},
}


def fs(**settings: Any) -> FlowSet:
    return FlowSet.model_validate({
        "settings": settings, "users": USERS,
        "flows": {"main": {"dids": ["+15550100", "300"], "entry": "h",
                           "nodes": {"h": {"type": "hangup"}}}}})


# ------------------------------------------------------------------------------ directory

def test_extension_is_digits_two_to_six_long_and_an_int_is_read_as_digits() -> None:
    f = fs()
    assert f.users["bob"].extension == "202" and f.users["carol"].extension == "0203"
    assert User(id="x", endpoint="e").extension is None and User(id="x", endpoint="e").voicemail
    for bad in ("1", "1234567", "12a", "+101", "10 1"):
        with pytest.raises(ValidationError, match="invalid extension"):
            User(id="x", endpoint="e", extension=bad)


@pytest.mark.parametrize("number", ["112", "911", "999", "000"])
def test_an_emergency_number_is_never_an_extension(number: str) -> None:
    with pytest.raises(ValidationError, match="emergency number"):
        User(id="x", endpoint="e", extension=number)


def test_phones_caller_id_must_be_e164() -> None:
    assert fs(phones_caller_id="+1 555 0100").settings.phones_caller_id == "+15550100"
    with pytest.raises(ValidationError, match="not a valid external number"):
        fs(phones_caller_id="0101")
    assert fs().settings.phones_external is False


def test_lint_rejects_an_extension_used_twice_or_equal_to_a_did(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(
        "users:\n"
        "  a: {endpoint: agent1, extension: 101}\n"
        "  b: {endpoint: agent2, extension: \"101\"}\n"
        "  c: {endpoint: agent3, extension: \"301\"}\n"
        "flows:\n"
        "  m: {dids: [\"+301\"], entry: h, nodes: {h: {type: hangup}}}\n")
    res = loader.load([tmp_path])
    errs = {(p.path, p.line, p.message) for p in res.errors}
    assert ("users.b.extension", 3, "extension 101 is also 'a''s") in errs, errs
    assert ("users.c.extension", 4, "extension 301 is also a DID of a flow") in errs
    assert len(res.errors) == 2


@pytest.mark.parametrize(("ext", "ok"), [
    ('"101"', True), ("101", True), ('"0101"', True), ("0101", True), ("999999", True),
    ('"1"', False), ("7", False), ("1234567", False), ('"12a"', False), ("112", False),
    ('"911"', False), ('"000"', False), ("000", False), ("null", True),
])
def test_the_editor_schema_agrees_with_validate_on_extensions(ext: str, ok: bool) -> None:
    text = f"users:\n  a: {{endpoint: agent1, extension: {ext}}}\n"
    assert (not load_text(text).errors) is ok, load_text(text).errors
    assert (schema_errors(text) == []) is ok, schema_errors(text)


def test_a_phones_record_has_the_fields_of_every_record() -> None:
    rec = build_record(call_id="c", did="205", caller="201", flow_version=1, started=1.0,
                       ended=2.0, result="completed", trace=[], origin="internal",
                       from_user="alice", from_endpoint="phone1", route="extension")
    carrier = build_record(call_id="c", did="+15550100", caller="", flow_version=1,
                           started=1.0, ended=2.0, result="completed", trace=[])
    assert list(rec) == list(carrier) == list(RECORD_FIELDS)
    assert (rec["origin"], rec["from_user"], rec["route"]) == ("internal", "alice", "extension")
    assert (carrier["origin"], carrier["from_user"], carrier["route"]) == ("carrier", None, None)


# -------------------------------------------------------------------------------- routing

@pytest.mark.parametrize(("dialled", "want"), [
    ("201", Route("extension", "alice")),
    ("0203", Route("extension", "carol")),
    ("+15550100", Route("did", "+15550100")),
    ("15550100", Route("did", "15550100")),  # the DID without its '+'
    ("300", Route("did", "300")),
    ("112", Route("emergency", "112")),
    ("+442079460000", Route("refused", "+442079460000", 21, "external_refused")),
    ("00442079460000", Route("refused", "+442079460000", 21, "external_refused")),
    ("2125550123", Route("refused", "2125550123", 21, "external_refused")),
    ("299", Route("no_route", "299", 1, "no_route")),  # nobody's extension
    ("0123456789", Route("no_route", "0123456789", 1, "no_route")),  # not E.164
    ("+0123", Route("no_route", "+0123", 1, "no_route")),
    ("", Route("no_route", "", 1, "no_route")),  # malformed in the dialplan
])
def test_route_of_a_dialled_number(dialled: str, want: Route) -> None:
    assert route(fs(), dialled) == want


def test_external_numbers_go_out_only_when_allowed() -> None:
    assert route(fs(phones_external=True), "+442079460000") == Route("external", "+442079460000")
    assert route(fs(phones_external=True), "00442079460000").target == "+442079460000"
    assert route(fs(phones_external=True), "299").kind == "no_route"
    assert route(None, "201").kind == "no_route"  # nothing published


def test_the_caller_is_the_phones_user_never_its_from_header() -> None:
    f = fs()
    who = caller_of(f, "phone1")
    assert (who.number, who.name, who.user) == ("201", "Alice Adams", "alice")
    assert caller_of(f, "agent2").name == "carol"  # no name: the user id
    assert caller_of(f, "phone3").user is None and caller_of(None, "phone1").number == ""


# --------------------------------------------------------------------------------- engine

def internal_ctx(kind: str, target: str, *, flowset: FlowSet | None = None,
                 from_user: str = "alice", clock: Clock | None = None) -> CallContext:
    clock = clock or Clock()
    return CallContext(call_id="c1", did=target, caller="201", caller_name="Alice Adams",
                       flowset=flowset or fs(), now=clock.now, target=(kind, target),
                       record={"from_user": from_user})


def test_an_extension_call_rings_the_user_with_their_alternate() -> None:
    ctx = internal_ctx("extension", "bob")
    d = Driver(ctx, ring=[{"bob": (17, "answer")}])
    assert d.run(engine.run_call(ctx)) == Stop("connected")
    (rg,) = d.of(RingGroup)
    assert [t.user for t in rg.targets] == ["bob"] and rg.timeout == 20
    assert rg.targets[0].alternate is not None and rg.targets[0].alternate.user == "carol"
    assert ctx.path == ["ext-202"] and ctx.answered_by == "carol"


def test_an_opted_out_user_is_not_rung_and_their_voicemail_records() -> None:
    ctx = internal_ctx("extension", "erin")
    d = Driver(ctx)
    assert d.run(engine.run_call(ctx)) == Stop("voicemail")
    assert not d.of(RingGroup) and d.of(Record) == [Record("erin")]
    assert {"user": "erin", "reason": "opted_out"} in trace(ctx, "skip")


def test_opted_out_with_voicemail_off_hangs_up_with_480() -> None:
    ctx = internal_ctx("extension", "dave")
    d = Driver(ctx)
    assert d.run(engine.run_call(ctx)) == Stop("hangup")
    assert not d.of(RingGroup) and not d.of(Record) and d.of(Hangup) == [Hangup(19)]


def test_voicemail_off_busy_user_gets_486_and_no_answer_gets_480() -> None:
    users = {**USERS, "dave": {**USERS["dave"], "receive_calls": True}}
    f = FlowSet.model_validate({"users": users})
    ctx = internal_ctx("extension", "dave", flowset=f)
    d = Driver(ctx, facts={"dave": UserFacts(busy=True)})
    assert d.run(engine.run_call(ctx)) == Stop("hangup") and d.of(Hangup) == [Hangup(17)]
    ctx = internal_ctx("extension", "dave", flowset=f)
    d = Driver(ctx, ring=[{"dave": 17}])  # the phone answers 486 itself
    assert d.run(engine.run_call(ctx)) == Stop("hangup") and d.of(Hangup) == [Hangup(17)]
    ctx = internal_ctx("extension", "dave", flowset=f)
    d = Driver(ctx, ring=[{"dave": "timeout"}])
    assert d.run(engine.run_call(ctx)) == Stop("hangup") and d.of(Hangup) == [Hangup(19)]


def test_calling_ones_own_extension_rings_nobody() -> None:
    ctx = internal_ctx("extension", "alice", from_user="alice")
    d = Driver(ctx)
    assert d.run(engine.run_call(ctx)) == Stop("voicemail")
    assert not d.of(RingGroup) and {"user": "alice", "reason": "self_call"} in trace(ctx, "skip")


def test_an_external_call_goes_out_through_the_trunk_with_the_configured_caller_id() -> None:
    ctx = internal_ctx("external", "+442079460000",
                       flowset=fs(phones_external=True, phones_caller_id="+15550199"))
    d = Driver(ctx, ring=[{"primary": "answer"}])
    assert d.run(engine.run_call(ctx)) == Stop("connected")
    (rg,) = d.of(RingGroup)
    assert [(t.kind, t.address, t.user) for t in rg.targets] == \
        [("pstn", "+442079460000", None)]
    assert rg.caller_id == "+15550199" and ctx.answered_by == "+442079460000"
    assert ctx.path == ["external"]


@pytest.mark.parametrize(("spec", "cause"), [(17, 17), ("timeout", 19), (1, 1),
                                              ("no_contact", 19)])
def test_an_external_call_not_answered_hangs_up_with_the_far_ends_cause(
        spec: Any, cause: int) -> None:
    ctx = internal_ctx("external", "+442079460000", flowset=fs(phones_external=True))
    d = Driver(ctx, ring=[{"primary": spec}])
    assert d.run(engine.run_call(ctx)) == Stop("hangup")
    assert d.of(Hangup) == [Hangup(cause)]


# ------------------------------------------------------------------------------ caller id

def test_presentable_carries_a_clean_name() -> None:
    assert presentable("201", "Alice Adams") == '"Alice Adams" <201>'
    assert presentable("201", "") == "<201>"
    assert presentable("", "Alice") is None
    assert presentable("201", 'Eve" <sip:x>\r\nX: y') == '"Eve sipxX y" <201>'
    assert display_name("José Müller-Ñ") == "José Müller-Ñ"
    assert len(display_name("a" * 100)) == 40
