"""Error answers in the upstream's own envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

# Messages copied from what public clients have seen, so parsers meet familiar text.
_DEFAULTS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "OAuth token has expired."),
    403: ("permission_error", "You do not have permission to access this resource"),
    404: ("not_found_error", "Not found"),
    405: ("invalid_request_error", "Method not allowed"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes"),
    429: ("rate_limit_error", "Rate limited. Please try again later."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("api_error", "Service unavailable"),
    504: ("api_error", "Gateway timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def default_error(status: int) -> tuple[str, str]:
    """The `(type, message)` the upstream would plausibly send with `status`."""
    if status in _DEFAULTS:
        return _DEFAULTS[status]
    if status >= 500:
        return "api_error", "Internal server error"
    return "invalid_request_error", "Request failed"


def error_body(error_type: str, message: str, code: str | None = None) -> bytes:
    error: dict[str, object] = {"type": error_type, "message": message}
    if code is not None:  # as claude.ai's `account_session_invalid`
        error["details"] = {"error_visibility": "user_facing", "error_code": code}
    return json.dumps({"type": "error", "error": error}).encode()


@dataclass(frozen=True)
class ApiError:
    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    code: str | None = None  # `details.error_code`, when the upstream gives one

    @classmethod
    def for_status(
        cls, status: int, message: str | None = None, headers: Mapping[str, str] | None = None
    ) -> ApiError:
        error_type, default_message = default_error(status)
        return cls(status, error_type, message or default_message, dict(headers or {}))

    def body(self) -> bytes:
        return error_body(self.type, self.message, self.code)
