"""``menu`` node: play a prompt, collect one key, branch on it.

Keys 1-9 lead to ``options``, 0 to ``operator``, ``repeat_key`` (default ``*``) replays the
prompt. Barge-in: a key pressed during the prompt counts. No key within ``timeout`` seconds, or
a wrong key (after ``invalid_prompt``), replays the prompt; after ``1 + retries`` plays without
a valid key the menu ends with ``no_input`` or ``invalid`` (whichever the last try was), each
falling back to ``fallback`` and then to a hangup (see ``MenuNode.branch``).
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from typing import Any

from controller.core.flows.schema import LanguageNode, MenuNode
from controller.core.model import CallContext, Command, Continue, Digits, NodeGen, Prompt
from controller.core.prompts import media, resolve_prompt

__all__ = ["DTMF_KEYS", "MAX_REPEATS", "collect_choice", "run"]

DTMF_KEYS = frozenset("0123456789*#")
MAX_REPEATS = 10
"""Replays on ``repeat_key`` per visit; more presses count as wrong keys."""


def collect_choice(
    node: MenuNode | LanguageNode, ctx: CallContext, valid: Collection[str]
) -> Generator[Command, Any, str]:
    """Prompt until a key in ``valid`` is pressed; return it, or ``no_input``/``invalid``
    when the tries are used up."""
    prompt = media(node.prompt, ctx)
    play = prompt
    failures = repeats = 0
    while True:
        res = yield Prompt(media=play, max_digits=1, timeout=node.timeout, barge_in=True)
        key = res.digits[:1] if isinstance(res, Digits) else ""
        if key and key not in DTMF_KEYS:
            key = "?"
        if key and key in valid:
            ctx.log("digits", node=node.id, digits=key)
            return key
        if key and key == node.repeat_key and repeats < MAX_REPEATS:
            repeats += 1
            ctx.log("digits", node=node.id, digits=key, result="repeat")
            play = prompt
            continue
        failures += 1
        outcome = "invalid" if key else "no_input"
        ctx.log("digits", node=node.id, digits=key, result=outcome, attempt=failures)
        if failures > node.retries:
            return outcome
        if outcome == "invalid":
            play = (resolve_prompt(node.invalid_prompt, ctx), *prompt)
        else:
            play = prompt


def run(node: MenuNode, ctx: CallContext) -> NodeGen:
    key = yield from collect_choice(node, ctx, node.valid_keys())
    return Continue(key)
