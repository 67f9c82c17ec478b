"""The flow file JSON Schema (``callctl schema``), for editors and CI.

Made from the pydantic models, then completed so that it describes a flow *file* the way
``callctl validate`` reads it: a file the loader accepts is valid here, and as far as JSON
Schema can say, a file the loader rejects is invalid here too. It is draft-07, the newest draft
yaml-language-server (VS Code's YAML extension) supports.

What the models alone would get wrong, and this module adds:

* shorthands the validators expand: ``days: mon-fri`` (a string, ranges, lists),
  ``start: 9:30`` (YAML 1.1 reads it as the int 570), ``sticky: true`` / ``sticky: 30d``,
  durations like ``30d``, ``12h``, ``90m``, ``45s``;
* YAML 1.1 against YAML 1.2 (editors default to 1.2): ``+15550100`` is a string to the loader
  but an int to an editor, so DIDs and phone numbers take both; ``yes``/``no``/``on``/``off``
  are booleans to the loader and strings to an editor, so booleans take both;
* what the validators check with a regular expression or a rule on several fields (ids,
  prompt names, DIDs, E.164 numbers, mailboxes, menu keys 1-9, status codes, "prompt or
  prompts", "date or from/to", "options or operator", "on_status needs post", ...);
* descriptions with units and examples, in plain text.

Each model's completion is a :class:`~controller.core.flows.editor_parts.Definition`: the
directory's and the flow's here, each node type's (and its sub-models') in the node's module
(``SCHEMA`` in ``controller/core/nodes/<type>.py``, collected through the node registry).

Not expressible (left to ``callctl validate``): cross-references (unknown users, nodes,
flows), ``start != end``, ``min_digits <= digits``, a time zone missing from this machine's
tz database, causes listed under two outcomes. Not mirrored on purpose: quoted numbers
(``ring_time: "15"``) and other pydantic lax-mode coercions (the schema asks for a number),
and ``from_`` (the Python name of a holiday's ``from``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from controller.core.flows import editor_parts as ep
from controller.core.flows.directory import DAYS, RESERVED_NUMBERS
from controller.core.flows.editor_parts import Definition
from controller.core.flows.schema import FlowSet
from controller.core.nodes import NODE_MODULES, NODE_TYPES
from controller.core.patterns import (
    ENDPOINT_RE,
    EXTENSION_RE,
    ID_RE,
    LANGUAGE_RE,
    MAILBOX_RE,
    PHONE_JUNK,
)

__all__ = ["DEFINITIONS", "SCHEMA_DRAFT", "SCHEMA_ID", "flowset_json_schema"]

SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_ID = "https://callctl.invalid/flow.schema.json"

# ---------------------------------------------------------------------------------------------
# Building blocks of the directory's definitions (the shared ones: controller.core.flows.
# editor_parts).

_JUNK = PHONE_JUNK.pattern
"""What the loader strips from DIDs and phone numbers (spaces, dashes, dots, parentheses)."""
YAML11_BOOLEANS = ("yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF")
"""Booleans to the loader (YAML 1.1), strings to a YAML 1.2 editor."""


def _ci(word: str) -> str:
    """A case-insensitive regex for ``word`` (JSON Schema patterns have no flags)."""
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


_DAY = "(?:" + "|".join(_ci(d) for d in DAYS) + ")"
_DAY_PART = rf"\s*{_DAY}\s*(?:-\s*{_DAY}\s*)?"
DAYS_PATTERN = rf"^{_DAY_PART}(?:,{_DAY_PART})*$"
"""``mon``, ``mon-fri``, ``fri-mon``, ``mon,wed,fri``, ``mon-wed, sat`` (any case)."""
START_PATTERN = r"^\s*(?:[01]?[0-9]|2[0-3]):[0-5][0-9]\s*$"
END_PATTERN = r"^\s*(?:(?:[01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)\s*$"
DURATION_PATTERN = r"^\s*0*[1-9][0-9]*\s*[dhmsDHMS]?\s*$"
"""A positive duration: seconds, or a number with d, h, m or s."""
# The two below are DID_RE and E164_RE (controller.core.patterns) with the junk the loader
# strips.
DID_PATTERN = rf"^{_JUNK}*(?:\+{_JUNK}*)?(?:[0-9]{_JUNK}*){{2,20}}$"
E164_PATTERN = rf"^{_JUNK}*(?:\+{_JUNK}*)?[1-9]{_JUNK}*(?:[0-9]{_JUNK}*){{2,14}}$"


class _Extend(dict[str, Any]):
    """A field spec that adds to the generated schema instead of replacing it."""


def _mailbox(what: str) -> dict[str, Any]:
    return ep.string(MAILBOX_RE.pattern, f"{what}: lower-case letters, digits, '_' and '-', "
                     "at most 64 (e.g. sales)")


def _phone(what: str) -> dict[str, Any]:
    return {
        "description": f"{what}: an external number, E.164 with an optional '+', spaces, "
                       "dashes, dots and parentheses allowed (e.g. '+1 555-0100')",
        "anyOf": [{"type": "string", "pattern": E164_PATTERN},
                  {"type": "integer", "minimum": 100, "maximum": 10**15 - 1}],
    }


# ---------------------------------------------------------------------------------------------
# What each model says about itself and its fields: (definition, field) -> schema. A schema
# replaces the generated one (keeping its title and default); a plain string only sets the
# description. Every field of every definition has an entry (a test checks).

_MODELS: dict[str, str] = {
    "FlowSet": "A callctl flow file: any of settings, users, departments and flows. The files "
               "of a flow directory are merged.",
    "Settings": "Global settings (in one file only).",
    "OutcomeMap": "Q.850 cause codes per outcome of a ring attempt.",
    "User": "A person: their phone (a PJSIP endpoint), availability and alternate.",
    "Window": "A window in local time. end before start spans midnight (fri 22:00-06:00 is "
              "Friday 22:00 to Saturday 06:00).",
    "Department": "A team and how its members ring.",
    "Sticky": "Sticky agent: a returning caller rings the agent who last answered them first.",
    "Failover": "What happens when nobody answers: a number, then voicemail.",
    "Flow": "Calls to any of dids start at entry.",
}

_FIELDS: dict[str, dict[str, Any]] = {
    "FlowSet": {
        "settings": "Global settings (in one file only).",
        "users": "People: id -> user.",
        "departments": "Teams: id -> department.",
        "flows": "Call flows: id -> flow.",
    },
    "Settings": {
        "timezone": ep.string(ep.TIMEZONE_PATTERN, "Default time zone, an IANA name (e.g. "
                              "America/New_York, Europe/Berlin, UTC)"),
        "forward_to_alternate": ep.boolean("Global switch: false = no alternate is ever rung."),
        "alternate_caller_id": "Caller id shown on alternate and failover calls: the "
                               "caller's (caller) or the dialled number (did).",
        "rejected_is_busy": ep.boolean("Treat a rejected call (Q.850 21) as busy."),
        "outcomes": "Q.850 cause codes per outcome (busy, unreachable, no_answer, rejected).",
        "language": ep.string(LANGUAGE_RE.pattern, "Default prompt language (e.g. en, es, pt_BR)"),
        "prompts_dir": "Directory of the prompts, relative to the project root or absolute "
                       "(e.g. prompts).",
        "max_simultaneous": "The most users a simultaneous department rings at once (1-5).",
        "phones_external": ep.boolean("Registered phones may call external numbers (+E.164, or "
                                      "more than 6 digits) through the PSTN trunk; false: refused "
                                      "with 403 and logged."),
        "phones_caller_id": {
            **_phone("Number shown on registered phones' external calls (default: the "
                     "caller's extension and name)"),
            "anyOf": [*_phone("")["anyOf"], {"const": ""}, {"type": "null"}]},
    },
    "OutcomeMap": {
        name: {"type": "array", "description": f"Q.850 causes counted as {label}",
               "items": {"type": "integer", "minimum": 0, "maximum": 127}}
        for name, label in (("busy", "busy, each 0-127 (e.g. [17])"),
                            ("unreachable", "unreachable, each 0-127 (e.g. [1, 3, 18, 20])"),
                            ("no_answer", "no answer, each 0-127 (e.g. [19])"),
                            ("rejected", "rejected, each 0-127 (e.g. [21])"))
    },
    "User": {
        "id": ep.an_id("The user id (its key in users; optional here)", "alice"),
        "name": "Display name (e.g. Alice Adams).",
        "endpoint": ep.string(ENDPOINT_RE.pattern, "The PJSIP endpoint of the user's phone "
                              "(e.g. agent1)"),
        "receive_calls": ep.boolean("false = opted out: never rung by any routed call, nor is "
                                    "their alternate."),
        "availability": "When the user takes calls (empty: always), in their time zone.",
        "timezone": ep.nullable(ep.string(ep.TIMEZONE_PATTERN, "IANA time zone of availability "
                                          "(default: settings.timezone; e.g. Europe/London)")),
        "alternate": {
            "description": "Rung when the user cannot take the call: an external number "
                           "(+E.164, e.g. '+1 555-0100'), sip:<endpoint> or user:<user id>",
            "anyOf": [
                {"type": "string", "pattern": E164_PATTERN},
                {"type": "integer", "minimum": 100, "maximum": 10**15 - 1},
                {"type": "string", "pattern": rf"^sip:{ENDPOINT_RE.pattern[1:-1]}\s*$"},
                {"type": "string", "pattern": rf"^user:{ID_RE.pattern[1:-1]}\s*$"},
                {"const": ""},
                {"type": "null"},
            ],
        },
        "mailbox": ep.nullable(_mailbox("Voicemail box (default: the user id)")),
        "extension": {
            "description": "What a registered phone dials to ring this user: 2 to 6 digits, "
                           "unique, neither a DID nor an emergency number (112, 911, 999, "
                           "000) (e.g. \"101\")",
            "anyOf": [
                {"type": "string", "pattern": EXTENSION_RE.pattern,
                 "not": {"enum": sorted(RESERVED_NUMBERS)}},
                {"type": "integer", "minimum": 10, "maximum": 999999,
                 "not": {"enum": sorted(int(n) for n in RESERVED_NUMBERS if n[0] != "0")}},
                {"type": "null"},
            ],
        },
        "voicemail": ep.boolean("false: a caller who cannot reach this user (their extension, or "
                                "an extension node's failover) hears busy (486) or unavailable "
                                "(480) instead of leaving a message."),
    },
    "Window": {
        "days": {
            "description": "Days: mon..sun, a range (mon-fri, fri-mon), a comma list "
                           "(mon,wed,fri) or a list of these (e.g. mon-fri or [mon-wed, sat])",
            "anyOf": [
                {"type": "string", "pattern": DAYS_PATTERN},
                {"type": "array", "minItems": 1,
                 "items": {"type": "string", "pattern": DAYS_PATTERN}},
            ],
            "examples": ["mon-fri", "sat", ["mon-wed", "fri"]],
        },
        "start": {
            "description": "Start time, HH:MM from 00:00 to 23:59 (e.g. \"09:00\"; unquoted "
                           "9:30 works too)",
            "anyOf": [{"type": "string", "pattern": START_PATTERN},
                      {"type": "integer", "minimum": 0, "maximum": 1439}],
            "examples": ["09:00"],
        },
        "end": {
            "description": "End time, HH:MM up to 24:00 (e.g. \"18:00\"); before start: the "
                           "window ends the next day",
            "anyOf": [{"type": "string", "pattern": END_PATTERN},
                      {"type": "integer", "minimum": 0, "maximum": 1440}],
            "examples": ["18:00"],
        },
    },
    "Department": {
        "id": ep.an_id("The department id (its key in departments; optional here)", "sales"),
        "name": "Display name (e.g. Sales).",
        "strategy": "How members ring: serial (in order), simultaneous (all at once), "
                    "balanced (round-robin), longest_idle (who waited longest first).",
        "sticky": {
            "description": "Sticky agent on top of strategy: true (remember 30 days), a "
                           "duration (seconds, or e.g. 30d, 12h, 90m, 45s), a mapping {ttl: "
                           "...}, or false/null for off",
            "anyOf": [
                {"type": "boolean"},
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": DURATION_PATTERN},
                {"$ref": f"{ep.REF}Sticky"},
                {"type": "null"},
            ],
            "examples": [True, "30d"],
        },
        "members": {
            "type": "array", "uniqueItems": True,
            "items": ep.node_ref("A user id"),
            "description": "User ids, in ringing order (serial), each once "
                           "(e.g. [alice, bob])",
        },
        "ring_time": "Seconds each member rings (serial, balanced, longest_idle) or each "
                     "wave rings (simultaneous), 1-600 (e.g. 20).",
        "total_timeout": "Seconds for the whole department, every wave and round, 1-3600 "
                         "(e.g. 60); null = no limit.",
        "rounds": "How many times the member list is rung, 1-10.",
        "alternate_on_no_answer": ep.boolean("Also ring a member's alternate when the member does "
                                             "not answer in time."),
        "failover": "What happens when nobody answers.",
        "mailbox": ep.nullable(_mailbox("Voicemail box (default: the department id)")),
    },
    "Sticky": {
        "ttl": {
            "description": "How long the caller -> agent memory lasts: seconds, or e.g. 30d, "
                           "12h, 90m, 45s (default 30d)",
            "anyOf": [{"type": "integer", "minimum": 1},
                      {"type": "string", "pattern": DURATION_PATTERN}],
            "examples": ["30d", 3600],
        },
    },
    "Failover": {
        "number": {**_phone("Number to forward to first"),
                   "anyOf": [*_phone("")["anyOf"], {"const": ""}, {"type": "null"}]},
        "voicemail": ep.boolean("Then voicemail (true), or hang up (false)."),
        "greeting": ep.nullable(ep.prompt("The voicemail greeting (default: failover-greeting)")),
        "mailbox": ep.nullable(_mailbox("Voicemail box")),
    },
    "Flow": {
        "id": ep.an_id("The flow id (its key in flows; optional here)", "main"),
        "description": "A note for people reading the flow.",
        "dids": {
            "type": "array", "uniqueItems": True,
            "description": "Numbers (DIDs) that start this flow: digits with an optional '+', "
                           "spaces and dashes allowed (e.g. [\"+15550100\"])",
            "items": {"anyOf": [{"type": "string", "pattern": DID_PATTERN},
                                {"type": "integer", "minimum": 10, "maximum": 10**20 - 1}]},
        },
        "entry": ep.node_ref("The node a call starts at"),
        "nodes": _Extend({
            "description": "The flow's nodes: id -> node (at least one)",
            "minProperties": 1,
            "propertyNames": {"pattern": ID_RE.pattern, "not": {"const": "failover"}},
        }),
        "language": ep.nullable(ep.string(LANGUAGE_RE.pattern, "Prompt language of this flow "
                                          "(default: settings.language; e.g. es)")),
        "failover": "The line's failover: used when nobody answers and when the controller "
                    "is down.",
    },
}

DEFINITIONS: dict[str, Definition] = {
    **{name: Definition(_MODELS[name], _FIELDS[name]) for name in _MODELS},
    **{name: spec for module in NODE_MODULES for name, spec in module.SCHEMA.items()},
}
"""Definition name -> its completion: the directory's and the flow's, then each node type's."""


# ---------------------------------------------------------------------------------------------
# Assembly.

_RST = re.compile(r"``([^`]*)``|:[a-z]+:`~?([^`]*)`")


def plain(text: str) -> str:
    """Docstring markup out: ``x`` and :class:`x` become x."""
    return _RST.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _merge_field(prop: dict[str, Any], spec: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(spec, str):
        return {**prop, "description": spec}
    if isinstance(spec, _Extend):
        return {**prop, **copy.deepcopy(dict(spec))}
    keep: dict[str, Any] = {k: prop[k] for k in ("title", "default") if k in prop}
    return {**keep, **copy.deepcopy(spec)}


def _yaml11_booleans(node: Any) -> None:
    """``{"type": "boolean"}`` -> boolean or a YAML 1.1 boolean word, everywhere."""
    for d in list(_walk(node)):
        if d.get("type") == "boolean":
            del d["type"]
            d["anyOf"] = [{"type": "boolean"}, {"enum": list(YAML11_BOOLEANS)}]


_NODE_DEFS = frozenset(cls.__name__ for cls in NODE_TYPES.values())


def flowset_json_schema() -> dict[str, Any]:
    """JSON Schema (draft-07) of a flow file (every top-level section optional)."""
    raw = FlowSet.model_json_schema(ref_template=ep.REF + "{model}")
    defs: dict[str, Any] = raw.pop("$defs")
    defs["FlowSet"] = raw
    for name, model in defs.items():
        spec = DEFINITIONS.get(name)  # a test wants one for every definition and field
        fields = spec.fields if spec is not None else {}
        props = model["properties"]
        for field, prop in list(props.items()):
            given = fields.get(field)
            if given is not None:
                props[field] = _merge_field(prop, given)
            elif "description" in prop:
                prop["description"] = plain(prop["description"])
        model["description"] = ((spec.description if spec is not None else "")
                                or plain(model.get("description", name)))
        req = model.get("required")
        if isinstance(req, list) and "id" in req:  # ids come from the mapping keys
            req.remove("id")
        if name in _NODE_DEFS:
            model["required"] = ["type", *[r for r in model.get("required", []) if r != "type"]]
        if not model.get("required"):
            model.pop("required", None)
        if spec is not None and spec.rules:
            model.update(copy.deepcopy(dict(spec.rules)))
        if spec is not None and spec.complete is not None:
            spec.complete(model)

    defs["Flow"]["required"] = ["entry", "nodes"]  # lint: "a flow needs nodes"
    # The sections of a file may be empty (null), and so may the whole file.
    top = defs.pop("FlowSet")
    for section in ("settings", "users", "departments", "flows"):
        top["properties"][section] = ep.nullable(top["properties"][section])
    for section in ("users", "departments", "flows"):
        inner = top["properties"][section]["anyOf"][0]
        inner["propertyNames"] = {"pattern": ID_RE.pattern}
        inner.pop("description", None)
    _yaml11_booleans(defs)
    for d in _walk([defs, top]):  # plain sentences, no markup left from docstrings
        text = d.get("description")
        if isinstance(text, str):
            text = plain(text).strip()
            d["description"] = text if text.endswith(".") else text + "."
    top.pop("title", None)
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": SCHEMA_ID,
        "title": "callctl flow file",
        "type": ["object", "null"],
        **{k: v for k, v in top.items() if k != "type"},
        "definitions": defs,
    }
