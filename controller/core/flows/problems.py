"""Problems in flow files, each at ``file:line:col`` with its path and value.

:class:`Problem` is what loading and linting report (:mod:`controller.core.flows.loader`,
:mod:`controller.core.flows.lint`); :class:`FlowInputError` refuses input before it is read
as flows (a limit, the encoding, a control character: :data:`INPUT_CODES`). Paths name a
place in the merged flow set: ``("flows", "main", "dids", 1)`` is ``flows.main.dids[1]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "INPUT_CODES",
    "MISSING",
    "SIZE_CODES",
    "FlowInputError",
    "Loc",
    "Location",
    "Problem",
    "Severity",
    "format_path",
    "parse_path",
]

INPUT_CODES = frozenset({
    "too_big", "not_utf8", "control_character", "too_deep", "too_many_nodes",
    "alias_limit", "alias_expansion", "too_many_flow_nodes",
})
"""``Problem.code`` of input refused before it is read as flows (exit 2, HTTP 400/413)."""
SIZE_CODES = frozenset({"too_big", "too_many_nodes", "too_many_flow_nodes"})
"""The refusals that are about size (HTTP 413)."""
Severity = Literal["error", "warning"]
Loc = tuple[str | int, ...]


class _Missing:
    def __repr__(self) -> str:
        return "missing"

    def __reduce__(self) -> str:
        return "MISSING"  # unpickled as the one MISSING (results come from a worker process)


MISSING: Any = _Missing()
"""``Problem.value`` when the value is absent (a required field)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in the flow files. Lines and columns are 1-based."""

    file: str
    line: int
    col: int
    path: str
    value: Any
    message: str
    severity: Severity = "error"
    code: str = ""
    """Empty for flow problems; one of :data:`INPUT_CODES` for refused input."""

    def __post_init__(self) -> None:
        for name, keep in (("message", 400), ("path", 200)):  # a hostile name can be a
            text = getattr(self, name)                        # megabyte: keep both ends
            if len(text) > keep:
                cut = text[:keep * 3 // 5] + " ... " + text[-keep * 2 // 5:]
                object.__setattr__(self, name, cut)

    def __str__(self) -> str:
        value = repr(self.value)
        if len(value) > 80:
            value = value[:77] + "..."
        kind = "warning: " if self.severity == "warning" else ""
        shown = "" if self.code and self.value is MISSING else f" (value: {value})"
        return (f"{self.file}:{self.line}:{self.col}: {self.path or '(top)'}: {kind}"
                f"{self.message}{shown}")



# ---------------------------------------------------------------------------------------------
# Paths: ("flows", "main", "dids", 1) <-> "flows.main.dids[1]"


def format_path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> Loc:
    """``"members[2]"`` -> ``("members", 2)`` (for paths from the directory helpers)."""
    return tuple(
        int(idx) if idx else name for name, idx in _PATH_PART.findall(path)
    )



@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    col: int
    path: str
    value: Any



class FlowInputError(ValueError):
    """Input the loader refuses to read as flows (a limit, the encoding, a control
    character), at ``file:line:col``. Loading catches it and reports it as a Problem."""

    def __init__(self, file: str, line: int, col: int, code: str, message: str) -> None:
        super().__init__(f"{file}:{line}:{col}: {message}")
        self.file, self.line, self.col, self.code, self.message = file, line, col, code, message

    def problem(self) -> Problem:
        return Problem(self.file, self.line, self.col, "", MISSING, self.message, code=self.code)

