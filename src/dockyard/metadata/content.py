"""Blobs and the per-repository links that make them visible."""

from __future__ import annotations

import time

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import blobs, manifest_references, repositories, repository_blobs


async def link_blob(
    db: Database, conn: AsyncConnection, repository_id: int, digest: str, size: int
) -> None:
    """Record that a blob exists and is visible in a repository; the caller holds the digest's
    lock (`lock_blob`), under which it checked the blob's file."""
    now = time.time()
    await conn.execute(
        db.upsert(blobs, [blobs.c.digest], last_linked_at=now).values(
            digest=digest, size=size, created_at=now, last_linked_at=now
        )
    )
    await conn.execute(
        db.insert_ignore(repository_blobs).values(
            repository_id=repository_id, digest=digest, last_used_at=now
        )
    )


async def lock_blob(db: Database, conn: AsyncConnection, digest: str) -> int | None:
    """Take the digest's lock for this transaction; the size its row records, if any."""
    await db.lock(conn, f"blob:{digest}")
    return await blob_size(conn, digest)


async def linked_size(conn: AsyncConnection, repository_id: int, digest: str) -> int | None:
    """The blob's size when it is visible in the repository, else None."""
    return (
        await conn.execute(
            select(blobs.c.size)
            .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
            .where(
                and_(repository_blobs.c.repository_id == repository_id, blobs.c.digest == digest)
            )
        )
    ).scalar()


async def touch_links(
    conn: AsyncConnection, repository_id: int, digests: list[str]
) -> dict[str, int]:
    """Mark links as used now (so collection spares them); return the linked digests' sizes."""
    if not digests:
        return {}
    condition = and_(
        repository_blobs.c.repository_id == repository_id, repository_blobs.c.digest.in_(digests)
    )
    await conn.execute(update(repository_blobs).where(condition).values(last_used_at=time.time()))
    rows = await conn.execute(
        select(blobs.c.digest, blobs.c.size)
        .join(repository_blobs, repository_blobs.c.digest == blobs.c.digest)
        .where(condition)
    )
    return {row.digest: row.size for row in rows}


async def unlink_blob(conn: AsyncConnection, repository_id: int, digest: str) -> bool:
    result = await conn.execute(
        delete(repository_blobs).where(
            and_(
                repository_blobs.c.repository_id == repository_id,
                repository_blobs.c.digest == digest,
            )
        )
    )
    return result.rowcount > 0


async def blob_size(conn: AsyncConnection, digest: str) -> int | None:
    return (await conn.execute(select(blobs.c.size).where(blobs.c.digest == digest))).scalar()


# Garbage collection ---------------------------------------------------------------------------


def _referenced() -> ColumnElement[bool]:
    return exists().where(
        and_(
            manifest_references.c.repository_id == repository_blobs.c.repository_id,
            manifest_references.c.target_digest == repository_blobs.c.digest,
        )
    )


def _prunable(older_than: float) -> ColumnElement[bool]:
    """A link no manifest of its repository references, unused since `older_than`."""
    return and_(repository_blobs.c.last_used_at < older_than, ~_referenced())


async def prune_links(conn: AsyncConnection, repository_id: int, older_than: float) -> int:
    """Drop a repository's prunable links (the caller holds the repository's lock)."""
    result = await conn.execute(
        delete(repository_blobs).where(
            and_(repository_blobs.c.repository_id == repository_id, _prunable(older_than))
        )
    )
    return result.rowcount


async def unlinked_blobs(
    conn: AsyncConnection, older_than: float, after_pruning: bool = False
) -> list[tuple[str, int]]:
    """Blobs no repository links (or, `after_pruning`, none would once links are pruned)."""
    kept = exists().where(
        and_(
            repository_blobs.c.digest == blobs.c.digest,
            ~_prunable(older_than) if after_pruning else true(),
        )
    )
    rows = await conn.execute(
        select(blobs.c.digest, blobs.c.size).where(and_(blobs.c.last_linked_at < older_than, ~kept))
    )
    return [(row.digest, row.size) for row in rows]


async def prunable_link_count(conn: AsyncConnection, older_than: float) -> int:
    query = select(func.count()).select_from(repository_blobs).where(_prunable(older_than))
    return int((await conn.execute(query)).scalar() or 0)


async def delete_blob_if_unlinked(
    db: Database, conn: AsyncConnection, digest: str, older_than: float
) -> bool:
    """Delete a blob's row if it is still unlinked and old; the caller then removes its bytes.

    Runs under the digest's lock, so a link committed meanwhile is seen and the blob kept.
    """
    await db.lock(conn, f"blob:{digest}")
    linked = exists().where(repository_blobs.c.digest == blobs.c.digest)
    result = await conn.execute(
        delete(blobs).where(
            and_(blobs.c.digest == digest, blobs.c.last_linked_at < older_than, ~linked)
        )
    )
    return result.rowcount > 0


async def known_blobs(conn: AsyncConnection, digests: list[str]) -> set[str]:
    if not digests:
        return set()
    return set(
        (await conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(digests)))).scalars()
    )


# Checking ------------------------------------------------------------------------------------


async def all_blobs(conn: AsyncConnection) -> dict[str, int]:
    """Every blob row: digest → recorded size."""
    rows = await conn.execute(select(blobs.c.digest, blobs.c.size))
    return {row.digest: row.size for row in rows}


async def forget_blob(conn: AsyncConnection, digest: str) -> list[str]:
    """Delete a blob's row and every link to it (the caller holds the digest's lock);
    the names of the repositories it was linked in."""
    linked = await conn.execute(
        select(repositories.c.name)
        .join(repository_blobs, repository_blobs.c.repository_id == repositories.c.id)
        .where(repository_blobs.c.digest == digest)
        .order_by(repositories.c.name)
    )
    names = list(linked.scalars())
    await conn.execute(delete(repository_blobs).where(repository_blobs.c.digest == digest))
    await conn.execute(delete(blobs).where(blobs.c.digest == digest))
    return names
