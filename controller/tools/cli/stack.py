"""`callctl stack up|down|status|secrets|render` and `callctl asterisk`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from controller.config import Settings, load_settings
from controller.tools.cli.common import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    emit,
)


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
    from controller.tools import stack

    if args.show and args.action != "secrets":
        print("callctl stack: --show goes with `secrets` only", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "secrets":
            d = stack_secrets(settings, show=args.show)
            emit(d, args.json, _secrets_human(d))
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
            ok = bool(st["asterisk"]["ari"]) and bool(st["redis"]["ping"])
            human = (f"asterisk: {'up' if st['asterisk']['ari'] else 'DOWN'} "
                     f"({st['asterisk']['detail']}) {st['asterisk']['url']}"
                     + (f" chroot {st['asterisk']['root']}"
                        if st["asterisk"]["root"] else "") + "\n"
                     f"redis:    {'up' if st['redis']['ping'] else 'DOWN'} "
                     f"{st['redis']['url']}\nlogs:     {st['logs']}")
            emit(st, args.json, human)
            return EXIT_OK if ok else EXIT_UNAVAILABLE
    except stack.StackError as e:
        print(f"callctl stack: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return EXIT_OK


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
    from controller.tools import stack

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
