"""`callctl simulate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    EXIT_FAIL,
    run_op,
)


def format_simulation(r: dict[str, Any]) -> str:
    src = "draft flows" if r.get("draft") else f"version {r.get('flow_version')}"
    lines = [f"simulate {r['did']} from {r['caller'] or 'withheld'} at {r['at']} ({src})",
             f"path:   {' > '.join(r['path']) or '-'}"]
    if r["rings"]:
        lines.append("rings:")
        for i, ring in enumerate(r["rings"], 1):
            who = []
            for t in ring["targets"]:
                alt = t.get("alternate")
                who.append(f"{t.get('user') or t['address']} [{t['kind']}/{t['address']}]"
                           + (f" (alternate {alt['address']})" if alt else ""))
            lines.append(f"  {i}. {ring['node']}: {', '.join(who)} for {ring['timeout']:g} s")
    else:
        lines.append("rings:  nobody")
    for s in r["skips"]:
        alt = f" (alternate of {s['of']})" if s.get("of") else ""
        skipped = s.get("user") or ",".join(s.get("users") or [])
        lines.append(f"skip:   {skipped}{alt}: {s['reason']}")
    lines.append(f"result: {r['result']}"
                 + (f" (cause {r['cause']})" if r.get("cause") else "")
                 + (f", answered by {r['answered_by']}" if r.get("answered_by") else ""))
    lines += [f"note:   {n}" for n in r.get("notes", [])]
    if r.get("digits_unused"):
        lines.append(f"note:   digits not used: {','.join(r['digits_unused'])}")
    lines.append("steps:")
    lines += [f"  {s}" for s in r["steps"]]
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Dry-run a call through the published (or a draft) flow; nothing rings."""
    from controller.ops.dryrun import simulate

    draft = None
    if args.flows:
        from controller.core.flows.loader import load

        res = load([Path(p) for p in args.flows])
        if res.errors or res.flowset is None:
            for p in res.errors:
                print(p, file=sys.stderr)
            print(f"callctl simulate: {len(res.errors)} error(s) in the draft flows",
                  file=sys.stderr)
            return EXIT_FAIL
        draft = res.flowset
    digits = [d.strip() for d in args.digits.split(",")] if args.digits else []
    busy = [b.strip() for b in args.busy.split(",") if b.strip()] if args.busy else []
    return run_op(settings, lambda ops: simulate(
        ops, did=args.did, caller=args.caller, at=args.at, tz=args.tz, digits=digits,
        flowset=draft, answer=args.answer, busy=busy), args.json, format_simulation)
