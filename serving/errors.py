"""Errors the endpoint answers with a status code and a structured body (never a 500 for a client)."""

from __future__ import annotations

from typing import Any


class ServingError(Exception):
    """An HTTP error with a reason code and, for bad input, the field it is about."""

    def __init__(self, status: int, reason: str, message: str, field: str | None = None) -> None:
        """Status code, a stable reason code, a message a client can act on, the field if any."""
        self.status = status
        self.reason = reason
        self.message = message
        self.field = field
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """Seldon's error shape (``status``), plus ``field`` when one field is at fault."""
        status: dict[str, Any] = {"code": self.status, "status": "FAILURE", "reason": self.reason, "info": self.message}
        if self.field is not None:
            status["field"] = self.field
        return {"status": status}


def bad_field(field: str, message: str) -> ServingError:
    """A 400 about one request field."""
    return ServingError(400, "BAD_FIELD", f"{field}: {message}", field)


class FeatureServerUnavailableError(ServingError):
    """The Feast feature server (or the online store behind it) cannot answer: 503 with the reason."""

    def __init__(self, message: str) -> None:
        """503, reason ``FEATURE_SERVER_UNAVAILABLE``."""
        super().__init__(503, "FEATURE_SERVER_UNAVAILABLE", message)
