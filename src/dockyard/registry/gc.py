"""Garbage collection: blobs no manifest references, and abandoned uploads.

Safe while pushes run: a blob is only collected when it has been unlinked and untouched for a
grace period, and its bytes are deleted inside the transaction that deletes its row, so an
upload completing at the same moment (which re-places the bytes under that row's lock) wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.metadata import content
from dockyard.oci.digest import Digest
from dockyard.registry.context import Store


@dataclass
class Collected:
    links: int = 0
    blobs: int = 0
    bytes: int = 0
    orphan_files: int = 0
    uploads: int = 0


async def collect(store: Store, grace_seconds: float, dry_run: bool = False) -> Collected:
    """Delete what nothing references any more (or, with `dry_run`, count it)."""
    cutoff = time.time() - grace_seconds
    result = Collected()
    db = store.db
    if dry_run:
        async with db.read() as conn:
            candidates = await content.unlinked_blobs(conn, cutoff)
        result.blobs = len(candidates)
        result.bytes = sum(size for _, size in candidates)
        return result
    async with db.write() as conn:
        result.links = await content.prune_links(conn, cutoff)
    async with db.read() as conn:
        candidates = await content.unlinked_blobs(conn, cutoff)
    for digest, size in candidates:
        async with db.write() as conn:
            if await content.delete_blob_if_unlinked(conn, digest, cutoff):
                await store.blobs.delete(Digest.parse(digest))
                result.blobs += 1
                result.bytes += size
    result.orphan_files = await _orphans(store, cutoff)
    result.uploads = await expire_uploads(store, cutoff)
    return result


async def _orphans(store: Store, cutoff: float) -> int:
    """Blob files with no row (a crash between placing bytes and recording them)."""
    removed = 0
    async for digest, mtime in store.blobs.keys():
        if mtime >= cutoff:
            continue
        async with store.db.write() as conn:
            if await content.blob_size(conn, str(digest)) is None:
                await store.blobs.delete(digest)
                removed += 1
    return removed


async def expire_uploads(store: Store, older_than: float) -> int:
    """Cancel upload sessions untouched since `older_than`, and upload data with no session."""
    async with store.db.write() as conn:
        stale = await content.stale_uploads(conn, older_than)
        for upload_id in stale:
            await content.delete_upload(conn, upload_id)
    for upload_id in stale:
        await store.uploads.discard(upload_id)
    removed = len(stale)
    async for upload_id, mtime in store.uploads.ids():
        if mtime < older_than:
            async with store.db.read() as conn:
                known = await content.upload_exists(conn, upload_id)
            if not known:
                await store.uploads.discard(upload_id)
                removed += 1
    return removed
