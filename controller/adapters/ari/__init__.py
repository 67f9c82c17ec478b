"""Our own thin ARI layer: REST client, typed events, event websocket."""

from controller.adapters.ari.client import AriClient
from controller.adapters.ari.errors import (
    AriError,
    AriUnavailable,
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServerError,
    Unauthorized,
    Unprocessable,
    error_for,
)
from controller.adapters.ari.events import Event
from controller.adapters.ari.parse import channel_id_of, parse_event
from controller.adapters.ari.stream import EventStream

__all__ = [
    "AriClient",
    "AriError",
    "AriUnavailable",
    "BadRequest",
    "Conflict",
    "Event",
    "EventStream",
    "NotFound",
    "PreconditionFailed",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "channel_id_of",
    "error_for",
    "parse_event",
]
