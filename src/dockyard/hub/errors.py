"""What the hub's services refuse, by kind: the class is the kind, and the edge
(`api/errors.py`, `REFUSALS`) answers each kind with its status and code, in one place.

Refusals of access use the spec's `Denied` and `Unauthorized` (oci/errors.py), as /v2 does.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """A refusal of a request as it was made, with a message a person can act on and an
    optional machine-readable `detail`."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Invalid(HubError):
    """The request names something in a form that cannot be used."""


class NotFound(HubError):
    """The thing named does not exist (or the caller may not know it exists)."""


class Conflict(HubError):
    """The request contradicts what already exists."""


class UpstreamFailed(HubError):
    """An upstream registry could not be read (down, refusing, or answering nonsense)."""
