"""The database: one async engine, read and write transactions, migrations at start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table, event, inspect, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

_WRITE = "dockyard_write"
MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """Transactions over SQLite (WAL) or PostgreSQL.

    `read()` and `write()` each give a connection inside a transaction that commits on success.
    On SQLite a write transaction starts with BEGIN IMMEDIATE, so two writers queue on the lock
    instead of failing when one upgrades from reading to writing.
    """

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            engine_options.setdefault("connect_args", {"timeout": 30})
        else:
            engine_options.setdefault("pool_size", 10)
            engine_options.setdefault("pool_pre_ping", True)
        self.engine: AsyncEngine = create_async_engine(url, **engine_options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._writer = self.engine.execution_options(**{_WRITE: True})

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer.begin() as conn:
            yield conn

    def insert_ignore(self, table: Table) -> Insert:
        """INSERT that leaves an existing row (same primary or unique key) alone."""
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(self, table: Table, key: Sequence[Column[Any]], **changes: Any) -> Insert:
        """INSERT that, when a row with the same `key` (columns of a primary or unique key)
        exists, sets `changes` on it instead."""
        keys = list(key)
        if self.is_sqlite:
            return sqlite.insert(table).on_conflict_do_update(index_elements=keys, set_=changes)
        return postgresql.insert(table).on_conflict_do_update(index_elements=keys, set_=changes)

    async def lock(self, conn: AsyncConnection, key: str) -> None:
        """Hold a named lock until the transaction ends.

        PostgreSQL takes an advisory lock; SQLite needs none, as its write transactions already
        run one at a time. Statements after the lock see everything committed before it.
        """
        if not self.is_sqlite:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (safe when several nodes start at once)."""
        from alembic import command
        from alembic.config import Config

        def upgrade(sync_conn: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = sync_conn
            command.upgrade(config, "head")

        async with self.write() as conn:
            if not self.is_sqlite:
                await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            await conn.run_sync(upgrade)

    async def has_schema(self) -> bool:
        """Whether migrations ever ran here (the database holds a Dockyard site); creates
        nothing."""

        def check(sync_conn: Connection) -> bool:
            return inspect(sync_conn).has_table("alembic_version")

        async with self.read() as conn:
            return await conn.run_sync(check)

    def shown_url(self) -> str:
        """The URL without its password, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.engine.dispose()


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key an INSERT of one row produced."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise RuntimeError("the INSERT produced no primary key")
    return int(key[0])


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # take transaction control from the driver so BEGIN is ours to emit
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
