"""`callctl`: run the controller, control the stack, manage flows, inspect calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller import logs
from controller.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _print(data: Any, as_json: bool, human: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else human)


# ---------------------------------------------------------------------------- commands

def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from controller.runtime import Controller, StartupError

    logs.setup(settings.log_format)

    async def main() -> int:
        if args.publish:
            rc = await _publish(args.publish, settings)
            if rc != EXIT_OK:
                return rc
        ctl = Controller(settings)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await ctl.run()
        except StartupError as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except asyncio.CancelledError:
            return EXIT_OK
        return EXIT_OK

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main())
    return EXIT_OK


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The product in one command: stack up, publish the flows, run the controller."""
    rc = cmd_stack(argparse.Namespace(action="up", json=False), settings)
    if rc != EXIT_OK:
        return rc
    args.publish = [str(p) for p in (args.flows or [settings.flows_dir])]
    return cmd_run(args, load_settings())


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from controller import stack

    try:
        if args.action == "up":
            for line in stack.up(load_settings(generate=True)):
                print(line)
        elif args.action == "down":
            for line in stack.down(settings):
                print(line)
        else:
            st = stack.status(settings)
            ok = bool(st["asterisk"]["ari"]) and bool(st["redis"]["ping"])  # type: ignore[index]
            human = (f"asterisk: {'up' if st['asterisk']['ari'] else 'DOWN'} "  # type: ignore[index]
                     f"({st['asterisk']['detail']}) {st['asterisk']['url']}\n"  # type: ignore[index]
                     f"redis:    {'up' if st['redis']['ping'] else 'DOWN'} "  # type: ignore[index]
                     f"{st['redis']['url']}\nlogs:     {st['logs']}")  # type: ignore[index]
            _print(st, args.json, human)
            return EXIT_OK if ok else EXIT_UNAVAILABLE
    except stack.StackError as e:
        print(f"callctl stack: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


async def _publish(paths: Sequence[str], settings: Settings) -> int:
    from controller.flows import commands

    return await commands.publish_async([Path(p) for p in paths], settings.redis_url,
                                        prefix=settings.redis_prefix)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.validate([Path(p) for p in args.paths])


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_publish(args.paths, settings))


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.rollback(args.version, settings.redis_url, prefix=settings.redis_prefix)


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.schema()


def cmd_calls(args: argparse.Namespace, settings: Settings) -> int:
    from controller.store import RedisStore, StoreUnavailable

    async def main() -> int:
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        try:
            rows = await (store.live_calls() if args.live else store.recent_calls(args.limit))
        except StoreUnavailable as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await store.close()
        lines = [f"{r.get('call_id', r.get('id'))}  did={r.get('did')}  "
                 f"caller={r.get('caller') or '-'}  result={r.get('result', 'live')}  "
                 f"answered_by={r.get('answered_by') or '-'}" for r in rows]
        _print(rows, args.json, "\n".join(lines) or "no calls")
        return EXIT_OK

    return asyncio.run(main())


def cmd_call(args: argparse.Namespace, settings: Settings) -> int:
    from controller.store import RedisStore, StoreUnavailable

    async def main() -> int:
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        try:
            trace = await store.get_trace(args.call_id)
        except StoreUnavailable as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await store.close()
        if trace is None:
            print(f"callctl: no trace for call {args.call_id}", file=sys.stderr)
            return EXIT_FAIL
        lines = []
        for t in trace:
            rest = " ".join(f"{k}={v}" for k, v in t.items() if k not in ("at", "kind"))
            lines.append(f"{t['at']:.3f}  {t['kind']:<8} {rest}")
        _print(trace, args.json, "\n".join(lines))
        return EXIT_OK

    return asyncio.run(main())


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.versions(settings.redis_url, prefix=settings.redis_prefix)


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
    import getpass
    import time

    from controller.flows import publish
    from controller.store import RedisStore, StoreUnavailable

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
                _print(data, args.json, human)
                return EXIT_OK
            live = await publish.load_live(store.redis, prefix=settings.redis_prefix)
            if args.action == "start":
                lines = set(live[1].did_map) | set(live[1].departments) if live else set()
                if args.line not in lines:
                    print(f"callctl failover: {args.line!r} is not a published DID or "
                          f"department (known: {', '.join(sorted(lines)) or 'none'})",
                          file=sys.stderr)
                    return EXIT_FAIL
                until = await store.failover_test_start(args.line, args.duration,
                                                        getpass.getuser())
                print(f"failover test started on {args.line}: new calls go to its failover "
                      f"target until {time.strftime('%H:%M:%S', time.localtime(until))} "
                      f"(or `callctl failover test stop {args.line}`)")
            else:
                stopped = await store.failover_test_stop(args.line, getpass.getuser())
                print(f"failover test on {args.line} "
                      f"{'stopped' if stopped else 'was not running'}")
            return EXIT_OK
        except StoreUnavailable as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await store.close()

    return asyncio.run(main())


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callctl",
        description="Call controller for Asterisk: YAML call flows over ARI.",
        epilog="Environment: CALLCTL_ARI_URL, CALLCTL_ARI_USER, CALLCTL_ARI_PASSWORD, REDIS_URL, "
               "CALLCTL_APP, CALLCTL_RUN_DIR (see README). Exit codes: 0 ok, 1 failed, "
               "2 usage, 3 a dependency (Asterisk/Redis) is unavailable.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("up", help="the whole product: stack up, publish flows, run controller")
    s.add_argument("flows", nargs="*", help="flow directories (default: flows/examples)")
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("run", help="run the controller (Asterisk and Redis must be up)")
    s.add_argument("--publish", nargs="+", metavar="DIR", help="publish these flows first")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("stack", help="start/stop Asterisk and Redis as our own processes")
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stack)

    s = sub.add_parser("validate", help="validate and lint flow files (nothing changes)")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("publish", help="validate, lint and make flows the live version")
    s.add_argument("paths", nargs="+")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("rollback", help="make an earlier published version live again")
    s.add_argument("version", nargs="?", type=int, help="default: the previous version")
    s.set_defaults(func=cmd_rollback)

    s = sub.add_parser("versions", help="list published flow versions")
    s.set_defaults(func=cmd_versions)

    s = sub.add_parser("failover", help="failover tests on a line (DID or department)")
    fsub = s.add_subparsers(dest="failover_cmd", required=True, metavar="SUBCOMMAND")
    t = fsub.add_parser("test", help="start/stop routing a line's new calls to its failover")
    t.add_argument("action", choices=["start", "stop"])
    t.add_argument("line", help="a published DID or department id")
    t.add_argument("--for", dest="duration", type=parse_duration, default=900,
                   help="auto-revert after this long (default 15m)")
    t.set_defaults(func=cmd_failover)
    st = fsub.add_parser("status", help="active tests and the test log")
    st.add_argument("--json", action="store_true")
    st.add_argument("--limit", type=int, default=20)
    st.set_defaults(func=cmd_failover, action="status")

    s = sub.add_parser("schema", help="print the flow JSON Schema (for editors)")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("calls", help="recent calls (or --live)")
    s.add_argument("--live", action="store_true")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_calls)

    s = sub.add_parser("call", help="the decision trace of one call")
    s.add_argument("call_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_call)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"callctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
