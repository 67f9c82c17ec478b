"""The flow language: the flow and the whole flow set (pydantic v2 models).

A *flow set* is everything one publish makes live: ``settings``, ``users``, ``departments``
(models from :mod:`controller.core.flows.directory`) and ``flows``. A flow maps DIDs to an entry
node; nodes are a discriminated union on ``type`` built from the node registry
(:data:`controller.core.nodes.NODE_TYPES`: each node's model lives in its own
``controller/core/nodes/<type>.py``, next to its ``run``) and name the nodes they lead to by id.

Every model is ``extra="forbid"`` (typos are errors) and frozen (a published snapshot is shared
by every call running on it). Ids come from mapping keys. ``FlowSet.model_dump(mode="json")``
round-trips through ``FlowSet.model_validate`` (that is how a publish is stored).

Cross-reference checks (unknown ids, reachability, loops, prompt files) live in
:mod:`controller.core.flows.lint`; the editor JSON Schema (``callctl schema``) is made in
:mod:`controller.core.flows.editor_schema`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_validator,
)

from controller.core.flows.departments import (
    Department,
    Failover,
    FailoverPlan,
    department_mailbox,
    failover_plan,
)
from controller.core.flows.directory import User
from controller.core.flows.settings import Settings
from controller.core.nodes import NODE_TYPES
from controller.core.nodes.base import Language, NodeBase, NodeRef
from controller.core.nodes.department import DepartmentNode
from controller.core.nodes.goto import GotoNode
from controller.core.nodes.message import MessageNode
from controller.core.patterns import DID_RE, PHONE_JUNK

__all__ = [
    "FLOW_VAR",
    "NODE_ADAPTER",
    "Flow",
    "FlowSet",
    "Node",
    "current_flow",
    "entry_department",
    "line_failover",
    "normalise_did",
    "outage_extras",
    "outage_targets",
    "with_id",
]

FLOW_VAR = "_flow"
"""``ctx.vars`` key holding the id of the flow the call is in (set by the engine)."""

_CONFIG = ConfigDict(extra="forbid", frozen=True)

# ---------------------------------------------------------------------------------------------
# Field types.


def normalise_did(value: Any) -> Any:
    """Accept ``+1 555-0100``-style spelling and ints (YAML); validation is separate."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return PHONE_JUNK.sub("", value)
    return value


def _check_did(value: str) -> str:
    if not DID_RE.fullmatch(value):
        raise ValueError(f"invalid DID {value!r}: use digits with an optional leading '+'")
    return value


Did = Annotated[
    str, BeforeValidator(normalise_did, json_schema_input_type=str), AfterValidator(_check_did)
]


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
# Nodes: the registry's models, one discriminated union.

if TYPE_CHECKING:
    Node = NodeBase
else:
    Node = Annotated[
        functools.reduce(operator.or_, NODE_TYPES.values()), Field(discriminator="type")
    ]
NODE_ADAPTER: TypeAdapter[Node] = TypeAdapter(Node)


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
    if not isinstance(fs, FlowSet):
        return None
    fid = ctx.vars.get(FLOW_VAR)
    if fid and fid in fs.flows:
        return fs.flows[fid]
    return fs.flow_for_did(ctx.did)
