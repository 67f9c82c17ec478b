"""`callctl audit`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    clock,
    run_op,
)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from controller.ops.audit import list_audit

    def human(rows: Any) -> str:
        return "\n".join(
            f"{clock(e['at'])}  {e.get('by'):<10} {e.get('action'):<20} {e.get('target')}  "
            f"{json.dumps(e.get('old'))} -> {json.dumps(e.get('new'))}" for e in rows
        ) or "no changes recorded"

    return run_op(settings, lambda ops: list_audit(ops, limit=args.limit, target=args.target),
                   args.json, human)
