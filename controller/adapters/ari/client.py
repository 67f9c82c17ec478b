"""A thin ARI REST client (Asterisk 16 parameter names).

REST requests go through a ``controller.adapters.ari.transport.RestTransport`` (aiohttp's keep-alive
pool); the event websocket uses an aiohttp session of its own. JSON bodies go through
``controller.jsonx`` (orjson when installed).

Credentials travel only in the ``Authorization: Basic`` header: never in a URL, a query string,
an exception or a log line. Errors map to ``controller.adapters.ari.errors`` (``NotFound`` for a
channel is usually a hangup race that callers catch).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from controller import jsonx
from controller.adapters.ari.errors import AriError, AriUnavailable, NotFound, error_for
from controller.adapters.ari.transport import (
    AiohttpTransport,
    RestTransport,
    TransportError,
    connect_reason,
    encode_query,
)

__all__ = ["HANGUP_REASONS", "AriClient", "hangup_reason_for"]

log = logging.getLogger("callctl.ari")

# DELETE /channels/{id}?reason=...: the names Asterisk 16.28 accepts and the Q.850 cause each
# sets (res/ari/resource_channels.c). Asterisk 16.28 has no ``reason_code`` parameter: an
# unknown query parameter is silently ignored, so sending one would hang up with cause 16.
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}

# Causes without a name of their own -> the named reason that signals the same to a SIP peer
# (chan_pjsip's hangup_cause2sip: e.g. 2 and 3 -> 404 like 1; 41/42/44 -> 503 like 34).
_NEAREST: dict[int, str] = {
    2: "unallocated", 3: "unallocated", 22: "unallocated",
    20: "no_answer",
    27: "failure", 29: "failure", 41: "congestion", 42: "congestion", 44: "congestion",
    47: "congestion", 65: "codec_mismatch", 88: "codec_mismatch",
}
_REASON_FOR_CAUSE: dict[int, str] = {c: r for r, c in HANGUP_REASONS.items()} | _NEAREST


def hangup_reason_for(cause: int) -> str:
    """The Asterisk 16 hangup ``reason`` name for a Q.850 cause (exact, else nearest class)."""
    reason = _REASON_FOR_CAUSE.get(cause)
    if reason is not None:
        return reason
    if cause < 32:
        return "normal_unspecified"  # normal event class
    if cause < 48:
        return "congestion"  # resource unavailable class
    if cause < 80:
        return "failure"  # service/option not available or implemented
    return "interworking"  # invalid message, protocol error, interworking


def _seg(s: str) -> str:
    """One path segment, percent-encoded (recording names contain '/')."""
    return quote(s, safe="")


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    """ARI query values: bools as true/false, lists comma-joined, None dropped."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if v is None:
            continue
        if v is True:
            out[k] = "true"
        elif v is False:
            out[k] = "false"
        elif isinstance(v, str):
            out[k] = v
        elif isinstance(v, (list, tuple, set, frozenset)):
            out[k] = ",".join(str(x) for x in v)
        else:
            out[k] = str(v)
    return out


class AriClient:
    """ARI over HTTP: ``await client.answer(channel_id)`` etc.; ``async with`` or ``close()``."""

    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 timeout: float = 5.0, native_reason_code: bool = False) -> None:
        url = URL(base_url.rstrip("/"))
        if url.user is not None or url.password is not None:
            url = url.with_user(None)  # credentials come only from user/password
        self.base_url = str(url)
        self.api_url = self.base_url + "/ari"
        self.app = app
        self.timeout = timeout
        self.native_reason_code = native_reason_code
        """Send ``reason_code`` on hangup (Asterisk releases newer than 16.28 only)."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestTransport | None = None

    def __repr__(self) -> str:
        return f"AriClient(base_url={self.base_url!r}, app={self.app!r})"

    # ------------------------------------------------------------------ lifecycle

    def _open_rest(self) -> RestTransport:
        self._rest = AiohttpTransport(self.api_url, self._headers, timeout=self.timeout)
        return self._rest

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=100,
            # below Asterisk's http.conf session_keep_alive (15 s) so we never reuse a socket
            # the server is about to close
            keepalive_timeout=10.0,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=jsonx.dumps,
        )
        return self._session

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session for the event websocket (created on first use)."""
        s = self._session
        if s is None or s.closed:
            s = self._open()
        return s

    async def start(self) -> None:
        """Open the REST connection pool now (otherwise on first request)."""
        if self._rest is None or self._rest.closed:
            self._open_rest()

    async def close(self) -> None:
        h, self._rest = self._rest, None
        s, self._session = self._session, None
        try:
            if h is not None:
                await h.close()
        finally:
            if s is not None and not s.closed:
                await s.close()

    async def __aenter__(self) -> AriClient:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------------ core

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None) -> Any:
        """One ARI call; ``path`` is relative to /ari with segments already encoded.

        Returns parsed JSON, or None for 204/empty. Raises ``AriError`` subclasses.
        """
        rest = self._rest
        if rest is None or rest.closed:
            rest = self._open_rest()
        target = path
        query = None
        if params:
            query = _query(params)
            if query:
                target = f"{path}?{encode_query(query)}"
        if log.isEnabledFor(logging.DEBUG):
            log.debug("ARI %s %s %s", method, path, query or "")
        data = None if json is None else jsonx.dumpb(json)
        try:
            status, body = await rest.request(method, target, data, timeout=self.timeout)
        except TransportError as e:
            raise AriUnavailable(method, path, e.reason) from None
        except OSError as e:  # TimeoutError included
            raise AriUnavailable(method, path, _describe(e, self.timeout)) from None
        if 200 <= status < 300:
            if not body:
                return None
            try:
                return jsonx.loads(body)
            except ValueError:
                raise AriError(status, method, path, "invalid JSON in answer") from None
        raise error_for(status, method, path, body)

    async def connect_events(self, *, heartbeat: float | None = 5.0,
                             subscribe_all: bool = False) -> aiohttp.ClientWebSocketResponse:
        """Open the event websocket ``/ari/events?app=<app>&subscribeAll=false``."""
        url = URL(self.api_url + "/events")
        url = url.with_scheme("wss" if url.scheme == "https" else "ws").with_query(
            {"app": self.app, "subscribeAll": "true" if subscribe_all else "false"})
        try:
            return await self.session.ws_connect(url, heartbeat=heartbeat, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            raise error_for(e.status, "GET", "/events", "websocket handshake refused") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise AriUnavailable("GET", "/events", _describe(e, self.timeout)) from None

    # ------------------------------------------------------------------ asterisk

    async def asterisk_info(self) -> dict[str, Any] | None:
        """GET /asterisk/info (build, system, config, status)."""
        return await self.request("GET", "/asterisk/info")  # type: ignore[no-any-return]

    async def ping(self) -> dict[str, Any] | None:
        """GET /asterisk/ping."""
        return await self.request("GET", "/asterisk/ping")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ channels

    async def list_channels(self) -> list[dict[str, Any]] | None:
        return await self.request("GET", "/channels")  # type: ignore[no-any-return]

    async def get_channel(self, channel_id: str) -> dict[str, Any] | None:
        return await self.request("GET", f"/channels/{_seg(channel_id)}")  # type: ignore[no-any-return]

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing (180) to the channel."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def hangup(self, channel_id: str, reason_code: int | None = None,
                     reason: str | None = None) -> None:
        """DELETE /channels/{id}. ``reason`` (an Asterisk name, see HANGUP_REASONS) wins;
        else ``reason_code`` (Q.850) is sent as the matching/nearest reason name, or as
        ``reason_code`` when ``native_reason_code`` is set. Neither: cause 16."""
        params: dict[str, str] | None = None
        if reason is not None:
            params = {"reason": reason}
        elif reason_code is not None:
            if self.native_reason_code:
                params = {"reason_code": str(reason_code)}
            else:
                params = {"reason": hangup_reason_for(reason_code)}
        await self.request("DELETE", f"/channels/{_seg(channel_id)}", params=params)

    async def originate(self, endpoint: str, *, channel_id: str, app: str | None = None,
                        app_args: str = "", caller_id: str | None = None,
                        timeout: int = 30,
                        variables: Mapping[str, Any] | None = None,
                        originator: str | None = None) -> dict[str, Any] | None:
        """POST /channels: dial ``endpoint``; on answer it enters Stasis(app, app_args).

        ``variables`` go in the JSON body as ``{"variables": {...}}`` (values as strings);
        ``timeout`` is seconds (-1: none). Returns the new channel.
        """
        params = {
            "endpoint": endpoint,
            "app": app or self.app,
            "appArgs": app_args or None,
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "originator": originator,
        }
        body = ({"variables": {str(k): str(v) for k, v in variables.items()}}
                if variables else None)
        return await self.request(  # type: ignore[no-any-return]
            "POST", "/channels", params=params, json=body)

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> None:
        """Leave Stasis; continue in the dialplan (defaults: the next priority)."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/continue", params={
            "context": context, "extension": extension, "priority": priority, "label": label})

    async def set_var(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/variable",
                           params={"variable": name, "value": value})

    async def get_var(self, channel_id: str, name: str) -> str | None:
        """A channel variable's value, or None if it is not set.

        Raises NotFound if the channel is gone (Asterisk answers 404 for both; the message
        tells them apart).
        """
        try:
            res = await self.request("GET", f"/channels/{_seg(channel_id)}/variable",
                                     params={"variable": name})
        except NotFound as e:
            if "variable" in e.message.lower():
                return None
            raise
        return None if res is None else res.get("value")

    # ------------------------------------------------------------------ media

    async def play(self, channel_id: str, media: Iterable[str] | str, *, playback_id: str,
                   lang: str | None = None) -> dict[str, Any] | None:
        """POST /channels/{id}/play/{playbackId}: media URIs played in sequence."""
        return await self.request(  # type: ignore[no-any-return]
            "POST", f"/channels/{_seg(channel_id)}/play/{_seg(playback_id)}",
            params={"media": media if isinstance(media, str) else list(media), "lang": lang})

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def get_playback(self, playback_id: str) -> dict[str, Any] | None:
        """GET /playbacks/{id}: the playback while it plays (NotFound once it finished)."""
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"/playbacks/{_seg(playback_id)}")

    async def record(self, channel_id: str, *, name: str, fmt: str = "wav",
                     max_duration: int = 0, max_silence: int = 0, beep: bool = True,
                     terminate_on: str = "#",
                     if_exists: str = "overwrite") -> dict[str, Any] | None:
        """POST /channels/{id}/record. ``terminate_on``: none, any, * or #;
        ``if_exists``: fail, overwrite or append. Returns the LiveRecording."""
        return await self.request(  # type: ignore[no-any-return]
            "POST", f"/channels/{_seg(channel_id)}/record", params={
                "name": name,
                "format": fmt,
                "maxDurationSeconds": max_duration,
                "maxSilenceSeconds": max_silence,
                "ifExists": if_exists,
                "beep": beep,
                "terminateOn": terminate_on,
            })

    async def stop_recording(self, name: str) -> None:
        """Stop a live recording and store it."""
        await self.request("POST", f"/recordings/live/{_seg(name)}/stop")

    async def get_live_recording(self, name: str) -> dict[str, Any] | None:
        """GET /recordings/live/{name}: the recording while it runs (NotFound once it
        ended)."""
        return await self.request(  # type: ignore[no-any-return]
            "GET", f"/recordings/live/{_seg(name)}")

    # ------------------------------------------------------------------ bridges

    async def create_bridge(self, bridge_id: str, type: str = "mixing",
                            name: str | None = None) -> dict[str, Any] | None:
        """POST /bridges with our id (409 Conflict if it exists)."""
        return await self.request(  # type: ignore[no-any-return]
            "POST", "/bridges", params={"type": type, "bridgeId": bridge_id, "name": name})

    async def add_to_bridge(self, bridge_id: str, channels: Iterable[str]) -> None:
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/addChannel",
                           params={"channel": list(channels)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def list_bridges(self) -> list[dict[str, Any]] | None:
        return await self.request("GET", "/bridges")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ applications

    async def set_event_filter(self, allowed: Iterable[str]) -> None:
        """PUT /applications/{app}/eventFilter: Asterisk sends this app only these event
        types (Asterisk 13.26/16.3+). Lasts while the application is registered."""
        await self.request("PUT", f"/applications/{_seg(self.app)}/eventFilter",
                           json={"allowed": [{"type": t} for t in allowed]})


def _describe(e: BaseException, timeout: float) -> str:
    """A short reason for a failed connection: no URL userinfo, no headers."""
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(e, aiohttp.ClientConnectorError):
        return connect_reason(e.os_error)  # no address: "cannot connect: Connection refused"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(e, OSError) and e.strerror:
        return f"{type(e).__name__}: {e.strerror}"
    return type(e).__name__
