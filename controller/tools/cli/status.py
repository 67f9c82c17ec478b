"""`callctl status`."""

from __future__ import annotations

import argparse
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    run_op,
)


def _updown(flag: Any) -> str:
    return "up" if flag else "DOWN"


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Controller, ARI, AMI, Redis and live calls; exit 3 if any is not reachable."""
    from controller.ops import status as ops_status

    def human(s: Any) -> str:
        c, a = s["controller"], s["ari"]
        lines = [
            f"controller: {'connected' if c.get('connected') else 'NOT CONNECTED'} "
            f"(Stasis app {c.get('app')})",
            f"asterisk:   {_updown(a.get('ok'))} {a.get('version') or a.get('error') or ''} "
            f"{a.get('url') or ''}".rstrip(),
            f"ami:        {_updown(s['ami'].get('ok'))} {s['ami'].get('error') or ''}".rstrip(),
            f"redis:      {_updown(s['redis'].get('ok'))} {s['redis'].get('url')}",
        ]
        if "live_calls" in s:
            bl = s["blocklist"]
            tests = ", ".join(s["failover_tests"]) or "none"
            lines += [f"live calls: {s['live_calls']}",
                      f"flows:      version {s['flows']['live_version'] or 'none published'}",
                      f"blocklist:  {bl['entries']} entries, {bl['blocked_calls']} calls "
                      "rejected",
                      f"failover tests: {tests}"]
        return "\n".join(lines)

    return run_op(settings, lambda ops: ops_status.get_status(ops), args.json, human,
                   ok=lambda s: s["ok"])
