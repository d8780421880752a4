"""Blob uploads: POST for a session, then one streaming PUT (monolithic) or PATCHes of a fixed
size with `Content-Range` and a closing PUT (chunked), resuming from the registry's `Range`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
from yarl import URL

from dockyard.client.retry import is_retryable_status
from dockyard.client.transport import Body, Transport
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.errors import BlobUploadInvalid, DigestInvalid, OciError, SizeInvalid

OCTET_STREAM = {"Content-Type": "application/octet-stream"}
CHUNK_MIN_HEADER = "OCI-Chunk-Min-Length"
_RANGE = re.compile(r"(?:bytes[= ])?0-(\d+)")


def is_replayable(body: Body) -> bool:
    return body is None or isinstance(body, bytes) or callable(body)


def _recoverable(exc: Exception) -> bool:
    """Whether a failed upload request may succeed when resumed or started over."""
    if isinstance(exc, OciError):
        return is_retryable_status(exc.status) or exc.status == 416
    return isinstance(exc, ConnectionError)


def _asked(exc: Exception) -> str | None:
    """The `Retry-After` a failed upload request was answered with, if any."""
    return exc.headers.get("Retry-After") if isinstance(exc, OciError) else None


async def start(transport: Transport, repository: str, scopes: frozenset[str]) -> tuple[URL, int]:
    """Open an upload session: its URL and the smallest chunk the registry takes (0: any)."""
    path = f"/v2/{repository}/blobs/uploads/"
    async with transport.request("POST", path, scopes=scopes) as response:
        if response.status != 202:
            raise BlobUploadInvalid(
                f"POST {transport.url(path)} answered {response.status}, expected 202"
            )
        minimum = response.headers.get(CHUNK_MIN_HEADER, "")
        return _location(response), int(minimum) if minimum.isdigit() else 0


async def cancel(transport: Transport, url: URL, scopes: frozenset[str]) -> None:
    """Cancel an upload session, best effort: it expires on the registry anyway."""
    with contextlib.suppress(OciError, ConnectionError):
        async with transport.request("DELETE", url, scopes=scopes, retry=False):
            pass


async def put_monolithic(
    transport: Transport, repository: str, desc: Descriptor, body: Body, scopes: frozenset[str]
) -> None:
    """Upload `desc`'s bytes in one PUT. A failed PUT is retried in a new session (a registry
    may have kept part of the old one's bytes), when `body` can be sent again."""
    attempts = transport.retry.attempts if is_replayable(body) else 1
    body = _exactly(body, desc)
    failures = 0
    while True:
        url, _ = await start(transport, repository, scopes)
        try:
            async with transport.request(
                "PUT",
                url,
                scopes=scopes,
                params={"digest": str(desc.digest)},
                headers={**OCTET_STREAM, "Content-Length": str(desc.size)},
                body=body,
                retry=False,
            ) as response:
                _check_created(response, desc)
            return
        except (OciError, ConnectionError) as exc:
            failures += 1
            if failures >= attempts or not _recoverable(exc):
                raise
            await cancel(transport, url, scopes)
            await transport.backoff(f"PUT blob {desc.digest}", failures, str(exc), _asked(exc))


async def put_chunked(
    transport: Transport,
    repository: str,
    desc: Descriptor,
    body: Body,
    chunk_size: int,
    scopes: frozenset[str],
) -> None:
    """Upload `desc`'s bytes in PATCHes of `chunk_size` (or the registry's minimum, if larger)
    and a closing PUT; a failed PATCH resumes from where the registry says it got to."""
    url, minimum = await start(transport, repository, scopes)
    offset = 0
    try:
        async for piece in _pieces(body, max(chunk_size, minimum)):
            url = await _patch(transport, url, piece, offset, scopes)
            offset += len(piece)
        if offset != desc.size:
            raise SizeInvalid(f"blob {desc.digest} has {offset} bytes, expected {desc.size}")
        async with transport.request(
            "PUT",
            url,
            scopes=scopes,
            params={"digest": str(desc.digest)},
            headers={**OCTET_STREAM, "Content-Length": "0"},
            body=b"",
        ) as response:
            _check_created(response, desc)
    except Exception:
        await cancel(transport, url, scopes)
        raise


async def _patch(
    transport: Transport, url: URL, piece: bytes, start: int, scopes: frozenset[str]
) -> URL:
    """Send `piece` (which starts at byte `start`); the session URL to continue with."""
    sent, failures = 0, 0
    while sent < len(piece):
        first = start + sent
        data = piece[sent:]
        try:
            async with transport.request(
                "PATCH",
                url,
                scopes=scopes,
                headers={
                    **OCTET_STREAM,
                    "Content-Range": f"{first}-{first + len(data) - 1}",
                    "Content-Length": str(len(data)),
                },
                body=data,
                retry=False,
            ) as response:
                url = _location(response, url)
                held = _held(response.headers.get("Range"), first + len(data))
            if held == first:
                failures += 1  # accepted, but no progress: bounded like a failure
                if failures >= transport.retry.attempts:
                    raise BlobUploadInvalid(f"the registry keeps refusing bytes from {first} on")
        except (OciError, ConnectionError) as exc:
            failures += 1
            if failures >= transport.retry.attempts or not _recoverable(exc):
                raise
            await transport.backoff(
                f"PATCH {url.with_query(None)}", failures, str(exc), _asked(exc)
            )
            url, held = await _status(transport, url, first, scopes)
        if not first <= held <= start + len(piece):
            raise BlobUploadInvalid(
                f"the registry holds {held} bytes of the upload; expected between "
                f"{first} and {start + len(piece)} (bytes already sent were lost)"
            )
        sent = held - start
    return url


async def _status(
    transport: Transport, url: URL, known: int, scopes: frozenset[str]
) -> tuple[URL, int]:
    """Ask how many bytes the session holds (GET on its URL answers 204 with `Range`)."""
    async with transport.request("GET", url, scopes=scopes) as response:
        return _location(response, url), _held(response.headers.get("Range"), known)


def _held(header: str | None, expected: int) -> int:
    """The byte count a `Range: 0-<last>` header says the registry holds (`expected` when it
    sends none). `0-0` means 0 or 1 bytes; the caller's `expected` tells which."""
    if not header:
        return expected
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        raise BlobUploadInvalid(f"unreadable upload Range {header!r}")
    last = int(match.group(1))
    if last == 0:
        return 1 if expected >= 1 else 0
    return last + 1


def _location(response: aiohttp.ClientResponse, default: URL | None = None) -> URL:
    """The session URL a response names (relative to the request), else `default`."""
    value = response.headers.get("Location")
    if not value:
        if default is None:
            raise BlobUploadInvalid(f"{response.method} {response.url} answered no Location")
        return default
    return response.url.join(URL(value))


def _check_created(response: aiohttp.ClientResponse, desc: Descriptor) -> None:
    if response.status not in (201, 204):
        raise BlobUploadInvalid(
            f"PUT {response.url.with_query(None)} answered {response.status}, expected 201"
        )
    digest = response.headers.get("Docker-Content-Digest")
    if digest and digest != str(desc.digest):
        raise DigestInvalid(f"the registry stored blob {digest}, expected {desc.digest}")


def _exactly(body: Body, desc: Descriptor) -> Body:
    """`body`, refusing to send other than `desc.size` bytes: a short stream would leave the
    registry waiting for the rest of its Content-Length."""
    if body is None or isinstance(body, bytes):
        if len(body or b"") != desc.size:
            raise SizeInvalid(
                f"blob {desc.digest} is {len(body or b'')} bytes, expected {desc.size}"
            )
        return body or b""
    if callable(body):
        opener = body
        return lambda: _counted(opener(), desc)
    return _counted(body, desc)


async def _counted(stream: AsyncIterable[bytes], desc: Descriptor) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in stream:
        sent += len(chunk)
        if sent > desc.size:
            raise SizeInvalid(f"blob {desc.digest} has more than its {desc.size} bytes")
        yield chunk
    if sent != desc.size:
        raise SizeInvalid(f"blob {desc.digest} ended after {sent} of {desc.size} bytes")


async def _pieces(body: Body, size: int) -> AsyncIterator[bytes]:
    """`body` in pieces of exactly `size` bytes (the last one shorter)."""
    if body is None:
        return
    if isinstance(body, bytes):
        for offset in range(0, len(body), size):
            yield body[offset : offset + size]
        return
    stream = body() if callable(body) else body
    buffer = bytearray()
    async for chunk in stream:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
