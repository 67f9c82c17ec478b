"""The shipped JSON Schema (flows/examples/flow.schema.json) against the loader.

Whatever ``callctl validate`` accepts, the schema accepts, both in the loader's YAML 1.1
reading and in an editor's YAML 1.2 reading (tests/flowschema.py); what the loader rejects for
a reason JSON Schema can express, the schema rejects. The corpus: the examples, every YAML
block of the docs and every flow written as a literal in the tests (and, through
tests/conftest.py, every flow any test loads). Field shorthands are compared value by value
(hypothesis) between the models and the schema.
"""

from __future__ import annotations

import ast
import io
import json
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flowschema import editor_view, errors_in, loader_view, schema_errors, validator
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.core.flows.departments import Department, Failover, Sticky
from controller.core.flows.directory import User, Window
from controller.core.flows.editor_schema import DEFINITIONS, flowset_json_schema
from controller.core.flows.loader import load, load_text
from controller.core.flows.schema import NODE_ADAPTER, Flow
from controller.tools import flowcmds as commands

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "flows" / "examples"
SCHEMA_FILE = EXAMPLES / "flow.schema.json"
MODELINE = "# yaml-language-server: $schema=flow.schema.json"
CROSS_REFERENCES = ("unknown user", "unknown department", "unknown node", "unknown flow",
                    "simultaneous rings at most")
"""Lint errors about other entries (a fragment of a test's flow set): not the schema's."""


# ---------------------------------------------------------------------------------------------
# The committed schema, the examples.


def test_committed_schema_is_what_callctl_schema_prints() -> None:
    out = io.StringIO()
    assert commands.schema(out=out) == 0
    assert SCHEMA_FILE.read_text() == out.getvalue(), (
        "regenerate: callctl schema > flows/examples/flow.schema.json"
    )


def test_schema_is_draft_07_and_valid() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    # yaml-language-server supports draft-07 (and older) only.
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert "$defs" not in json.dumps(schema)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_is_valid_in_both_readings(path: Path) -> None:
    text = path.read_text()
    assert text.splitlines()[0] == MODELINE  # yaml-language-server finds the schema
    assert (path.parent / "flow.schema.json").is_file()
    assert schema_errors(text) == []


def test_examples_load() -> None:
    assert load([EXAMPLES]).ok


def test_the_issue_reports_are_fixed() -> None:
    """main.yaml 15:20 and 16:20, directory.yaml 23:16: ``days: mon-fri`` / ``days: sat``."""
    main = editor_view((EXAMPLES / "main.yaml").read_text())
    hours = main["flows"]["main"]["nodes"]["office-hours"]["hours"]
    assert [h["days"] for h in hours] == ["mon-fri", "sat"]
    directory = editor_view((EXAMPLES / "directory.yaml").read_text())
    assert directory["users"]["dave"]["availability"][0]["days"] == "mon-fri"
    assert errors_in(main) == [] and errors_in(directory) == []


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema absent")
def test_check_jsonschema_cli_accepts_the_examples() -> None:
    """The issue's command, when the tool is installed (it is not a test dependency)."""
    proc = subprocess.run(
        ["check-jsonschema", "--schemafile", str(SCHEMA_FILE),
         *map(str, sorted(EXAMPLES.glob("*.yaml")))],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# Every flow in the docs and the tests.


def _corpus() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and re.search(r"^\s*(?:flows|users|departments|settings):", node.value,
                                  re.M)):
                out.append((f"{path.relative_to(ROOT)}:{node.lineno}",
                            textwrap.dedent(node.value)))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for m in re.finditer(r"```ya?ml\n(.*?)```", text, re.S):
            out.append((f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}",
                        m.group(1)))
    return out


def _accepted(text: str, name: str) -> bool:
    res = load_text(text, name)
    return res.ok or all(e.message.startswith(CROSS_REFERENCES) for e in res.errors)


def test_every_flow_in_docs_and_tests_is_valid() -> None:
    accepted = [(name, text) for name, text in _corpus() if _accepted(text, name)]
    assert len(accepted) >= 40  # the scan finds them (43 when written)
    bad = {name: errs for name, text in accepted if (errs := schema_errors(text))}
    assert bad == {}


# ---------------------------------------------------------------------------------------------
# Shorthands both accept; mistakes both reject.

BASE = """\
users:
  alice: {endpoint: agent1}
  bob: {endpoint: agent2}
departments:
  sales: {members: [alice, bob]}
flows:
  main:
    dids: ["+15550100"]
    entry: hello
    nodes:
      hello: {type: message, prompt: welcome, next: menu}
      menu: {type: menu, prompt: main-menu, options: {"1": sales}, fallback: sales}
      sales: {type: department, department: sales}
"""

ACCEPTED = {
    "days range": "users: {u: {endpoint: a1, availability: [{days: mon-fri, start: '09:00', "
                  "end: '18:00'}]}}",
    "days any case, spaces, lists": "users: {u: {endpoint: a1, availability: [{days: "
                                    "'Mon - Wed, sat', start: '9:00', end: '18:00'}, {days: "
                                    "[fri-mon, tue], start: '22:00', end: '06:00'}]}}",
    "unquoted times (YAML 1.1 ints)": "users:\n  u:\n    endpoint: a1\n    availability:\n"
                                      "      - {days: sat, start: 9:30, end: 24:00}",
    "sticky shorthands": "users: {a: {endpoint: a1}}\ndepartments:\n"
                         "  d1: {members: [a], sticky: true}\n  d2: {members: [a], sticky: 30d}\n"
                         "  d3: {members: [a], sticky: 3600}\n  d4: {members: [a], sticky: false}\n"
                         "  d5: {members: [a], sticky: {ttl: 12H}}\n"
                         "  d6: {members: [a], sticky: null}",
    "YAML 1.1 booleans": "users: {a: {endpoint: a1, receive_calls: no}}\n"
                         "settings: {forward_to_alternate: off, rejected_is_busy: YES}",
    "phone numbers as typed": "users:\n  a: {endpoint: a1, alternate: +44 20 7946-0000}\n"
                              "  b: {endpoint: a2, alternate: 15550100}\n"
                              "  c: {endpoint: a3, alternate: '(555) 010-0199'}\n"
                              "  d: {endpoint: a4, alternate: 'user:a'}\n"
                              "  e: {endpoint: a5, alternate: 'sip:agent9'}\n"
                              "  f: {endpoint: a6, alternate: ''}\n"
                              "departments:\n  s:\n    members: [a]\n"
                              "    failover: {number: +1 (555) 010-0100, voicemail: false}",
    "DIDs as typed": BASE.replace('["+15550100"]', '[+1 555 0100, 15550101, "0044 20 1234"]'),
    "empty sections": "users:\ndepartments:\nflows:\nsettings:\n",
    "empty file": "# nothing yet\n",
    "menu keys as ints, operator only": BASE.replace(
        'options: {"1": sales}, fallback: sales', "operator: sales"
    ).replace("prompt: main-menu,", "prompt: [main-menu, invalid], options: {},"),
    "message prompts": BASE.replace("prompt: welcome", "prompts: [welcome, main-menu]"),
    "language options": BASE.replace(
        "next: menu}", "next: lang}\n      lang: {type: language, prompt: main-menu, options: "
        "{1: en, 2: {language: es, next: sales}}, next: menu}"),
    "holidays": BASE.replace("next: menu}", "next: t}\n      t:\n        type: time\n"
                             "        hours: [{days: mon-fri, start: '09:00', end: '17:00'}]\n"
                             "        holidays: [{date: 2025-12-25}, {from: 2025-12-31, "
                             "to: 2026-01-01, name: New Year, date: null}]\n"
                             "        open: menu\n        closed: sales"),
    "input with post": BASE.replace("next: menu}", "next: acct}\n      acct:\n        type: input\n"
                                    "        prompt: main-menu\n        variable: account\n"
                                    "        post: {url: 'https://crm.example:8443/x?y=1'}\n"
                                    "        on_status: {404: menu, 5xx: sales}\n"
                                    "        match: {status.code: {true: sales, 7: menu}}\n"
                                    "        error: sales\n        next: menu"),
    "goto another flow": BASE.replace("next: menu}", "next: g}\n      g: {type: goto, flow: "
                                      "other}")
                         + "  other:\n    entry: bye\n    nodes: {bye: {type: hangup}}\n",
    "merge keys": "users: {a: {endpoint: a1}}\ndepartments:\n"
                  "  s1: &s {members: [a], ring_time: 15, rounds: 2}\n"
                  "  s2: {<<: *s, strategy: simultaneous}",
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_both_accept(text: str) -> None:
    res = load_text(text)
    assert res.ok, [str(p) for p in res.errors]
    assert schema_errors(text) == []


def _in_base(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


REJECTED = {
    "unknown day": "users: {u: {endpoint: a1, availability: [{days: mon-fry, start: '09:00', "
                   "end: '10:00'}]}}",
    "no days": "users: {u: {endpoint: a1, availability: [{days: [], start: '09:00', "
               "end: '10:00'}]}}",
    "half a range": "users: {u: {endpoint: a1, availability: [{days: 'mon-', start: '09:00', "
                    "end: '10:00'}]}}",
    "hour 25": "users: {u: {endpoint: a1, availability: [{days: sat, start: '25:00', "
               "end: '10:00'}]}}",
    "start 24:00": "users: {u: {endpoint: a1, availability: [{days: sat, start: '24:00', "
                   "end: '10:00'}]}}",
    "end 24:01": "users: {u: {endpoint: a1, availability: [{days: sat, start: '09:00', "
                 "end: '24:01'}]}}",
    "sticky zero": "users: {a: {endpoint: a1}}\ndepartments: {d: {members: [a], sticky: 0}}",
    "sticky unit": "users: {a: {endpoint: a1}}\ndepartments: {d: {members: [a], sticky: 30w}}",
    "ttl zero": "users: {a: {endpoint: a1}}\ndepartments: {d: {members: [a], sticky: "
                "{ttl: 0d}}}",
    "member twice": "users: {a: {endpoint: a1}}\ndepartments: {d: {members: [a, a]}}",
    "ring_time 0": _in_base("members: [alice, bob]", "members: [alice, bob], ring_time: 0"),
    "strategy typo": _in_base("members: [alice, bob]", "members: [alice], strategy: round"),
    "short DID": _in_base('["+15550100"]', '["+1"]'),
    "letters in a DID": _in_base('["+15550100"]', '["+1555CALLME"]'),
    "DID twice": _in_base('["+15550100"]', '["+15550100", "+15550100"]'),
    "failover number with a 0": "departments: {s: {members: [], failover: {number: '+0123'}}}",
    "alternate user id": "users: {a: {endpoint: a1, alternate: 'user:Bob'}}",
    "alternate sip": "users: {a: {endpoint: a1, alternate: 'sip:'}}",
    "user id": "users: {Alice: {endpoint: a1}}",
    "endpoint": "users: {a: {endpoint: 'agent 1'}}",
    "unknown field": "users: {a: {endpoint: a1, phone: agent1}}",
    "unknown section": "setings: {timezone: UTC}",
    "time zone": "settings: {timezone: America/New York}",
    "language": "settings: {language: english}",
    "mailbox": "users: {a: {endpoint: a1, mailbox: Alice.Box}}",
    "menu key 0": _in_base('options: {"1": sales}', 'options: {"0": sales}'),
    "menu key 10": _in_base('options: {"1": sales}', 'options: {"10": sales}'),
    "menu key *": _in_base('options: {"1": sales}', 'options: {"*": sales}'),
    "menu without choice": _in_base('options: {"1": sales}, ', ""),
    "prompt file name": _in_base("prompt: welcome", "prompt: Welcome.wav"),
    "prompt and prompts": _in_base("prompt: welcome", "prompt: welcome, prompts: [welcome]"),
    "no prompt": _in_base("prompt: welcome, ", ""),
    "node type missing": _in_base("type: message, ", ""),
    "node type unknown": _in_base("type: message", "type: messages"),
    "node id": _in_base("      sales: {type: department",
                        "      Sales: {type: department"),
    "node id failover": _in_base("      sales: {type: department",
                                 "      failover: {type: department"),
    "flow without nodes": "flows: {main: {entry: hello}}",
    "flow id": _in_base("  main:\n", "  Main:\n"),
    "ref is not an id": _in_base("next: menu}", "next: Menu}"),
    "timeout 0": _in_base("fallback: sales}", "fallback: sales, timeout: 0}"),
    "timeout above 60": _in_base("fallback: sales}", "fallback: sales, timeout: 61}"),
    "repeat key": _in_base("fallback: sales}", "fallback: sales, repeat_key: '0'}"),
    "language option without next": _in_base(
        "next: menu}", "next: lang}\n      lang: {type: language, prompt: main-menu, "
        "options: {1: en, 2: es}}"),
    "holiday date and range": _in_base(
        "next: menu}", "next: t}\n      t: {type: time, hours: [{days: sat, start: '09:00', "
        "end: '10:00'}], holidays: [{date: 2025-12-25, from: 2025-12-24, to: 2025-12-26}], "
        "open: menu, closed: sales}"),
    "holiday half range": _in_base(
        "next: menu}", "next: t}\n      t: {type: time, hours: [{days: sat, start: '09:00', "
        "end: '10:00'}], holidays: [{from: 2025-12-24}], open: menu, closed: sales}"),
    "holiday not a date": _in_base(
        "next: menu}", "next: t}\n      t: {type: time, hours: [{days: sat, start: '09:00', "
        "end: '10:00'}], holidays: [{date: christmas}], open: menu, closed: sales}"),
    "time without hours": _in_base(
        "next: menu}", "next: t}\n      t: {type: time, hours: [], open: menu, "
        "closed: sales}"),
    "goto nowhere": _in_base("next: menu}", "next: g}\n      g: {type: goto}"),
    "hangup cause": _in_base("next: menu}", "next: h}\n      h: {type: hangup, cause: 0}"),
    "voicemail box": _in_base("next: menu}", "next: v}\n      v: {type: voicemail, "
                              "mailbox: 'team:sales'}"),
    "input branch without post": _in_base(
        "next: menu}", "next: i}\n      i: {type: input, prompt: main-menu, "
        "on_status: {404: menu}, next: menu}"),
    "input reserved variable": _in_base(
        "next: menu}", "next: i}\n      i: {type: input, prompt: main-menu, "
        "variable: caller, next: menu}"),
    "input status": _in_base(
        "next: menu}", "next: i}\n      i: {type: input, prompt: main-menu, next: menu, "
        "post: {url: 'http://h/x'}, on_status: {600: menu}}"),
    "input url": _in_base(
        "next: menu}", "next: i}\n      i: {type: input, prompt: main-menu, next: menu, "
        "post: {url: 'ftp://h/x'}}"),
    "outcome cause": "settings: {outcomes: {busy: [17, 128]}}",
    "a list at the top": "- flows\n",
}


@pytest.mark.parametrize("text", REJECTED.values(), ids=REJECTED.keys())
def test_both_reject(text: str) -> None:
    assert not load_text(text).ok
    assert errors_in(loader_view(text)), "the schema accepts what the loader rejects"
    assert errors_in(editor_view(text)), "the schema accepts it in an editor's reading"


# ---------------------------------------------------------------------------------------------
# Field by field: the models and the schema agree on the values people type.

_DEFS = flowset_json_schema()["definitions"]


def _schema_ok(definition: str, instance: Any) -> bool:
    cls = type(validator())
    sub = cls({"$ref": f"#/definitions/{definition}", "definitions": _DEFS},
              format_checker=cls.FORMAT_CHECKER)
    return sub.is_valid(instance)


def _model_ok(build: Callable[[], Any]) -> bool:
    try:
        build()
    except (ValidationError, ValueError):
        return False
    return True


def _agree(definition: str, instance: dict[str, Any], build: Callable[[], Any]) -> None:
    assert _schema_ok(definition, instance) == _model_ok(build), instance


def _tokens(*words: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(words), max_size=6).map("".join)


_DAY = st.sampled_from(["mon", "Fri", "SAT", "sun", "tue", "wed", "thu", "mo", "x", ""])
_DAY_TEXT = st.one_of(
    _tokens("mon", "Fri", "SAT", "sun", "-", ",", " ", "x"),
    st.lists(
        st.tuples(_DAY, st.sampled_from(["", "-", " - ", "--"]), _DAY).map("".join),
        min_size=1, max_size=3,
    ).flatmap(lambda parts: st.sampled_from([",", ", ", " ,"]).map(lambda j: j.join(parts))),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_DAY_TEXT, st.lists(_DAY_TEXT, max_size=3)))
def test_days_agree(days: Any) -> None:
    data = {"days": days, "start": "09:00", "end": "10:00"}
    _agree("Window", data, lambda: Window.model_validate(data))


_TIME = st.one_of(
    _tokens("0", "9", "1", "2", "3", "4", "5", ":", " ", "60", "24", "00"),
    st.integers(min_value=-5, max_value=1500),
)


@settings(max_examples=300, deadline=None)
@given(_TIME, _TIME)
def test_times_agree(start: Any, end: Any) -> None:
    data = {"days": "mon", "start": start, "end": end}
    try:
        Window.model_validate(data)
    except ValidationError as exc:
        if "start and end are both" in str(exc):
            return  # start == end: the one rule here JSON Schema cannot say
    _agree("Window", data, lambda: Window.model_validate(data))


_DURATION = st.one_of(
    _tokens("0", "1", "30", "d", "h", "m", "s", "D", "w", " ", "-", "."),
    st.integers(min_value=-2, max_value=10**6),
)


@settings(max_examples=300, deadline=None)
@given(_DURATION)
def test_durations_agree(ttl: Any) -> None:
    _agree("Sticky", {"ttl": ttl}, lambda: Sticky.model_validate({"ttl": ttl}))
    data = {"members": [], "sticky": ttl}
    _agree("Department", data, lambda: Department.model_validate({**data, "id": "d"}))


_NUMBER = st.one_of(
    _tokens("+", "0", "1", "44", "555", "0100", " ", "-", "(", ")", ".", "x", "/"),
    st.integers(min_value=0, max_value=10**21),
)


@settings(max_examples=400, deadline=None)
@given(_NUMBER)
def test_dids_agree(did: Any) -> None:
    data = {"entry": "a", "dids": [did], "nodes": {"a": {"type": "hangup"}}}
    _agree("Flow", data, lambda: Flow.model_validate(data))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_NUMBER, _tokens("sip:", "user:", "agent1", "bob", "B", " ", "-", "_", "1")))
def test_phone_numbers_agree(number: Any) -> None:
    if isinstance(number, str) and re.match(r"[\s().-]+(?:sip|user):", number):
        return  # junk before sip:/user: is stripped by the loader (not mirrored)
    _agree("Failover", {"number": number}, lambda: Failover.model_validate({"number": number}))
    data = {"endpoint": "a1", "alternate": number}
    _agree("User", data, lambda: User.model_validate({**data, "id": "u"}))


_NAME = _tokens("a", "b", "Z", "0", "_", "-", "/", ".", " ", "..", ":", "x9")


@settings(max_examples=300, deadline=None)
@given(_NAME, _NAME)
def test_ids_and_prompt_names_agree(name: str, other: str) -> None:
    node = {"type": "department", "department": name, "fallback": other}
    _agree("DepartmentNode", node, lambda: NODE_ADAPTER.validate_python(node))
    message = {"type": "message", "prompt": [name, other]}
    _agree("MessageNode", message, lambda: NODE_ADAPTER.validate_python(message))
    box = {"type": "voicemail", "mailbox": f"{name}:{other}" if other else name}
    _agree("VoicemailNode", box, lambda: NODE_ADAPTER.validate_python(box))
    user = {"endpoint": name or "x"}
    _agree("User", user, lambda: User.model_validate({**user, "id": "u"}))


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({}, optional={
        "date": st.sampled_from(["2025-12-25", None, "2025-13-01"]),
        "from": st.sampled_from(["2025-12-24", None]),
        "to": st.sampled_from(["2025-12-26", "2025-12-01", None]),
    }),
    st.tuples(*[st.sampled_from(["1", "4", "5", "6", "0", "x", "X", " ", ""])] * 3).map("".join),
)
def test_holidays_and_statuses_agree(holiday: dict[str, Any], status: str) -> None:
    # to < from is not expressible: only compare ranges in order.
    if holiday.get("to") != "2025-12-01" or holiday.get("from") is None:
        time = {"type": "time", "hours": [{"days": "mon", "start": "09:00", "end": "10:00"}],
                "holidays": [holiday], "open": "a", "closed": "b"}
        _agree("TimeNode", time, lambda: NODE_ADAPTER.validate_python(time))
    node = {"type": "input", "prompt": "p", "post": {"url": "http://h/"},
            "on_status": {status: "a"}}
    _agree("InputNode", node, lambda: NODE_ADAPTER.validate_python(node))


# ---------------------------------------------------------------------------------------------
# Descriptions.

_UNITS = {"timeout", "inter_digit_timeout", "ring_time", "total_timeout", "max_seconds", "ttl"}
_RST = re.compile(r"``|:(?:class|func|data|mod|meth|attr):|`[^`]+`_")


def test_every_field_is_described_in_plain_text_with_units() -> None:
    for name, definition in _DEFS.items():
        assert definition.get("description"), name
        for field, prop in definition["properties"].items():
            desc = prop.get("description", "")
            assert desc, f"{name}.{field} has no description"
            if field in _UNITS:
                assert "seconds" in desc.lower() or "30d" in desc, f"{name}.{field}: {desc}"
    for text in re.findall(r'"description": "((?:[^"\\]|\\.)*)"', SCHEMA_FILE.read_text()):
        assert not _RST.search(text), text


def test_the_descriptions_name_only_existing_fields() -> None:
    generated = {name: set(d["properties"]) for name, d in _DEFS.items()}
    generated["FlowSet"] = set(flowset_json_schema()["properties"])
    assert set(DEFINITIONS) == set(generated)
    for name, spec in DEFINITIONS.items():
        assert set(spec.fields) <= generated[name], (name, set(spec.fields) - generated[name])
