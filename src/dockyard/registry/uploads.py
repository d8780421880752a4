"""Upload sessions: monolithic, POST+PUT, chunked PATCH with Content-Range, resumable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from dockyard.metadata import content
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid
from dockyard.registry.cache import ReadCache
from dockyard.registry.context import Store


class Uploads:
    def __init__(self, store: Store) -> None:
        self.store = store
        # upload id → repository id, for sessions started here (a session that expired
        # meanwhile then fails when it completes, not before)
        self._owners: ReadCache[int] = ReadCache(ttl=3600, size=10_000)

    async def start(self, repository: RepositoryRow) -> str:
        upload_id = str(uuid.uuid4())
        await self.store.uploads.create(upload_id)
        async with self.store.db.write() as conn:
            await content.create_upload(conn, upload_id, repository.id)
        self._owners.put(upload_id, repository.id)
        return upload_id

    async def size(self, repository: RepositoryRow, upload_id: str) -> int:
        """How many bytes the session holds (the offset a client resumes from)."""
        await self._check(repository, upload_id)
        size = await self.store.uploads.size(upload_id)
        if size is None:
            raise BlobUploadUnknown(f"upload {upload_id} has no data; start a new upload")
        return size

    async def append(
        self,
        repository: RepositoryRow,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None,
        length: int | None,
    ) -> int:
        """Append a chunk; `start` (from Content-Range) must be the current size.

        Returns the new size. A chunk that does not start where the upload ends is refused with
        `RangeInvalid` (416), and the client asks for the offset to resume from.
        """
        uploads = self.store.uploads
        async with uploads.lock(upload_id):
            current = await self.size(repository, upload_id)
            if start is not None and start != current:
                raise RangeInvalid(
                    f"chunk starts at byte {start} but the upload holds {current} bytes; "
                    f"send the chunk that starts at {current}",
                    headers=_range(current),
                )
            size = await uploads.append(upload_id, body, length)
        async with self.store.db.write() as conn:
            await content.touch_upload(conn, upload_id)
        return size

    async def complete(
        self,
        repository: RepositoryRow,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> int:
        """Append the last chunk, verify the digest, and make the blob visible; return its size.

        On a digest mismatch the session is cancelled and nothing becomes visible.
        """
        uploads = self.store.uploads
        async with uploads.lock(upload_id):
            await self._check(repository, upload_id)
            try:
                size = await self._verified_size(repository, upload_id, digest, body, length)
                await self._publish(repository, upload_id, digest, size)
            except FileNotFoundError:
                # the session expired while this request was in flight
                raise BlobUploadUnknown(
                    f"upload {upload_id} expired before it completed; start a new upload"
                ) from None
            await uploads.discard(upload_id)
            self._owners.forget(upload_id)
        return size

    async def _verified_size(
        self,
        repository: RepositoryRow,
        upload_id: str,
        digest: Digest,
        body: AsyncIterator[bytes] | None,
        length: int | None,
    ) -> int:
        uploads = self.store.uploads
        if body is not None:
            await uploads.append(upload_id, body, length)
        size = await uploads.size(upload_id)
        if size is None:
            raise FileNotFoundError(upload_id)
        actual = await uploads.digest(upload_id, digest.algorithm)
        if actual != digest:
            await self.cancel(repository, upload_id)
            raise DigestInvalid(
                f"uploaded content has digest {actual}, not the {digest} given",
                {"expected": str(digest), "actual": str(actual)},
            )
        return size

    async def _publish(
        self, repository: RepositoryRow, upload_id: str, digest: Digest, size: int
    ) -> None:
        """Place the verified bytes, then link them, in that order: nothing half-done shows."""
        db, blobs = self.store.db, self.store.blobs
        await blobs.place_upload(upload_id, digest)
        async with db.write() as conn:
            await content.link_blob(db, conn, repository.id, str(digest), size)
            # Garbage collection deletes a blob's bytes inside the transaction that deletes its
            # row, under the digest's lock; placing them again here, under the same lock,
            # repairs that race.
            await blobs.place_upload(upload_id, digest)
            await content.delete_upload(conn, upload_id)

    async def cancel(self, repository: RepositoryRow, upload_id: str) -> None:
        await self._check(repository, upload_id)
        async with self.store.db.write() as conn:
            await content.delete_upload(conn, upload_id)
        await self.store.uploads.discard(upload_id)
        self._owners.forget(upload_id)

    async def _check(self, repository: RepositoryRow, upload_id: str) -> None:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise BlobUploadUnknown(f"{upload_id!r} is not an upload id") from None
        owner = self._owners.get(upload_id)  # sessions this process started need no query
        if owner is None:
            async with self.store.db.read() as conn:
                owner = await content.upload_repository(conn, upload_id)
        if owner != repository.id:
            raise BlobUploadUnknown(
                f"upload {upload_id} is not in progress in {repository.name!r} (it may have "
                "completed, been cancelled or expired); start a new upload"
            )


def _range(size: int) -> dict[str, str]:
    return {"Range": f"0-{max(size - 1, 0)}"}


def range_header(size: int) -> str:
    """The `Range` header of an upload holding `size` bytes."""
    return _range(size)["Range"]


__all__ = ["BlobUploadInvalid", "Uploads", "range_header"]
