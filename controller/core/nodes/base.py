"""What every node model shares: the base class, the field types, the flow set as nodes see it.

A node type is one module of this package holding its pydantic model (``MODEL``), its
``run`` handler and its lint checks; the registry (:mod:`controller.core.nodes`) lists the
modules. Every model is ``extra="forbid"`` (typos are errors) and frozen (a published
snapshot is shared by every call running on it). Each node class knows its own branches:

* ``targets()`` yields ``(relative path, node id)`` for every node it may lead to (lint);
* ``branch(key)`` maps a ``Continue(key)`` outcome to the next node id, or None (hang up);
* ``prompts()`` yields ``(relative path, prompt name)`` for every prompt it may play (lint);
* ``lint_refs()`` and ``lint()`` are its own checks, ``may_exit()`` and ``edges()`` what the
  graph checks (reachability, loops) need: the framework, the checks of the directory and the
  checks across nodes are in :mod:`controller.core.flows.lint`, which implements
  :class:`Checker` for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from controller.core.patterns import ID_RE, LANGUAGE_RE
from controller.core.prompts import check_prompt_name

__all__ = [
    "FAILOVER",
    "MODEL_CONFIG",
    "Checker",
    "FallbackRef",
    "FlowSetView",
    "Id",
    "Language",
    "NodeBase",
    "NodeRef",
    "Path",
    "PromptName",
    "Prompts",
    "Seconds",
    "check_id",
]

FAILOVER = "failover"
"""The ``fallback`` keyword of department/extension nodes: use the failover, not a node."""

MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)

# ---------------------------------------------------------------------------------------------
# Field types.


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def check_id(value: str) -> str:
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


Id = Annotated[str, AfterValidator(check_id)]
NodeRef = Annotated[str, AfterValidator(check_id), Field(description="a node id in this flow")]
FallbackRef = Annotated[
    str,
    AfterValidator(check_id),
    Field(description="a node id in this flow, or 'failover' (the failover: number, voicemail)"),
]
PromptName = Annotated[str, AfterValidator(check_prompt_name)]
Prompts = Annotated[
    list[PromptName],
    BeforeValidator(_listify, json_schema_input_type=PromptName | list[PromptName]),
    Field(min_length=1),
]
Language = Annotated[str, AfterValidator(_check_language)]
Seconds = Annotated[float, Field(gt=0, le=60)]


class FlowSetView(Protocol):
    """What a node reads of the flow set (:class:`controller.core.flows.schema.FlowSet`)."""

    @property
    def users(self) -> Mapping[str, Any]: ...

    @property
    def departments(self) -> Mapping[str, Any]: ...

    @property
    def flows(self) -> Mapping[str, Any]: ...


class Checker(Protocol):
    """What a node's lint checks see and report to (``controller.core.flows.lint``)."""

    @property
    def fs(self) -> FlowSetView:
        """The flow set being checked (the entries that passed the schema)."""

    @property
    def users(self) -> Set[str]:
        """Every user id, the schema-broken ones too (so they are not "unknown")."""

    @property
    def departments(self) -> Set[str]:
        """Every department id, the schema-broken ones too."""

    @property
    def flow_ids(self) -> Set[str]:
        """Every flow id, the schema-broken ones too."""

    def add(self, loc: Sequence[str | int], message: str, value: Any = ..., *,
            severity: Literal["error", "warning"] = "error") -> None:
        """Report a problem at ``loc`` (a path from the flow set's root); ``value``
        defaults to the value found there."""

    def warn(self, loc: Sequence[str | int], message: str, value: Any = ...) -> None:
        """Report a warning (it does not block a publish)."""

    def hint(self, name: str, known: Iterable[str]) -> str:
        """`` (did you mean 'x'?)`` for an unknown name, or ""."""

    def nodes_of(self, fid: str) -> set[str]:
        """The node ids of flow ``fid``, the schema-broken ones too."""

    def check_language_dir(self, loc: Sequence[str | int], language: str) -> None:
        """Warn when ``language`` has no prompts directory."""


# ---------------------------------------------------------------------------------------------
# Nodes.

Path = tuple[str | int, ...]


class NodeBase(BaseModel):
    model_config = MODEL_CONFIG

    id: str = Field(default="", description="the node id (its key in `nodes`)")
    description: str = ""
    if TYPE_CHECKING:  # each node type declares its own (a Literal), after its other fields
        type: str
    BRANCHES: ClassVar[tuple[str, ...]] = ()
    """The node's branch fields, for docs and lint."""
    EXITS: ClassVar[bool] = False
    """The call leaves the IVR here: to a person, voicemail, or the end."""

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

    # Lint (controller.core.flows.lint): ``loc`` is the node's path, flows.<fid>.nodes.<nid>.

    def lint_refs(self, check: Checker, loc: Path) -> None:
        """Check references to other entries (a department, a user), beyond the target
        nodes (the framework checks those). Runs on salvaged broken nodes too."""

    def lint(self, check: Checker, fid: str, loc: Path) -> None:
        """This node type's own checks (ids, refs and prompts are checked already)."""

    def may_exit(self) -> bool:
        """Can the call leave the IVR at this node (a person, voicemail, a hangup, or a
        branch left unset, which hangs up)? The loop check needs it."""
        return self.EXITS

    def edges(self, fid: str, fs: FlowSetView) -> list[tuple[str, str]]:
        """``(flow id, node id)`` of every node the call may go to next."""
        return [(fid, target) for _path, target in self.targets()]

