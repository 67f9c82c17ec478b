"""Flow files from a request: loaded in the worker process; refusals and problems as JSON."""

from __future__ import annotations

from typing import Any

from controller.admin.flowworker import WorkerBusy
from controller.admin.http import BadRequest
from controller.core.flows import loader
from controller.ops.errors import OpsError


class FlowInput:

    async def load_flows(self, texts: dict[str, str], fld: str) -> loader.LoadResult:
        """Load flow files in the worker process. Input the loader refuses (a limit, the
        encoding, a control character) is 413/400 naming ``fld`` and the position."""
        try:
            res = await self.flow_worker.load(texts)
        except WorkerBusy as e:
            raise OpsError(503, str(e), fld) from None
        if res.refused:
            raise _refusal(res.refused[0], fld, res)
        return res


def _refusal(p: loader.Problem, fld: str, res: loader.LoadResult | None = None) -> BadRequest:
    """Refused flow input: 413 for a size limit, else 400; ``fld`` names the body part
    (``(body)``, ``files.<name>``, ``flows``), the message its position."""
    status = 413 if p.code in loader.SIZE_CODES else 400
    where = f"files.{p.file}" if fld == "files" else fld
    return BadRequest(status, str(p), where, file=p.file, line=p.line, column=p.col,
                      code=p.code, problems=_problems(res) if res else [_problem(p)])


def _problem_field(p: loader.Problem, root: str = "") -> str:
    where = f"{p.file}:{p.line}:{p.col}"
    path = p.path or "(top)"
    return f"{root + ': ' if root else ''}{path} ({where})"


def _problem(p: loader.Problem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "column": p.col, "field": p.path or "(top)",
            "message": p.message, "severity": p.severity, "code": p.code or None,
            "value": None if p.value is loader.MISSING else repr(p.value)[:200]}


def _problems(res: loader.LoadResult) -> list[dict[str, Any]]:
    return [_problem(p) for p in res.problems]


def _validation(res: loader.LoadResult) -> dict[str, Any]:
    fs = res.flowset
    return {"ok": not res.errors, "errors": len(res.errors), "warnings": len(res.warnings),
            "problems": _problems(res),
            "summary": None if fs is None else {
                "flows": len(fs.flows), "dids": len(fs.did_map), "users": len(fs.users),
                "departments": len(fs.departments)}}
