"""Upload sessions: monolithic, POST+PUT, chunked PATCH with Content-Range, resumable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from dockyard.metadata import content
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid
from dockyard.registry.context import Store
from dockyard.storage.paths import UploadRef


class Uploads:
    """Upload sessions live in storage only (`storage.paths.UploadRef`), as in distribution.

    Starting, appending to, resuming and cancelling a session writes no metadata; completing
    one is a single write transaction (the blob's row and its link). Every node that shares the
    storage sees every session.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self, repository: RepositoryRow) -> str:
        upload_id = str(uuid.uuid4())
        await self.store.uploads.create(UploadRef(repository.id, upload_id))
        return upload_id

    async def size(self, repository: RepositoryRow, upload_id: str) -> int:
        """How many bytes the session holds (the offset a client resumes from)."""
        return await self._held(repository, self._ref(repository, upload_id))

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
        upload = self._ref(repository, upload_id)
        async with uploads.lock(upload):
            current = await self._held(repository, upload)
            if start is not None and start != current:
                raise RangeInvalid(
                    f"chunk starts at byte {start} but the upload holds {current} bytes; "
                    f"send the chunk that starts at {current}",
                    headers=_range(current),
                )
            return await self._append(repository, upload, body, length)

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
        upload = self._ref(repository, upload_id)
        async with uploads.lock(upload):
            if body is None:
                size = await self._held(repository, upload)
            else:
                size = await self._append(repository, upload, body, length)
            try:
                await self._verify(upload, digest, size)
                await self._publish(repository, upload, digest, size)
            except FileNotFoundError:
                # the session expired while this request was in flight
                raise BlobUploadUnknown(
                    f"upload {upload_id} expired before it completed; start a new upload"
                ) from None
            await uploads.discard(upload)
        return size

    async def _append(
        self,
        repository: RepositoryRow,
        upload: UploadRef,
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> int:
        """Append `body` under the session's lock; the new size."""
        try:
            return await self.store.uploads.append(upload, body, length)
        except FileNotFoundError:  # expired or cancelled since
            raise self._unknown(repository, upload) from None

    async def _verify(self, upload: UploadRef, digest: Digest, size: int) -> None:
        uploads = self.store.uploads
        actual = await uploads.digest(upload, digest.algorithm, size)
        if actual != digest:
            await uploads.discard(upload)
            raise DigestInvalid(
                f"uploaded content has digest {actual}, not the {digest} given",
                {"expected": str(digest), "actual": str(actual)},
            )

    async def _publish(
        self, repository: RepositoryRow, upload: UploadRef, digest: Digest, size: int
    ) -> None:
        """Place the verified bytes, then link them, in that order: nothing half-done shows."""
        db, blobs = self.store.db, self.store.blobs
        await blobs.place_upload(upload, digest)
        async with db.write() as conn:
            await content.link_blob(db, conn, repository.id, str(digest), size)
            # Garbage collection deletes a blob's bytes inside the transaction that deletes its
            # row, under the digest's lock; placing them again here, under the same lock,
            # repairs that race.
            await blobs.place_upload(upload, digest)

    async def cancel(self, repository: RepositoryRow, upload_id: str) -> None:
        upload = self._ref(repository, upload_id)
        await self._held(repository, upload)
        await self.store.uploads.discard(upload)

    @staticmethod
    def _ref(repository: RepositoryRow, upload_id: str) -> UploadRef:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise BlobUploadUnknown(f"{upload_id!r} is not an upload id") from None
        return UploadRef(repository.id, upload_id)

    async def _held(self, repository: RepositoryRow, upload: UploadRef) -> int:
        """The session's size; `BlobUploadUnknown` when it is not in progress in `repository`."""
        size = await self.store.uploads.size(upload)
        if size is None:
            raise self._unknown(repository, upload)
        return size

    @staticmethod
    def _unknown(repository: RepositoryRow, upload: UploadRef) -> BlobUploadUnknown:
        return BlobUploadUnknown(
            f"upload {upload.upload_id} is not in progress in {repository.name!r} (it may "
            "have completed, been cancelled or expired); start a new upload"
        )


def _range(size: int) -> dict[str, str]:
    return {"Range": f"0-{max(size - 1, 0)}"}


def range_header(size: int) -> str:
    """The `Range` header of an upload holding `size` bytes."""
    return _range(size)["Range"]


__all__ = ["BlobUploadInvalid", "Uploads", "range_header"]
