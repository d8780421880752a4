"""The pull-through cache's bookkeeping: which repositories are caches, and when each cached tag
was last checked upstream (table `proxy_tags`).

A repository is marked as a cache by a row whose tag is `CACHE_MARKER`, a string no tag can be
(tags start with a letter, digit or `_`), so the table needs no column for it.
"""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import proxy_tags

CACHE_MARKER = "."


async def fetched_at(conn: AsyncConnection, repository_id: int, tag: str) -> float | None:
    """When `tag` was last fetched or confirmed upstream; None when it never was."""
    return (
        await conn.execute(
            select(proxy_tags.c.fetched_at).where(
                and_(proxy_tags.c.repository_id == repository_id, proxy_tags.c.tag == tag)
            )
        )
    ).scalar()


async def set_fetched(
    db: Database, conn: AsyncConnection, repository_id: int, tag: str, when: float
) -> None:
    """Record that `tag` was fetched or confirmed upstream at `when`."""
    key = [proxy_tags.c.repository_id, proxy_tags.c.tag]
    await conn.execute(
        db.upsert(proxy_tags, key, fetched_at=when).values(
            repository_id=repository_id, tag=tag, fetched_at=when
        )
    )


async def mark_cache(db: Database, conn: AsyncConnection, repository_id: int, when: float) -> None:
    """Mark a repository as a pull-through cache (kept if it already was)."""
    await conn.execute(
        db.insert_ignore(proxy_tags).values(
            repository_id=repository_id, tag=CACHE_MARKER, fetched_at=when
        )
    )


async def is_cache(conn: AsyncConnection, repository_id: int) -> bool:
    """Whether the repository was made by the pull-through cache."""
    return await fetched_at(conn, repository_id, CACHE_MARKER) is not None
