"""The migrations create exactly the schema `metadata/tables.py` declares."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from dockyard.metadata.db import MIGRATIONS, Database
from dockyard.metadata.tables import catalog_entries, metadata, mirrors, repositories


async def test_migrated_schema_matches_tables(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


async def test_migrating_twice_is_harmless(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await db.migrate()
    await db.migrate()
    await db.close()


def test_0004_turns_sparse_indexes_on_for_mirrored_repositories(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        now = {"created_at": 0.0}
        for name in ("acme/dhi-python", "acme/app"):
            conn.execute(
                repositories.insert().values(
                    name=name, visibility="private", immutable_tags=False, **now
                )
            )
        conn.execute(
            catalog_entries.insert().values(
                id=1,
                name="python",
                kind="image",
                source="r/python",
                source_tls="enabled",
                hook_token_hash="h",
                **now,
            )
        )
        conn.execute(
            mirrors.insert().values(
                entry_id=1, repository_id=1, status="active", created_by="alice", **now
            )
        )
        command.upgrade(config, "0004")
        found = dict(conn.execute(select(repositories.c.name, repositories.c.sparse_indexes)).all())
    engine.dispose()
    assert found == {"acme/dhi-python": True, "acme/app": None}
