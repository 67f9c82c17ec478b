"""`callctl run` and `callctl up`: the controller process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import replace

from controller import logs
from controller.config import Settings, StartupError, load_settings
from controller.tools.cli.common import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from controller.tools.cli.flows import publish_dirs
from controller.tools.cli.stack import cmd_stack


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools.app import build_controller

    logs.setup(settings.log_format)

    async def main() -> int:
        # --publish: these flows become live (unless the live version has the same content);
        # --publish-if-empty: only when nothing is published yet, so a restart keeps what ops
        # published since.
        paths = getattr(args, "publish", None) or getattr(args, "publish_if_empty", None)
        if paths:  # its report goes to the log (JSON lines when the log is JSON)
            out = logs.LineWriter("callctl.publish") if logs.json_enabled() else None
            rc = await publish_dirs(paths, settings,
                                    if_empty=not getattr(args, "publish", None), out=out)
            if rc != EXIT_OK:
                return rc
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            # The admin API runs with the product unless CALLCTL_ADMIN=off.
            ctl = build_controller(replace(settings, admin="off" if settings.admin == "off"
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

    from controller import jsonx
    from controller.tools import loops

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
