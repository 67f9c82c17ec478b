"""Logging: JSON lines (one object per line) by default, human format on a terminal.

With JSON (``CALLCTL_LOG_FORMAT=json``, or ``auto`` when stderr is not a terminal) the log
stream carries nothing but JSON lines: :func:`setup` also routes Python warnings, uncaught
exceptions (main thread, other threads, "Exception ignored in" ones), logging's own errors and
any stray text written to ``sys.stdout`` / ``sys.stderr`` (a library's ``print``, a
``traceback.print_exc``) through :class:`JsonFormatter`; tracebacks are an ``exc`` field.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TextIO

CURRENT_CALL: ContextVar[str | None] = ContextVar("callctl_call", default=None)
"""The call a task works for: set by the call's own task (and inherited by the tasks it
spawns), so every log line written on a call's behalf carries its ``call_id``."""

__all__ = ["CURRENT_CALL", "JsonFormatter", "LineWriter", "call_context", "json_enabled",
           "restore", "setup"]


@contextlib.contextmanager
def call_context(call_id: str) -> Iterator[None]:
    """Lines logged (and tasks spawned) inside the block are about ``call_id``: for work on a
    call done outside its own task (its arrival, its adoption, a resync)."""
    token = CURRENT_CALL.set(call_id)
    try:
        yield
    finally:
        CURRENT_CALL.reset(token)


def _ts(created: float, msecs: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``msg``, ``call_id`` (the
    record's ``extra={"call_id": ...}``, else the :data:`CURRENT_CALL` of the context it was
    logged from), ``exc`` (a traceback), ``stack`` (``stack_info``). Never raises: a message
    whose arguments do not fit its format is written as it is, with ``log_error``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _ts(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        try:
            out["msg"] = record.getMessage()
        except Exception as e:  # a bad format/args pair: still one line, nothing lost
            out["msg"] = f"{record.msg!s} {record.args!r}"
            out["log_error"] = f"{type(e).__name__}: {e}"
        call_id = getattr(record, "call_id", None) or CURRENT_CALL.get()
        if call_id:
            out["call_id"] = str(call_id)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_guard = threading.local()


def _raw_json(stream: TextIO, level: str, logger: str, msg: str) -> None:
    """A JSON line straight to ``stream``: for when logging itself failed."""
    now = time.time()
    line = {"ts": _ts(now, (now % 1) * 1000), "level": level, "logger": logger, "msg": msg}
    call_id = CURRENT_CALL.get()
    if call_id:
        line["call_id"] = call_id
    with contextlib.suppress(Exception):
        stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        stream.flush()


class _JsonHandler(logging.StreamHandler[TextIO]):
    def emit(self, record: logging.LogRecord) -> None:
        _guard.busy = True
        try:
            super().emit(record)
        finally:
            _guard.busy = False

    def handleError(self, record: logging.LogRecord) -> None:
        # logging would print "--- Logging error ---" and a traceback on stderr.
        _raw_json(self.stream, "error", "callctl.logs",
                  f"could not write a log record of {record.name}: "
                  + "".join(traceback.format_exception(*sys.exc_info())).strip())


class LineWriter(io.TextIOBase):
    """A text stream that logs each line written to it (a stand-in for ``sys.stdout`` /
    ``sys.stderr``, or an ``out=`` for code that prints)."""

    def __init__(self, logger: str, level: int = logging.INFO,
                 raw: TextIO | None = None) -> None:
        super().__init__()
        self.log = logging.getLogger(logger)
        self.level = level
        self.raw = raw
        """The stream this one replaces (its ``fileno``; the fallback when logging fails)."""
        self._buf = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self.raw is None:
            raise io.UnsupportedOperation("fileno")
        return self.raw.fileno()

    @property
    # typeshed has TextIOBase.encoding a plain (writable) attribute; ours is read-only, the
    # raw stream's, as for io.TextIOWrapper
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", None) or "utf-8"

    def write(self, s: str) -> int:
        with self._lock:
            self._buf += s
            *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line)
        return len(s)

    def flush(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        if getattr(_guard, "busy", False) and self.raw is not None:
            # written while a record was being written (a handler's own error): no loop
            _raw_json(self.raw, logging.getLevelName(self.level).lower(), self.log.name, line)
            return
        self.log.log(self.level, "%s", line)


_saved: dict[str, Any] = {}
_json = False


def json_enabled() -> bool:
    """Is the log stream JSON lines (set by :func:`setup`)?"""
    return _json


def _excepthook(t: type[BaseException], v: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("callctl").critical("uncaught %s: %s", t.__name__, v, exc_info=(t, v, tb))


def _thread_excepthook(args: Any) -> None:
    if args.exc_type is SystemExit:
        return
    name = getattr(args.thread, "name", "?")
    logging.getLogger("callctl").error(
        "uncaught %s in thread %s: %s", args.exc_type.__name__, name, args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _unraisablehook(u: Any) -> None:
    try:
        what = repr(u.object) if u.object is not None else ""
    except Exception:
        what = f"<{type(u.object).__name__} object>"
    msg = f"{u.err_msg or 'Exception ignored in'}: {what}".rstrip(": ")
    exc = (u.exc_type, u.exc_value, u.exc_traceback) if u.exc_type is not None else None
    logging.getLogger("callctl").error("%s", msg, exc_info=exc)


def setup(fmt: str = "auto", level: int = logging.INFO) -> None:
    """Configure the root logger on stderr. JSON (see the module doc) also takes over
    warnings, the exception hooks and ``sys.stdout``/``sys.stderr``; :func:`restore` undoes
    it."""
    global _json
    restore()
    stderr = sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stderr.isatty())
    if use_json:
        handler: logging.Handler = _JsonHandler(stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    _saved.update(handlers=root.handlers[:], level=root.level)
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    _json = use_json
    if not use_json:
        return
    _saved.update(stdout=sys.stdout, stderr=sys.stderr, excepthook=sys.excepthook,
                  thread_excepthook=threading.excepthook, unraisablehook=sys.unraisablehook,
                  showwarning=warnings.showwarning)
    logging.captureWarnings(True)  # warnings -> the "py.warnings" logger
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook
    sys.stdout = LineWriter("stdout", logging.INFO, raw=_saved["stdout"])
    sys.stderr = LineWriter("stderr", logging.WARNING, raw=stderr)


def restore() -> None:
    """Undo :func:`setup` (tests): the streams, hooks and root handlers as they were."""
    global _json
    if not _saved:
        return
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineWriter):
            stream.flush()
    if "stdout" in _saved:
        logging.captureWarnings(False)
        sys.stdout, sys.stderr = _saved["stdout"], _saved["stderr"]
        sys.excepthook = _saved["excepthook"]
        threading.excepthook = _saved["thread_excepthook"]
        sys.unraisablehook = _saved["unraisablehook"]
        warnings.showwarning = _saved["showwarning"]
    root = logging.getLogger()
    root.handlers[:] = _saved["handlers"]
    root.setLevel(_saved["level"])
    _saved.clear()
    _json = False
