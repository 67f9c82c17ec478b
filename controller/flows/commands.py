"""What ``callctl validate|publish|rollback|schema`` do: plain functions returning exit codes.

Exit codes (as the CLI's): 0 ok, 1 failed (flow errors, unknown version), 3 Redis unavailable.
Problems are printed one per line, ``file:line:col: path: message (value: ...)``, then a
summary line.
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

from controller.config import redis_safe_url
from controller.flows import publish as store
from controller.flows.loader import LoadResult, load
from controller.flows.schema import flowset_json_schema

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "publish",
    "publish_async",
    "rollback",
    "rollback_async",
    "schema",
    "validate",
    "versions",
    "versions_async",
]

EXIT_OK, EXIT_FAIL, EXIT_UNAVAILABLE = 0, 1, 3


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


def validate(paths: Sequence[str | Path], *, out: TextIO | None = None) -> int:
    """Load and lint; print the problems. 0 when there is no error (warnings are fine)."""
    result = load(paths)
    _report(result, out or sys.stdout)
    return EXIT_FAIL if result.errors else EXIT_OK


def _client(redis_url: str) -> aioredis.Redis:
    from controller.store.connect import client

    return client(redis_url, timeout=5, decode_responses=False, health_check_interval=0)


async def publish_async(
    paths: Sequence[str | Path], redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    out: TextIO | None = None,
) -> int:
    """Validate, then publish as the new live version."""
    out = out or sys.stdout
    result = load(paths)
    _report(result, out)
    if result.errors:
        print("not published: fix the errors above", file=out)
        return EXIT_FAIL
    client = _client(redis_url)
    try:
        version = await store.publish(client, result, prefix=prefix)
    except (RedisError, OSError) as e:
        print(f"not published: Redis unavailable at {redis_safe_url(redis_url)}: {e}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    print(f"published version {version}", file=out)
    return EXIT_OK


def publish(
    paths: Sequence[str | Path], redis_url: str, *, prefix: str = store.DEFAULT_PREFIX
) -> int:
    return asyncio.run(publish_async(paths, redis_url, prefix=prefix))


async def rollback_async(
    version: int | None, redis_url: str, *, prefix: str = store.DEFAULT_PREFIX,
    out: TextIO | None = None,
) -> int:
    """Make an earlier version live (None: the one before the live version)."""
    out = out or sys.stdout
    client = _client(redis_url)
    try:
        live = await store.rollback(client, version, prefix=prefix)
    except store.RollbackError as e:
        print(f"rollback: {e}", file=sys.stderr)
        return EXIT_FAIL
    except (RedisError, OSError) as e:
        print(f"rollback: Redis unavailable at {redis_safe_url(redis_url)}: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    print(f"version {live} is live", file=out)
    return EXIT_OK


def rollback(
    version: int | None, redis_url: str, *, prefix: str = store.DEFAULT_PREFIX
) -> int:
    return asyncio.run(rollback_async(version, redis_url, prefix=prefix))


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
                           "live": v.live} for v in rows], indent=2), file=out)
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
