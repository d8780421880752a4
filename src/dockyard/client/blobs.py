"""Blob downloads that verify as they stream: size and digest are checked before the last byte
is handed over, and a broken connection resumes with a `Range` request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp

from dockyard.client.retry import CONNECTION_ERRORS, is_retryable_error
from dockyard.client.transport import Transport
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.errors import DigestInvalid, SizeInvalid

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Verifier:
    """Hashes and counts a blob's bytes; refuses them as soon as they cannot be right."""

    def __init__(self, desc: Descriptor, where: str) -> None:
        self.desc = desc
        self.where = where
        self.hasher = desc.digest.hasher()
        self.received = 0

    def add(self, chunk: bytes) -> None:
        """Take `chunk`; raise `SizeInvalid` past the size, `DigestInvalid` at the end."""
        self.received += len(chunk)
        if self.received > self.desc.size:
            raise SizeInvalid(
                f"{self.where}: blob {self.desc.digest} sent more than its {self.desc.size} bytes"
            )
        self.hasher.update(chunk)
        if self.received == self.desc.size:
            self.finish()

    def finish(self) -> None:
        """Check the digest of everything received (exactly `desc.size` bytes)."""
        actual = self.hasher.hexdigest()
        if actual != self.desc.digest.encoded:
            raise DigestInvalid(
                f"{self.where}: blob content has digest {self.desc.digest.algorithm}:{actual}, "
                f"expected {self.desc.digest}; the bytes were discarded"
            )


async def download(
    transport: Transport, url: str, desc: Descriptor, scopes: frozenset[str]
) -> AsyncIterator[bytes]:
    """The bytes of the blob `desc` at `url`, verified: the chunk that completes the blob is
    yielded only after its size and digest matched, so a consumer never holds a whole
    corrupted blob. Broken connections resume where they stopped (`Range`), up to the
    transport's retry attempts; then `ConnectionError`."""
    verifier = _Verifier(desc, f"GET {transport.url(url)}")
    if desc.size == 0:
        verifier.finish()
        return
    failures = 0
    while True:
        try:
            async for chunk in _stream_from(transport, url, verifier, scopes):
                yield chunk
            if verifier.received != desc.size:
                raise SizeInvalid(
                    f"{verifier.where}: blob ended after {verifier.received} of {desc.size} bytes"
                )
            return
        except CONNECTION_ERRORS as exc:
            if not is_retryable_error(exc):
                raise
            failures += 1
            if failures >= transport.retry.attempts:
                raise ConnectionError(
                    f"{verifier.where}: {type(exc).__name__}: {exc} after {verifier.received} "
                    f"of {desc.size} bytes and {failures} attempts"
                ) from exc
            await transport.backoff(verifier.where, failures, f"{type(exc).__name__}: {exc}")


async def _stream_from(
    transport: Transport, url: str, verifier: _Verifier, scopes: frozenset[str]
) -> AsyncIterator[bytes]:
    """One GET from `verifier.received` on; yields new bytes after the verifier took them."""
    start = verifier.received
    headers = {"Range": f"bytes={start}-"} if start else {}
    async with transport.request("GET", url, scopes=scopes, headers=headers) as response:
        skip = _skip(response, start, verifier)
        async for chunk in response.content.iter_any():
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            verifier.add(chunk)
            yield chunk


def _skip(response: aiohttp.ClientResponse, start: int, verifier: _Verifier) -> int:
    """How many leading bytes of `response` were received before (a server may ignore Range
    and send the whole blob again); raises `SizeInvalid` when the length cannot be right."""
    size = verifier.desc.size
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != start:
            raise SizeInvalid(
                f"{verifier.where}: asked for bytes from {start}, the registry answered "
                f"Content-Range {response.headers.get('Content-Range')!r}"
            )
        return 0
    length = response.content_length
    if length is not None and length != size:
        raise SizeInvalid(
            f"{verifier.where}: registry sends {length} bytes for blob {verifier.desc.digest} "
            f"of {size} bytes"
        )
    return start
