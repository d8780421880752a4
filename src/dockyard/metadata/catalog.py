"""The upstream catalog: entries and the tags last seen upstream, grouped into variants."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.metadata.db import inserted_id
from dockyard.metadata.tables import catalog_entries, catalog_tags


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: int
    name: str
    kind: str
    description: str
    source: str
    source_tls: str
    username: str | None
    password: str | None
    attestation_source: str | None
    attestation_tls: str | None
    attestation_username: str | None
    attestation_password: str | None
    eol_pattern: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: str
    digest: str
    variant: str
    eol: bool
    updated_at: float


def _entry(row: Any) -> EntryRow:
    return EntryRow(
        row.id,
        row.name,
        row.kind,
        row.description,
        row.source,
        row.source_tls,
        row.username,
        row.password,
        row.attestation_source,
        row.attestation_tls,
        row.attestation_username,
        row.attestation_password,
        row.eol_pattern,
        row.created_at,
    )


async def insert_entry(conn: AsyncConnection, hook_token_hash: str, **values: Any) -> EntryRow:
    result = await conn.execute(
        insert(catalog_entries).values(
            hook_token_hash=hook_token_hash, created_at=time.time(), **values
        )
    )
    entry_id = inserted_id(result)
    found = await by_id(conn, entry_id)
    assert found is not None
    return found


async def by_id(conn: AsyncConnection, entry_id: int) -> EntryRow | None:
    row = (
        await conn.execute(select(catalog_entries).where(catalog_entries.c.id == entry_id))
    ).first()
    return _entry(row) if row else None


async def by_name(conn: AsyncConnection, name: str) -> EntryRow | None:
    row = (
        await conn.execute(select(catalog_entries).where(catalog_entries.c.name == name))
    ).first()
    return _entry(row) if row else None


async def by_hook_token(conn: AsyncConnection, token_hash: str) -> EntryRow | None:
    query = select(catalog_entries).where(catalog_entries.c.hook_token_hash == token_hash)
    row = (await conn.execute(query)).first()
    return _entry(row) if row else None


async def entries_after(conn: AsyncConnection, last: str | None, limit: int) -> list[EntryRow]:
    """Entries in name order after `last`, at most `limit`."""
    query = select(catalog_entries).order_by(catalog_entries.c.name).limit(limit)
    if last is not None:
        query = query.where(catalog_entries.c.name > last)
    return [_entry(row) for row in await conn.execute(query)]


async def update_entry(conn: AsyncConnection, entry_id: int, **values: Any) -> EntryRow:
    """Set `values` on the entry; the entry as it is now."""
    if values:
        await conn.execute(
            update(catalog_entries).where(catalog_entries.c.id == entry_id).values(**values)
        )
    found = await by_id(conn, entry_id)
    assert found is not None
    return found


async def delete_entry(conn: AsyncConnection, entry_id: int) -> None:
    await conn.execute(delete(catalog_entries).where(catalog_entries.c.id == entry_id))


async def tags(conn: AsyncConnection, entry_id: int) -> list[TagRow]:
    query = (
        select(catalog_tags).where(catalog_tags.c.entry_id == entry_id).order_by(catalog_tags.c.tag)
    )
    return [
        TagRow(row.tag, row.digest, row.variant, bool(row.eol), row.updated_at)
        for row in await conn.execute(query)
    ]


async def replace_tags(conn: AsyncConnection, entry_id: int, found: list[TagRow]) -> None:
    """Make the entry's tags exactly `found` (tags gone upstream are dropped)."""
    await conn.execute(delete(catalog_tags).where(catalog_tags.c.entry_id == entry_id))
    if found:
        await conn.execute(
            insert(catalog_tags),
            [
                {
                    "entry_id": entry_id,
                    "tag": t.tag,
                    "digest": t.digest,
                    "variant": t.variant,
                    "eol": t.eol,
                    "updated_at": t.updated_at,
                }
                for t in found
            ],
        )
