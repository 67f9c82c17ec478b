"""message, voicemail, goto, hangup nodes."""

from __future__ import annotations

from drive import drive, make_ctx, one_flow

from controller.core.flows.schema import NODE_ADAPTER
from controller.core.model import CallContext, Continue, Hangup, Prompt, Record, Stop
from controller.core.nodes import goto, hangup, message, voicemail


def _ctx(**departments: object) -> CallContext:
    fs = one_flow({"x": {"type": "hangup"}})
    if departments:
        data = fs.model_dump(mode="json")
        data["departments"].update(departments)
        fs = type(fs).model_validate(data)
    return make_ctx(fs)


def test_message_plays_all_prompts_without_digits() -> None:
    node = NODE_ADAPTER.validate_python({"id": "m", "type": "message",
                                         "prompts": ["a", "b"], "next": "n"})
    run = drive(message.run(node, _ctx()))
    assert run.result == Continue("next")
    assert run.commands == [Prompt(media=("sound:a", "sound:b"), max_digits=0)]
    assert node.branch("next") == "n"


def test_voicemail_user_mailbox_greeting_goodbye() -> None:
    node = NODE_ADAPTER.validate_python({"id": "vm", "type": "voicemail", "mailbox": "user:u1",
                                         "goodbye": "bye", "max_seconds": 60})
    ctx = _ctx()
    run = drive(voicemail.run(node, ctx))
    assert run.result == Stop("voicemail")
    greeting, rec, bye = run.commands
    assert greeting == Prompt(media=("sound:vm-intro",), max_digits=0)
    assert rec == Record(mailbox="u1", max_seconds=60)
    assert bye == Prompt(media=("sound:bye",), max_digits=0)
    assert any(e.kind == "voicemail" and e.data["mailbox"] == "u1" for e in ctx.trace)


def test_voicemail_department_mailbox_and_no_greeting() -> None:
    ctx = _ctx(ops={"members": [], "failover": {"mailbox": "ops-box"}})
    node = NODE_ADAPTER.validate_python({"id": "vm", "type": "voicemail",
                                         "mailbox": "department:ops", "greeting": None})
    run = drive(voicemail.run(node, ctx))
    assert run.commands == [Record(mailbox="ops-box")]
    plain = NODE_ADAPTER.validate_python({"id": "vm", "type": "voicemail",
                                          "mailbox": "department:team"})
    assert plain.resolve_mailbox(ctx.flowset) == "team"


def test_hangup_cause() -> None:
    node = NODE_ADAPTER.validate_python({"id": "h", "type": "hangup", "cause": 21})
    run = drive(hangup.run(node, _ctx()))
    assert run.commands == [Hangup(21)] and run.result == Stop("hangup")


def test_goto_continues() -> None:
    node = NODE_ADAPTER.validate_python({"id": "g", "type": "goto", "node": "x"})
    run = drive(goto.run(node, _ctx()))
    assert run.result == Continue("goto") and run.commands == []
    assert node.branch("goto") == "x"
