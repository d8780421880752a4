"""Mirrors (a catalog entry copied into a repository) and the history of their sync runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import inserted_id
from dockyard.metadata.tables import catalog_entries, mirrors, repositories, sync_runs


@dataclass(frozen=True, slots=True)
class MirrorRow:
    id: int
    entry_id: int
    entry: str
    repository_id: int
    repository: str
    visibility: str
    include_eol: bool
    status: str
    status_reason: str | None
    created_by: str
    created_at: float
    interval_seconds: float | None
    next_sync_at: float | None
    last_synced_at: float | None
    tags_total: int
    tags_done: int
    bytes_done: int


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    mirror_id: int
    trigger: str
    outcome: str
    started_at: float
    finished_at: float | None
    tags_added: int
    tags_updated: int
    tags_unchanged: int
    referrers_copied: int
    bytes: int
    error: str | None


_SELECT = (
    select(
        mirrors,
        catalog_entries.c.name.label("entry"),
        repositories.c.name.label("repository"),
        repositories.c.visibility,
    )
    .join(catalog_entries, catalog_entries.c.id == mirrors.c.entry_id)
    .join(repositories, repositories.c.id == mirrors.c.repository_id)
)


def _mirror(row: Any) -> MirrorRow:
    return MirrorRow(
        row.id,
        row.entry_id,
        row.entry,
        row.repository_id,
        row.repository,
        row.visibility,
        bool(row.include_eol),
        row.status,
        row.status_reason,
        row.created_by,
        row.created_at,
        row.interval_seconds,
        row.next_sync_at,
        row.last_synced_at,
        row.tags_total,
        row.tags_done,
        row.bytes_done,
    )


async def insert_mirror(conn: AsyncConnection, **values: Any) -> MirrorRow:
    result = await conn.execute(
        insert(mirrors).values(
            status="active",
            created_at=time.time(),
            tags_total=0,
            tags_done=0,
            bytes_done=0,
            **values,
        )
    )
    mirror_id = inserted_id(result)
    found = await by_id(conn, mirror_id)
    assert found is not None
    return found


async def by_id(conn: AsyncConnection, mirror_id: int) -> MirrorRow | None:
    row = (await conn.execute(_SELECT.where(mirrors.c.id == mirror_id))).first()
    return _mirror(row) if row else None


async def find(
    conn: AsyncConnection,
    *,
    entry_id: int | None = None,
    repository_id: int | None = None,
    namespace: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[MirrorRow]:
    """Mirrors matching every filter given, in id order after `after_id`."""
    query = _SELECT.order_by(mirrors.c.id).limit(limit)
    if entry_id is not None:
        query = query.where(mirrors.c.entry_id == entry_id)
    if repository_id is not None:
        query = query.where(mirrors.c.repository_id == repository_id)
    if namespace is not None:
        query = query.where(repositories.c.name.startswith(f"{namespace}/", autoescape=True))
    if after_id is not None:
        query = query.where(mirrors.c.id > after_id)
    return [_mirror(row) for row in await conn.execute(query)]


async def due(conn: AsyncConnection, now: float) -> list[MirrorRow]:
    """Mirrors not stopped whose next sync time has come (or was never set)."""
    query = _SELECT.where(
        and_(
            mirrors.c.status != "stopped",
            or_(mirrors.c.next_sync_at.is_(None), mirrors.c.next_sync_at <= now),
        )
    ).order_by(mirrors.c.id)
    return [_mirror(row) for row in await conn.execute(query)]


async def find_status(conn: AsyncConnection, status: str) -> list[MirrorRow]:
    query = _SELECT.where(mirrors.c.status == status).order_by(mirrors.c.id)
    return [_mirror(row) for row in await conn.execute(query)]


async def include_eol_of(conn: AsyncConnection, repository_ids: list[int]) -> dict[int, bool]:
    """For each mirrored repository among `repository_ids`: whether end-of-life tags are
    mirrored into it (by any mirror not stopped)."""
    if not repository_ids:
        return {}
    query = select(mirrors.c.repository_id, mirrors.c.include_eol).where(
        and_(mirrors.c.repository_id.in_(repository_ids), mirrors.c.status != "stopped")
    )
    found: dict[int, bool] = {}
    for row in await conn.execute(query):
        found[row.repository_id] = found.get(row.repository_id, False) or bool(row.include_eol)
    return found


async def mirrored_kinds(conn: AsyncConnection, repository_id: int) -> set[str]:
    """What the catalog entries mirrored into the repository are ("image", "chart")."""
    query = (
        select(catalog_entries.c.kind)
        .join(mirrors, mirrors.c.entry_id == catalog_entries.c.id)
        .where(mirrors.c.repository_id == repository_id)
    )
    return {str(kind) for kind in await conn.scalars(query)}


async def update_mirror(conn: AsyncConnection, mirror_id: int, **values: Any) -> None:
    await conn.execute(update(mirrors).where(mirrors.c.id == mirror_id).values(**values))


async def start_run(conn: AsyncConnection, mirror_id: int, trigger: str) -> int:
    """A new run, after marking runs a killed worker left `running` as interrupted."""
    await conn.execute(
        update(sync_runs)
        .where(and_(sync_runs.c.mirror_id == mirror_id, sync_runs.c.outcome == "running"))
        .values(outcome="failed", finished_at=time.time(), error="interrupted: the worker stopped")
    )
    result = await conn.execute(
        insert(sync_runs).values(
            mirror_id=mirror_id,
            trigger=trigger,
            outcome="running",
            started_at=time.time(),
            tags_added=0,
            tags_updated=0,
            tags_unchanged=0,
            referrers_copied=0,
            bytes=0,
        )
    )
    return inserted_id(result)


async def finish_run(conn: AsyncConnection, run_id: int, outcome: str, **counts: Any) -> None:
    await conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == run_id)
        .values(outcome=outcome, finished_at=time.time(), **counts)
    )


async def runs(
    conn: AsyncConnection, mirror_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[RunRow]:
    """A mirror's runs, newest first, older than `before_id`."""
    query = (
        select(sync_runs)
        .where(sync_runs.c.mirror_id == mirror_id)
        .order_by(sync_runs.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(sync_runs.c.id < before_id)
    return [
        RunRow(
            row.id,
            row.mirror_id,
            row.trigger,
            row.outcome,
            row.started_at,
            row.finished_at,
            row.tags_added,
            row.tags_updated,
            row.tags_unchanged,
            row.referrers_copied,
            row.bytes,
            row.error,
        )
        for row in await conn.execute(query)
    ]
