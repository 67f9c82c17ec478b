"""What ``callctl validate|publish|rollback|schema`` do: plain functions returning exit codes.

Exit codes (as the CLI's): 0 ok, 1 failed (flow errors, unknown version), 2 a file refused as
input (over a limit, not UTF-8, control characters: see ``loader.INPUT_CODES``), 3 Redis
unavailable. Problems are printed one per line, ``file:line:col: path: message (value: ...)``,
then a summary line. With ``as_json`` one JSON document is printed instead (:func:`problem_json`
for each problem: ``file``, ``line``, ``col``, ``field``, ``message``, ``value``,
``severity``, ``code``), for CI and editors; the exit codes are the same.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from controller.adapters.redis import flowstore as store
from controller.config import redis_safe_url
from controller.core.flows.editor_schema import flowset_json_schema
from controller.core.flows.loader import MISSING, LoadResult, Problem, load

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "problem_json",
    "publish",
    "publish_async",
    "rollback",
    "rollback_async",
    "schema",
    "validate",
    "versions",
    "versions_async",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _failed(result: LoadResult) -> int:
    return EXIT_USAGE if result.refused else EXIT_FAIL


def _report(result: LoadResult, out: TextIO) -> None:
    for p in result.problems:
        print(p, file=out)
    fs = result.flowset
    if result.errors:
        print(f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)", file=out)
    elif fs is not None:
        print(f"ok: {len(fs.flows)} flow(s), {len(fs.did_map)} DID(s), {len(fs.users)} "
              f"user(s), {len(fs.departments)} department(s); {len(result.warnings)} "
              "warning(s)", file=out)


def problem_json(p: Problem) -> dict[str, object]:
    """One problem for machines: 1-based ``line``/``col``, ``field`` the path in the flow
    document (``flows.main.nodes.menu.timeout``; "" for the file as a whole), ``value`` None
    when the field is missing."""
    value = None if p.value is MISSING else p.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)
    return {"file": p.file, "line": p.line, "col": p.col, "field": p.path,
            "message": p.message, "value": value, "severity": p.severity,
            "code": p.code}


def _result_json(result: LoadResult) -> dict[str, object]:
    fs = result.flowset
    return {
        "ok": not result.errors,
        "errors": [problem_json(p) for p in result.errors],
        "warnings": [problem_json(p) for p in result.warnings],
        "summary": None if fs is None or result.errors else {
            "flows": len(fs.flows), "dids": len(fs.did_map), "users": len(fs.users),
            "departments": len(fs.departments)},
    }


def _dump(doc: object, out: TextIO) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False), file=out)


def validate(paths: Sequence[str | Path], *, out: TextIO | None = None,
             as_json: bool = False) -> int:
    """Load and lint; print the problems. 0 when there is no error (warnings are fine)."""
    result = load(paths)
    if as_json:
        _dump(_result_json(result), out or sys.stdout)
    else:
        _report(result, out or sys.stdout)
    return _failed(result) if result.errors else EXIT_OK


def _client(redis_url: str) -> aioredis.Redis:
    from controller.adapters.redis.connect import client

    return client(redis_url, timeout=5, decode_responses=False, health_check_interval=0)


def _names(paths: Sequence[str | Path]) -> str:
    return " ".join(str(p) for p in paths)


async def publish_async(
    paths: Sequence[str | Path], redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    out: TextIO | None = None, if_empty: bool = False, as_json: bool = False,
) -> int:
    """Validate, then publish as the new live version: not when the live version has the
    same content (says so; exit 0), nor, ``if_empty``, when any version is live (a
    controller's start: a restart must not replace what ops published since)."""
    out = out or sys.stdout
    result = load(paths)
    doc = _result_json(result)
    doc.update(published=False, version=None, status="rejected")
    if not as_json:
        _report(result, out)
    if result.errors:
        if as_json:
            _dump(doc, out)
        else:
            print("not published: fix the errors above", file=out)
        return _failed(result)
    client = _client(redis_url)
    try:
        done = await store.publish_flows(client, result, prefix=prefix, if_empty=if_empty)
    except (RedisError, OSError) as e:
        safe = redis_safe_url(redis_url)
        print(f"not published: Redis unavailable at {safe}: {e}", file=sys.stderr)
        if as_json:
            doc.update(status="unavailable", error=f"Redis unavailable at {safe}")
            _dump(doc, out)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    doc.update(published=done.created, version=done.version, status=done.status,
               sha256=done.sha256)
    if as_json:
        _dump(doc, out)
    elif done.status == "published":
        print(f"published version {done.version}", file=out)
    elif done.status == "unchanged":
        print(f"unchanged: version {done.version} is live with the same content "
              f"(sha256 {done.sha256[:12]}); no new version", file=out)
    else:
        print(f"kept: version {done.version} is live, {_names(paths)} not published "
              f"(`callctl publish {_names(paths)}` replaces it)", file=out)
    return EXIT_OK


def publish(
    paths: Sequence[str | Path], redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    if_empty: bool = False, as_json: bool = False,
) -> int:
    return asyncio.run(publish_async(paths, redis_url, prefix=prefix, if_empty=if_empty,
                                     as_json=as_json))


async def rollback_async(
    version: int | None, redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    out: TextIO | None = None, as_json: bool = False,
) -> int:
    """Make an earlier version live (None: the one before the live version)."""
    out = out or sys.stdout
    client = _client(redis_url)

    def fail(message: str, rc: int) -> int:
        print(f"rollback: {message}", file=sys.stderr)
        if as_json:
            _dump({"ok": False, "live": None, "errors": [
                {"field": "version", "message": message, "value": version}]}, out)
        return rc

    try:
        live = await store.rollback(client, version, prefix=prefix)
    except store.RollbackError as e:
        return fail(str(e), EXIT_FAIL)
    except (RedisError, OSError) as e:
        return fail(f"Redis unavailable at {redis_safe_url(redis_url)}: {e}", EXIT_UNAVAILABLE)
    finally:
        await client.aclose()
    if as_json:
        _dump({"ok": True, "live": live, "errors": []}, out)
    else:
        print(f"version {live} is live", file=out)
    return EXIT_OK


def rollback(
    version: int | None, redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    as_json: bool = False,
) -> int:
    return asyncio.run(rollback_async(version, redis_url, prefix=prefix, as_json=as_json))


async def versions_async(
    redis_url: str, *, prefix: str = store.DEFAULT_PREFIX, out: TextIO | None = None,
    as_json: bool = False,
) -> int:
    """List the published versions, newest last; the live one is marked."""
    out = out or sys.stdout
    client = _client(redis_url)
    try:
        rows = await store.list_versions(client, prefix=prefix)
    except (RedisError, OSError) as e:
        print(f"versions: Redis unavailable at {redis_safe_url(redis_url)}: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    if as_json:
        print(json.dumps([{"version": v.version, "published_at": v.published_at,
                           "files": list(v.files), "flows": v.flows, "dids": v.dids,
                           "live": v.live, "sha256": v.sha256} for v in rows], indent=2),
              file=out)
        return EXIT_OK
    for v in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.published_at))
        print(f"{'*' if v.live else ' '} {v.version:>4}  {when}  {v.flows} flow(s)  "
              f"{v.dids} DID(s)  {', '.join(v.files)}", file=out)
    if not rows:
        print("nothing published yet", file=out)
    return EXIT_OK


def versions(redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
             as_json: bool = False) -> int:
    return asyncio.run(versions_async(redis_url, prefix=prefix, as_json=as_json))


def schema(*, out: TextIO | None = None) -> int:
    """Print the flow file JSON Schema (``callctl schema > flow.schema.json``)."""
    print(json.dumps(flowset_json_schema(), indent=2), file=out or sys.stdout)
    return EXIT_OK
