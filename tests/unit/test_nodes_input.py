"""input node: digit validation, retries, POST branches."""

from __future__ import annotations

from typing import Any

import pytest
from drive import drive, make_ctx, one_flow

from controller.core.model import CallContext, Continue, Digits, HttpPost, HttpResponse
from controller.core.nodes import input as input_node
from controller.core.nodes.input import InputNode


def _node(**kw: Any) -> InputNode:
    return InputNode.model_validate({"id": "acct", "type": "input", "prompt": "enter",
                                     "variable": "account", "digits": 6, **kw})


def _ctx() -> CallContext:
    return make_ctx(one_flow({"x": {"type": "hangup"}}))


def test_digits_are_stored_and_next() -> None:
    ctx = _ctx()
    run = drive(input_node.run(_node(next="n"), ctx), digits=[Digits("1234", "terminator")])
    assert run.result == Continue("next")
    assert ctx.vars["account"] == "1234"
    (p,) = run.prompts
    assert p.max_digits == 6 and p.terminator == "#" and p.barge_in


def test_invalid_characters_are_rejected_before_use() -> None:
    ctx = _ctx()
    run = drive(input_node.run(_node(retries=1, post={"url": "https://crm.example/x"},
                                     invalid_prompt="oops",
                                     error="e"), ctx),
                digits=[Digits("12A4", "max"), Digits("12;4", "max")])
    assert run.result == Continue("no_input")
    assert "account" not in ctx.vars
    assert not run.of(HttpPost)
    assert run.prompts[1].media[0] == "sound:oops"


def test_min_digits() -> None:
    run = drive(input_node.run(_node(min_digits=4, retries=1), _ctx()),
                digits=["12", "1234"])
    assert run.result == Continue("next")


def test_no_input_after_retries() -> None:
    run = drive(input_node.run(_node(retries=2), _ctx()))
    assert run.result == Continue("no_input")
    assert len(run.prompts) == 3


def _post(resp: Any, **kw: Any) -> tuple[Continue, HttpPost, Any]:
    ctx = _ctx()
    node = _node(post={"url": "https://crm.example/lookup", "timeout": 2}, next="ok",
                 error="err", **kw)
    run = drive(input_node.run(node, ctx), digits=["42"], http=[resp])
    (post,) = run.of(HttpPost)
    return run.result, post, node


def test_post_payload_and_success() -> None:
    result, post, node = _post(HttpResponse(200, {"ok": True}))
    assert result == Continue("next")
    assert node.branch("next") == "ok"
    assert post.url == "https://crm.example/lookup" and post.timeout == 2
    assert post.payload == {"call_id": "call-1", "did": "+15550100", "caller": "+15551234567",
                            "node": "acct", "account": "42"}


def test_post_failure_takes_error() -> None:
    result, _, node = _post(HttpResponse(0, None, "timeout"))
    assert result == Continue("error")
    assert node.branch("error") == "err"


def test_non_2xx_without_on_status_is_error() -> None:
    result, _, _ = _post(HttpResponse(500, None))
    assert result == Continue("error")


@pytest.mark.parametrize(
    ("status", "key", "target"),
    [(404, "status:404", "missing"), (403, "status:4xx", "denied"), (200, "next", "ok")],
)
def test_on_status(status: int, key: str, target: str) -> None:
    result, _, node = _post(HttpResponse(status, None),
                            on_status={"404": "missing", "4xx": "denied"})
    assert result == Continue(key)
    assert node.branch(key) == target


def test_match_on_body_field() -> None:
    match = {"customer.tier": {"gold": "vip"}, "open": {True: "open-now"}}
    result, _, node = _post(HttpResponse(200, {"customer": {"tier": "gold"}}), match=match)
    assert result == Continue("match:customer.tier=gold")
    assert node.branch(result.key) == "vip"
    result, _, node = _post(HttpResponse(200, {"open": True}), match=match)
    assert node.branch(result.key) == "open-now"
    result, _, _ = _post(HttpResponse(200, {"customer": {"tier": "tin"}}), match=match)
    assert result == Continue("next")


def test_sensitive_digits_stay_out_of_the_trace() -> None:
    ctx = _ctx()
    run = drive(input_node.run(_node(sensitive=True), ctx), digits=["9999"])
    logged = [e.data for e in ctx.trace if e.kind == "input"]
    assert logged == [{"node": "acct", "variable": "account", "digits": "****"}]
    # The runtime logs each key it receives unless the prompt says they are sensitive.
    assert run.prompts and all(p.sensitive for p in run.prompts)
    run = drive(input_node.run(_node(), _ctx()), digits=["9999"])
    assert not any(p.sensitive for p in run.prompts)
