"""JSON log lines carry the call id of the context (a call's task) they are written from, and
with JSON logs nothing but JSON lines reaches the log stream."""

from __future__ import annotations

import contextvars
import gc
import io
import json
import logging
import sys
import threading
import warnings

import pytest

from controller import logs
from controller.logs import CURRENT_CALL, JsonFormatter, LineWriter


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


# ---------------------------------------------------------------- formatter (issue 14 item 7)

def _record(msg: object, *args: object, **kw: object) -> logging.LogRecord:
    rec = logging.LogRecord("callctl.test", logging.WARNING, __file__, 1, msg, args or None,
                            None)
    rec.__dict__.update(kw)
    return rec


def test_a_line_about_a_call_logged_elsewhere_names_it_over_the_context() -> None:
    def in_other_call() -> dict[str, object]:
        CURRENT_CALL.set("c-task")
        return json.loads(JsonFormatter().format(_record("call c9: rejected", call_id="c9")))

    assert contextvars.copy_context().run(in_other_call)["call_id"] == "c9"
    none = json.loads(JsonFormatter().format(_record("x", call_id=None)))
    assert "call_id" not in none


def test_an_exception_and_a_stack_are_fields_of_the_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = _record("failed")
        rec.exc_info = sys.exc_info()
    rec.stack_info = "Stack (most recent call last):\n  here"
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    out = json.loads(text)
    assert out["msg"] == "failed" and out["level"] == "warning"
    assert out["exc"].startswith("Traceback") and "ValueError: boom" in out["exc"]
    assert "here" in out["stack"]


def test_a_message_whose_arguments_do_not_fit_is_still_one_json_line() -> None:
    out = json.loads(JsonFormatter().format(_record("%d calls", "many")))
    assert out["msg"].startswith("%d calls") and "many" in out["msg"]
    assert out["log_error"].startswith("TypeError")


def test_a_line_writer_logs_whole_lines_and_a_rest_on_flush() -> None:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    lg = logging.getLogger("callctl.test.writer")
    lg.propagate, h = False, Keep()
    lg.setLevel(logging.INFO)
    lg.addHandler(h)
    try:
        w = LineWriter("callctl.test.writer")
        w.write("one\ntw")
        w.write("o\n\nthree")
        assert seen == ["one", "two"]
        w.flush()
        assert seen == ["one", "two", "three"]
    finally:
        lg.removeHandler(h)
        lg.propagate = True


# ---------------------------------------------------------------- setup: nothing but JSON lines

class _Raises:
    def __del__(self) -> None:
        raise RuntimeError("in __del__")


class _BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_json_setup_routes_every_writer_of_the_stream_through_the_formatter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", out)
    hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook, warnings.showwarning)
    logs.setup("json")
    try:
        assert logs.json_enabled()
        with logs.call_context("c7"):
            logging.getLogger("callctl.call").info("call c7: started")
        print("a stray print")
        sys.stderr.write("Traceback-ish text\nsecond line\n")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
        try:
            raise KeyError("lost")
        except KeyError:
            sys.excepthook(*sys.exc_info())  # what Python calls for an uncaught exception
        t = threading.Thread(target=lambda: 1 / 0, name="worker")
        t.start()
        t.join()
        _Raises()  # __del__ raises: "Exception ignored in" (sys.unraisablehook)
        gc.collect()
        logging.getLogger("callctl.test").warning(_BadStr())  # logging's own error
    finally:
        logs.restore()
    assert (sys.excepthook, threading.excepthook, sys.unraisablehook,
            warnings.showwarning) == hooks
    assert sys.stderr is err and sys.stdout is out and not logs.json_enabled()
    assert out.getvalue() == ""
    lines = [json.loads(ln) for ln in err.getvalue().splitlines()]  # each one parses
    by_msg = {ln["msg"]: ln for ln in lines}
    assert by_msg["call c7: started"]["call_id"] == "c7"
    assert by_msg["a stray print"]["logger"] == "stdout"
    assert by_msg["Traceback-ish text"]["level"] == "warning"
    assert "second line" in by_msg
    warned = [ln for ln in lines if ln["logger"] == "py.warnings"]
    assert warned and "DeprecationWarning: old API" in warned[0]["msg"]
    crash = [ln for ln in lines if ln["msg"].startswith("uncaught KeyError")]
    assert crash and crash[0]["level"] == "critical" and "KeyError: 'lost'" in crash[0]["exc"]
    thread = [ln for ln in lines if "in thread worker" in ln["msg"]]
    assert thread and "ZeroDivisionError" in thread[0]["exc"]
    ignored = [ln for ln in lines if "_Raises.__del__" in ln["msg"]]
    assert ignored and "in __del__" in ignored[0]["exc"]
    broken = [ln for ln in lines if ln["logger"] == "callctl.logs"]
    assert broken and "no str" in broken[0]["msg"]


def test_human_setup_leaves_the_streams_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    stdout = sys.stdout
    logs.setup("human")
    try:
        assert sys.stderr is err and sys.stdout is stdout and not logs.json_enabled()
        logging.getLogger("callctl.test").info("plain")
    finally:
        logs.restore()
    assert "INFO    callctl.test: plain" in err.getvalue()
