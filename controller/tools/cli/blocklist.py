"""`callctl block|unblock|blocked`."""

from __future__ import annotations

import argparse
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    actor,
    run_op,
)


def cmd_block(args: argparse.Namespace, settings: Settings) -> int:
    from controller.ops import blocklist as ops_blocklist

    by = actor()
    if args.command == "block":
        return run_op(settings, lambda ops: ops_blocklist.block(ops, args.number,
                                                                 reason=args.reason, by=by),
                       args.json, lambda e: f"blocked {e['pattern']}"
                       + (f" ({e['reason']})" if e["reason"] else "")
                       + ": its calls are rejected with cause 21 (SIP 403)")
    if args.command == "unblock":
        return run_op(settings, lambda ops: ops_blocklist.unblock(ops, args.number, by=by),
                       args.json, lambda e: f"unblocked {e['pattern']}")

    def human(d: Any) -> str:
        rows = [f"{e['pattern']:<18} {e['blocked_calls']:>5} calls  by {e['by']}  "
                f"{e['reason']}" for e in d["entries"]]
        return "\n".join([*rows, f"{d['blocked_calls']} blocked calls in all"]) \
            if rows else f"nobody is blocked ({d['blocked_calls']} blocked calls in all)"

    return run_op(settings, lambda ops: ops_blocklist.list_blocked(ops), args.json, human)
