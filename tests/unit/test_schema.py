"""Flow models: node validation, branches, DIDs, JSON round trip, JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from controller.core.flows.editor_schema import flowset_json_schema
from controller.core.flows.loader import load
from controller.core.flows.schema import NODE_ADAPTER, FlowSet
from controller.core.nodes import NODE_TYPES

ROOT = Path(__file__).resolve().parents[2]


def node(**data: Any) -> Any:
    return NODE_ADAPTER.validate_python({"id": "n", **data})


def errors(**data: Any) -> str:
    with pytest.raises(ValidationError) as exc:
        node(**data)
    return str(exc.value)


def test_menu_keys() -> None:
    m = node(type="menu", prompt="p", options={1: "a", "9": "b"})
    assert list(m.options) == ["1", "9"]
    assert "reserved for the operator" in errors(type="menu", prompt="p", options={0: "a"})
    assert "reserved" in errors(type="menu", prompt="p", options={"*": "a"})
    assert "single digits 1-9" in errors(type="menu", prompt="p", options={10: "a"})
    assert "at least one option" in errors(type="menu", prompt="p")


def test_menu_defaults() -> None:
    m = node(type="menu", prompt=["a", "b"], options={1: "x"})
    assert (m.timeout, m.retries, m.repeat_key, m.invalid_prompt) == (5.0, 3, "*", "invalid")
    assert m.prompt == ["a", "b"]


def test_prompt_names_are_validated() -> None:
    assert "invalid prompt name" in errors(type="message", prompt="../etc/passwd")
    assert "invalid prompt name" in errors(type="message", prompt="Hello.wav")
    assert node(type="message", prompt="sales/intro-2").prompt == ["sales/intro-2"]


def test_message_prompt_or_prompts() -> None:
    assert node(type="message", prompts=["a", "b"]).prompt == ["a", "b"]
    assert "not both" in errors(type="message", prompt="a", prompts=["b"])


def test_language_options() -> None:
    n = node(type="language", prompt="p", options={1: "en", 2: {"language": "es", "next": "x"}},
             next="m")
    assert n.options["1"].language == "en" and n.branch("2") == "x"
    assert "have no `next`" in errors(type="language", prompt="p", options={1: "en"})
    assert "invalid language" in errors(type="language", prompt="p", options={1: "EN!"},
                                         next="m")


def test_department_and_extension_defaults() -> None:
    d = node(type="department", department="sales")
    assert d.fallback == "failover" and d.branch("fallback") is None
    e = node(type="extension", user="alice", fallback="after")
    assert e.ring_time == 20 and e.branch("fallback") == "after"
    assert list(e.targets()) == [(("fallback",), "after")]


def test_voicemail_mailbox() -> None:
    assert node(type="voicemail", mailbox="user:alice").max_seconds == 120
    assert node(type="voicemail", mailbox="sales-box").greeting == "vm-intro"
    assert "invalid mailbox" in errors(type="voicemail", mailbox="Sales Box")
    assert "invalid id" in errors(type="voicemail", mailbox="user:Al ice")


def test_input_validation() -> None:
    assert "already in the request" in errors(type="input", prompt="p", variable="caller")
    assert "need a `post`" in errors(type="input", prompt="p", error="x")
    assert "http(s) URL" in errors(type="input", prompt="p", post={"url": "ftp://x/y"})
    assert "min_digits" in errors(type="input", prompt="p", digits=3, min_digits=4)
    n = node(type="input", prompt="p", post={"url": "https://x.example/"},
             on_status={200: "a", "5xx": "b"}, match={"tier": {"gold": "c", 1: "d"}})
    assert set(n.on_status) == {"200", "5xx"} and set(n.match["tier"]) == {"gold", "1"}
    assert "invalid status" in errors(type="input", prompt="p", post={"url": "http://x/"},
                                      on_status={"abc": "a"})


def test_time_node() -> None:
    t = node(type="time", hours=[{"days": "mon-fri", "start": 570, "end": "17:00"}],
             holidays=[{"date": "2025-12-25"}, {"from": "2025-12-30", "to": "2026-01-02"}],
             open="o", closed="c")
    assert t.hours[0].start == "09:30" and t.holidays[1].from_.day == 30
    assert "unknown time zone" in errors(type="time", timezone="Mars/Base",
                                         hours=t.model_dump()["hours"], open="o", closed="c")
    assert "before" in errors(type="time", hours=t.model_dump()["hours"], open="o", closed="c",
                              holidays=[{"from": "2025-12-30", "to": "2025-12-01"}])
    assert "needs `date`" in errors(type="time", hours=t.model_dump()["hours"], open="o",
                                    closed="c", holidays=[{"from": "2025-12-30"}])


def test_goto_and_hangup() -> None:
    assert "needs `node`, `flow`" in errors(type="goto")
    assert node(type="hangup").cause == 16
    assert "less than or equal to 127" in errors(type="hangup", cause=300)


def test_unknown_fields_and_types_rejected() -> None:
    assert "Extra inputs" in errors(type="message", prompt="p", nxt="x")
    assert "does not match any of the expected tags" in errors(type="queue")


def test_dids_and_flow_for_did() -> None:
    fs = FlowSet.model_validate({"flows": {
        "a": {"dids": ["+1 555-0100", 15550101], "entry": "h", "nodes": {"h": {"type": "hangup"}}},
    }})
    assert fs.flows["a"].dids == ["+15550100", "15550101"]
    assert fs.flow_for_did("15550100") is fs.flows["a"]
    assert fs.flow_for_did("+15550101") is fs.flows["a"]
    assert fs.flow_for_did("+1") is None
    assert fs.did_map == {"+15550100": "a", "15550101": "a"}
    with pytest.raises(ValidationError, match="invalid DID"):
        FlowSet.model_validate({"flows": {"a": {"dids": ["sip:x"], "entry": "h"}}})


def test_ids_come_from_keys() -> None:
    fs = FlowSet.model_validate({
        "users": {"alice": {"endpoint": "agent1"}},
        "flows": {"f": {"entry": "h", "nodes": {"h": {"type": "hangup"}}}},
    })
    assert fs.users["alice"].id == "alice"
    assert fs.flows["f"].id == "f" and fs.flows["f"].nodes["h"].id == "h"


def test_examples_round_trip_through_json() -> None:
    result = load([ROOT / "flows" / "examples"])
    assert result.flowset is not None
    dumped = json.loads(json.dumps(result.flowset.model_dump(mode="json")))
    again = FlowSet.model_validate(dumped)
    assert again == result.flowset
    assert again.did_map == result.flowset.did_map
    assert again.model_dump(mode="json") == dumped


def test_json_schema() -> None:
    schema = flowset_json_schema()
    json.dumps(schema)
    defs = schema["definitions"]
    for cls in NODE_TYPES.values():
        assert cls.__name__ in defs
        assert "id" not in defs[cls.__name__].get("required", [])
    assert defs["MenuNode"]["additionalProperties"] is False
    nodes = defs["Flow"]["properties"]["nodes"]["additionalProperties"]
    assert nodes["discriminator"]["propertyName"] == "type"
    assert "from" in defs["Holiday"]["properties"]
    prompt = defs["MenuNode"]["properties"]["prompt"]
    assert "anyOf" in prompt  # a name or a list of names


def test_outage_targets() -> None:
    from controller.core.flows.schema import outage_targets

    fs = FlowSet.model_validate({"flows": {
        "a": {"dids": ["+15550100"], "entry": "h", "nodes": {"h": {"type": "hangup"}},
              "failover": {"number": "+15550999", "mailbox": "main"}},
        "b": {"dids": ["+15550101"], "entry": "h", "nodes": {"h": {"type": "hangup"}}},
        "c": {"dids": ["+15550102"], "entry": "h", "nodes": {"h": {"type": "hangup"}},
              "failover": {"number": "+15550998", "voicemail": False}},
    }})
    # Every line has failover voicemail (seed 003) unless it is switched off.
    assert outage_targets(fs) == {"+15550100": ("+15550999", "main"),
                                  "+15550101": ("", "b"),
                                  "+15550102": ("+15550998", "")}


def test_outage_extras_and_astdb_value() -> None:
    from controller.adapters.ami import failover_value
    from controller.core.flows.schema import outage_extras

    fs = FlowSet.model_validate({
        "settings": {"alternate_caller_id": "did", "language": "es"},
        "flows": {
            "a": {"dids": ["+15550100"], "entry": "h", "nodes": {"h": {"type": "hangup"}},
                  "failover": {"greeting": "sorry-closed"}, "language": "en"},
            "b": {"dids": ["+15550101"], "entry": "h", "nodes": {"h": {"type": "hangup"}}},
        }})
    assert outage_extras(fs) == {"+15550100": ("en/sorry-closed", "did"),
                                 "+15550101": ("es/failover-greeting", "did")}
    assert failover_value("+15550999", "main", "en/x", "did") == "+15550999|main|en/x|did"
    assert failover_value(None, "", "", "") == "|||"
