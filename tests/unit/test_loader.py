"""Loader: positions, all errors in one run, duplicate keys, YAML pitfalls."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from controller.core.flows import yamlsafe
from controller.core.flows.loader import MAX_FLOW_NODES, load, load_text
from controller.core.flows.problems import (
    INPUT_CODES,
    MISSING,
    FlowInputError,
    Problem,
    parse_path,
)
from controller.core.flows.yamlsafe import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES, decode
from controller.tools import flowcmds as commands

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


# ---------------------------------------------------------------------------- hostile input
# (issue 13 items 10-12: refused with the position and the limit, never a hang or traceback)

OK_FLOW = """\
settings: {timezone: UTC}
flows:
  main:
    dids: ["+15550100"]
    entry: a
    nodes:
      a: {type: message, prompt: beep, next: b}
      b: {type: hangup}
"""


def alias_bomb(levels: int = 8, fan: int = 9) -> str:
    """``a1`` is 9 aliases of ``a0``, ``a2`` 9 of ``a1``...: 9**levels nodes when built."""
    lines = ["    a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]"
              for i in range(1, levels + 1)]
    return "flows:\n  main:\n    description: bomb\n" + "\n".join(lines) + "\n"


def refused(text: str, name: str = "h.yaml") -> Problem:
    res = load_text(text, name)
    assert res.flowset is None and res.warnings == []
    (err,) = res.errors  # one clear message: the set is not validated or linted further
    assert err.code in INPUT_CODES and err.file == name, err
    assert err in res.refused
    return err


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() -> None:
    text = alias_bomb()
    assert len(text) < 1024
    err = refused(text)
    assert err.code == "alias_expansion" and (err.line, err.col) == (8, 14)  # a4's first *a3
    assert f"limit of {MAX_ALIAS_NODES} nodes built through aliases" in err.message
    assert str(err) == f"h.yaml:8:14: (top): {err.message}"  # no "(value: missing)" noise


def test_too_many_aliases_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsafe, "MAX_ALIASES", 3)
    text = "users:\n  x: &n {name: N, endpoint: agent1}\n" + "".join(
        f"  u{i}: *n\n" for i in range(4))
    err = refused(text)
    assert (err.code, err.line, err.col) == ("alias_limit", 6, 7)
    assert "limit of 3 aliases" in err.message


def test_a_few_anchors_aliases_and_merges_keep_working() -> None:
    res = load_text("""\
settings: {timezone: UTC}
users:
  alice: &agent
    name: Alice
    endpoint: agent1
    availability: &hours [{days: mon-fri, start: "09:00", end: "17:00"}]
  bob: {<<: *agent, name: Bob, endpoint: agent2}
  carol: {name: Carol, endpoint: agent3, availability: *hours}
departments:
  sales: {strategy: serial, members: &team [alice, bob], ring_time: 5}
  support: {strategy: simultaneous, members: *team}
flows:
  main:
    dids: ["+15550100"]
    entry: a
    nodes:
      a: &msg {type: message, prompt: beep, next: b}
      c: {<<: *msg, next: d}
      b: {type: department, department: sales, fallback: c}
      d: {type: hangup}
""", "anchors.yaml")
    assert res.ok, res.errors
    fs = res.flowset
    assert fs.users["bob"].endpoint == "agent2" and fs.users["bob"].availability
    assert fs.users["carol"].availability == fs.users["alice"].availability
    assert fs.departments["support"].members == ["alice", "bob"]


def test_a_recursive_alias_is_an_error_not_a_hang() -> None:
    res = load_text("flows:\n  main: &x [*x, *x, *x, *x, *x, *x, *x, *x]\n", "r.yaml")
    assert res.flowset is None and res.errors
    assert {(e.line, e.col) for e in res.errors} == {(2, 9)}
    assert all("recursive alias" in e.message for e in res.errors)


@pytest.mark.parametrize(("text", "line", "col", "what"), [
    ("settings:\n  timezone: UTC\x00\n", 2, 16, "U+0000"),
    ("flows:\n  main:\n    description: a\x07b\n", 3, 19, "U+0007"),
    ("flows: {}\n# \x1b[31m\n", 2, 3, "U+001B"),
    ("users:\n  alice: {name: \"A\ud800\"}\n", 2, 19, "lone surrogate"),
])
def test_control_characters_are_refused_with_their_position(text: str, line: int, col: int,
                                                            what: str) -> None:
    err = refused(text)
    assert (err.code, err.line, err.col) == ("control_character", line, col)
    assert what in err.message


def test_tabs_and_a_leading_bom_are_fine_and_a_tab_indent_is_a_syntax_error() -> None:
    assert load_text("\ufeff" + OK_FLOW.replace("beep,", "beep,\t")).ok
    res = load_text(OK_FLOW.replace("      b:", "\tb:"), "t.yaml")
    (err,) = res.errors
    assert (err.line, err.code) == (8, "") and "YAML syntax error" in err.message


@pytest.mark.parametrize("text", [
    "[" * 50_000, "flows: " + "[" * 65 + "]" * 65, "flows: " + "{a: " * 65 + "}" * 65,
    "flows:\n  " + "- " * 100 + "x\n",
])
def test_deep_nesting_is_refused(text: str) -> None:
    err = refused(text)
    assert err.code == "too_deep" and err.line in (1, 2)
    assert f"limit of {MAX_DEPTH} levels" in err.message


def test_nesting_up_to_the_limit_is_read() -> None:
    res = load_text("flows:\n  main:\n    description: " + "[" * 60 + "]" * 60 + "\n")
    assert not res.refused


def test_a_document_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"flows: {}\n#" + b"x" * MAX_FILE_BYTES)
    res = load([big])
    (err,) = res.errors
    assert (err.file, err.line, err.col, err.code) == (str(big), 1, 1, "too_big")
    assert f"limit of {MAX_FILE_BYTES} bytes" in err.message
    err = refused("flows: {}\n#" + "é" * (MAX_FILE_BYTES // 2))  # bytes, not characters
    assert err.code == "too_big"


def test_too_many_yaml_nodes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsafe, "MAX_YAML_NODES", 10)
    err = refused("flows: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n")
    assert (err.code, err.line, err.col) == ("too_many_nodes", 1, 30)  # the 11th node: 8


def test_invalid_utf8_is_refused_at_the_byte(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes("users:\n  jose: {name: José, endpoint: agent1}\n".encode("latin-1"))
    (err,) = load([f]).errors
    assert (err.line, err.col, err.code) == (2, 19, "not_utf8") and "0xe9" in err.message
    with pytest.raises(FlowInputError) as e:
        decode(b"a: 1\n\xff", "x.yaml")
    assert (e.value.line, e.value.col) == (2, 1)
    assert decode(b"\xef\xbb\xbfa: 1\n", "x.yaml") == "a: 1\n"  # a BOM is dropped


def big_flow(n: int) -> str:
    nodes = "".join(f"      n{i}: {{type: message, prompt: beep, next: n{i + 1}}}\n"
                    for i in range(n - 1))
    return ("settings: {timezone: UTC}\nflows:\n  big:\n    dids: [\"+15550100\"]\n"
            f"    entry: n0\n    nodes:\n{nodes}      n{n - 1}: {{type: hangup}}\n")


def test_a_flow_set_of_max_flow_nodes_loads_and_one_more_is_refused() -> None:
    res = load_text(big_flow(MAX_FLOW_NODES))
    assert res.ok and len(res.flowset.flows["big"].nodes) == MAX_FLOW_NODES
    err = refused(big_flow(MAX_FLOW_NODES + 1))
    assert (err.code, err.line, err.path) == ("too_many_flow_nodes", 7, "flows.big.nodes")
    assert f"limit of {MAX_FLOW_NODES} flow nodes" in err.message


def test_huge_names_do_not_make_huge_messages() -> None:
    ref = load_text(OK_FLOW.replace("next: b}", "next: " + "b" * 200_000 + "}"))
    key = load_text(OK_FLOW + "    ? " + "k" * 100_000 + "\n    : 1\n")  # explicit: > 1024
    for res in (ref, key):
        (e,) = res.errors
        assert "unknown" in e.message
        assert len(e.message) < 500 and len(e.path) < 300 and len(str(e)) < 1000


def test_validate_exits_2_with_one_line_for_refused_input(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    out = io.StringIO()
    assert commands.validate([bomb], out=out) == 2
    lines = out.getvalue().splitlines()
    assert lines == [f"{bomb}:8:14: (top): {refused(alias_bomb()).message}",
                     "1 error(s), 0 warning(s)"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(OK_FLOW.replace("beep", "nope nope"))
    assert commands.validate([bad], out=io.StringIO()) == 1  # flow errors: still 1
