"""`callctl validate|publish|rollback|versions|schema`: flow files and published versions."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.config import Settings


async def publish_dirs(paths: Sequence[str], settings: Settings, *, if_empty: bool = False,
                       as_json: bool = False, out: Any = None) -> int:
    """Validate, lint and publish the flow files under ``paths``: the exit code."""
    from controller.tools import flowcmds as commands

    return await commands.publish_async([Path(p) for p in paths], settings.redis_url,
                                        prefix=settings.redis_prefix, if_empty=if_empty,
                                        as_json=as_json, out=out)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools import flowcmds as commands

    return commands.validate([Path(p) for p in args.paths], as_json=args.json)


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(publish_dirs(args.paths, settings, if_empty=args.if_empty,
                                    as_json=args.json))


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools import flowcmds as commands

    return commands.rollback(args.version, settings.redis_url, prefix=settings.redis_prefix,
                             as_json=args.json)


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools import flowcmds as commands

    return commands.schema()


def cmd_versions(args: argparse.Namespace, settings: Settings) -> int:
    from controller.tools import flowcmds as commands

    return commands.versions(settings.redis_url, prefix=settings.redis_prefix,
                             as_json=args.json)
