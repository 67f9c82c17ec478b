"""What the commands share: exit codes, output, who is acting, running an operation."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from controller.config import Settings

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def emit(data: Any, as_json: bool, human: str) -> None:
    """Print ``data`` as JSON (``--json``) or the ``human`` text."""
    print(json.dumps(data, indent=2, default=str) if as_json else human)


def clock(epoch: Any) -> str:
    """Epoch seconds as local wall-clock time with milliseconds (``14:03:07.412``)."""
    if not isinstance(epoch, int | float) or epoch <= 0:
        return "-"
    import time

    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


def actor() -> str:
    """Who is making a change (for the audit log): the sudo user, else the login user."""
    import getpass
    import os

    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


def run_op(settings: Settings, op: Any, as_json: bool, human: Any,
            ok: Any = None) -> int:
    """Run ``await op(ctx)`` (an operation of :mod:`controller.ops` over this Redis); print
    JSON or ``human(data)``; OpsError -> its exit code (``ok(data)`` false: 3)."""
    from controller.adapters.redis import RedisStore
    from controller.ops.context import Context
    from controller.ops.errors import OpsError, exit_code

    async def main() -> int:
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        try:
            data = await op(Context(store, settings))
        except OpsError as e:
            if as_json:
                print(json.dumps(e.to_dict()))
            print(f"callctl: {e}", file=sys.stderr)
            return exit_code(e)
        finally:
            await store.close()
        emit(data, as_json, human(data))
        return EXIT_OK if ok is None or ok(data) else EXIT_UNAVAILABLE

    return asyncio.run(main())
