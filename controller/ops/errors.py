"""The operations' error: an HTTP-like status, a message and the bad field; the CLI's exit
code for it."""

from __future__ import annotations

from typing import Any


class OpsError(Exception):
    """Bad input (400), unknown thing (404), nothing published (409), unavailable (503)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "status": self.status}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def exit_code(err: OpsError) -> int:
    """CLI exit code of an error: 2 bad input (usage), 3 not found / unavailable, else 1."""
    if err.status in (400, 422):
        return 2
    if err.status in (404, 503):
        return 3
    return 1
