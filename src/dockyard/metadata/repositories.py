"""Repositories, their settings, and the tags that point into them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import manifest_references, repositories, tags


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    namespace_id: int | None
    visibility: str
    immutable_tags: bool
    sparse_indexes: bool | None = None  # None: the site setting decides

    @property
    def is_public(self) -> bool:
        return self.visibility == "public"


_COLUMNS = (
    repositories.c.id,
    repositories.c.name,
    repositories.c.namespace_id,
    repositories.c.visibility,
    repositories.c.immutable_tags,
    repositories.c.sparse_indexes,
)


def _repository(row: Any) -> RepositoryRow:
    return RepositoryRow(
        row.id,
        row.name,
        row.namespace_id,
        row.visibility,
        bool(row.immutable_tags),
        None if row.sparse_indexes is None else bool(row.sparse_indexes),
    )


async def by_name(conn: AsyncConnection, name: str) -> RepositoryRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(repositories.c.name == name))).first()
    return _repository(row) if row else None


async def create(
    db: Database,
    conn: AsyncConnection,
    name: str,
    namespace_id: int | None,
    visibility: str = "private",
) -> RepositoryRow:
    """Create a repository, or return the one a concurrent push created first."""
    await conn.execute(
        db.insert_ignore(repositories).values(
            name=name,
            namespace_id=namespace_id,
            visibility=visibility,
            immutable_tags=False,
            created_at=time.time(),
        )
    )
    created = await by_name(conn, name)
    assert created is not None
    return created


async def lock(conn: AsyncConnection, repository_id: int) -> None:
    """Lock a repository's row until the transaction ends (manifest pushes, link pruning)."""
    await conn.execute(
        select(repositories.c.id).where(repositories.c.id == repository_id).with_for_update()
    )


async def ids(conn: AsyncConnection) -> list[int]:
    return list((await conn.execute(select(repositories.c.id))).scalars())


SPARSE_INDEXES = {"on": True, "off": False, "site": None}
"""A repository's `sparse_indexes` setting by its name: on, off, or the site's setting."""


async def update_settings(
    conn: AsyncConnection,
    repository_id: int,
    visibility: str | None = None,
    immutable_tags: bool | None = None,
    sparse_indexes: str | None = None,
) -> None:
    """Change the settings given (None: unchanged); `sparse_indexes` is a `SPARSE_INDEXES` key."""
    values: dict[str, object] = {}
    if visibility is not None:
        values["visibility"] = visibility
    if immutable_tags is not None:
        values["immutable_tags"] = immutable_tags
    if sparse_indexes is not None:
        values["sparse_indexes"] = SPARSE_INDEXES[sparse_indexes]
    if values:
        await conn.execute(
            update(repositories).where(repositories.c.id == repository_id).values(**values)
        )


async def names_after(conn: AsyncConnection, last: str | None, limit: int) -> list[RepositoryRow]:
    """Repositories in lexical order after `last` (catalog pagination)."""
    query = select(*_COLUMNS).order_by(repositories.c.name).limit(limit)
    if last:
        query = query.where(repositories.c.name > last)
    return [_repository(row) for row in await conn.execute(query)]


async def tag_digest(conn: AsyncConnection, repository_id: int, tag: str) -> str | None:
    return (
        await conn.execute(
            select(tags.c.digest).where(
                and_(tags.c.repository_id == repository_id, tags.c.name == tag)
            )
        )
    ).scalar()


async def set_tag(conn: AsyncConnection, repository_id: int, tag: str, digest: str) -> str | None:
    """Point `tag` at `digest`; return the digest it pointed at before (None if new)."""
    previous = await tag_digest(conn, repository_id, tag)
    if previous == digest:
        return previous
    now = time.time()
    if previous is None:
        await conn.execute(
            insert(tags).values(
                repository_id=repository_id, name=tag, digest=digest, updated_at=now
            )
        )
    else:
        await conn.execute(
            update(tags)
            .where(and_(tags.c.repository_id == repository_id, tags.c.name == tag))
            .values(digest=digest, updated_at=now)
        )
    return previous


async def delete_tag(conn: AsyncConnection, repository_id: int, tag: str) -> bool:
    result = await conn.execute(
        delete(tags).where(and_(tags.c.repository_id == repository_id, tags.c.name == tag))
    )
    return result.rowcount > 0


async def tags_after(
    conn: AsyncConnection, repository_id: int, last: str | None, limit: int | None
) -> list[str]:
    """Tag names in lexical order after `last`."""
    query = select(tags.c.name).where(tags.c.repository_id == repository_id).order_by(tags.c.name)
    if last:
        query = query.where(tags.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return list((await conn.execute(query)).scalars())


async def tags_of_digest(conn: AsyncConnection, repository_id: int, digest: str) -> list[str]:
    query = select(tags.c.name).where(
        and_(tags.c.repository_id == repository_id, tags.c.digest == digest)
    )
    return list((await conn.execute(query)).scalars())


async def names_after_in(
    conn: AsyncConnection, namespace: str, last: str | None, limit: int
) -> list[RepositoryRow]:
    """As `names_after`, but only the repositories under `namespace/`."""
    query = (
        select(*_COLUMNS)
        .where(repositories.c.name.startswith(f"{namespace}/", autoescape=True))
        .order_by(repositories.c.name)
        .limit(limit)
    )
    if last:
        query = query.where(repositories.c.name > last)
    return [_repository(row) for row in await conn.execute(query)]


async def delete_repository(conn: AsyncConnection, repository_id: int) -> None:
    """Delete a repository with its tags, manifests, links and upload sessions.

    The other tables cascade; manifest references have no foreign key, and a later repository
    may get the same id on SQLite, so they go explicitly. Unlinked blobs are left to the
    garbage collector, upload data with no session to the upload janitor.
    """
    await conn.execute(
        delete(manifest_references).where(manifest_references.c.repository_id == repository_id)
    )
    await conn.execute(delete(repositories).where(repositories.c.id == repository_id))
