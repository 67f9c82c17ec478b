"""AMI adapter (panoramisk): keeps the outage failover targets in Asterisk's own AstDB.

The dialplan's outage path (``dialplan/callctl-dialplan.conf``) reads
``${DB(callctl_failover/<DID>)}`` = ``"<number>|<mailbox>"`` when the Stasis app is not
connected, so these entries must be written while the controller is up and must not depend on
Redis. ``sync_failover`` makes AstDB equal to the wanted map: puts what changed, deletes stale
DIDs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from panoramisk import Manager

log = logging.getLogger("callctl.ami")

FAMILY = "callctl_failover"
_ENTRY = re.compile(r"^/" + FAMILY + r"/(\S+)\s*:\s*(.*?)\s*$")


class AmiError(RuntimeError):
    pass


def failover_value(number: str | None, mailbox: str | None, greeting: str = "",
                   caller_id: str = "") -> str:
    """The AstDB value the dialplan parses: ``number|mailbox|greeting|caller_id``.

    All parts are validated by the flow schema (and again by the dialplan): greeting is a
    prompt path ``<language>/<name>`` under the prompts dir, caller_id ``did`` presents the
    dialled number on the failover leg (empty: the caller's own)."""
    return f"{number or ''}|{mailbox or ''}|{greeting}|{caller_id}"


def parse_database_show(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        m = _ENTRY.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


class _Manager(Manager):  # type: ignore[misc]  # panoramisk has no types: Manager is Any
    """panoramisk's Manager, except that a failed first connect is only reported to whoever
    awaits :meth:`Ami.connect`: panoramisk would also log "Not able to reconnect" and retry
    every ``reconnect_timeout`` behind the caller's back, after :meth:`Ami.close` too (the
    controller retries by itself; ``callctl status`` says once that AMI is down). Reconnects
    after a lost connection stay panoramisk's."""

    connected_once = False

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if not self.connected_once and (f.cancelled() or f.exception() is not None):
            return
        self.connected_once = True
        super().connection_made(f)


class Ami:
    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        # Events off: we only send actions, and with events on Asterisk streams dozens of
        # events per call that panoramisk parses (the top CPU cost under load, by profile).
        self._config = {"host": host, "port": port, "username": user, "secret": secret,
                        "ping_delay": 10, "reconnect_timeout": 2, "events": "off"}
        self.manager: Manager | None = None

    async def connect(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        self.manager = _Manager(loop=loop, **self._config)
        await asyncio.wait_for(self.manager.connect(), timeout)
        deadline = loop.time() + timeout
        while not self.manager.authenticated:
            if loop.time() > deadline:
                raise AmiError(f"AMI login to {self._config['host']}:{self._config['port']} "
                               "failed (check CALLCTL_AMI_SECRET)")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    async def _action(self, **action: Any) -> Any:
        if self.manager is None:
            raise AmiError("AMI not connected")
        resp = await asyncio.wait_for(self.manager.send_action(action), 5)
        if isinstance(resp, list):
            resp = resp[0] if resp else None
        if resp is None or not resp.success:
            raise AmiError(f"AMI {action.get('Action')} failed: "
                           f"{getattr(resp, 'Message', resp)}")
        return resp

    async def endpoints(self) -> list[dict[str, str]]:
        """``PJSIPShowEndpoints``: one ``EndpointList`` event per endpoint (ObjectName,
        Contacts, DeviceState, ...), as plain dicts (controller.core.devices reads them)."""
        if self.manager is None:
            raise AmiError("AMI not connected")
        resp = await asyncio.wait_for(
            self.manager.send_action({"Action": "PJSIPShowEndpoints"}), 5)
        msgs = resp if isinstance(resp, list) else [resp]
        if not msgs or msgs[0] is None or not msgs[0].success:
            raise AmiError("AMI PJSIPShowEndpoints failed")
        return [{str(k): str(v) for k, v in dict(m).items()} for m in msgs
                if m.get("Event") == "EndpointList"]

    async def db_put(self, key: str, value: str) -> None:
        await self._action(Action="DBPut", Family=FAMILY, Key=key, Val=value)

    async def db_del(self, key: str) -> None:
        await self._action(Action="DBDel", Family=FAMILY, Key=key)

    async def db_entries(self) -> dict[str, str]:
        if self.manager is None:
            raise AmiError("AMI not connected")
        resp = await asyncio.wait_for(
            self.manager.send_command(f"database show {FAMILY}"), 5)
        lines = getattr(resp, "Output", None) or []
        if isinstance(lines, str):
            lines = lines.splitlines()
        return parse_database_show(list(lines))

    async def sync_failover(self, wanted: dict[str, str]) -> tuple[int, int]:
        """Make AstDB hold exactly ``wanted`` (DID -> value). Returns (written, removed)."""
        current = await self.db_entries()
        written = removed = 0
        for did, value in wanted.items():
            if current.get(did) != value:
                await self.db_put(did, value)
                written += 1
        for did in current.keys() - wanted.keys():
            await self.db_del(did)
            removed += 1
        return written, removed
