"""``voicemail`` node: greeting, beep, record into a mailbox, optional goodbye; the flow ends.

``mailbox`` is ``user:<id>`` (the user's mailbox, default its id), ``department:<id>``
(failover.mailbox > mailbox > the department id) or a mailbox name.
"""

from __future__ import annotations

from controller.core.flows.schema import VoicemailNode
from controller.core.model import CallContext, NodeGen, Prompt, Record, Recorded, Stop
from controller.core.prompts import resolve_prompt

__all__ = ["run"]


def run(node: VoicemailNode, ctx: CallContext) -> NodeGen:
    mailbox = node.resolve_mailbox(ctx.flowset)
    if node.greeting:
        yield Prompt(media=(resolve_prompt(node.greeting, ctx),), max_digits=0)
    rec = yield Record(mailbox=mailbox, max_seconds=node.max_seconds, beep=node.beep)
    if isinstance(rec, Recorded):
        ctx.log("voicemail", node=node.id, mailbox=mailbox, recording=rec.name,
                duration=rec.duration, reason=rec.reason)
    if node.goodbye:
        yield Prompt(media=(resolve_prompt(node.goodbye, ctx),), max_digits=0)
    return Stop("voicemail")
