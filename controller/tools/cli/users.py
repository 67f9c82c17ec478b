"""`callctl users` and its changes (opt-out, availability, alternate)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from controller.config import Settings
from controller.tools.cli.common import (
    EXIT_USAGE,
    actor,
    run_op,
)


def _user_line(u: Any) -> str:
    eff = u["effective"]
    why = "" if u["eligible_now"] else f" ({u['reason']})"
    avail = "; ".join(eff["availability"]) or "always"
    over = f"  overrides: {','.join(sorted(u['overrides']))}" if u["overrides"] else ""
    dev = u.get("device") or {}
    phone = f"{dev.get('state', 'unknown')}{' (in use)' if dev.get('in_use') else ''}"
    ext = f" ext {u['extension']}" if u.get("extension") else ""
    return (f"{u['id']:<12} {u['state']:<5} {'rings' if u['eligible_now'] else 'skipped'}{why}"
            f"{ext}  phone={u['endpoint']} {phone}"
            f"  calls={'on' if eff['receive_calls'] else 'OPTED OUT'}  hours={avail} "
            f"[{eff['timezone']}]  alternate={eff['alternate'] or '-'}  "
            f"answered={u['answered']} missed={u['missed']}{over}")


def _user_change(u: Any) -> str:
    avail = "; ".join(u["availability"]) or "always"
    return (f"{u['user']}: {u['action']} by {u['by']}: calls "
            f"{'on' if u['receive_calls'] else 'OPTED OUT'}, hours {avail} [{u['timezone']}], "
            f"alternate {u['alternate'] or '-'} (effective from the next call)")


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    """`callctl users [opt-out|availability|alternate ...]`."""
    from controller.ops import users as ops_users

    action = getattr(args, "users_cmd", None)
    if action is None:
        return run_op(settings, lambda ops: ops_users.list_users(ops), args.json,
                       lambda rows: "\n".join(map(_user_line, rows)) or "no users")
    by = actor()
    if action == "opt-out":
        value = {"on": True, "off": False, "reset": None}[args.state]
        return run_op(settings, lambda ops: ops_users.set_opt_out(ops, args.user, value, by=by),
                       args.json, _user_change)
    if action == "availability":
        if sum(bool(x) for x in (args.slots, args.clear, args.reset)) != 1:
            print("callctl users availability: give windows (e.g. mon-fri 09:00-17:00), "
                  "--clear (always available) or --reset (the published hours)",
                  file=sys.stderr)
            return EXIT_USAGE
        mode = "reset" if args.reset else "always" if args.clear else "set"
        return run_op(settings, lambda ops: ops_users.set_availability(
            ops, args.user, args.slots, by=by, tz=args.tz, mode=mode), args.json, _user_change)
    # alternate
    if sum(bool(x) for x in (args.number, args.clear, args.reset)) != 1:
        print("callctl users alternate: give a NUMBER (or user), --clear (no alternate) or "
              "--reset (the published alternate)", file=sys.stderr)
        return EXIT_USAGE
    return run_op(settings, lambda ops: ops_users.set_alternate(
        ops, args.user, args.number, by=by, reset=args.reset), args.json, _user_change)
