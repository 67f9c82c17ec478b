"""`callctl`: run the controller, control the stack, manage flows, inspect calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
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
        # --publish: these flows become live (unless the live version has the same content);
        # --publish-if-empty: only when nothing is published yet, so a restart keeps what ops
        # published since.
        paths = getattr(args, "publish", None) or getattr(args, "publish_if_empty", None)
        if paths:  # its report goes to the log (JSON lines when the log is JSON)
            out = logs.LineWriter("callctl.publish") if logs.json_enabled() else None
            rc = await _publish(paths, settings, if_empty=not getattr(args, "publish", None),
                                out=out)
            if rc != EXIT_OK:
                return rc
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            # The admin API runs with the product unless CALLCTL_ADMIN=off.
            ctl = Controller(replace(settings, admin="off" if settings.admin == "off"
                                     else "on"))
            await ctl.run()
        except StartupError as e:
            if logs.json_enabled():
                logging.getLogger("callctl").critical("%s", e)
            else:
                print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        except asyncio.CancelledError:
            return EXIT_OK
        return EXIT_OK

    from controller import jsonx, loops

    try:  # uvloop unless CALLCTL_LOOP=asyncio (or uvloop is not installed)
        loop = loops.pick(os.environ.get("CALLCTL_LOOP", ""))
        if jsonx.CONFIG_ERROR:
            raise ValueError(jsonx.CONFIG_ERROR)
    except ValueError as e:
        print(f"callctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    with contextlib.suppress(KeyboardInterrupt):
        return loops.run(main(), loop)
    return EXIT_OK


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """The product in one command: stack up, publish the flows if nothing is published yet
    (``--publish``: even if a version is live), run the controller."""
    if args.flows and args.publish:
        print("callctl up: give the flows either as DIR (published only when nothing is) or "
              "with --publish DIR (published even when a version is live), not both",
              file=sys.stderr)
        return EXIT_USAGE
    rc = cmd_stack(argparse.Namespace(action="up", json=False, show=False), settings)
    if rc != EXIT_OK:
        return rc
    if not args.publish:
        args.publish_if_empty = [str(p) for p in (args.flows or [settings.flows_dir])]
    return cmd_run(args, load_settings())


class StackProgress:
    """``callctl stack up``'s progress on stderr: what it waits for, and for how long. On a
    terminal one line counts up; otherwise a line when a wait starts, every 5 s, and when it
    answered."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def __call__(self, what: str, elapsed: float, done: bool) -> None:
        if done:
            line = f"{what}: answered after {elapsed:.1f} s"
        elif elapsed < 1:
            line = f"waiting for {what} ..."
        elif self.tty or int(elapsed) % 5 == 0:
            line = f"waiting for {what} ... {int(elapsed)} s"
        else:
            return
        if self.tty:
            print(f"\r\033[K{line}", end="\n" if done else "", file=self.out, flush=True)
        else:
            print(line, file=self.out, flush=True)


SECRET_USES = {
    "ARI_PASSWORD": "ARI password (user $CALLCTL_ARI_USER)",
    "AMI_SECRET": "AMI secret (user $CALLCTL_AMI_USER)",
    "ADMIN_TOKEN": "admin API bearer token",
    "PHONE1_PASSWORD": "softphone phone1 (SIP REGISTER)",
    "PHONE2_PASSWORD": "softphone phone2 (SIP REGISTER)",
    "PHONE3_PASSWORD": "softphone phone3 (SIP REGISTER)",
    "WEBHOOK_SECRET": "webhook signatures (HMAC-SHA256)",
}


def stack_secrets(settings: Settings, *, show: bool = False,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """Where the secrets file is and the names it holds (values only with ``show``); a
    ``CALLCTL_<NAME>`` env var overrides the file's value."""
    from controller.config import SECRET_KEYS, read_secrets

    env = dict(os.environ) if env is None else env
    path = settings.secrets_path
    stored = read_secrets(path)
    rows = []
    for name in [*SECRET_KEYS, *sorted(set(stored) - set(SECRET_KEYS))]:
        from_env = env.get(f"CALLCTL_{name}")
        source = (f"env CALLCTL_{name}" if from_env else "file" if stored.get(name)
                  else "missing")
        row: dict[str, Any] = {"name": name, "source": source,
                               "used_for": SECRET_USES.get(name, "not used by callctl")}
        if show:
            row["value"] = from_env or stored.get(name)
        rows.append(row)
    mode = f"{path.stat().st_mode & 0o777:04o}" if path.exists() else None
    return {"file": str(path), "exists": path.exists(), "mode": mode, "secrets": rows}


def _secrets_human(d: dict[str, Any]) -> str:
    if not d["exists"]:
        return f"secrets: {d['file']} does not exist yet (`callctl stack up` generates it)"
    lines = [f"secrets: {d['file']} (mode {d['mode']})"]
    width = max(len(r["name"]) for r in d["secrets"])
    for r in d["secrets"]:
        value = f"  {r['value']}" if "value" in r else ""
        lines.append(f"  {r['name']:<{width}}  {r['source']:<24}  {r['used_for']}{value}")
    if not any("value" in r for r in d["secrets"]):
        lines.append("values hidden: `callctl stack secrets --show` prints them")
    return "\n".join(lines)


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from controller import stack

    if args.show and args.action != "secrets":
        print("callctl stack: --show goes with `secrets` only", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "secrets":
            d = stack_secrets(settings, show=args.show)
            _print(d, args.json, _secrets_human(d))
            return EXIT_OK if d["exists"] else EXIT_UNAVAILABLE
        if args.action == "up":
            for line in stack.up(load_settings(generate=True), progress=StackProgress()):
                print(line)
        elif args.action == "render":  # config and secrets only (docker-compose.yml)
            p = stack.render(load_settings(generate=True))
            print(f"rendered {p.etc} (secrets {settings.secrets_path})")
        elif args.action == "down":
            for line in stack.down(settings):
                print(line)
        else:
            st = stack.status(settings)
            ok = bool(st["asterisk"]["ari"]) and bool(st["redis"]["ping"])  # type: ignore[index]
            human = (f"asterisk: {'up' if st['asterisk']['ari'] else 'DOWN'} "  # type: ignore[index]
                     f"({st['asterisk']['detail']}) {st['asterisk']['url']}"  # type: ignore[index]
                     + (f" chroot {st['asterisk']['root']}"  # type: ignore[index]
                        if st["asterisk"]["root"] else "") + "\n"  # type: ignore[index]
                     f"redis:    {'up' if st['redis']['ping'] else 'DOWN'} "  # type: ignore[index]
                     f"{st['redis']['url']}\nlogs:     {st['logs']}")  # type: ignore[index]
            _print(st, args.json, human)
            return EXIT_OK if ok else EXIT_UNAVAILABLE
    except stack.StackError as e:
        print(f"callctl stack: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


async def _publish(paths: Sequence[str], settings: Settings, *, if_empty: bool = False,
                   as_json: bool = False, out: Any = None) -> int:
    from controller.flows import commands

    return await commands.publish_async([Path(p) for p in paths], settings.redis_url,
                                        prefix=settings.redis_prefix, if_empty=if_empty,
                                        as_json=as_json, out=out)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.validate([Path(p) for p in args.paths], as_json=args.json)


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_publish(args.paths, settings, if_empty=args.if_empty,
                                as_json=args.json))


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.rollback(args.version, settings.redis_url, prefix=settings.redis_prefix,
                             as_json=args.json)


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.schema()


def _clock(epoch: Any) -> str:
    """Epoch seconds as local wall-clock time with milliseconds (``14:03:07.412``)."""
    if not isinstance(epoch, int | float) or epoch <= 0:
        return "-"
    import time

    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


def format_trace(call_id: str, record: dict[str, Any] | None,
                 trace: list[dict[str, Any]]) -> str:
    """`callctl call ID` for humans: the call's outcome, then one line per decision.

    Ringing legs show when they started and stopped ringing and for how long (``rang``);
    skips show the reason (``opted_out``, ``outside_window``, ``busy``, ...)."""
    lines = []
    if record is not None:
        started, ended = record.get("started"), record.get("ended")
        took = (f"  duration={ended - started:.1f}s"
                if isinstance(started, int | float) and isinstance(ended, int | float) else "")
        lines.append(f"call {call_id}  did={record.get('did')}  "
                     f"caller={record.get('caller') or '-'}  result={record.get('result')}  "
                     f"answered_by={record.get('answered_by') or '-'}  "
                     f"started={_clock(started)}{took}")
    else:
        lines.append(f"call {call_id}  (no call log record)")
    for t in trace:
        parts = []
        for k, v in t.items():
            if k in ("at", "kind"):
                continue
            parts.append(f"{k}={_clock(v)}" if k in ("started", "ended") else f"{k}={v}")
        if t.get("kind") == "leg":
            start, stop = t.get("started"), t.get("ended")
            if isinstance(start, int | float) and isinstance(stop, int | float) and stop > 0:
                parts.append(f"rang={max(stop - start, 0.0):.2f}s")
        lines.append(f"{_clock(t.get('at'))}  {t.get('kind', '?'):<8} {' '.join(parts)}")
    return "\n".join(lines)


def cmd_calls(args: argparse.Namespace, settings: Settings) -> int:
    """`callctl calls [--live] [--since 2h] [--limit N] [--format text|json|csv]`."""
    from controller.ops import parse_since, records_csv

    fmt = "json" if args.json else args.format

    async def op(ops: Any) -> Any:
        since = parse_since(args.since) if args.since else None
        return await ops.calls(live=args.live, since=since, limit=args.limit)

    def human(rows: Any) -> str:
        if fmt == "csv":
            return records_csv(rows).rstrip("\n")
        return format_calls(rows)

    return _run_op(settings, op, fmt == "json", human)


def _age(seconds: float) -> str:
    """kubectl's AGE: ``42s``, ``5m``, ``3h``, ``2d``."""
    s = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


CALLS_HEADER = ("STARTED", "AGE", "CALL", "DID", "CALLER", "RESULT", "ANSWERED BY",
                "DURATION")


def format_calls(rows: Sequence[dict[str, Any]], now: float | None = None) -> str:
    """``callctl calls`` for humans: a header row, then one aligned row per call; local date
    and time, how long ago, and the duration (live calls: so far)."""
    if not rows:
        return "no calls"
    now = time.time() if now is None else now
    table = [CALLS_HEADER]
    for r in rows:
        started = r.get("started")
        try:
            t0: float | None = float(started) if started not in (None, "") else None
        except (TypeError, ValueError):
            t0 = None
        dur = r.get("duration")
        if isinstance(dur, int | float):
            took = f"{dur:.1f}s"
        elif t0 is not None and "result" not in r:
            took = f"{max(now - t0, 0.0):.0f}s+"
        else:
            took = "-"
        table.append((
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0)) if t0 else "-",
            _age(now - t0) if t0 else "-",
            str(r.get("call_id") or "-"), str(r.get("did") or "-"),
            str(r.get("caller") or "-"), str(r.get("result") or "live"),
            str(r.get("answered_by") or "-"), took))
    widths = [max(len(row[i]) for row in table) for i in range(len(CALLS_HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def cmd_call(args: argparse.Namespace, settings: Settings) -> int:
    """`callctl call ID`: the record, decision trace and events of one call."""

    async def op(ops: Any) -> Any:
        d = await ops.call(args.call_id)
        return {"call": d["record"], "live": d["live"], "trace": d["trace"],
                "events": d["events"]}

    def human(d: Any) -> str:
        text = format_trace(args.call_id, d["call"], d["trace"])
        if d["live"] and not d["call"]:
            text += f"\nlive: {' '.join(f'{k}={v}' for k, v in d['live'].items())}"
        if d["events"]:
            text += "\n\nevents:\n" + "\n".join(
                f"  +{e['t']:7.3f}s  {e['text']}" if isinstance(e["t"], int | float)
                else f"  {e['text']}" for e in d["events"])
        return text

    return _run_op(settings, op, args.json, human)


# ---------------------------------------------------------------------------- ops commands
# Shared with the admin API through controller.ops; errors map to exit codes there.


def actor() -> str:
    """Who is making a change (for the audit log): the sudo user, else the login user."""
    import getpass
    import os

    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


def _run_op(settings: Settings, op: Any, as_json: bool, human: Any,
            ok: Any = None) -> int:
    """Run ``await op(Ops)``; print JSON or ``human(data)``; OpsError -> its exit code."""
    from controller.ops import Ops, OpsError, exit_code
    from controller.store import RedisStore

    async def main() -> int:
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        try:
            data = await op(Ops(store, settings))
        except OpsError as e:
            if as_json:
                print(json.dumps(e.to_dict()))
            print(f"callctl: {e}", file=sys.stderr)
            return exit_code(e)
        finally:
            await store.close()
        _print(data, as_json, human(data))
        return EXIT_OK if ok is None or ok(data) else EXIT_UNAVAILABLE

    return asyncio.run(main())


def _updown(flag: Any) -> str:
    return "up" if flag else "DOWN"


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Controller, ARI, AMI, Redis and live calls; exit 3 if any is not reachable."""

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

    return _run_op(settings, lambda ops: ops.status(), args.json, human,
                   ok=lambda s: s["ok"])


def _user_line(u: Any) -> str:
    eff = u["effective"]
    why = "" if u["eligible_now"] else f" ({u['reason']})"
    avail = "; ".join(eff["availability"]) or "always"
    over = f"  overrides: {','.join(sorted(u['overrides']))}" if u["overrides"] else ""
    return (f"{u['id']:<12} {u['state']:<5} {'rings' if u['eligible_now'] else 'skipped'}{why}"
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
    action = getattr(args, "users_cmd", None)
    if action is None:
        return _run_op(settings, lambda ops: ops.users(), args.json,
                       lambda rows: "\n".join(map(_user_line, rows)) or "no users")
    by = actor()
    if action == "opt-out":
        value = {"on": True, "off": False, "reset": None}[args.state]
        return _run_op(settings, lambda ops: ops.set_opt_out(args.user, value, by=by),
                       args.json, _user_change)
    if action == "availability":
        if sum(bool(x) for x in (args.slots, args.clear, args.reset)) != 1:
            print("callctl users availability: give windows (e.g. mon-fri 09:00-17:00), "
                  "--clear (always available) or --reset (the published hours)",
                  file=sys.stderr)
            return EXIT_USAGE
        mode = "reset" if args.reset else "always" if args.clear else "set"
        return _run_op(settings, lambda ops: ops.set_availability(
            args.user, args.slots, by=by, tz=args.tz, mode=mode), args.json, _user_change)
    # alternate
    if sum(bool(x) for x in (args.number, args.clear, args.reset)) != 1:
        print("callctl users alternate: give a NUMBER (or user), --clear (no alternate) or "
              "--reset (the published alternate)", file=sys.stderr)
        return EXIT_USAGE
    return _run_op(settings, lambda ops: ops.set_alternate(
        args.user, args.number, by=by, reset=args.reset), args.json, _user_change)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    def human(rows: Any) -> str:
        return "\n".join(
            f"{_clock(e['at'])}  {e.get('by'):<10} {e.get('action'):<20} {e.get('target')}  "
            f"{json.dumps(e.get('old'))} -> {json.dumps(e.get('new'))}" for e in rows
        ) or "no changes recorded"

    return _run_op(settings, lambda ops: ops.audit(limit=args.limit, target=args.target),
                   args.json, human)


def cmd_departments(args: argparse.Namespace, settings: Settings) -> int:
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

    return _run_op(settings, lambda ops: ops.departments(), args.json, human)


def cmd_block(args: argparse.Namespace, settings: Settings) -> int:
    by = actor()
    if args.command == "block":
        return _run_op(settings, lambda ops: ops.block(args.number, reason=args.reason, by=by),
                       args.json, lambda e: f"blocked {e['pattern']}"
                       + (f" ({e['reason']})" if e["reason"] else "")
                       + ": its calls are rejected with cause 21 (SIP 403)")
    if args.command == "unblock":
        return _run_op(settings, lambda ops: ops.unblock(args.number, by=by), args.json,
                       lambda e: f"unblocked {e['pattern']}")

    def human(d: Any) -> str:
        rows = [f"{e['pattern']:<18} {e['blocked_calls']:>5} calls  by {e['by']}  "
                f"{e['reason']}" for e in d["entries"]]
        return "\n".join([*rows, f"{d['blocked_calls']} blocked calls in all"]) \
            if rows else f"nobody is blocked ({d['blocked_calls']} blocked calls in all)"

    return _run_op(settings, lambda ops: ops.blocked(), args.json, human)


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
        who = s.get("user") or ",".join(s.get("users") or [])
        lines.append(f"skip:   {who}{alt}: {s['reason']}")
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
    draft = None
    if args.flows:
        from controller.flows.loader import load

        res = load([Path(p) for p in args.flows])
        if res.errors or res.flowset is None:
            for p in res.errors:
                print(p, file=sys.stderr)
            print(f"callctl simulate: {len(res.errors)} error(s) in the draft flows",
                  file=sys.stderr)
            return EXIT_FAIL
        draft = res.flowset
    digits = [d.strip() for d in args.digits.split(",")] if args.digits else []
    return _run_op(settings, lambda ops: ops.simulate(
        did=args.did, caller=args.caller, at=args.at, tz=args.tz, digits=digits,
        flowset=draft, answer=args.answer), args.json, format_simulation)


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
    s.add_argument("--flows", nargs="+", metavar="DIR", help="a draft instead of the published")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    from controller.flows import commands

    return commands.versions(settings.redis_url, prefix=settings.redis_prefix,
                             as_json=args.json)


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

    from controller.ops import Ops, OpsError, exit_code
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
            ops = Ops(store, settings)
            try:
                if args.action == "start":
                    res = await ops.failover_start(args.line, args.duration, by=actor())
                    human = (f"failover test started on {args.line}: new calls go to its "
                             "failover target until "
                             f"{time.strftime('%H:%M:%S', time.localtime(res['until']))} "
                             f"(or `callctl failover test stop {args.line}`)")
                else:
                    res = await ops.failover_stop(args.line, by=actor())
                    human = (f"failover test on {args.line} "
                             f"{'stopped' if res['stopped'] else 'was not running'}")
            except OpsError as e:
                print(f"callctl failover: {e}", file=sys.stderr)
                return exit_code(e)
            _print(res, args.json, human)
            return EXIT_OK
        except StoreUnavailable as e:
            print(f"callctl: {e}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        finally:
            await store.close()

    return asyncio.run(main())


# ---------------------------------------------------------------------------- asterisk

ASTERISK_HELP = """usage: callctl asterisk [ASTERISK OPTIONS]

Asterisk's own CLI on the Asterisk callctl runs (its config is passed for you):
  callctl asterisk                                  the console (-r)
  callctl asterisk -rx 'core show channels'         one command
  callctl asterisk -rvvv                            the console, verbose
Options go to asterisk unchanged (no shell). Only a remote console (-r, -R or -x) is
allowed: `callctl stack up` starts Asterisk; -C is set by callctl."""

# asterisk's getopt options that take an argument (main/asterisk.c, 16 and 22)
_AST_OPTS_WITH_ARG = frozenset("CeGLMsUx")


def asterisk_flags(argv: Sequence[str]) -> set[str]:
    """The single-letter options in ``argv`` as asterisk's getopt reads them (``-rx CMD``:
    ``{"r", "x"}``)."""
    flags: set[str] = set()
    it = iter(argv)
    for arg in it:
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        for i, ch in enumerate(arg[1:], 1):
            flags.add(ch)
            if ch in _AST_OPTS_WITH_ARG:
                if i == len(arg) - 1:
                    next(it, None)
                break
    return flags


def cmd_asterisk(argv: Sequence[str], settings: Settings) -> int:
    """``callctl asterisk ARGS``: ``asterisk -C <run>/etc/asterisk.conf ARGS`` (or inside the
    Asterisk 22 root), as an argument list: nothing passes through a shell."""
    from controller import stack

    argv = list(argv) or ["-r"]
    if argv[0] in ("-h", "--help"):
        print(ASTERISK_HELP)
        return EXIT_OK
    flags = asterisk_flags(argv)
    if "C" in flags:
        print("callctl asterisk: -C is set by callctl (the rendered run/etc/asterisk.conf)",
              file=sys.stderr)
        return EXIT_USAGE
    if not flags & {"r", "R", "x"}:
        print("callctl asterisk: only a remote console (-r, -R or -x CMD) is allowed; "
              "`callctl stack up` starts Asterisk", file=sys.stderr)
        return EXIT_USAGE
    try:
        cmd = stack.asterisk_argv(settings, "-C", str(stack.Paths(settings.run_dir)
                                                       .asterisk_conf), *argv)
    except stack.StackError as e:
        print(f"callctl asterisk: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return subprocess.run(cmd, check=False).returncode
    except KeyboardInterrupt:
        return EXIT_OK


# ---------------------------------------------------------------------------- parser

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
    from controller.cluster_cli import add_cluster_commands

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
