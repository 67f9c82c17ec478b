"""``voicemail`` node: greeting, beep, record into a mailbox, optional goodbye; the flow ends.

``mailbox`` is ``user:<id>`` (the user's mailbox, default its id), ``department:<id>``
(failover.mailbox > mailbox > the department id) or a mailbox name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from controller.core.flows import editor_parts as ep
from controller.core.model import CallContext, NodeGen, Prompt, Record, Recorded, Stop
from controller.core.nodes.base import (
    Checker,
    FlowSetView,
    NodeBase,
    Path,
    PromptName,
    check_id,
)
from controller.core.patterns import ID_RE, MAILBOX_RE
from controller.core.prompts import resolve_prompt

__all__ = ["MODEL", "SCHEMA", "VoicemailNode", "run"]

class VoicemailNode(NodeBase):
    """Play a greeting, record after the beep into a mailbox; the flow ends."""

    type: Literal["voicemail"] = "voicemail"
    mailbox: str = Field(
        description="'user:<id>' (the user's mailbox), 'department:<id>' or a mailbox name"
    )
    greeting: PromptName | None = Field("vm-intro", description="null: no greeting")
    goodbye: PromptName | None = Field(None, description="played after the recording")
    max_seconds: int = Field(120, ge=5, le=3600)
    beep: bool = True
    EXITS: ClassVar[bool] = True

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str) -> str:
        kind, sep, rest = v.partition(":")
        if sep and kind in ("user", "department"):
            check_id(rest)
        elif not MAILBOX_RE.fullmatch(v):
            raise ValueError(
                f"invalid mailbox {v!r}: use 'user:<id>', 'department:<id>' or a name of "
                "lower-case letters, digits, '_' and '-'"
            )
        return v

    def resolve_mailbox(self, fs: FlowSetView) -> str:
        """The mailbox to record into: ``user:``/``department:`` resolved against ``fs``."""
        kind, sep, ref = self.mailbox.partition(":")
        if not sep:
            return self.mailbox
        if kind == "user":
            user = fs.users.get(ref)
            return str(user.mailbox or user.id) if user else ref
        dept = fs.departments.get(ref)
        if dept is None:
            return ref
        fo = dept.failover
        box = (fo.mailbox if fo and fo.mailbox else None) or dept.mailbox or dept.id
        return str(box)

    def prompts(self) -> Iterator[tuple[Path, str]]:
        if self.greeting:
            yield ("greeting",), self.greeting
        if self.goodbye:
            yield ("goodbye",), self.goodbye

    def lint(self, check: Checker, fid: str, loc: Path) -> None:
        kind, sep, ref = self.mailbox.partition(":")
        if sep:
            known = check.users if kind == "user" else check.departments
            if ref not in known:
                check.add((*loc, "mailbox"), f"unknown {kind} {ref!r}" + check.hint(ref, known),
                          self.mailbox)
                return
            if (kind == "user" and ref not in check.fs.users) or (
                kind == "department" and ref not in check.fs.departments
            ):
                return  # broken entry: reported already
        box = self.resolve_mailbox(check.fs)
        if not MAILBOX_RE.fullmatch(box):
            check.add((*loc, "mailbox"), f"mailbox {box!r} cannot be recorded into: use "
                      "lower-case letters, digits, '_' and '-'", self.mailbox)


MODEL = VoicemailNode


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


# ---------------------------------------------------------------------------------------------
# The editor JSON Schema (`callctl schema`, controller.core.flows.editor_schema): what the
# models alone would not say.

VOICEMAIL_MAILBOX_PATTERN = (
    rf"^(?:(?:user|department):{ID_RE.pattern[1:-1]}|{MAILBOX_RE.pattern[1:-1]})$"
)

_VOICEMAIL_NODE_FIELDS: dict[str, Any] = {
    **ep.NODE_COMMON,
    "mailbox": ep.string(VOICEMAIL_MAILBOX_PATTERN, "user:<id> (the user's box), "
                         "department:<id> or a box name (e.g. user:alice, sales)"),
    "greeting": ep.nullable(ep.prompt("Played before the beep (null: none)")),
    "goodbye": ep.nullable(ep.prompt("Played after the recording")),
    "max_seconds": "Longest message in seconds, 5-3600 (e.g. 120).",
    "beep": ep.boolean("Play a beep before recording."),
}

SCHEMA: dict[str, ep.Definition] = {
    "VoicemailNode": ep.Definition(
        "Play a greeting, record a message after the beep; the flow ends.",
        _VOICEMAIL_NODE_FIELDS,
    ),
}
