"""Upload sessions: monolithic, POST+PUT, chunked PATCH with Content-Range, resumable."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from dockyard.metadata import content
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.digest import Digest
from dockyard.oci.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    TooManyRequests,
)
from dockyard.registry.context import Store
from dockyard.storage.driver.base import Locked
from dockyard.storage.paths import UploadRef
from dockyard.storage.uploads import SessionLimit

log = logging.getLogger(__name__)


class Uploads:
    """Upload sessions live in storage only (`storage.paths.UploadRef`), as in distribution.

    Starting, appending to, resuming and cancelling a session writes no metadata; completing
    one is a single write transaction (the blob's row and its link). Every node that shares the
    storage sees every session.

    A session has one writer at a time, whichever worker or node the requests reach
    (`UploadStore.hold`): a chunk sent while another request appends to or completes the same
    session waits a few seconds, then is refused. What is published is checked against the
    file itself: its size on storage, and its digest from the running hash only while that
    hash provably covers every byte of the file.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self, repository: RepositoryRow, owner: str | None = None) -> str:
        """Open a session; `owner`, the account starting it, counts it against its cap."""
        upload_id = str(uuid.uuid4())
        try:
            await self.store.uploads.create(UploadRef(repository.id, upload_id), owner)
        except SessionLimit as exc:
            raise TooManyRequests(
                f"{exc.limit} upload sessions are already open for this {exc.scope} "
                f"({owner if exc.scope == 'account' else repository.name}); complete or cancel "
                "some (DELETE their location), or wait until unused ones expire",
                headers={"Retry-After": "60"},
            ) from None
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
        upload = self._ref(repository, upload_id)
        async with self._hold(repository, upload):
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
        async with self._hold(repository, upload):
            if body is not None:
                await self._append(repository, upload, body, length)
            # what the file holds, not what this request counted: the digest below comes from
            # the running hash only when that hash covers exactly this many bytes
            size = await self._held(repository, upload)
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

    @contextlib.asynccontextmanager
    async def _hold(self, repository: RepositoryRow, upload: UploadRef) -> AsyncIterator[None]:
        """The session's writer lock, or the spec error a client can act on."""
        try:
            async with self.store.uploads.hold(upload):
                yield
        except FileNotFoundError:
            raise self._unknown(repository, upload) from None
        except Locked:
            raise RangeInvalid(
                f"upload {upload.upload_id} is being written by another request; wait for it "
                "to finish, then ask for the upload's status (GET) and resume from its offset"
            ) from None

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
        """Place the verified bytes, then link them, in that order: nothing half-done shows.

        A blob file that is already there is trusted only when it holds the blob: its size is
        checked, and its digest too when no row vouches for it (a file left by a crash, or one
        older than its row's size). A file that fails is moved to quarantine and replaced.
        """
        db, blobs = self.store.db, self.store.blobs
        placed = await blobs.place_upload(upload, digest)  # False: a file was there already
        async with db.write() as conn:
            # under the digest's lock: garbage collection deletes a blob's bytes inside the
            # transaction that deletes its row, and a concurrent push repairs the same file
            recorded = await content.lock_blob(db, conn, str(digest))
            # hashed again only when it was there before this push and no row vouches for it
            verify = not placed and recorded != size
            replaced = await blobs.ensure(upload, digest, size, verify=verify)
            if replaced is not None:
                log.warning(
                    "blob %s: the stored file did not hold the blob; moved it to %s and "
                    "placed the verified upload",
                    digest,
                    replaced,
                )
            await content.link_blob(db, conn, repository.id, str(digest), size)

    async def cancel(self, repository: RepositoryRow, upload_id: str) -> None:
        upload = self._ref(repository, upload_id)
        async with self._hold(repository, upload):
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
