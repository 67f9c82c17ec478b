"""Loader: positions, all errors in one run, duplicate keys, YAML pitfalls."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.flows.loader import MISSING, Problem, load, load_text, parse_path

ROOT = Path(__file__).resolve().parents[2]
POSITION = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): .+ "
                      r"\(value: .*\)$")

BROKEN = """\
settings:
  timezone: Mars/Olympus
users:
  alice: {endpoint: agent1}
flows:
  main:
    dids: ["+15550100"]
    entry: menu
    nodes:
      menu:
        type: menu
        promt: main-menu
        options:
          1: sales
          10: sales
      sales:
        type: department
        department: sales
        fallback: failover
      bad: {type: mneu}
      t:
        type: time
        hours: [{days: mon-fri, start: "09:00", end: "17:00"}]
        open: sales
"""


def test_problem_str() -> None:
    p = Problem("f.yaml", 3, 5, "flows.main.entry", "x", "unknown node 'x'")
    assert str(p) == "f.yaml:3:5: flows.main.entry: unknown node 'x' (value: 'x')"
    w = Problem("f.yaml", 1, 1, "a", MISSING, "m", "warning")
    assert str(w) == "f.yaml:1:1: a: warning: m (value: missing)"


def test_every_error_has_position_path_and_value() -> None:
    result = load_text(BROKEN, "broken.yaml")
    assert result.flowset is None
    got = {(p.line, p.col, p.path): p for p in result.errors}
    assert set(got) == {
        (2, 13, "settings.timezone"),
        (12, 9, "flows.main.nodes.menu.promt"),
        (11, 9, "flows.main.nodes.menu.prompt"),  # missing: points at the mapping
        (15, 11, "flows.main.nodes.menu.options.10"),
        (18, 21, "flows.main.nodes.sales.department"),  # lint, in the same run
        (20, 19, "flows.main.nodes.bad.type"),
        (22, 9, "flows.main.nodes.t.closed"),
    }
    assert "did you mean 'prompt'" in got[(12, 9, "flows.main.nodes.menu.promt")].message
    assert got[(2, 13, "settings.timezone")].value == "Mars/Olympus"
    assert got[(15, 11, "flows.main.nodes.menu.options.10")].value == 10
    assert got[(20, 19, "flows.main.nodes.bad.type")].value == "mneu"
    assert got[(22, 9, "flows.main.nodes.t.closed")].value is MISSING
    for p in result.errors:
        assert POSITION.match(str(p)), str(p)
        assert p.file == "broken.yaml"


def test_yaml_syntax_error_has_position() -> None:
    result = load_text("flows:\n  main: [unclosed\n  other: 1\n", "s.yaml")
    (err,) = result.errors
    assert err.file == "s.yaml" and err.line == 3 and "YAML syntax error" in err.message


def test_duplicate_keys_are_errors() -> None:
    text = """\
flows:
  main:
    entry: m
    nodes:
      m:
        type: menu
        prompt: p
        options:
          1: h
          "1": h
        retries: 1
        retries: 2
      h: {type: hangup}
      h: {type: hangup}
"""
    result = load_text(text, "d.yaml")
    dups = sorted((p.line, p.path, p.message) for p in result.errors)
    assert dups == [
        (10, "flows.main.nodes.m.options.1", "duplicate key '1' (first at line 9)"),
        (12, "flows.main.nodes.m.retries", "duplicate key 'retries' (first at line 11)"),
        (14, "flows.main.nodes.h", "duplicate key 'h' (first at line 13)"),
    ]


def test_ids_declared_once_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("users:\n  alice: {endpoint: agent1}\nsettings: {}\n")
    (tmp_path / "b.yaml").write_text("settings: {}\nusers:\n  alice: {endpoint: agent2}\n")
    result = load([tmp_path])
    msgs = sorted(str(p) for p in result.errors)
    assert msgs == [
        f"{tmp_path}/b.yaml:1:1: settings: settings are given twice (also at "
        f"{tmp_path}/a.yaml:3:1) (value: 'settings')",
        f"{tmp_path}/b.yaml:3:3: users.alice: duplicate user id 'alice' (also declared at "
        f"{tmp_path}/a.yaml:2:3) (value: 'alice')",
    ]


def test_did_in_two_flows_across_files(tmp_path: Path) -> None:
    flow = ("flows:\n  {name}:\n    dids: [{did}]\n    entry: h\n    nodes:\n"
            "      h: {{type: hangup}}\n")
    (tmp_path / "a.yaml").write_text(flow.format(name="a", did="+15550100"))
    (tmp_path / "b.yaml").write_text(flow.format(name="b", did="'15550100'"))
    (err,) = load([tmp_path]).errors
    assert (err.file, err.line, err.path) == (f"{tmp_path}/b.yaml", 3, "flows.b.dids[0]")
    assert f"also listed by flow 'a' at {tmp_path}/a.yaml:3:12" in err.message


def test_phone_numbers_keep_plus_and_leading_zero() -> None:
    text = ("flows:\n  f:\n    dids: [+15550100, 0123456]\n    entry: h\n"
            "    nodes:\n      h: {type: hangup, cause: 16}\n")
    result = load_text(text)
    assert result.ok
    assert result.flowset.flows["f"].dids == ["+15550100", "0123456"]


def test_unknown_top_level_and_non_mapping() -> None:
    result = load_text("flow:\n  x: 1\n", "t.yaml")
    (err,) = result.errors
    assert err.path == "flow" and "did you mean 'flows'" in err.message
    (err,) = load_text("- a\n- b\n", "l.yaml").errors
    assert "a flow file is a mapping" in err.message


def test_missing_paths(tmp_path: Path) -> None:
    result = load([tmp_path / "nope.yaml", tmp_path])
    assert sorted(p.message for p in result.errors) == ["no *.yaml files here",
                                                        "no such file or directory"]


def test_entry_id_must_match_key() -> None:
    (err,) = load_text("users:\n  alice: {id: bob, endpoint: agent1}\n", "i.yaml").errors
    assert (err.line, err.col, err.path) == (2, 3, "users.alice.id")
    assert "does not match its key" in err.message


def test_sources_are_kept(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("settings: {}\n")
    result = load([tmp_path])
    assert result.sources == {f"{tmp_path}/x.yaml": "settings: {}\n"}


def test_examples_are_clean() -> None:
    result = load([ROOT / "flows" / "examples"])
    assert result.errors == [] and result.warnings == []
    assert set(result.flowset.did_map) == {"+15550100", "+15550101", "+15550199"}
    assert result.flowset.flow_for_did("+15550101").id == "main"


@pytest.mark.parametrize(("path", "loc"), [
    ("members[2]", ("members", 2)), ("a.b.c", ("a", "b", "c")), ("x[0].y", ("x", 0, "y")),
])
def test_parse_path(path: str, loc: tuple) -> None:
    assert parse_path(path) == loc


def test_a_node_with_a_schema_error_still_gets_its_references_checked() -> None:
    res = load_text("""\
flows:
  main:
    dids: ["+15550100"]
    entry: m
    nodes:
      m:
        type: menu
        prompt: beep
        timeout: banana
        options: {"1": nowhere}
        fallback: bye
      bye: {type: hangup}
""", "f.yaml")
    got = [(e.line, e.path) for e in res.errors]
    assert got == [(9, "flows.main.nodes.m.timeout"), (10, "flows.main.nodes.m.options.1")]
    assert "unknown node 'nowhere'" in res.errors[1].message
