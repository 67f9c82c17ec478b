"""Flow files from a request: loaded in the worker process; refusals and problems as JSON."""

from __future__ import annotations

from typing import Any

from controller.admin.flowworker import FlowWorker, WorkerBusy
from controller.admin.http import BadRequest
from controller.core.flows import loader
from controller.ops.errors import OpsError


async def load_flows(worker: FlowWorker, texts: dict[str, str], fld: str) -> loader.LoadResult:
    """Load flow files in the worker process. Input the loader refuses (a limit, the
    encoding, a control character) is 413/400 naming ``fld`` and the position."""
    try:
        res = await worker.load(texts)
    except WorkerBusy as e:
        raise OpsError(503, str(e), fld) from None
    if res.refused:
        raise refusal(res.refused[0], fld, res)
    return res


def refusal(p: loader.Problem, fld: str, res: loader.LoadResult | None = None) -> BadRequest:
    """Refused flow input: 413 for a size limit, else 400; ``fld`` names the body part
    (``(body)``, ``files.<name>``, ``flows``), the message its position."""
    status = 413 if p.code in loader.SIZE_CODES else 400
    where = f"files.{p.file}" if fld == "files" else fld
    return BadRequest(status, str(p), where, file=p.file, line=p.line, column=p.col,
                      code=p.code, problems=problems(res) if res else [problem(p)])


def problem_field(p: loader.Problem, root: str = "") -> str:
    """A problem as an error body's ``field``: ``[root: ]path (file:line:col)``."""
    where = f"{p.file}:{p.line}:{p.col}"
    path = p.path or "(top)"
    return f"{root + ': ' if root else ''}{path} ({where})"


def problem(p: loader.Problem) -> dict[str, Any]:
    """One problem as JSON (file, line, column, field, message, severity, code, value)."""
    return {"file": p.file, "line": p.line, "column": p.col, "field": p.path or "(top)",
            "message": p.message, "severity": p.severity, "code": p.code or None,
            "value": None if p.value is loader.MISSING else repr(p.value)[:200]}


def problems(res: loader.LoadResult) -> list[dict[str, Any]]:
    return [problem(p) for p in res.problems]


def validation(res: loader.LoadResult) -> dict[str, Any]:
    """A validation's answer: ok, counts, the problems and what the flows hold."""
    fs = res.flowset
    return {"ok": not res.errors, "errors": len(res.errors), "warnings": len(res.warnings),
            "problems": problems(res),
            "summary": None if fs is None else {
                "flows": len(fs.flows), "dids": len(fs.did_map), "users": len(fs.users),
                "departments": len(fs.departments)}}
