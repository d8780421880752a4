"""Content-addressed blobs: stored under their digest, written only from a verified upload."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator

from dockyard.oci.digest import Digest
from dockyard.storage import paths
from dockyard.storage.driver.base import StorageDriver


class BlobStore:
    """The blobs of the whole registry (repository visibility is the registry layer's job)."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    async def size(self, digest: Digest) -> int | None:
        return await self.driver.size(paths.blob_key(digest))

    def local_path(self, digest: Digest) -> str | None:
        return self.driver.local_path(paths.blob_key(digest))

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.driver.read(paths.blob_key(digest), offset, length)

    async def read_all(self, digest: Digest) -> bytes:
        return await self.driver.read_all(paths.blob_key(digest))

    async def place_upload(self, upload: paths.UploadRef, digest: Digest) -> bool:
        """Durably give a blob the bytes of a verified upload, which stays where it is.

        A no-op (False) when the blob's bytes are already stored.
        """
        return await self.driver.place(paths.upload_key(upload), paths.blob_key(digest))

    async def holds(self, digest: Digest, size: int, verify: bool = False) -> bool:
        """Whether the stored file is the blob: `size` bytes long, and with `verify` bytes
        whose digest is `digest` (read whole: only where nothing else vouches for them)."""
        if await self.size(digest) != size:
            return False
        return not verify or await self.digest_of(digest) == digest

    async def digest_of(self, digest: Digest) -> Digest:
        """The digest of the bytes stored for `digest`, computed from them."""
        hasher = hashlib.new(digest.algorithm)
        async for chunk in self.read(digest):
            await asyncio.to_thread(hasher.update, chunk)
        return Digest(digest.algorithm, hasher.hexdigest())

    async def ensure(
        self, upload: paths.UploadRef, digest: Digest, size: int, verify: bool
    ) -> str | None:
        """Make the blob's file hold the verified upload's bytes (call under the digest's lock).

        A missing file is placed; a present one is kept when `holds(digest, size, verify)`,
        else moved to quarantine and replaced. Returns the quarantine key when it moved one.
        """
        moved = None
        stored = await self.size(digest)
        if stored is not None and (
            stored != size or (verify and await self.digest_of(digest) != digest)
        ):
            moved = await self.quarantine(digest)
        await self.place_upload(upload, digest)
        return moved

    async def quarantine(self, digest: Digest) -> str | None:
        """Move the blob's file aside, out of every reader's way; its new key, None if gone."""
        stamp = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"
        key = paths.quarantine_key(digest, stamp)
        return key if await self.driver.move(paths.blob_key(digest), key) else None

    async def delete(self, digest: Digest) -> bool:
        return await self.driver.delete(paths.blob_key(digest))

    async def keys(self) -> AsyncIterator[tuple[Digest, float]]:
        """Every stored blob with its modification time (for garbage collection)."""
        async for key, mtime in self.driver.walk(paths.BLOBS):
            digest = paths.digest_from_blob_key(key)
            if digest is not None:
                yield digest, mtime
