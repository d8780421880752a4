"""Manifests (their exact bytes), what they reference, and the referrers of a subject."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import Database
from dockyard.metadata.tables import manifest_references, manifests, tags
from dockyard.oci.manifest import Manifest


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str]


async def by_digest(conn: AsyncConnection, repository_id: int, digest: str) -> ManifestRow | None:
    row = (
        await conn.execute(
            select(manifests.c.digest, manifests.c.media_type, manifests.c.content).where(
                and_(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
            )
        )
    ).first()
    return ManifestRow(row.digest, row.media_type, row.content) if row else None


async def by_tag(conn: AsyncConnection, repository_id: int, tag: str) -> ManifestRow | None:
    """The manifest a tag points at, in one query (the hottest read of the registry)."""
    row = (
        await conn.execute(
            select(manifests.c.digest, manifests.c.media_type, manifests.c.content)
            .join(
                tags,
                and_(
                    tags.c.repository_id == manifests.c.repository_id,
                    tags.c.digest == manifests.c.digest,
                ),
            )
            .where(and_(tags.c.repository_id == repository_id, tags.c.name == tag))
        )
    ).first()
    return ManifestRow(row.digest, row.media_type, row.content) if row else None


async def existing(conn: AsyncConnection, repository_id: int, digests: list[str]) -> set[str]:
    if not digests:
        return set()
    rows = await conn.execute(
        select(manifests.c.digest).where(
            and_(manifests.c.repository_id == repository_id, manifests.c.digest.in_(digests))
        )
    )
    return set(rows.scalars())


async def put(db: Database, conn: AsyncConnection, repository_id: int, manifest: Manifest) -> bool:
    """Store a manifest's exact bytes and what it references (blobs, child manifests);
    False when it was already there."""
    digest = str(manifest.digest)
    references = [(str(d.digest), "blob") for d in manifest.blobs] + [
        (str(d.digest), "manifest") for d in manifest.children
    ]
    result = await conn.execute(
        db.insert_ignore(manifests).values(
            repository_id=repository_id,
            digest=digest,
            media_type=manifest.media_type,
            artifact_type=manifest.artifact_type,
            subject_digest=str(manifest.subject.digest) if manifest.subject else None,
            annotations=json.dumps(manifest.annotations) if manifest.annotations else None,
            size=len(manifest.raw),
            content=manifest.raw,
            created_at=time.time(),
        )
    )
    if result.rowcount == 0:
        return False
    if references:
        await conn.execute(
            db.insert_ignore(manifest_references),
            [
                {
                    "repository_id": repository_id,
                    "manifest_digest": digest,
                    "target_digest": target,
                    "kind": kind,
                }
                for target, kind in references
            ],
        )
    return True


async def delete_manifest(conn: AsyncConnection, repository_id: int, digest: str) -> bool:
    """Delete a manifest, the tags pointing at it and its references."""
    result = await conn.execute(
        delete(manifests).where(
            and_(manifests.c.repository_id == repository_id, manifests.c.digest == digest)
        )
    )
    if result.rowcount == 0:
        return False
    await conn.execute(
        delete(tags).where(and_(tags.c.repository_id == repository_id, tags.c.digest == digest))
    )
    await conn.execute(
        delete(manifest_references).where(
            and_(
                manifest_references.c.repository_id == repository_id,
                manifest_references.c.manifest_digest == digest,
            )
        )
    )
    return True


async def referrers(conn: AsyncConnection, repository_id: int, subject: str) -> list[ReferrerRow]:
    rows = await conn.execute(
        select(
            manifests.c.digest,
            manifests.c.media_type,
            manifests.c.size,
            manifests.c.artifact_type,
            manifests.c.annotations,
        )
        .where(
            and_(manifests.c.repository_id == repository_id, manifests.c.subject_digest == subject)
        )
        .order_by(manifests.c.created_at, manifests.c.digest)
    )
    return [
        ReferrerRow(
            row.digest,
            row.media_type,
            row.size,
            row.artifact_type,
            json.loads(row.annotations) if row.annotations else {},
        )
        for row in rows
    ]


async def is_referenced(conn: AsyncConnection, repository_id: int, digest: str) -> bool:
    """Whether another manifest of the repository (an index) lists this one."""
    query = select(
        exists().where(
            and_(
                manifest_references.c.repository_id == repository_id,
                manifest_references.c.target_digest == digest,
                manifest_references.c.kind == "manifest",
            )
        )
    )
    return bool((await conn.execute(query)).scalar())
