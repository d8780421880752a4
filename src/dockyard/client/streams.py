"""Blob byte streams for the targets that are not HTTP: a `BlobBody` opened as chunks, a size
limit, and verification (size and digest) as the bytes go by.

Hashing runs in a worker thread for chunks large enough to be worth it (hashlib releases the
GIL), so a stream of big chunks does not stall the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from dockyard.client.target import BlobBody
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.errors import DigestInvalid, SizeInvalid

CHUNK_SIZE = 1024 * 1024
THREAD_HASH_MIN = 64 * 1024  # smaller chunks are hashed on the event loop (cheaper than a hop)


class Verifier:
    """Counts and hashes a blob's bytes; refuses them as soon as they cannot be `desc`'s."""

    def __init__(self, desc: Descriptor, where: str) -> None:
        self.desc = desc
        self.where = where
        self.hasher = desc.digest.hasher()
        self.received = 0

    def count(self, chunk: bytes) -> None:
        """Count `chunk`; `SizeInvalid` once more bytes arrived than the descriptor's size."""
        self.received += len(chunk)
        if self.received > self.desc.size:
            raise SizeInvalid(
                f"{self.where}: blob {self.desc.digest} has more than its {self.desc.size} bytes"
            )

    def update(self, chunk: bytes) -> None:
        """Count and hash `chunk` (in the calling thread)."""
        self.count(chunk)
        self.hasher.update(chunk)

    async def add(self, chunk: bytes) -> None:
        """Count and hash `chunk`, in a worker thread when it is large."""
        self.count(chunk)
        if len(chunk) >= THREAD_HASH_MIN:
            await asyncio.to_thread(self.hasher.update, chunk)
        else:
            self.hasher.update(chunk)

    def finish(self) -> None:
        """Check that exactly `desc.size` bytes with `desc.digest` arrived; raise if not."""
        if self.received != self.desc.size:
            raise SizeInvalid(
                f"{self.where}: blob {self.desc.digest} ended after {self.received} of "
                f"{self.desc.size} bytes"
            )
        actual = self.hasher.hexdigest()
        if actual != self.desc.digest.encoded:
            raise DigestInvalid(
                f"{self.where}: content has digest {self.desc.digest.algorithm}:{actual}, "
                f"expected {self.desc.digest}",
                {
                    "expected": str(self.desc.digest),
                    "actual": f"{self.desc.digest.algorithm}:{actual}",
                },
            )


async def verified(
    source: AsyncIterator[bytes], desc: Descriptor, where: str
) -> AsyncIterator[bytes]:
    """`source`'s chunks, checked against `desc`: the chunk that completes the blob is yielded
    only after size and digest matched, so a consumer never holds a whole wrong blob."""
    verifier = Verifier(desc, where)
    try:
        async for chunk in source:
            if not chunk:
                continue
            await verifier.add(chunk)
            if verifier.received == desc.size:
                verifier.finish()
            yield chunk
    finally:
        await aclose(source)
    verifier.finish()


async def body_chunks(body: BlobBody, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The bytes of a `BlobBody`: bytes in `chunk_size` slices, or the stream it opens / is."""
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    stream = body() if callable(body) else body
    try:
        async for chunk in stream:
            if chunk:
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)
    finally:
        await aclose(stream)


async def limited(
    source: AsyncIterator[bytes], desc: Descriptor, where: str
) -> AsyncIterator[bytes]:
    """`source`'s chunks, refused with `SizeInvalid` as soon as they exceed `desc.size`."""
    received = 0
    try:
        async for chunk in source:
            received += len(chunk)
            if received > desc.size:
                raise SizeInvalid(
                    f"{where}: blob {desc.digest} has more than its {desc.size} bytes"
                )
            yield chunk
    finally:
        await aclose(source)


async def aclose(stream: AsyncIterator[bytes]) -> None:
    """Close an async generator (or any stream with `aclose`) early; a no-op otherwise."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
