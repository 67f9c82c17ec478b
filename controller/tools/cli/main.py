"""`callctl`: run the controller, control the stack, manage flows, inspect calls.

The parser; each command group is a module of this package."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import Any

from controller.config import ConfigError, load_settings
from controller.tools.cli.audit import cmd_audit
from controller.tools.cli.blocklist import cmd_block
from controller.tools.cli.calls import cmd_call, cmd_calls
from controller.tools.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
)
from controller.tools.cli.departments import cmd_departments
from controller.tools.cli.failover import cmd_failover, parse_duration
from controller.tools.cli.flows import (
    cmd_publish,
    cmd_rollback,
    cmd_schema,
    cmd_validate,
    cmd_versions,
)
from controller.tools.cli.run import cmd_run, cmd_up
from controller.tools.cli.simulate import cmd_simulate
from controller.tools.cli.stack import cmd_asterisk, cmd_stack
from controller.tools.cli.status import cmd_status
from controller.tools.cli.users import cmd_users


def add_ops_commands(sub: Any) -> None:
    """The ops commands' parsers (status, users, departments, blocklist, simulate, audit)."""
    s = sub.add_parser("status", help="controller, Asterisk (ARI), AMI, Redis, live calls")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("users", help="users and their state; opt-out, availability, alternate")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_users)
    us = s.add_subparsers(dest="users_cmd", metavar="SUBCOMMAND")
    u = us.add_parser("opt-out", help="stop (on) or resume (off) routing calls to a user")
    u.add_argument("state", choices=["on", "off", "reset"],
                   help="reset: the published receive_calls applies again")
    u.add_argument("user")
    u.add_argument("--json", action="store_true")
    u = us.add_parser("availability", help="set a user's availability windows",
                      description="e.g. `callctl users availability alice mon-fri 09:00-13:00 "
                      "14:00-18:00 sat 10:00-12:00 --tz Asia/Kolkata`")
    u.add_argument("user")
    u.add_argument("slots", nargs="*", metavar="SLOT",
                   help="DAYS then one or more HH:MM-HH:MM ranges, repeated")
    u.add_argument("--tz", help="IANA zone the windows are in (default: the user's)")
    u.add_argument("--clear", action="store_true", help="no windows: available at any time")
    u.add_argument("--reset", action="store_true", help="the published windows apply again")
    u.add_argument("--json", action="store_true")
    u = us.add_parser("alternate", help="set or clear a user's alternate number")
    u.add_argument("user")
    u.add_argument("number", nargs="?", help="+E.164 number, or a user id")
    u.add_argument("--clear", action="store_true", help="no alternate")
    u.add_argument("--reset", action="store_true", help="the published alternate applies again")
    u.add_argument("--json", action="store_true")

    s = sub.add_parser("audit", help="who changed users and the blocklist, and when")
    s.add_argument("--target", help="only this user or blocklist pattern")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("departments", help="departments, members, answered/missed counts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_departments)

    s = sub.add_parser("block", help="reject a caller (number, prefix* or withheld)")
    s.add_argument("number")
    s.add_argument("--reason", default="")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_block)
    s = sub.add_parser("unblock", help="remove a blocklist entry")
    s.add_argument("number")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_block)
    s = sub.add_parser("blocked", help="the blocklist and its rejected-call counts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_block)

    s = sub.add_parser("simulate", help="dry-run a call: path and ring order (no Asterisk)")
    s.add_argument("--did", required=True)
    s.add_argument("--from", dest="caller", default="", metavar="NUMBER")
    s.add_argument("--at", help="'2026-12-06 22:00' (default: now)")
    s.add_argument("--tz", help="zone of --at (default: the flows' settings.timezone)")
    s.add_argument("--digits", help="keys for successive prompts, e.g. 2,1 (empty = no input)")
    s.add_argument("--answer", metavar="USER",
                   help="this user (or 'first') answers when rung (default: nobody answers)")
    s.add_argument("--busy", metavar="USER[,USER]",
                   help="these users' phones (or these addresses) answer busy (486): their "
                        "alternates ring, as in a real call")
    s.add_argument("--flows", nargs="+", metavar="DIR", help="a draft instead of the published")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command or choice (difflib)."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is None or value in action.choices:
            return
        names = [str(c) for c in action.choices]
        close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if isinstance(action, argparse._SubParsersAction):
            raise argparse.ArgumentError(
                None, f"unknown command {value!r}{hint}; `{self.prog} --help` lists the "
                "commands")
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from "
                                             f"{', '.join(names)})")


def build_parser() -> argparse.ArgumentParser:
    from controller import version

    p = Parser(
        prog="callctl",
        description="Call controller for Asterisk: YAML call flows over ARI.",
        epilog="Environment: CALLCTL_ARI_URL, CALLCTL_ARI_USER, CALLCTL_ARI_PASSWORD, REDIS_URL, "
               "CALLCTL_APP, CALLCTL_RUN_DIR (see README). Exit codes: 0 ok, 1 failed, "
               "2 usage or bad input, 3 not found or not reachable (Asterisk, Redis, the "
               "controller, a call or user that does not exist).")
    p.add_argument("--version", action="version", version=f"callctl {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("up", help="the whole product: stack up, publish flows, run controller",
                       description="Start Asterisk and Redis, publish the flows if nothing is "
                       "published yet, run the controller. A restart keeps the live version "
                       "(whatever was published since); --publish replaces it.")
    s.add_argument("flows", nargs="*", metavar="DIR",
                   help="flows published only when nothing is published yet (default: "
                   "$CALLCTL_FLOWS, flows/examples)")
    s.add_argument("--publish", nargs="+", metavar="DIR",
                   help="publish these flows even when a version is live (the same content "
                   "as the live version makes no new version)")
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("run", help="run the controller (Asterisk and Redis must be up)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--publish", nargs="+", metavar="DIR",
                   help="publish these flows first, even when a version is live (the same "
                   "content as the live version makes no new version)")
    g.add_argument("--publish-if-empty", nargs="+", metavar="DIR",
                   help="publish these flows first only when nothing is published yet (a "
                   "restart keeps the live version)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("stack", help="start/stop Asterisk and Redis as our own processes",
                       description="up: start what is not running and wait until it answers "
                       "(progress on stderr); down; status; secrets: where the generated "
                       "secrets are and which names they hold (values with --show); render: "
                       "only write the config (run/etc) and the secrets")
    s.add_argument("action", choices=["up", "down", "status", "secrets", "render"])
    s.add_argument("--show", action="store_true", help="secrets: print the values too")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stack)

    sub.add_parser("asterisk", add_help=False,
                   help="Asterisk's CLI on our instance: asterisk -rx 'core show channels'")

    s = sub.add_parser("validate", help="validate and lint flow files (nothing changes)")
    s.add_argument("paths", nargs="+")
    s.add_argument("--json", action="store_true",
                   help="one JSON document: errors/warnings with file, line, col, field")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("publish", help="validate, lint and make flows the live version",
                       description="Validate, lint and publish. The same content as the live "
                       "version makes no new version (`unchanged`).")
    s.add_argument("paths", nargs="+")
    s.add_argument("--if-empty", action="store_true",
                   help="only when nothing is published yet (`kept` otherwise)")
    s.add_argument("--json", action="store_true",
                   help="one JSON document: errors/warnings, status, version")
    s.set_defaults(func=cmd_publish)

    s = sub.add_parser("rollback", help="make an earlier published version live again")
    s.add_argument("version", nargs="?", type=int, help="default: the previous version")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_rollback)

    s = sub.add_parser("versions", help="list published flow versions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_versions)

    s = sub.add_parser("failover", help="failover tests on a line (DID or department)")
    fsub = s.add_subparsers(dest="failover_cmd", required=True, metavar="SUBCOMMAND")
    t = fsub.add_parser("test", help="start/stop routing a line's new calls to its failover")
    t.add_argument("action", choices=["start", "stop"])
    t.add_argument("line", help="a published DID or department id")
    t.add_argument("--for", dest="duration", type=parse_duration, default=900,
                   help="auto-revert after this long (default 15m)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_failover)
    st = fsub.add_parser("status", help="active tests and the test log")
    st.add_argument("--json", action="store_true")
    st.add_argument("--limit", type=int, default=20)
    st.set_defaults(func=cmd_failover, action="status")

    s = sub.add_parser("schema", help="print the flow JSON Schema (for editors)")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("calls", help="recent calls (or --live, or --since 2h)")
    s.add_argument("--live", action="store_true")
    s.add_argument("--since", help="15m, 2h, 7d, or a date/time '2026-12-06 08:00' (local)")
    s.add_argument("--limit", type=int, help="default 50 (--since: all)")
    s.add_argument("--format", choices=["text", "json", "csv"], default="text")
    s.add_argument("--json", action="store_true", help="same as --format json")
    s.set_defaults(func=cmd_calls)

    s = sub.add_parser("call", help="the record, decision trace and events of one call")
    s.add_argument("call_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_call)
    add_ops_commands(sub)
    from controller.tools.cli.cluster import add_cluster_commands

    add_cluster_commands(sub)  # dispatcher, cluster
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # as gh and kubectl: the help, on stdout
        parser.print_help()
        return EXIT_OK
    asterisk_args = argv[1:] if argv[0] == "asterisk" else None
    args = None if asterisk_args is not None else parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as e:
        print(f"callctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args is None:  # asterisk's own options: not parsed here (see cmd_asterisk)
        return cmd_asterisk(asterisk_args or [], settings)
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
