"""The engine: walking flows, branches, goto, loop limit, language and prompt resolution."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from drive import answered, drive, make_ctx, one_flow

from controller.core import engine, prompts
from controller.core.flows.loader import load
from controller.core.flows.schema import FLOW_VAR, current_flow
from controller.core.model import Digits, Hangup, Prompt, Record, RingGroup, Stop
from controller.core.nodes import HANDLERS

ROOT = Path(__file__).resolve().parents[2]


def test_every_node_type_has_a_handler() -> None:
    from controller.core.nodes import NODE_TYPES

    assert set(HANDLERS) == set(NODE_TYPES)


def test_no_flow_for_did() -> None:
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}), did="+19999")
    run = drive(engine.run_call(ctx))
    assert run.result == Stop("no_flow") and run.commands == []
    assert drive(engine.run_call(make_ctx(None))).result == Stop("no_flow")


def test_did_matches_with_or_without_plus() -> None:
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}), did="15550100")
    assert drive(engine.run_call(ctx)).result == Stop("hangup")


def test_menu_to_department_connected() -> None:
    fs = one_flow({
        "menu": {"type": "menu", "prompt": "p", "options": {"1": "team"}},
        "team": {"type": "department", "department": "team"},
    })
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx), digits=["1"], ring=[answered])
    assert run.result == Stop("connected")
    assert ctx.path == ["menu", "team"]
    nodes = [e.data for e in ctx.trace if e.kind == "node"]
    assert nodes == [{"id": "menu", "type": "menu"}, {"id": "team", "type": "department"}]
    assert run.of(RingGroup)


def test_department_fallback_node() -> None:
    fs = one_flow({
        "team": {"type": "department", "department": "team", "fallback": "sorry"},
        "sorry": {"type": "message", "prompt": "sorry"},
    })
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    assert ctx.path == ["team", "sorry"]
    assert run.result == Stop("hangup")  # message without next
    assert run.commands[-1] == Hangup(16)


def test_extension_failover_voicemail() -> None:
    fs = one_flow({"ext": {"type": "extension", "user": "u1", "ring_time": 15}})
    run = drive(engine.run_call(make_ctx(fs)))
    assert run.result == Stop("voicemail")
    assert run.of(RingGroup)[0].timeout == 15
    assert run.of(Record)[0].mailbox == "u1"


def test_menu_no_input_branch() -> None:
    fs = one_flow({
        "menu": {"type": "menu", "prompt": "p", "options": {"1": "vm"}, "retries": 1,
                 "no_input": "vm"},
        "vm": {"type": "voicemail", "mailbox": "main"},
    })
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    assert run.result == Stop("voicemail")
    assert len([p for p in run.prompts if p.max_digits]) == 2
    assert ctx.path == ["menu", "vm"]


def test_missing_branch_hangs_up_and_logs() -> None:
    fs = one_flow({"menu": {"type": "menu", "prompt": "p", "options": {"1": "menu"},
                            "retries": 0}})
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    assert run.result == Stop("hangup") and run.commands[-1] == Hangup(16)
    assert any(e.kind == "no_branch" and e.data["key"] == "no_input" for e in ctx.trace)


def test_goto_flow_switches_flow() -> None:
    fs = one_flow(
        {"jump": {"type": "goto", "flow": "other"}},
        more_flows={"other": {"entry": "bye", "nodes": {
            "bye": {"type": "message", "prompt": "bye", "next": "end"},
            "end": {"type": "hangup", "cause": 17},
            "side": {"type": "hangup", "cause": 18}}}},
    )
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    assert ctx.path == ["jump", "bye", "end"]
    assert run.commands[-1] == Hangup(17)
    assert ctx.vars[FLOW_VAR] == "other"
    assert current_flow(ctx) is fs.flows["other"]


def test_goto_flow_node_and_goto_node() -> None:
    fs = one_flow(
        {"jump": {"type": "goto", "flow": "other", "node": "side"}},
        more_flows={"other": {"entry": "end", "nodes": {
            "end": {"type": "hangup"}, "side": {"type": "goto", "node": "end2"},
            "end2": {"type": "hangup", "cause": 18}}}},
    )
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    assert ctx.path == ["jump", "side", "end2"] and run.commands == [Hangup(18)]


def test_loop_limit() -> None:
    fs = one_flow({
        "a": {"type": "message", "prompt": "p", "next": "b"},
        "b": {"type": "goto", "node": "a"},
    })
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx))
    # the flow is closed at its Hangup, as in a live call (the record says "hangup")
    assert run.result == Stop("hangup")
    assert run.commands[-1] == Hangup(16)
    assert len(ctx.path) == engine.MAX_STEPS
    assert any(e.kind == "loop_limit" for e in ctx.trace)


def test_caller_hangup_closes_cleanly() -> None:
    fs = one_flow({"menu": {"type": "menu", "prompt": "p", "options": {"1": "menu"}}})
    ctx = make_ctx(fs)
    run = drive(engine.run_call(ctx), stop_at=Prompt)
    assert not run.finished and ctx.path == ["menu"]


def test_node_error_is_logged_and_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(node: Any, ctx: Any) -> Any:
        raise RuntimeError("bug")
        yield  # pragma: no cover

    monkeypatch.setitem(HANDLERS, "hangup", boom)
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}))
    with pytest.raises(RuntimeError):
        drive(engine.run_call(ctx))
    assert ctx.trace[-1].kind == "error" and "bug" in ctx.trace[-1].data["error"]


# ------------------------------------------------------------------ language and prompts


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    for rel in ("en/menu.wav", "en/only-en.wav", "es/menu.gsm", "es/sub/intro.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"RIFF")
    prompts.clear_cache()
    yield tmp_path
    prompts.clear_cache()


def _lang_flow(prompt_dir: Path, **flow: Any) -> Any:
    return one_flow({
        "lang": {"type": "language", "prompt": "only-en", "options": {"1": "en", "2": "es"},
                 "next": "menu"},
        "menu": {"type": "menu", "prompt": ["menu", "only-en", "beep"],
                 "options": {"1": "bye"}},
        "bye": {"type": "hangup"},
    }, settings={"prompts_dir": str(prompt_dir)}, **flow)


def test_language_switch_changes_later_prompts(prompt_dir: Path) -> None:
    ctx = make_ctx(_lang_flow(prompt_dir))
    run = drive(engine.run_call(ctx), digits=["2", "1"])
    lang_prompt, menu_prompt = run.prompts
    assert lang_prompt.media == (f"sound:{prompt_dir}/en/only-en",)
    assert menu_prompt.media == (
        f"sound:{prompt_dir}/es/menu",       # Spanish file
        f"sound:{prompt_dir}/en/only-en",    # no Spanish one: the default language's
        "sound:beep",                        # neither: Asterisk's stock sound
    )
    assert ctx.language == "es"


def test_flow_language_is_the_starting_language(prompt_dir: Path) -> None:
    ctx = make_ctx(_lang_flow(prompt_dir, language="es"), did="+15550100")
    drive(engine.run_call(ctx), stop_at=Prompt)
    assert ctx.language == "es"


def test_resolve_prompt_names(prompt_dir: Path) -> None:
    ctx = make_ctx(_lang_flow(prompt_dir))
    ctx.language = "es"
    assert prompts.resolve_prompt("sub/intro", ctx) == f"sound:{prompt_dir}/es/sub/intro"
    for bad in ("../etc/passwd", "/abs", "Upper", "a//b", "a/", "x.wav", ""):
        with pytest.raises(ValueError):
            prompts.resolve_prompt(bad, ctx)


def test_prompt_cache_and_exists(prompt_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _lang_flow(prompt_dir).settings
    stock = prompt_dir / "stock"
    (stock / "en").mkdir(parents=True)
    (stock / "en" / "beep.gsm").write_bytes(b"x")
    monkeypatch.setattr(prompts, "STOCK_SOUNDS_DIR", stock)
    assert prompts.prompt_exists("menu", settings)
    assert prompts.prompt_exists("beep", settings)
    assert not prompts.prompt_exists("nothing", settings)
    (prompt_dir / "en" / "new.wav").write_bytes(b"x")
    assert not prompts.prompt_exists("new", settings)  # cached listing
    prompts.clear_cache()
    assert prompts.prompt_exists("new", settings)


def test_relative_prompts_dir_is_project_relative() -> None:
    assert prompts.prompts_root(None) == ROOT / "prompts"


# ------------------------------------------------------------------ the example flows


@pytest.fixture(scope="module")
def examples() -> Any:
    result = load([ROOT / "flows" / "examples"])
    assert result.ok, [str(p) for p in result.problems]
    return result.flowset


def test_example_open_hours_sales_answers(examples: Any) -> None:
    # Monday 10:00 in New York
    ctx = make_ctx(examples, now=datetime(2025, 6, 2, 14, 0, tzinfo=UTC))
    run = drive(engine.run_call(ctx), digits=["1"], ring=[answered])
    assert run.result == Stop("connected")
    assert ctx.path == ["office-hours", "welcome", "main-menu", "sales"]
    assert run.of(RingGroup)[0].targets[0].address == "agent1"


def test_example_spanish_then_support(examples: Any) -> None:
    ctx = make_ctx(examples, did="+15550101", now=datetime(2025, 6, 2, 14, 0, tzinfo=UTC))
    run = drive(engine.run_call(ctx), digits=["9", "2", "2", "1"], ring=[answered])
    assert ctx.path == ["office-hours", "welcome", "main-menu", "choose-language",
                        "main-menu", "support-menu", "support"]
    assert run.result == Stop("connected")
    assert "/es/support-menu" in run.prompts[-1].media[0]


def test_example_closed_goes_to_voicemail(examples: Any) -> None:
    ctx = make_ctx(examples, now=datetime(2025, 12, 25, 15, 0, tzinfo=UTC))
    run = drive(engine.run_call(ctx))
    assert ctx.path == ["office-hours", "closed", "after-hours-voicemail"]
    assert run.result == Stop("voicemail")
    assert run.of(Record)[0].mailbox == "main"


def test_example_direct_line(examples: Any) -> None:
    ctx = make_ctx(examples, did="+15550199")
    run = drive(engine.run_call(ctx), ring=[answered])
    assert ctx.path == ["greeting", "alice"] and run.result == Stop("connected")


def test_digits_result_types() -> None:
    # the runtime answers collecting prompts with Digits; anything else counts as no input
    fs = one_flow({"m": {"type": "menu", "prompt": "p", "options": {"1": "m"}, "retries": 0,
                         "no_input": "h"}, "h": {"type": "hangup"}})
    run = drive(engine.run_call(make_ctx(fs)), digits=[Digits("", "timeout")])
    assert run.result == Stop("hangup")
