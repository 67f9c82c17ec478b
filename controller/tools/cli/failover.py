"""`callctl failover test start|stop LINE` and `callctl failover status`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from controller.config import Settings
from controller.tools.cli.common import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    actor,
    emit,
)


def parse_duration(text: str) -> int:
    """'15m', '2h', '90s', '1d' or plain seconds -> seconds (argparse type)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        n = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 15m, 2h)") from None
    if not 0 < n <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be between 1 s and 7 days")
    return n


def cmd_failover(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from controller.adapters.redis import RedisStore, StoreUnavailable
    from controller.ops.context import Context
    from controller.ops.errors import OpsError, exit_code
    from controller.ops.failover import start_test, stop_test

    async def main() -> int:
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        try:
            if args.action == "status":
                tests = await store.failover_tests()
                events = await store.failover_events(args.limit)
                data = {"active": tests, "events": events}
                human = "\n".join(
                    [f"TEST ACTIVE  {line} until "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(until))}"
                     for line, until in tests.items()] or ["no failover test active"])
                human += "\n" + "\n".join(
                    " ".join(f"{k}={v}" for k, v in e.items()) for e in events)
                emit(data, args.json, human)
                return EXIT_OK
            ops = Context(store, settings)
            try:
                if args.action == "start":
                    res = await start_test(ops, args.line, args.duration, by=actor())
                    human = (f"failover test started on {args.line}: new calls go to its "
                             "failover target until "
                             f"{time.strftime('%H:%M:%S', time.localtime(res['until']))} "
                             f"(or `callctl failover test stop {args.line}`)")
                else:
                    res = await stop_test(ops, args.line, by=actor())
                    human = (f"failover test on {args.line} "
                             f"{'stopped' if res['stopped'] else 'was not running'}")
            except OpsError as e:
                print(f"callctl failover: {e}", file=sys.stderr)
                return exit_code(e)
            emit(res, args.json, human)
            return EXIT_OK
        except StoreUnavailable as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await store.close()

    return asyncio.run(main())
