"""Content-addressed blobs: stored under their digest, written only from a verified upload."""

from __future__ import annotations

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

    async def delete(self, digest: Digest) -> bool:
        return await self.driver.delete(paths.blob_key(digest))

    async def keys(self) -> AsyncIterator[tuple[Digest, float]]:
        """Every stored blob with its modification time (for garbage collection)."""
        async for key, mtime in self.driver.walk(paths.BLOBS):
            digest = paths.digest_from_blob_key(key)
            if digest is not None:
                yield digest, mtime
