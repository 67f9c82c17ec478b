"""uvloop and orjson are used when importable, with asyncio and json as the fallback
(controller/tools/loops.py, controller/jsonx.py); CALLCTL_LOOP / CALLCTL_JSON force one, a bad value
is a clear error."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import jsonx
from controller.config import load_settings
from controller.tools import loops
from controller.tools.cli import run as cli

RECORD = {"call_id": "c1", "caller": "+1555 ü ñ € 日本", "n": 3, "x": 1.5, "none": None,
          "ok": True, "path": ["a", "b"], "nested": {"k": [1, {"z": "\"q\\\n"}]}, 7: "int key"}
WANT = {str(k): v for k, v in RECORD.items()}  # JSON keys are strings


@pytest.fixture
def no_orjson(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``import orjson`` fails (a platform without it); jsonx as it would import there."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    monkeypatch.delenv("CALLCTL_JSON", raising=False)
    importlib.reload(jsonx)
    yield
    monkeypatch.undo()
    importlib.reload(jsonx)


def test_orjson_is_the_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCTL_JSON", raising=False)
    assert jsonx.pick() == "orjson"
    assert jsonx.pick("json") == "json"


def test_without_orjson_json_is_used_and_behaves_the_same(no_orjson: None) -> None:
    assert jsonx.BACKEND == "json" and not jsonx.CONFIG_ERROR
    text = jsonx.dumps(RECORD)
    assert isinstance(text, str) and isinstance(jsonx.dumpb(RECORD), bytes)
    assert jsonx.loads(text) == jsonx.loads(text.encode()) == WANT
    assert text.startswith('{"call_id": "c1"')  # the standard library's own writing


def test_both_backends_write_what_the_other_reads() -> None:
    o_loads, o_dumps, o_dumpb = jsonx.backend("orjson")
    j_loads, j_dumps, j_dumpb = jsonx.backend("json")
    for text in (o_dumps(RECORD), j_dumps(RECORD), o_dumpb(RECORD), j_dumpb(RECORD)):
        assert o_loads(text) == j_loads(text) == WANT
    assert o_dumps({"a": object()}, default=str).startswith('{"a":"<object')
    assert j_dumps({"a": object()}, default=str).startswith('{"a": "<object')
    for loads in (o_loads, j_loads):
        with pytest.raises(ValueError):
            loads(b"{not json")
        with pytest.raises(ValueError):
            loads(b"\xff\xfe")


def test_forcing_orjson_without_it_is_a_clear_error(no_orjson: None) -> None:
    with pytest.raises(ValueError, match="CALLCTL_JSON has value 'orjson' but orjson is not "
                                         "installed"):
        jsonx.pick("orjson")


def test_a_bad_callctl_json_leaves_the_default_and_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCTL_JSON", "simdjson")
    try:
        importlib.reload(jsonx)
        assert jsonx.BACKEND == "orjson"
        assert jsonx.CONFIG_ERROR == ("CALLCTL_JSON has value 'simdjson': use orjson or json "
                                      "(or leave unset)")
    finally:
        monkeypatch.undo()
        importlib.reload(jsonx)
    assert not jsonx.CONFIG_ERROR


# ---------------------------------------------------------------------------- event loop


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)


def _loop_kind() -> str:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__

    return loops.run(kind())


def test_uvloop_is_the_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCTL_LOOP", raising=False)
    assert loops.pick() == "uvloop"
    assert _loop_kind().startswith("uvloop")
    monkeypatch.setenv("CALLCTL_LOOP", "asyncio")
    assert _loop_kind().startswith("asyncio")


def test_without_uvloop_asyncio_runs_it(no_uvloop: None, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.delenv("CALLCTL_LOOP", raising=False)
    assert loops.pick() == "asyncio" and loops.loop_factory("asyncio") is None
    assert _loop_kind().startswith("asyncio")
    with pytest.raises(ValueError, match="CALLCTL_LOOP has value 'uvloop' but uvloop is not "
                                         "installed"):
        loops.pick("uvloop")


def test_a_bad_callctl_loop_stops_callctl_run_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCTL_LOOP", "tokio")
    monkeypatch.setattr(cli.logs, "setup", lambda *a, **k: None)
    rc = cli.cmd_run(argparse.Namespace(), load_settings({"CALLCTL_RUN_DIR": str(tmp_path)}))
    assert rc == cli.EXIT_USAGE
    assert "CALLCTL_LOOP has value 'tokio': use uvloop or asyncio" in capsys.readouterr().err
