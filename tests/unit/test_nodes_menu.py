"""menu and language nodes: barge-in, no-input repeats, invalid keys, operator, repeat key."""

from __future__ import annotations

import pytest
from drive import drive, make_ctx, one_flow

from controller.core.model import CallContext, Continue, Digits
from controller.core.nodes import language, menu
from controller.core.nodes.language import LanguageNode
from controller.core.nodes.menu import MenuNode


def _menu(**kw: object) -> MenuNode:
    base = {"id": "m", "type": "menu", "prompt": ["hello", "choose"],
            "options": {"1": "a", "2": "b"}}
    return MenuNode.model_validate({**base, **kw})


def _ctx() -> CallContext:
    return make_ctx(one_flow({"x": {"type": "hangup"}}))


def test_digit_during_prompt_counts_barge_in() -> None:
    run = drive(menu.run(_menu(), _ctx()), digits=["2"])
    assert run.result == Continue("2")
    (prompt,) = run.prompts
    assert prompt.barge_in and prompt.max_digits == 1 and prompt.timeout == 5.0
    assert prompt.media == ("sound:hello", "sound:choose")


def test_no_input_repeats_retries_times_then_no_input() -> None:
    run = drive(menu.run(_menu(retries=2), _ctx()), digits=["", "", ""])
    assert run.result == Continue("no_input")
    assert len(run.prompts) == 3  # played 1 + retries times
    assert all(p.media == ("sound:hello", "sound:choose") for p in run.prompts)


def test_no_input_then_valid_key() -> None:
    run = drive(menu.run(_menu(), _ctx()), digits=["", "1"])
    assert run.result == Continue("1")
    assert len(run.prompts) == 2


def test_invalid_key_plays_invalid_prompt_then_repeats_then_invalid() -> None:
    ctx = _ctx()
    run = drive(menu.run(_menu(retries=1, invalid_prompt="oops"), ctx), digits=["7", "9"])
    assert run.result == Continue("invalid")
    first, second = run.prompts
    assert first.media == ("sound:hello", "sound:choose")
    assert second.media == ("sound:oops", "sound:hello", "sound:choose")
    kinds = [e.data.get("result") for e in ctx.trace if e.kind == "digits"]
    assert kinds == ["invalid", "invalid"]


def test_last_failure_decides_the_outcome() -> None:
    run = drive(menu.run(_menu(retries=1), _ctx()), digits=["7", ""])
    assert run.result == Continue("no_input")


def test_operator_key_zero() -> None:
    assert drive(menu.run(_menu(operator="op"), _ctx()), digits=["0"]).result == Continue("0")
    # without an operator, 0 is a wrong key
    run = drive(menu.run(_menu(retries=0), _ctx()), digits=["0"])
    assert run.result == Continue("invalid")


def test_repeat_key_replays_without_counting() -> None:
    run = drive(menu.run(_menu(retries=0), _ctx()), digits=["*", "*", "1"])
    assert run.result == Continue("1")
    assert len(run.prompts) == 3


def test_repeat_key_disabled_is_a_wrong_key() -> None:
    run = drive(menu.run(_menu(retries=0, repeat_key=None), _ctx()), digits=["*"])
    assert run.result == Continue("invalid")


def test_repeat_key_is_capped() -> None:
    run = drive(menu.run(_menu(retries=0), _ctx()), digits=["*"] * (menu.MAX_REPEATS + 1))
    assert run.result == Continue("invalid")


def test_only_dtmf_characters_are_accepted() -> None:
    run = drive(menu.run(_menu(retries=0), _ctx()), digits=[Digits("A", "max")])
    assert run.result == Continue("invalid")


@pytest.mark.parametrize(
    ("key", "expected"),
    [("1", "a"), ("0", "op"), ("no_input", "fb"), ("invalid", "bad"), ("fallback", "fb"),
     ("5", None)],
)
def test_menu_branches(key: str, expected: str | None) -> None:
    node = _menu(operator="op", invalid="bad", fallback="fb")
    assert node.branch(key) == expected


def test_menu_without_handlers_has_no_branch() -> None:
    assert _menu().branch("no_input") is None
    assert _menu().branch("invalid") is None


def test_language_node_sets_language() -> None:
    node = LanguageNode.model_validate({
        "id": "lang", "type": "language", "prompt": "choose-language",
        "options": {"1": "en", "2": {"language": "es", "next": "es-menu"}}, "next": "menu",
    })
    ctx = _ctx()
    run = drive(language.run(node, ctx), digits=["2"])
    assert run.result == Continue("2")
    assert ctx.language == "es"
    assert node.branch("2") == "es-menu"
    assert node.branch("1") == "menu"
    assert any(e.kind == "language" and e.data["language"] == "es" for e in ctx.trace)


def test_language_node_no_input_keeps_language() -> None:
    node = LanguageNode.model_validate({
        "id": "lang", "type": "language", "prompt": "x", "options": {"1": "es"},
        "next": "menu", "retries": 0,
    })
    ctx = _ctx()
    assert drive(language.run(node, ctx)).result == Continue("no_input")
    assert ctx.language == "en"
