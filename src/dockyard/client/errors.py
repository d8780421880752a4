"""A registry's error answers turned back into the `OciError` classes the server raised."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dockyard.oci.errors import (
    Denied,
    OciError,
    PayloadTooLarge,
    RangeInvalid,
    TooManyRequests,
    Unauthorized,
    Unsupported,
    error_from_json,
)

# For answers without the spec's error body (HEAD requests, proxies, plain-text 404s).
_BY_STATUS: dict[int, type[OciError]] = {
    401: Unauthorized,
    403: Denied,
    405: Unsupported,
    413: PayloadTooLarge,
    416: RangeInvalid,
    429: TooManyRequests,
}
_KEPT_HEADERS = ("Retry-After", "Range", "Location", "WWW-Authenticate")
MAX_ERROR_BODY = 64 * 1024


def error_from_body(
    status: int, body: bytes, where: str, headers: Mapping[str, str] | None = None
) -> OciError:
    """The error a registry answered with `status` and `body` for the request `where`.

    The spec's envelope `{"errors": [{"code", "message", "detail"}]}` gives the class of its
    first entry (the others are added as notes); anything else gives a class by status, or a
    plain `OciError` that keeps the status. Messages name the request, so a failure deep in a
    copy still says which registry and path answered.
    """
    entries = _entries(body)
    if entries:
        first = dict(entries[0])
        first["message"] = f"{first.get('message') or 'error'} ({where}: HTTP {status})"
        err = error_from_json(first, status)
        if err.status != status:
            err.status = status  # type: ignore[misc]  # what was answered, not the usual
        if type(err) is OciError:
            err.code = str(first["code"])  # type: ignore[misc]  # a code the spec does not name
        for extra in entries[1:]:
            err.add_note(f"also: {extra.get('code')}: {extra.get('message')}")
    else:
        err = error_from_status(status, f"{where}: HTTP {status}{_text(body)}")
    if headers is not None:
        err.headers = {k: headers[k] for k in _KEPT_HEADERS if k in headers}
    return err


def error_from_status(status: int, message: str) -> OciError:
    """An `OciError` for a status alone: the class that status means, else one keeping it."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message)
    err = OciError(message)
    err.status = status  # type: ignore[misc]  # instance value shadows the class default
    return err


def _entries(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body[:MAX_ERROR_BODY])
    except (ValueError, RecursionError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [entry for entry in errors if isinstance(entry, dict) and entry.get("code")]


def _text(body: bytes) -> str:
    text = body[:200].decode(errors="replace").strip()
    return f": {text}" if text else ""
