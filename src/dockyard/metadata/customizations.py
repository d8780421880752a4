"""Customizations (their documents and the targets they build) and the history of builds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import inserted_id
from dockyard.metadata.tables import (
    builds,
    customization_targets,
    customizations,
    namespaces,
    repositories,
)


@dataclass(frozen=True, slots=True)
class TargetRow:
    repository_id: int
    repository: str
    base_tag: str
    result_tag: str


@dataclass(frozen=True, slots=True)
class CustomizationRow:
    id: int
    uid: str
    namespace: str
    name: str
    document: str  # JSON
    created_by: str
    created_at: float
    updated_at: float
    targets: tuple[TargetRow, ...]


@dataclass(frozen=True, slots=True)
class BuildRow:
    id: int
    customization_id: int
    repository_id: int
    repository: str
    base_tag: str
    trigger: str
    trigger_detail: str | None
    status: str
    job_id: int | None
    lock: str | None
    changes: str | None
    result_digest: str | None
    outputs: str | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


async def insert_customization(
    conn: AsyncConnection,
    *,
    uid: str,
    namespace_id: int,
    name: str,
    document: str,
    created_by: str,
    now: float,
) -> int:
    result = await conn.execute(
        insert(customizations).values(
            uid=uid,
            namespace_id=namespace_id,
            name=name,
            document=document,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
    )
    return inserted_id(result)


async def update_customization(
    conn: AsyncConnection, customization_id: int, *, name: str, document: str, now: float
) -> None:
    await conn.execute(
        update(customizations)
        .where(customizations.c.id == customization_id)
        .values(name=name, document=document, updated_at=now)
    )


async def set_targets(
    conn: AsyncConnection, customization_id: int, targets: Sequence[tuple[int, str, str]]
) -> None:
    """Replace the customization's targets with `(repository_id, base_tag, result_tag)`."""
    await conn.execute(
        delete(customization_targets).where(
            customization_targets.c.customization_id == customization_id
        )
    )
    if targets:
        await conn.execute(
            insert(customization_targets),
            [
                {
                    "customization_id": customization_id,
                    "repository_id": repository_id,
                    "base_tag": base_tag,
                    "result_tag": result_tag,
                }
                for repository_id, base_tag, result_tag in targets
            ],
        )


async def delete_customization(conn: AsyncConnection, customization_id: int) -> None:
    await conn.execute(delete(customizations).where(customizations.c.id == customization_id))


async def get_customization(conn: AsyncConnection, uid: str) -> CustomizationRow | None:
    rows = await _customizations(conn, customizations.c.uid == uid)
    return rows[0] if rows else None


async def get_customization_by_id(
    conn: AsyncConnection, customization_id: int
) -> CustomizationRow | None:
    rows = await _customizations(conn, customizations.c.id == customization_id)
    return rows[0] if rows else None


async def find_customizations(
    conn: AsyncConnection,
    *,
    namespace: str | None = None,
    repository: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[CustomizationRow]:
    """Customizations by id, of a namespace and with a target in a repository, if given."""
    condition = customizations.c.id > after_id
    if namespace is not None:
        condition &= namespaces.c.name == namespace
    if repository is not None:
        owning = (
            select(customization_targets.c.customization_id)
            .join(repositories, repositories.c.id == customization_targets.c.repository_id)
            .where(repositories.c.name == repository)
        )
        condition &= customizations.c.id.in_(owning)
    return await _customizations(conn, condition, limit)


async def owner_of_tag(conn: AsyncConnection, repository_id: int, tag: str) -> int | None:
    """The id of the customization whose builds own `tag` in the repository, if one does."""
    found = await conn.scalar(
        select(customization_targets.c.customization_id).where(
            customization_targets.c.repository_id == repository_id,
            customization_targets.c.result_tag == tag,
        )
    )
    return int(found) if found is not None else None


async def targets_on(conn: AsyncConnection, repository_id: int, base_tag: str) -> list[int]:
    """The customizations that build on `base_tag` of the repository (its rebuilds)."""
    found = await conn.scalars(
        select(customization_targets.c.customization_id).where(
            customization_targets.c.repository_id == repository_id,
            customization_targets.c.base_tag == base_tag,
        )
    )
    return [int(x) for x in found]


async def _customizations(
    conn: AsyncConnection, condition: Any, limit: int | None = None
) -> list[CustomizationRow]:
    query = (
        select(customizations, namespaces.c.name.label("namespace"))
        .join(namespaces, namespaces.c.id == customizations.c.namespace_id)
        .where(condition)
        .order_by(customizations.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    found = list(await conn.execute(query))
    ids = [row.id for row in found]
    targets: dict[int, list[TargetRow]] = {i: [] for i in ids}
    if ids:
        target_rows = await conn.execute(
            select(customization_targets, repositories.c.name.label("repository"))
            .join(repositories, repositories.c.id == customization_targets.c.repository_id)
            .where(customization_targets.c.customization_id.in_(ids))
            .order_by(repositories.c.name, customization_targets.c.base_tag)
        )
        for t in target_rows:
            targets[t.customization_id].append(
                TargetRow(t.repository_id, t.repository, t.base_tag, t.result_tag)
            )
    return [
        CustomizationRow(
            row.id,
            row.uid,
            row.namespace,
            row.name,
            row.document,
            row.created_by,
            row.created_at,
            row.updated_at,
            tuple(targets[row.id]),
        )
        for row in found
    ]


async def insert_build(
    conn: AsyncConnection,
    *,
    customization_id: int,
    repository_id: int,
    base_tag: str,
    trigger: str,
    trigger_detail: str | None,
    now: float,
) -> int:
    result = await conn.execute(
        insert(builds).values(
            customization_id=customization_id,
            repository_id=repository_id,
            base_tag=base_tag,
            trigger=trigger,
            trigger_detail=trigger_detail,
            status="queued",
            created_at=now,
        )
    )
    return inserted_id(result)


async def update_build(conn: AsyncConnection, build_id: int, **values: Any) -> None:
    await conn.execute(update(builds).where(builds.c.id == build_id).values(**values))


async def get_build(conn: AsyncConnection, build_id: int) -> BuildRow | None:
    rows = await _builds(conn, builds.c.id == build_id)
    return rows[0] if rows else None


async def find_builds(
    conn: AsyncConnection, customization_id: int, *, before_id: int | None = None, limit: int = 100
) -> list[BuildRow]:
    """A customization's builds, newest first."""
    condition = builds.c.customization_id == customization_id
    if before_id is not None:
        condition &= builds.c.id < before_id
    return await _builds(conn, condition, limit)


async def last_good_build(
    conn: AsyncConnection, customization_id: int, repository_id: int, base_tag: str
) -> BuildRow | None:
    """The newest build of one target that made (or confirmed) its image."""
    rows = await _builds(
        conn,
        (builds.c.customization_id == customization_id)
        & (builds.c.repository_id == repository_id)
        & (builds.c.base_tag == base_tag)
        & builds.c.status.in_(["succeeded", "unchanged"]),
        1,
    )
    return rows[0] if rows else None


async def _builds(
    conn: AsyncConnection, condition: Any, limit: int | None = None
) -> list[BuildRow]:
    query = (
        select(builds, repositories.c.name.label("repository"))
        .join(repositories, repositories.c.id == builds.c.repository_id)
        .where(condition)
        .order_by(builds.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        BuildRow(
            row.id,
            row.customization_id,
            row.repository_id,
            row.repository,
            row.base_tag,
            row.trigger,
            row.trigger_detail,
            row.status,
            row.job_id,
            row.lock,
            row.changes,
            row.result_digest,
            row.outputs,
            row.error,
            row.created_at,
            row.started_at,
            row.finished_at,
        )
        for row in await conn.execute(query)
    ]


async def build_log(conn: AsyncConnection, build_id: int) -> str | None:
    """The build's log (kept apart from `BuildRow`: it may be long)."""
    found = await conn.scalar(select(builds.c.log).where(builds.c.id == build_id))
    return str(found) if found is not None else None


async def in_namespace_of(conn: AsyncConnection, repository_id: int) -> list[CustomizationRow]:
    """The customizations of the namespace the repository belongs to."""
    namespace_id = select(repositories.c.namespace_id).where(repositories.c.id == repository_id)
    return await _customizations(
        conn, customizations.c.namespace_id == namespace_id.scalar_subquery()
    )


async def has_queued_build(
    conn: AsyncConnection, customization_id: int, repository_id: int, base_tag: str
) -> bool:
    found = await conn.scalar(
        select(builds.c.id)
        .where(
            builds.c.customization_id == customization_id,
            builds.c.repository_id == repository_id,
            builds.c.base_tag == base_tag,
            builds.c.status == "queued",
        )
        .limit(1)
    )
    return found is not None
