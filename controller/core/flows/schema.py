"""The flow language: pydantic v2 models for flows, their nodes, and the whole flow set.

A *flow set* is everything one publish makes live: ``settings``, ``users``, ``departments``
(models from :mod:`controller.core.flows.directory`) and ``flows``. A flow maps DIDs to an entry
node; nodes are a discriminated union on ``type`` and name the nodes they lead to by id.

Every model is ``extra="forbid"`` (typos are errors) and frozen (a published snapshot is shared
by every call running on it). Ids come from mapping keys. ``FlowSet.model_dump(mode="json")``
round-trips through ``FlowSet.model_validate`` (that is how a publish is stored).

Each node class knows its own branches:

* ``targets()`` yields ``(relative path, node id)`` for every node it may lead to (lint);
* ``branch(key)`` maps a ``Continue(key)`` outcome to the next node id, or None (hang up).

Cross-reference checks (unknown ids, reachability, loops, prompt files) live in
:mod:`controller.core.flows.lint`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_validator,
    model_validator,
)

from controller.core.flows.directory import (
    ID_RE,
    Department,
    Failover,
    FailoverPlan,
    Settings,
    User,
    Window,
    department_mailbox,
    failover_plan,
)
from controller.core.prompts import LANGUAGE_RE, check_prompt_name

__all__ = [
    "FAILOVER",
    "MENU_KEYS",
    "NODE_ADAPTER",
    "NODE_TYPES",
    "DepartmentNode",
    "ExtensionNode",
    "Flow",
    "FlowSet",
    "GotoNode",
    "HangupNode",
    "Holiday",
    "InputNode",
    "LanguageChoice",
    "LanguageNode",
    "MenuNode",
    "MessageNode",
    "Node",
    "Post",
    "TimeNode",
    "VoicemailNode",
    "current_flow",
    "entry_department",
    "flowset_json_schema",
    "line_failover",
    "normalise_did",
    "outage_extras",
    "outage_targets",
    "with_id",
]

FAILOVER = "failover"
"""The ``fallback`` keyword of department/extension nodes: use the failover, not a node."""
MENU_KEYS = tuple("123456789")
"""Keys a menu option may use; 0 is the operator, '*' and '#' repeat/confirm."""
MAX_OPTIONS = len(MENU_KEYS)
DID_RE = re.compile(r"^\+?[0-9]{2,20}$")
"""What the dialplan lets through to the controller (see dialplan/callctl-dialplan.conf)."""
MAILBOX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""A mailbox name the runtime will record into (voicemail/<mailbox>/...)."""
VARIABLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
FIELD_RE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
FLOW_VAR = "_flow"
"""``ctx.vars`` key holding the id of the flow the call is in (set by the engine)."""

_CONFIG = ConfigDict(extra="forbid", frozen=True)

# ---------------------------------------------------------------------------------------------
# Field types.


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _key_str(value: Any) -> Any:
    """YAML reads ``1:`` as an int key; keys are strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_menu_key(key: str) -> str:
    if key in MENU_KEYS:
        return key
    if key == "0":
        raise ValueError("key 0 is reserved for the operator: use `operator:`")
    if key in ("*", "#"):
        raise ValueError(f"key {key!r} is reserved (repeat/confirm): use keys 1-9")
    raise ValueError(f"menu keys are single digits 1-9, not {key!r} (use a sub-menu for more)")


def _check_id(value: str) -> str:
    if not ID_RE.fullmatch(value):
        raise ValueError(
            f"invalid id {value!r}: use lower-case letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return value


def _check_language(value: str) -> str:
    if not LANGUAGE_RE.fullmatch(value):
        raise ValueError(f"invalid language {value!r}: use a code like 'en', 'es', 'pt_BR'")
    return value


def normalise_did(value: Any) -> Any:
    """Accept ``+1 555-0100``-style spelling and ints (YAML); validation is separate."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return re.sub(r"[\s\-().]", "", value)
    return value


def _check_did(value: str) -> str:
    if not DID_RE.fullmatch(value):
        raise ValueError(f"invalid DID {value!r}: use digits with an optional leading '+'")
    return value


Id = Annotated[str, AfterValidator(_check_id)]
NodeRef = Annotated[str, AfterValidator(_check_id), Field(description="a node id in this flow")]
FallbackRef = Annotated[
    str,
    AfterValidator(_check_id),
    Field(description="a node id in this flow, or 'failover' (the failover: number, voicemail)"),
]
PromptName = Annotated[str, AfterValidator(check_prompt_name)]
Prompts = Annotated[
    list[PromptName],
    BeforeValidator(_listify, json_schema_input_type=PromptName | list[PromptName]),
    Field(min_length=1),
]
MenuKey = Annotated[
    str, BeforeValidator(_key_str, json_schema_input_type=str), AfterValidator(_check_menu_key)
]
Language = Annotated[str, AfterValidator(_check_language)]
Did = Annotated[
    str, BeforeValidator(normalise_did, json_schema_input_type=str), AfterValidator(_check_did)
]
Seconds = Annotated[float, Field(gt=0, le=60)]


def with_id(key: str, body: Any) -> Any:
    """``{key: body}`` entry -> body with ``id`` set from the key (a different ``id`` is an
    error). Non-mappings are returned as they are, for the model to reject."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        return body
    if "id" in body and body["id"] != key:
        raise ValueError(f"id {body['id']!r} does not match its key {key!r}")
    return {**body, "id": key}


def _ids_from_keys(entries: Any) -> Any:
    if not isinstance(entries, Mapping):
        return entries
    return {k: with_id(k, v) if isinstance(k, str) else v for k, v in entries.items()}


# ---------------------------------------------------------------------------------------------
# Nodes.

Path = tuple[str | int, ...]


class _Node(BaseModel):
    model_config = _CONFIG

    id: str = Field(default="", description="the node id (its key in `nodes`)")
    description: str = ""
    BRANCHES: ClassVar[tuple[str, ...]] = ()
    """The node's branch fields, for docs and lint."""

    def targets(self) -> Iterator[tuple[Path, str]]:
        """Every node id this node may lead to, with the field path naming it."""
        for name in self.BRANCHES:
            value = getattr(self, name)
            if isinstance(value, str) and value != FAILOVER:
                yield (name,), value

    def branch(self, key: str) -> str | None:
        """The node id that ``Continue(key)`` leads to, or None (the call is hung up)."""
        if key in self.BRANCHES:
            value = getattr(self, key)
            return value if isinstance(value, str) and value != FAILOVER else None
        return None

    def prompts(self) -> Iterator[tuple[Path, str]]:
        """Every prompt name the node may play, with its field path (for lint)."""
        return iter(())


class _Choice(_Node):
    """Shared by menu and language: play a prompt, collect one key, retry."""

    prompt: Prompts
    timeout: Seconds = Field(5.0, description="seconds to wait for a key after the prompt")
    retries: int = Field(3, ge=0, le=10, description="replays after no/invalid input")
    repeat_key: Literal["*", "#"] | None = Field("*", description="replays the prompt")
    invalid_prompt: PromptName = Field("invalid", description="played before a replay")
    no_input: NodeRef | None = None
    invalid: NodeRef | None = None
    fallback: NodeRef | None = None

    def branch(self, key: str) -> str | None:
        if key in ("no_input", "invalid"):
            return getattr(self, key) or self.fallback
        if key == "fallback":
            return self.fallback
        return None

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name
        yield ("invalid_prompt",), self.invalid_prompt


class MenuNode(_Choice):
    """IVR menu: keys 1-9 lead to nodes, 0 to the operator, ``repeat_key`` replays."""

    type: Literal["menu"] = "menu"
    options: dict[MenuKey, NodeRef] = Field(default_factory=dict, max_length=MAX_OPTIONS)
    operator: NodeRef | None = Field(None, description="where key 0 leads")
    BRANCHES: ClassVar[tuple[str, ...]] = ("operator", "no_input", "invalid", "fallback")

    @model_validator(mode="after")
    def _has_choice(self) -> MenuNode:
        if not self.options and self.operator is None:
            raise ValueError("a menu needs at least one option (keys 1-9) or an operator")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        for key, target in self.options.items():
            yield ("options", key), target
        yield from super().targets()

    def branch(self, key: str) -> str | None:
        if key in self.options:
            return self.options[key]
        if key == "0":
            return self.operator
        return super().branch(key)

    def valid_keys(self) -> frozenset[str]:
        return frozenset(self.options) | ({"0"} if self.operator else frozenset())


class LanguageChoice(BaseModel):
    model_config = _CONFIG

    language: Language
    next: NodeRef | None = Field(None, description="default: the node's `next`")


def _language_choice(value: Any) -> Any:
    return {"language": value} if isinstance(value, str) else value


class LanguageNode(_Choice):
    """Caller picks a language by key; every prompt after it plays in that language."""

    type: Literal["language"] = "language"
    options: dict[
        MenuKey,
        Annotated[
            LanguageChoice,
            BeforeValidator(_language_choice, json_schema_input_type=Language | LanguageChoice),
        ],
    ] = Field(min_length=1, max_length=MAX_OPTIONS)
    next: NodeRef | None = Field(None, description="where options without their own next go")
    BRANCHES: ClassVar[tuple[str, ...]] = ("next", "no_input", "invalid", "fallback")

    @model_validator(mode="after")
    def _nexts(self) -> LanguageNode:
        if self.next is None:
            missing = [k for k, c in self.options.items() if c.next is None]
            if missing:
                raise ValueError(
                    f"option(s) {', '.join(missing)} have no `next` and the node has no `next`"
                )
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        for key, choice in self.options.items():
            if choice.next is not None:
                yield ("options", key, "next"), choice.next
        yield from super().targets()

    def branch(self, key: str) -> str | None:
        if key in self.options:
            return self.options[key].next or self.next
        return super().branch(key)

    def valid_keys(self) -> frozenset[str]:
        return frozenset(self.options)


class MessageNode(_Node):
    """Play one or more prompts, then go to ``next`` (none: hang up)."""

    type: Literal["message"] = "message"
    prompt: Prompts = Field(validation_alias=AliasChoices("prompt", "prompts"))
    next: NodeRef | None = None
    BRANCHES: ClassVar[tuple[str, ...]] = ("next",)

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "prompt" in data and "prompts" in data:
            raise ValueError("give `prompt` or `prompts`, not both")
        return data

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name


class DepartmentNode(_Node):
    """Ring a department (its strategy); nobody answers -> ``fallback``."""

    type: Literal["department"] = "department"
    department: Id
    fallback: FallbackRef = FAILOVER
    BRANCHES: ClassVar[tuple[str, ...]] = ("fallback",)


class ExtensionNode(_Node):
    """Ring one user for ``ring_time`` seconds; no answer -> ``fallback``."""

    type: Literal["extension"] = "extension"
    user: Id
    ring_time: int = Field(20, ge=1, le=600)
    fallback: FallbackRef = FAILOVER
    BRANCHES: ClassVar[tuple[str, ...]] = ("fallback",)


class VoicemailNode(_Node):
    """Play a greeting, record after the beep into a mailbox; the flow ends."""

    type: Literal["voicemail"] = "voicemail"
    mailbox: str = Field(
        description="'user:<id>' (the user's mailbox), 'department:<id>' or a mailbox name"
    )
    greeting: PromptName | None = Field("vm-intro", description="null: no greeting")
    goodbye: PromptName | None = Field(None, description="played after the recording")
    max_seconds: int = Field(120, ge=5, le=3600)
    beep: bool = True

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str) -> str:
        kind, sep, rest = v.partition(":")
        if sep and kind in ("user", "department"):
            _check_id(rest)
        elif not MAILBOX_RE.fullmatch(v):
            raise ValueError(
                f"invalid mailbox {v!r}: use 'user:<id>', 'department:<id>' or a name of "
                "lower-case letters, digits, '_' and '-'"
            )
        return v

    def resolve_mailbox(self, fs: FlowSet) -> str:
        """The mailbox to record into: ``user:``/``department:`` resolved against ``fs``."""
        kind, sep, ref = self.mailbox.partition(":")
        if not sep:
            return self.mailbox
        if kind == "user":
            user = fs.users.get(ref)
            return (user.mailbox or user.id) if user else ref
        dept = fs.departments.get(ref)
        if dept is None:
            return ref
        fo = dept.failover
        return (fo.mailbox if fo and fo.mailbox else None) or dept.mailbox or dept.id

    def prompts(self) -> Iterator[tuple[Path, str]]:
        if self.greeting:
            yield ("greeting",), self.greeting
        if self.goodbye:
            yield ("goodbye",), self.goodbye


class Post(BaseModel):
    """POST ``{call_id, did, caller, node, <variable>: <digits>}`` as JSON to ``url``."""

    model_config = _CONFIG

    url: str = Field(max_length=2048)
    timeout: float = Field(3.0, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL")
        if any(c.isspace() for c in v):
            raise ValueError("a URL cannot contain spaces")
        return v


def _status_key(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _check_status_key(v: str) -> str:
    if not re.fullmatch(r"[1-5](?:[0-9]{2}|xx)", v):
        raise ValueError(f"invalid status {v!r}: use a code like '200' or a class like '4xx'")
    return v


StatusKey = Annotated[
    str, BeforeValidator(_status_key, json_schema_input_type=str),
    AfterValidator(_check_status_key),
]


def _check_field(v: str) -> str:
    if not FIELD_RE.fullmatch(v):
        raise ValueError(f"invalid field {v!r}: use a JSON field name, dots for nesting")
    return v


def _match_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class InputNode(_Node):
    """Collect digits into ``ctx.vars[variable]``; optionally POST them and branch on the
    answer."""

    type: Literal["input"] = "input"
    prompt: Prompts
    variable: str = Field("input", description="ctx.vars key for the digits")
    digits: int = Field(10, ge=1, le=32, description="maximum number of digits")
    min_digits: int = Field(1, ge=1, le=32)
    terminator: Literal["#", "*", ""] = "#"
    timeout: Seconds = Field(5.0, description="seconds to wait for the first digit")
    inter_digit_timeout: Seconds = 3.0
    retries: int = Field(2, ge=0, le=10)
    invalid_prompt: PromptName = "invalid"
    sensitive: bool = Field(False, description="keep the digits out of the call trace")
    post: Post | None = None
    next: NodeRef | None = None
    no_input: NodeRef | None = None
    error: NodeRef | None = None
    on_status: dict[StatusKey, NodeRef] = Field(default_factory=dict)
    match: dict[
        Annotated[str, AfterValidator(_check_field)],
        dict[Annotated[str, BeforeValidator(_match_value, json_schema_input_type=str)], NodeRef],
    ] = Field(default_factory=dict)
    BRANCHES: ClassVar[tuple[str, ...]] = ("next", "no_input", "error")

    @field_validator("variable")
    @classmethod
    def _variable(cls, v: str) -> str:
        if not VARIABLE_RE.fullmatch(v):
            raise ValueError(f"invalid variable {v!r}: use lower-case letters, digits and '_'")
        if v in ("call_id", "did", "caller", "node"):
            raise ValueError(f"{v!r} is already in the request: choose another variable name")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InputNode:
        if self.min_digits > self.digits:
            raise ValueError(f"min_digits ({self.min_digits}) is above digits ({self.digits})")
        if (self.on_status or self.match or self.error) and self.post is None:
            raise ValueError("on_status, match and error need a `post`")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        yield from super().targets()
        for code, target in self.on_status.items():
            yield ("on_status", code), target
        for fld, cases in self.match.items():
            for value, target in cases.items():
                yield ("match", fld, value), target

    def branch(self, key: str) -> str | None:
        """Keys: ``next``, ``no_input``, ``error``, ``status:<code or class>``,
        ``match:<field>=<value>``."""
        if key.startswith("status:"):
            return self.on_status.get(key[7:])
        if key.startswith("match:"):
            fld, _, value = key[6:].partition("=")
            return self.match.get(fld, {}).get(value)
        return super().branch(key)

    def prompts(self) -> Iterator[tuple[Path, str]]:
        for i, name in enumerate(self.prompt):
            yield ("prompt", i) if len(self.prompt) > 1 else ("prompt",), name
        yield ("invalid_prompt",), self.invalid_prompt


class Holiday(BaseModel):
    """One day (``date``) or an inclusive range (``from``/``to``), in the node's time zone."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True,
        serialize_by_alias=True,
    )

    date: dt.date | None = None
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    name: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Holiday:
        if self.date is not None:
            if self.from_ is not None or self.to is not None:
                raise ValueError("give `date`, or `from` and `to`, not both")
        elif self.from_ is None or self.to is None:
            raise ValueError("a holiday needs `date`, or `from` and `to`")
        elif self.to < self.from_:
            raise ValueError(f"`to` ({self.to}) is before `from` ({self.from_})")
        return self

    def contains(self, day: dt.date) -> bool:
        if self.date is not None:
            return day == self.date
        assert self.from_ is not None and self.to is not None
        return self.from_ <= day <= self.to


class TimeNode(_Node):
    """Branch on the time: ``holiday`` (a listed date), ``open`` (inside ``hours``), ``closed``."""

    type: Literal["time"] = "time"
    timezone: str | None = Field(None, description="IANA zone; default settings.timezone")
    hours: list[Window] = Field(min_length=1, description="when the line is open")
    holidays: list[Holiday] = Field(default_factory=list)
    open: NodeRef
    closed: NodeRef
    holiday: NodeRef | None = Field(None, description="default: `closed`")
    BRANCHES: ClassVar[tuple[str, ...]] = ("open", "closed", "holiday")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            Settings(timezone=v)  # the same check and message as settings.timezone
        return v

    def branch(self, key: str) -> str | None:
        if key == "holiday":
            return self.holiday or self.closed
        return super().branch(key)


class GotoNode(_Node):
    """Jump to a node of this flow, or to another flow (its entry, or ``node`` in it)."""

    type: Literal["goto"] = "goto"
    node: NodeRef | None = None
    flow: Id | None = None

    @model_validator(mode="after")
    def _target(self) -> GotoNode:
        if self.node is None and self.flow is None:
            raise ValueError("a goto needs `node`, `flow`, or both")
        return self

    def targets(self) -> Iterator[tuple[Path, str]]:
        if self.flow is None and self.node is not None:
            yield ("node",), self.node

    def branch(self, key: str) -> str | None:
        return self.node if key == "goto" and self.flow is None else None


class HangupNode(_Node):
    """Hang up with a Q.850 cause (16: normal clearing)."""

    type: Literal["hangup"] = "hangup"
    cause: int = Field(16, ge=1, le=127)


Node = Annotated[
    MenuNode | MessageNode | DepartmentNode | ExtensionNode | VoicemailNode | InputNode
    | TimeNode | LanguageNode | GotoNode | HangupNode,
    Field(discriminator="type"),
]
NODE_ADAPTER: TypeAdapter[Node] = TypeAdapter(Node)
NODE_TYPES: dict[str, type[_Node]] = {
    "menu": MenuNode, "message": MessageNode, "department": DepartmentNode,
    "extension": ExtensionNode, "voicemail": VoicemailNode, "input": InputNode,
    "time": TimeNode, "language": LanguageNode, "goto": GotoNode, "hangup": HangupNode,
}

# ---------------------------------------------------------------------------------------------
# Flows and the flow set.


class Flow(BaseModel):
    """Calls to any of ``dids`` start at ``entry``."""

    model_config = _CONFIG

    id: str = Field(default="", description="the flow id (its key in `flows`)")
    description: str = ""
    dids: list[Did] = Field(default_factory=list)
    entry: NodeRef
    nodes: dict[str, Node] = Field(default_factory=dict)
    language: Language | None = Field(None, description="default: settings.language")
    failover: Failover | None = Field(None, description="the main line's failover")

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_ids(cls, v: Any) -> Any:
        return _ids_from_keys(v)


class FlowSet(BaseModel):
    """Everything one publish makes live. ``did_map`` is derived (not serialised)."""

    model_config = _CONFIG

    settings: Settings = Field(default_factory=Settings)
    users: dict[str, User] = Field(default_factory=dict)
    departments: dict[str, Department] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)
    _did_map: dict[str, str] = PrivateAttr(default_factory=dict)
    _did_index: dict[str, str] = PrivateAttr(default_factory=dict)
    _extensions: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("users", "departments", "flows", mode="before")
    @classmethod
    def _entry_ids(cls, v: Any) -> Any:
        return _ids_from_keys(v)

    def model_post_init(self, context: Any, /) -> None:
        did_map: dict[str, str] = {}
        index: dict[str, str] = {}
        for fid, flow in self.flows.items():
            for did in flow.dids:
                did_map.setdefault(did, fid)
                index.setdefault(did.lstrip("+"), fid)
        self._did_map = did_map
        self._did_index = index
        extensions: dict[str, str] = {}
        for uid, user in self.users.items():
            if user.extension is not None:
                extensions.setdefault(user.extension, uid)
        self._extensions = extensions

    @property
    def did_map(self) -> dict[str, str]:
        """DID (as written) -> flow id. A DID listed by two flows goes to the first (lint
        rejects that)."""
        return dict(self._did_map)

    def flow_for_did(self, did: str) -> Flow | None:
        """The flow for a dialled DID; ``+15550100`` and ``15550100`` are the same DID."""
        fid = self._did_map.get(did) or self._did_index.get(did.lstrip("+"))
        return self.flows.get(fid) if fid else None

    def user_for_extension(self, extension: str) -> User | None:
        """The user whose ``extension`` this is (an extension used twice: the first; lint
        rejects that)."""
        uid = self._extensions.get(extension)
        return self.users.get(uid) if uid else None

    def user_for_endpoint(self, endpoint: str) -> User | None:
        """The (first) user whose phone is PJSIP endpoint ``endpoint``."""
        return next((u for u in self.users.values() if u.endpoint == endpoint), None)


def entry_department(fs: FlowSet, flow: Flow) -> Department | None:
    """The department a call to ``flow`` rings first without any choice on the way: from the
    entry through ``message`` nodes and ``goto`` jumps to a ``department`` node. None when
    the way branches first (a menu, a time condition, ...), ends, or loops."""
    node_id: str | None = flow.entry
    seen: set[tuple[str, str]] = set()
    while node_id is not None and (flow.id, node_id) not in seen:
        seen.add((flow.id, node_id))
        node = flow.nodes.get(node_id)
        if isinstance(node, DepartmentNode):
            return fs.departments.get(node.department)
        if isinstance(node, MessageNode):
            node_id = node.next
        elif isinstance(node, GotoNode):
            if node.flow is not None:
                target = fs.flows.get(node.flow)
                if target is None:
                    return None
                flow = target
            node_id = node.node or flow.entry
        else:
            return None
    return None


def line_failover(fs: FlowSet, flow: Flow) -> FailoverPlan:
    """A line's failover: what its calls get when the controller is down (the outage path,
    from AstDB) and during a failover test of the line. The rule:

    1. the line's own ``failover`` block (mailbox: its ``mailbox``, else the flow id);
    2. else the entry department's failover (:func:`entry_department`): its number, its
       voicemail switch, its mailbox (failover > department > department id) and greeting,
       as when the department's own members do not answer;
    3. else the default: voicemail into the flow id's mailbox.

    A plan whose number did not answer and whose voicemail is off hangs up with
    ``FAILOVER_UNAVAILABLE_CAUSE`` (480) on both paths."""
    if flow.failover is not None:
        return failover_plan(flow.failover, flow.failover.mailbox or flow.id)
    dept = entry_department(fs, flow)
    if dept is not None:
        return failover_plan(dept.failover, department_mailbox(dept))
    return failover_plan(None, flow.id)


def outage_targets(fs: FlowSet) -> dict[str, tuple[str, str]]:
    """DID -> ``(failover number, mailbox)``: what the dialplan's outage path reads from AstDB
    (``callctl_failover/<DID>``) when the controller is down: the line's failover
    (:func:`line_failover`); mailbox "" = voicemail off."""
    out: dict[str, tuple[str, str]] = {}
    for did, fid in fs.did_map.items():
        plan = line_failover(fs, fs.flows[fid])
        out[did] = (plan.number or "", plan.mailbox or "")
    return out


def outage_extras(fs: FlowSet) -> dict[str, tuple[str, str]]:
    """DID -> ``(greeting, caller_id)`` for the outage path: the line's failover greeting
    (:func:`line_failover`) as ``<language>/<prompt>`` in the flow's language, and ``"did"``
    when ``settings.alternate_caller_id`` asks to present the DID (else "")."""
    cid = "did" if fs.settings.alternate_caller_id == "did" else ""
    out: dict[str, tuple[str, str]] = {}
    for did, fid in fs.did_map.items():
        flow = fs.flows[fid]
        lang = flow.language or fs.settings.language
        out[did] = (f"{lang}/{line_failover(fs, flow).greeting}", cid)
    return out


def current_flow(ctx: Any) -> Flow | None:
    """The flow a call is in now (after any goto): ``ctx.vars['_flow']``, else the DID's."""
    fs = getattr(ctx, "flowset", None)
    if fs is None:
        return None
    fid = ctx.vars.get(FLOW_VAR)
    if fid and fid in fs.flows:
        return fs.flows[fid]
    return fs.flow_for_did(ctx.did)


# ---------------------------------------------------------------------------------------------
# JSON Schema (for editors: yaml-language-server): made in controller.core.flows.editor_schema.


def flowset_json_schema() -> dict[str, Any]:
    """JSON Schema of a flow file (see :mod:`controller.core.flows.editor_schema`)."""
    from controller.core.flows.editor_schema import flowset_json_schema as export

    return export()
