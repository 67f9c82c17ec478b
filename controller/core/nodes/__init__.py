"""The node registry: node ``type`` -> handler ``run(node, ctx) -> NodeGen``.

Handlers are sans-IO generators (see :mod:`controller.core.model`). ``department`` and
``extension`` (ringing people) are the ring team's; the rest are IVR nodes.
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[Any, CallContext], NodeGen]

HANDLERS: dict[str, Handler] = {
    "menu": menu.run,
    "message": message.run,
    "department": department.run,
    "extension": extension.run,
    "voicemail": voicemail.run,
    "input": input_node.run,
    "time": timecond.run,
    "language": language.run,
    "goto": goto.run,
    "hangup": hangup.run,
}
