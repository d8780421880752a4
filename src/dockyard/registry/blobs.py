"""Blobs as a repository sees them: visible once pushed or mounted there."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.metadata import content
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUnknown
from dockyard.registry.cache import ReadCache, store_cache
from dockyard.registry.context import Store


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    path: str | None  # where the server can send it from directly, if the driver has a path


class Blobs:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._sizes: ReadCache[int] = store_cache(store)

    def forget_cached(self) -> None:
        self._sizes.invalidate()

    async def stat(self, repository: RepositoryRow | None, digest: Digest) -> BlobInfo:
        """The blob if it is visible in the repository, else `BlobUnknown`."""
        size = None
        if repository is not None:
            key = (repository.id, str(digest))

            async def load() -> int | None:
                async with self.store.db.read() as conn:
                    return await content.linked_size(conn, repository.id, str(digest))

            size = await self._sizes.fetch(key, load)
        if size is None:
            raise BlobUnknown(
                f"blob {digest} is not known to this repository", {"digest": str(digest)}
            )
        return BlobInfo(digest, size, self.store.blobs.local_path(digest))

    async def mount(
        self, source: RepositoryRow | None, target: RepositoryRow, digest: Digest
    ) -> bool:
        """Make a blob of `source` visible in `target`; False when `source` does not have it,
        or its stored file is not the blob's size (the client then uploads it, which repairs
        the file)."""
        if source is None:
            return False
        db = self.store.db
        async with db.write() as conn:
            await content.lock_blob(db, conn, str(digest))
            size = await content.linked_size(conn, source.id, str(digest))
            if size is None or not await self.store.blobs.holds(digest, size):
                return False
            await content.link_blob(db, conn, target.id, str(digest), size)
        return True

    async def delete(self, repository: RepositoryRow, digest: Digest) -> None:
        """Remove the blob from the repository (its bytes go at the next garbage collection)."""
        async with self.store.db.write() as conn:
            unlinked = await content.unlink_blob(conn, repository.id, str(digest))
        self._sizes.invalidate()
        if not unlinked:
            raise BlobUnknown(
                f"blob {digest} is not known to this repository", {"digest": str(digest)}
            )
