"""Request bodies and their lengths: streamed as they arrive, or read whole only up to a limit.

Every body the edge reads whole goes through `small_body`, which refuses an announced length
past its limit before reading a byte, and stops reading (413) as soon as a body without one
(chunked) runs past it. A refused body is never read to its end: the server closes the
connection after the answer, so nothing the client sends after it is taken for a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from dockyard.oci.errors import BlobUploadInvalid, PayloadTooLarge, SizeInvalid

INT64_MAX = 2**63 - 1  # the largest size the specs (and the database) can hold


def shown(value: str, limit: int = 80) -> str:
    """`value` quoted for an error message, cut short when a client sent something huge."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} chars)"


def natural(text: str) -> int | None:
    """A non-negative count written in ASCII digits, None if `text` is not one.

    Anything past `INT64_MAX` is returned as `INT64_MAX + 1`, so that neither `int()` of a
    5,000-digit string (a ValueError) nor a value the database cannot store gets further.
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return INT64_MAX + 1 if len(digits) > len(str(INT64_MAX)) else min(int(digits), INT64_MAX + 1)


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    length = natural(value)
    if length is None:
        raise SizeInvalid(f"Content-Length {shown(value)} is not a non-negative integer")
    if length > INT64_MAX:
        raise SizeInvalid(f"Content-Length {shown(value)} is larger than {INT64_MAX} bytes")
    return length


async def body_stream(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away mid-body ends it with an error."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BlobUploadInvalid("the client disconnected before sending the whole body") from None


async def small_body(request: Request, limit: int, what: str = "body") -> bytes:
    """A body that must fit in memory, refused with 413 past `limit` bytes: from its
    Content-Length before a byte is read, or as soon as a chunked body runs past it."""
    length = content_length(request)
    if length is not None and length > limit:
        raise PayloadTooLarge(
            f"{what} is {length} bytes; at most {limit} bytes are accepted", {"limit": limit}
        )
    data = bytearray()
    async for chunk in body_stream(request):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(
                f"{what} exceeds {limit} bytes; at most {limit} bytes are accepted",
                {"limit": limit},
            )
    if length is not None and len(data) != length:
        raise SizeInvalid(f"{what} was {len(data)} bytes but Content-Length said {length}")
    return bytes(data)
