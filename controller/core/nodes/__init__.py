"""The node registry: one module per node type, listed in :data:`NODE_MODULES`.

A node module holds its pydantic model (``MODEL``, whose ``type`` field names the node type)
and its handler ``run(node, ctx) -> NodeGen``, a sans-IO generator (see
:mod:`controller.core.model`). Adding a node type is one new module and one line in
:data:`NODE_MODULES`: the flow schema (:mod:`controller.core.flows.schema`) builds its
discriminated union from :data:`NODE_TYPES`, the engine runs :data:`HANDLERS`.
``department`` and ``extension`` (ringing people) are the ring team's; the rest are IVR nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from controller.core.model import CallContext, NodeGen
from controller.core.nodes import (
    department,
    extension,
    goto,
    hangup,
    language,
    menu,
    message,
    timecond,
    voicemail,
)
from controller.core.nodes import input as input_node
from controller.core.nodes.base import NodeBase

__all__ = ["HANDLERS", "NODE_MODULES", "NODE_TYPES", "Handler"]

Handler = Callable[[Any, CallContext], NodeGen]

NODE_MODULES: tuple[ModuleType, ...] = (
    menu,
    message,
    department,
    extension,
    voicemail,
    input_node,
    timecond,
    language,
    goto,
    hangup,
)
"""The node types, in the order of the schema's union (and of "use one of ..." messages)."""

NODE_TYPES: dict[str, type[NodeBase]] = {
    m.MODEL.model_fields["type"].default: m.MODEL for m in NODE_MODULES
}
"""Node ``type`` -> its model."""
HANDLERS: dict[str, Handler] = {
    m.MODEL.model_fields["type"].default: m.run for m in NODE_MODULES
}
"""Node ``type`` -> its handler ``run(node, ctx) -> NodeGen``."""
