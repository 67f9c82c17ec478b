"""Lint: references, reachability, loops, menus, departments, DIDs, prompts."""

from __future__ import annotations

import textwrap
from pathlib import Path

from controller.core.flows.lint import lint
from controller.core.flows.loader import LoadResult, load_text
from controller.core.flows.schema import FlowSet

ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
users:
  alice: {endpoint: agent1}
  bob: {endpoint: agent2}
departments:
  sales: {members: [alice, bob]}
"""


def flows(body: str) -> LoadResult:
    return load_text(HEAD + "flows:\n" + textwrap.indent(textwrap.dedent(body).lstrip("\n"), "  "),
                     "l.yaml")


def messages(result: LoadResult, severity: str = "error") -> list[tuple[str, str]]:
    items = result.errors if severity == "error" else result.warnings
    return [(p.path, p.message) for p in items]


def test_unknown_references() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: start
          nodes:
            menu:
              type: menu
              prompt: main-menu
              options: {1: sles, 2: ext, 3: vm, 4: jump, 5: jump2}
              fallback: ext
            ext: {type: extension, user: carol, fallback: nowhere}
            vm: {type: voicemail, mailbox: "department:sale"}
            jump: {type: goto, flow: other}
            jump2: {type: goto, flow: main, node: gone}
    """)
    assert messages(result) == [
        ("flows.main.entry", "unknown node 'start'"),
        ("flows.main.nodes.menu.options.1", "unknown node 'sles' in flow 'main'"),
        ("flows.main.nodes.ext.user", "unknown user 'carol'"),
        ("flows.main.nodes.ext.fallback", "unknown node 'nowhere' in flow 'main'"),
        ("flows.main.nodes.vm.mailbox",
         "unknown department 'sale' (did you mean 'sales'?)"),
        ("flows.main.nodes.jump.flow", "unknown flow 'other'"),
        ("flows.main.nodes.jump2.node", "unknown node 'gone' in flow 'main'"),
    ]
    assert result.errors[0].line == 9 and result.errors[0].value == "start"


def test_unreachable_node_is_a_warning() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: hello
          nodes:
            hello: {type: message, prompt: welcome, next: bye}
            bye: {type: hangup}
            orphan: {type: hangup}
    """)
    assert result.ok
    (w,) = result.warnings
    assert (w.path, w.line, w.col) == ("flows.main.nodes.orphan", 13, 7)
    assert "unreachable" in w.message


def test_loop_without_exit() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: a
          nodes:
            a: {type: message, prompt: welcome, next: b}
            b: {type: goto, node: c}
            c: {type: message, prompt: welcome, next: a}
    """)
    (err,) = result.errors
    assert err.path == "flows.main.nodes.a"
    assert err.message == ("loop with no way out to a person, voicemail or hangup: "
                           "a -> b -> c -> a")


def test_menu_loop_with_an_exit_is_fine() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: menu
          nodes:
            menu:
              type: menu
              prompt: main-menu
              options: {1: sales, 9: again}
              fallback: again
            again: {type: message, prompt: welcome, next: menu}
            sales: {type: department, department: sales}
    """)
    assert result.errors == [] and result.warnings == []


def test_loop_across_flows() -> None:
    result = flows("""
        a:
          dids: ["+15550100"]
          entry: x
          nodes:
            x: {type: goto, flow: b}
        b:
          entry: y
          nodes:
            y:
              type: time
              hours: [{days: mon-sun, start: "00:00", end: "24:00"}]
              open: z
              closed: z
            z: {type: goto, flow: a}
    """)
    (err,) = result.errors
    assert "a.x -> b.y -> b.z -> a.x" in err.message


def test_menu_without_no_input_or_fallback_warns() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: menu
          nodes:
            menu: {type: menu, prompt: main-menu, options: {1: bye}, invalid: bye}
            bye: {type: hangup}
    """)
    assert result.ok
    assert messages(result, "warning") == [(
        "flows.main.nodes.menu",
        "after 4 tries with no key the call is hung up: set no_input, or fallback",
    )]


def test_input_warnings() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: acct
          nodes:
            acct:
              type: input
              prompt: welcome
              post: {url: "https://crm.example/lookup"}
              next: bye
            bye: {type: hangup}
    """)
    assert [m for _, m in messages(result, "warning")] == [
        "after 3 tries without valid digits the call is hung up: set no_input",
        "no `error` branch: when the request fails the call is hung up",
    ]


def test_simultaneous_department_cap() -> None:
    users = "".join(f"  u{i}: {{endpoint: agent{i}}}\n" for i in range(1, 7))
    text = ("users:\n" + users + "departments:\n  big:\n    strategy: simultaneous\n"
            "    members: [u1, u2, u3, u4, u5, u6]\n")
    (err,) = load_text(text, "d.yaml").errors
    assert (err.path, err.line) == ("departments.big.members", 11)
    assert "at most 5" in err.message


def test_did_twice_in_one_flow() -> None:
    result = flows("""
        main:
          dids: ["+15550100", "15550100"]
          entry: h
          nodes: {h: {type: hangup}}
    """)
    (err,) = result.errors
    assert err.path == "flows.main.dids[1]" and "also listed by this flow" in err.message


def test_missing_prompt_warns_once() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: a
          nodes:
            a: {type: message, prompt: [no-such-prompt, welcome], next: b}
            b: {type: message, prompt: no-such-prompt}
    """)
    assert result.ok
    assert messages(result, "warning") == [(
        "flows.main.nodes.a.prompt[0]",
        "prompt 'no-such-prompt' not found: no prompts/en/no-such-prompt.wav and no "
        "Asterisk sound of that name",
    )]


def test_language_without_prompts_dir_warns() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: lang
          nodes:
            lang: {type: language, prompt: welcome, options: {1: en, 2: hi}, next: h,
                   fallback: h}
            h: {type: hangup}
    """)
    (w,) = result.warnings
    assert w.path == "flows.main.nodes.lang.options.2" and "'hi'" in w.message


def test_reserved_and_invalid_ids() -> None:
    result = flows("""
        Main:
          dids: ["+15550100"]
          entry: failover
          nodes:
            failover: {type: hangup}
    """)
    assert [m.split(":")[0] for _, m in messages(result)] == [
        "invalid flow id 'Main'", "'failover' is reserved (fallback",
    ]


def test_flow_without_dids_or_goto_warns() -> None:
    result = flows("""
        spare:
          entry: h
          nodes: {h: {type: hangup}}
    """)
    assert messages(result, "warning") == [
        ("flows.spare", "no DIDs and no goto leads to this flow")]


def test_schema_errors_do_not_hide_lint_errors() -> None:
    result = flows("""
        main:
          dids: ["+15550100"]
          entry: a
          nodes:
            a: {type: menu, prompt: welcome, options: {1: b}, fallbak: b}
            b: {type: extension, user: nobody}
    """)
    paths = [p for p, _ in messages(result)]
    assert paths == ["flows.main.nodes.a.fallbak", "flows.main.nodes.b.user"]


def test_lint_without_source_positions() -> None:
    fs = FlowSet.model_validate({"flows": {"f": {"dids": ["+1555"], "entry": "x",
                                                 "nodes": {"h": {"type": "hangup"}}}}})
    problems = lint(fs)
    assert [(p.file, p.path) for p in problems if p.severity == "error"] == [
        ("<flowset>", "flows.f.entry")]


def test_examples_have_no_problems() -> None:
    from controller.core.flows.loader import load

    result = load([ROOT / "flows" / "examples"])
    assert result.problems == []
