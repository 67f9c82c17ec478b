"""JSON log lines carry the call id of the context (a call's task) they are written from."""

from __future__ import annotations

import contextvars
import json
import logging

from controller.logs import CURRENT_CALL, JsonFormatter


def _line(msg: str) -> dict[str, object]:
    rec = logging.LogRecord("callctl.test", logging.INFO, __file__, 1, msg, None, None)
    return json.loads(JsonFormatter().format(rec))


def _in_call(cid: str) -> dict[str, object]:
    CURRENT_CALL.set(cid)
    return _line("ringing")


def test_a_call_context_tags_its_lines_and_no_other() -> None:
    # Each asyncio task runs in its own copy of the context, as these do.
    a = contextvars.copy_context().run(_in_call, "c1")
    b = contextvars.copy_context().run(_in_call, "c2")
    assert (a["call_id"], b["call_id"]) == ("c1", "c2")
    assert "call_id" not in _line("startup")
