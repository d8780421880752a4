"""Garbage collection: blobs no manifest references, and abandoned uploads.

Safe while pushes run: a blob is only collected when it has been unlinked and untouched for a
grace period, and its bytes are deleted inside the transaction that deletes its row, so an
upload completing at the same moment (which re-places the bytes under that row's lock) wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.metadata import content, repositories
from dockyard.oci.digest import Digest
from dockyard.registry.context import Store
from dockyard.storage.driver.base import Locked


@dataclass
class Collected:
    links: int = 0
    blobs: int = 0
    bytes: int = 0
    orphan_files: int = 0
    uploads: int = 0


async def collect(store: Store, grace_seconds: float, dry_run: bool = False) -> Collected:
    """Delete what nothing references any more (or, with `dry_run`, count what would go)."""
    cutoff = time.time() - grace_seconds
    result = Collected()
    db = store.db
    if dry_run:
        async with db.read() as conn:
            result.links = await content.prunable_link_count(conn, cutoff)
            candidates = await content.unlinked_blobs(conn, cutoff, after_pruning=True)
        result.blobs = len(candidates)
        result.bytes = sum(size for _, size in candidates)
        return result
    async with db.read() as conn:
        repository_ids = await repositories.ids(conn)
    for repository_id in repository_ids:
        async with db.write() as conn:
            # a manifest push holds this lock while it checks and references its blobs
            await repositories.lock(conn, repository_id)
            result.links += await content.prune_links(conn, repository_id, cutoff)
    async with db.read() as conn:
        candidates = await content.unlinked_blobs(conn, cutoff)
    for digest, size in candidates:
        async with db.write() as conn:
            if await content.delete_blob_if_unlinked(db, conn, digest, cutoff):
                await store.blobs.delete(Digest.parse(digest))
                result.blobs += 1
                result.bytes += size
    if result.links or result.blobs:
        store.generation.bump()  # the servers of this host drop cached links at once
    result.orphan_files = await _orphans(store, cutoff)
    result.uploads = await expire_uploads(store, cutoff)
    return result


async def _orphans(store: Store, cutoff: float) -> int:
    """Blob files with no row (a crash between placing bytes and recording them).

    Each is checked under the digest's lock, which an upload completing at the same moment
    holds while it records the blob.
    """
    removed = 0
    async for digest, mtime in store.blobs.keys():
        if mtime >= cutoff:
            continue
        async with store.db.write() as conn:
            await store.db.lock(conn, f"blob:{digest}")
            if await content.blob_size(conn, str(digest)) is None:
                await store.blobs.delete(digest)
                removed += 1
    return removed


async def expire_uploads(store: Store, older_than: float) -> int:
    """Cancel upload sessions that no data has reached since `older_than`.

    A session whose data is still growing (a long body streaming in) is not idle.
    """
    removed = 0
    async for upload, mtime in store.uploads.sessions():
        if mtime >= older_than:
            continue
        try:
            async with store.uploads.hold(upload, wait=0):  # a session being written is busy
                await store.uploads.discard(upload)
        except (Locked, FileNotFoundError):
            continue
        removed += 1
    return removed
