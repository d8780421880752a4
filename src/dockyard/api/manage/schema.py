"""What every resource of the management API shares in its OpenAPI document: the error
envelope, the error responses an operation lists, and the types of names and text it accepts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator, BaseModel, Field

from dockyard.auth.passwords import MAX_LENGTH, MIN_LENGTH

ACCOUNT_NAME_PATTERN = r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$"
INT32_MAX = 2**31 - 1


class ErrorEntry(BaseModel):
    code: str = Field(description="machine-readable: NOT_FOUND, DENIED, INVALID_REQUEST, ...")
    message: str = Field(description="what went wrong, for a person")
    detail: Any = Field(None, description="more, for a program (e.g. the invalid field)")


class ErrorBody(BaseModel):
    """The error envelope of /v2 and /api alike: `{"errors":[{"code","message","detail"}]}`."""

    errors: list[ErrorEntry]


_ERROR_DESCRIPTIONS = {
    400: "The request names something invalid (e.g. a repository name too long).",
    401: "Not signed in, or the credentials are wrong: `WWW-Authenticate` says how to sign in.",
    403: "Signed in, but not allowed: the message says who may.",
    404: "Nothing by that name here (or no such path).",
    409: "Conflicts with what exists (a name taken, an organization left without an owner).",
    422: "The request is invalid: each error's `detail.field` names the field.",
    502: "An upstream registry could not be read: the message says which and why.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries for these error statuses, each with the envelope."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": "a Bearer challenge naming the token endpoint",
                    "schema": {"type": "string"},
                }
            }
        documented[status] = entry
    return documented


def _storable(text: str) -> str:
    """Refuse text a database cannot store: NUL characters and lone surrogates."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return text


AccountName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=ACCOUNT_NAME_PATTERN,
        description="lowercase letters and digits, separated by '.', '_', '__' or '-'",
        examples=["acme"],
    ),
]
AccountPath = Annotated[str, Path(max_length=255, pattern=ACCOUNT_NAME_PATTERN)]
"""A path parameter naming a user or an organization."""
Label = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_storable)]
Password = Annotated[
    str,
    Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"at least {MIN_LENGTH} characters, and not a common password",
    ),
    AfterValidator(_storable),
]


def timestamp(seconds: float) -> datetime:
    """A database time (seconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def optional_timestamp(seconds: float | None) -> datetime | None:
    """`timestamp`, for a time that may not have happened yet."""
    return None if seconds is None else timestamp(seconds)
