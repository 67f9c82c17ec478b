"""``input`` node: collect digits into ``ctx.vars[variable]``; optionally POST them.

Digits are validated before any use: only ``0-9 * #``, at least ``min_digits``. An empty or
invalid entry replays the prompt (after ``invalid_prompt`` for an invalid one); after
``1 + retries`` tries the node ends with ``no_input``.

Without ``post`` the outcome is ``next``. With ``post`` the node sends
``{"call_id", "did", "caller", "node", <variable>: <digits>}`` as JSON and branches on the
answer, first match wins:

1. the request failed (no HTTP status: timeout, refused) -> ``error``
2. ``match``: the first ``field`` of the JSON body whose value is listed -> that node
3. ``on_status``: the exact status (``"404"``), then its class (``"4xx"``)
4. a 2xx status -> ``next``; anything else -> ``error``

"""

from __future__ import annotations

from typing import Any

from controller.core.flows.schema import InputNode
from controller.core.model import (
    CallContext,
    Continue,
    Digits,
    HttpPost,
    HttpResponse,
    NodeGen,
    Prompt,
)
from controller.core.prompts import media, resolve_prompt

__all__ = ["ALLOWED", "field_value", "run", "valid_digits"]

ALLOWED = frozenset("0123456789*#")


def valid_digits(digits: str, node: InputNode) -> bool:
    return (
        node.min_digits <= len(digits) <= node.digits
        and all(c in ALLOWED for c in digits)
    )


def field_value(body: Any, path: str) -> str | None:
    """``body["a"]["b"]`` for ``"a.b"`` as a string (``true``/``false`` for booleans), or
    None when absent or not a scalar."""
    cur = body
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, int | float | str):
        return str(cur)
    return None


def _collect(node: InputNode, ctx: CallContext) -> Any:
    prompt = media(node.prompt, ctx)
    play = prompt
    failures = 0
    while True:
        res = yield Prompt(
            media=play, max_digits=node.digits, timeout=node.timeout,
            inter_digit_timeout=node.inter_digit_timeout, terminator=node.terminator,
            barge_in=True, sensitive=node.sensitive,
        )
        digits = res.digits if isinstance(res, Digits) else ""
        if digits and valid_digits(digits, node):
            return digits
        failures += 1
        outcome = "invalid" if digits else "no_input"
        ctx.log("input", node=node.id, result=outcome, attempt=failures,
                length=len(digits))
        if failures > node.retries:
            return None
        play = (resolve_prompt(node.invalid_prompt, ctx), *prompt) if digits else prompt


def run(node: InputNode, ctx: CallContext) -> NodeGen:
    digits = yield from _collect(node, ctx)
    if digits is None:
        return Continue("no_input")
    ctx.vars[node.variable] = digits
    ctx.log("input", node=node.id, variable=node.variable,
            digits="*" * len(digits) if node.sensitive else digits)
    if node.post is None:
        return Continue("next")

    payload = {"call_id": ctx.call_id, "did": ctx.did, "caller": ctx.caller,
               "node": node.id, node.variable: digits}
    resp = yield HttpPost(url=node.post.url, payload=payload, timeout=node.post.timeout)
    if not isinstance(resp, HttpResponse) or resp.status == 0:
        error = getattr(resp, "error", None) or "no response"
        ctx.log("http", node=node.id, url=node.post.url, status=0, error=error)
        return Continue("error")
    ctx.log("http", node=node.id, url=node.post.url, status=resp.status)
    if isinstance(resp.body, dict):
        for fld, cases in node.match.items():
            value = field_value(resp.body, fld)
            if value is not None and value in cases:
                return Continue(f"match:{fld}={value}")
    for key in (str(resp.status), f"{resp.status // 100}xx"):
        if key in node.on_status:
            return Continue(f"status:{key}")
    return Continue("next" if 200 <= resp.status < 300 else "error")
