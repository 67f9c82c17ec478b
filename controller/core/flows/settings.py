"""The flow set's global settings, and the outcome map (Q.850 causes per outcome).

See :mod:`controller.core.flows.directory` for how the directory's models read YAML.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from controller.core.flows.values import (
    MODEL_CONFIG,
    check_e164,
    check_timezone,
    normalise_phone,
)
from controller.core.patterns import LANGUAGE_RE

__all__ = ["MAX_SIMULTANEOUS", "OutcomeMap", "Settings"]

MAX_SIMULTANEOUS = 5


class OutcomeMap(BaseModel):
    """Q.850 causes per outcome class (see ``controller.core.outcomes`` for the defaults' origin).

    19 (a phone's own ``480 Temporarily Unavailable``: DND, not registered, not taking calls)
    is ``unreachable``, so the user's alternate rings at once; ``no_answer`` is empty: a phone
    left ringing is our own ring timer (the ``timed_out`` flag), not a cause."""

    model_config = MODEL_CONFIG

    busy: list[int] = [17]
    unreachable: list[int] = [1, 3, 18, 19, 20, 27, 34, 38, 41, 102]
    no_answer: list[int] = []
    rejected: list[int] = [21]

    @field_validator("busy", "unreachable", "no_answer", "rejected")
    @classmethod
    def _range(cls, v: list[int]) -> list[int]:
        for c in v:
            if not 0 <= c <= 127:
                raise ValueError(f"Q.850 cause {c} is out of range 0..127")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> OutcomeMap:
        owner: dict[int, str] = {}
        for cls_name in ("busy", "unreachable", "no_answer", "rejected"):
            for c in getattr(self, cls_name):
                if c in owner and owner[c] != cls_name:
                    raise ValueError(f"cause {c} is in both {owner[c]!r} and {cls_name!r}")
                owner[c] = cls_name
        return self


class Settings(BaseModel):
    model_config = MODEL_CONFIG

    timezone: str = "UTC"
    forward_to_alternate: bool = True
    """Global switch: off = no alternate is ever rung."""
    alternate_caller_id: Literal["caller", "did"] = "caller"
    """Caller id shown on alternate (and failover) legs: the caller's, or the dialled DID."""
    rejected_is_busy: bool = False
    outcomes: OutcomeMap = OutcomeMap()
    language: str = Field(default="en", pattern=LANGUAGE_RE.pattern)
    prompts_dir: str = "prompts"
    max_simultaneous: int = Field(default=MAX_SIMULTANEOUS, ge=1, le=MAX_SIMULTANEOUS)
    phones_external: bool = False
    """Registered phones may dial external numbers (``+E164``, or more than 6 digits) out
    through the PSTN trunk. Off: such calls are refused with 403 (cause 21) and logged."""
    phones_caller_id: str | None = None
    """The number presented on a phone's external calls (``+E164``); None: the calling
    user's extension and name."""

    @field_validator("phones_caller_id", mode="before")
    @classmethod
    def _phones_cid_norm(cls, v: Any) -> Any:
        return None if v in (None, "") else normalise_phone(v)

    @field_validator("phones_caller_id")
    @classmethod
    def _phones_cid(cls, v: str | None) -> str | None:
        return None if v is None else check_e164(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

