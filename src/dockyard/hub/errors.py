"""What the hub's services refuse, by kind; the edge maps each `code` onto its HTTP status.

Refusals of access use the spec's `Denied` and `Unauthorized` (oci/errors.py), as /v2 does.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """A refusal with a `code` the edge understands and a message a person can act on."""

    code = "INVALID_REQUEST"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Invalid(HubError):
    """The request names something in a form that cannot be used."""

    code = "INVALID_REQUEST"


class NotFound(HubError):
    """The thing named does not exist (or the caller may not know it exists)."""

    code = "NOT_FOUND"


class Conflict(HubError):
    """The request contradicts what already exists."""

    code = "CONFLICT"


class UpstreamFailed(HubError):
    """An upstream registry could not be read (down, refusing, or answering nonsense)."""

    code = "UPSTREAM_FAILED"
