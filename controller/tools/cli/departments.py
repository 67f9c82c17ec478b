"""`callctl departments`."""

from __future__ import annotations

import argparse
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    run_op,
)


def cmd_departments(args: argparse.Namespace, settings: Settings) -> int:
    from controller.ops.departments import list_departments

    def human(rows: Any) -> str:
        out = []
        for d in rows:
            sticky = f" + sticky ({d['sticky']} s)" if d["sticky"] else ""
            out.append(f"{d['id']}: {d['strategy']}{sticky}, ring {d['ring_time']} s; "
                       f"calls={d['calls']} answered={d['answered']} missed={d['missed']}")
            counts = {a["id"]: a for a in d["agents"]}
            for m in d["members"]:
                why = "" if m.get("eligible_now") else f" ({m.get('reason') or m['state']})"
                a = counts.get(m["id"])
                tally = (f"answered={a['answered']} missed={a['missed']}" if a
                         else "opted out: not counted")
                out.append(f"  {m['id']:<12} {m['state']:<5} "
                           f"{'rings' if m.get('eligible_now') else 'skipped'}{why}  {tally}")
        return "\n".join(out) or "no departments"

    return run_op(settings, lambda ops: list_departments(ops), args.json, human)
