"""A prompt found nowhere is logged in the call's trace when a call needs it (lint warns
at publish; Asterisk itself only logs "Playback failed" and goes on)."""

from __future__ import annotations

from drive import make_ctx, one_flow

from controller.core.prompts import PROJECT_ROOT, media


def test_missing_prompt_is_traced_and_still_played_by_name() -> None:
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}))
    uris = media(["welcome", "no-such-prompt"], ctx)
    assert uris == (f"sound:{PROJECT_ROOT / 'prompts' / 'en' / 'welcome'}",
                    "sound:no-such-prompt")
    missing = [e.data for e in ctx.trace if e.kind == "prompt_missing"]
    assert missing == [{"prompt": "no-such-prompt", "language": "en"}]


def test_found_prompts_are_not_traced() -> None:
    ctx = make_ctx(one_flow({"x": {"type": "hangup"}}))
    media(["welcome", "main-menu"], ctx)
    assert not [e for e in ctx.trace if e.kind == "prompt_missing"]
