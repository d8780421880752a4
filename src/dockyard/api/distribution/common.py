"""What every /v2 handler needs: access checks, request bodies, query parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from dockyard.api.authn import caller
from dockyard.auth.policy import Action, Subject
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.errors import (
    BlobUploadInvalid,
    Denied,
    NameInvalid,
    PaginationNumberInvalid,
    PayloadTooLarge,
    SizeInvalid,
    Unauthorized,
)
from dockyard.registry.service import Registry


def registry(request: Request) -> Registry:
    reg: Registry = request.app.state.dockyard.registry
    return reg


async def authorize(
    request: Request, name: str, action: Action
) -> tuple[Subject, RepositoryRow | None]:
    """The caller and the repository, if the policy lets the caller do `action` on `name`.

    A bearer token must also have been issued for this repository and action; if not, the client
    is challenged for a token with the right scope.
    """
    request.state.scope = (
        f"repository:{name}:{'pull,push' if action == Action.PUSH else action.value}"
    )
    subject, claims = await caller(request)
    if claims is not None and not claims.grants("repository", name, action.value):
        raise Unauthorized(f"the bearer token does not grant {action.value} on repository {name!r}")
    return subject, await registry(request).repositories.authorize(subject, name, action)


async def may(request: Request, subject: Subject, name: str, action: Action) -> bool:
    """Whether the caller may also do `action` on another repository (cross-repository mount)."""
    _, claims = await caller(request)
    if claims is not None and not claims.grants("repository", name, action.value):
        return False
    try:
        await registry(request).repositories.authorize(subject, name, action)
    except (Unauthorized, Denied, NameInvalid):
        return False
    return True


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise SizeInvalid(f"Content-Length {value!r} is not a non-negative integer")
    return int(value)


async def body_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away mid-body ends it with an error."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BlobUploadInvalid("the client disconnected before sending the whole body") from None


async def small_body(request: Request, limit: int) -> bytes:
    """A body that must fit in memory (a manifest), refused with 413 past `limit` bytes."""
    length = content_length(request)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body is {length} bytes; at most {limit} bytes are accepted")
    data = bytearray()
    async for chunk in body_stream(request):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
    if length is not None and len(data) != length:
        raise SizeInvalid(f"body was {len(data)} bytes but Content-Length said {length}")
    return bytes(data)


MAX_PAGE = 10_000  # a larger `n` gets this many and a Link to the rest, as the spec allows


def page_size(request: Request) -> int | None:
    """The `n` of a listing: a non-negative count, capped at `MAX_PAGE`; None when absent."""
    value = request.query_params.get("n")
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise PaginationNumberInvalid(f"n={value!r} must be a non-negative integer", {"n": value})
    digits = value.lstrip("0") or "0"  # no int() of a 5,000-digit string
    return MAX_PAGE if len(digits) > len(str(MAX_PAGE)) else min(int(digits), MAX_PAGE)
