"""The composition root: the only module that builds concrete drivers and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from dockyard.api.distribution.routes import dispatch
from dockyard.api.errors import EXCEPTION_HANDLERS
from dockyard.api.ratelimit import RateLimit
from dockyard.api.state import EdgeState
from dockyard.api.token import get_token, post_token
from dockyard.auth.accounts import Accounts
from dockyard.auth.tokens import TokenIssuer, new_signing_key
from dockyard.config import Settings
from dockyard.metadata import settings as site_settings
from dockyard.metadata.db import Database
from dockyard.registry.context import Store
from dockyard.registry.gc import expire_uploads
from dockyard.registry.service import Registry
from dockyard.storage.blobs import BlobStore
from dockyard.storage.driver.filesystem import FilesystemDriver
from dockyard.storage.uploads import UploadStore

log = logging.getLogger("dockyard")


def open_store(settings: Settings) -> Store:
    """The database and content store a data folder (or configured URL) holds."""
    settings.data.mkdir(parents=True, exist_ok=True)
    embedded = f"sqlite+aiosqlite:///{settings.data.resolve() / 'dockyard.db'}"
    db = Database(settings.database_url or embedded)
    driver = FilesystemDriver(settings.data / "storage")
    return Store(db, BlobStore(driver), UploadStore(driver), settings.metadata_cache_seconds)


async def prepare(store: Store) -> None:
    """Bring the schema up to date (every command that touches the store does this first)."""
    await store.db.migrate()


def build_accounts(store: Store, settings: Settings) -> Accounts:
    return Accounts(store.db, cache_ttl=settings.basic_cache_seconds)


async def build_state(settings: Settings, store: Store) -> EdgeState:
    await prepare(store)
    accounts = build_accounts(store, settings)
    created = await accounts.bootstrap_admin(settings.admin_password)
    if created is not None:
        shown = (
            "from DOCKYARD_ADMIN_PASSWORD" if settings.admin_password else f"{created} (shown once)"
        )
        print(f"Created the site admin: user 'admin', password {shown}", flush=True)
    key = await site_settings.get_or_set(store.db, "token_signing_key", new_signing_key())
    return EdgeState(settings, Registry.over(store), accounts, TokenIssuer(key, settings.service))


async def _janitor(state: EdgeState) -> None:
    """Expire abandoned upload sessions, now and then."""
    settings = state.settings
    while True:
        try:
            removed = await expire_uploads(
                state.registry.store, time.time() - settings.upload_expiry_seconds
            )
            if removed:
                log.info("expired %d abandoned upload sessions", removed)
        except Exception:
            log.exception("upload expiry failed; retrying at the next interval")
        await asyncio.sleep(settings.janitor_interval_seconds)


def create_app(settings: Settings) -> Starlette:
    """The ASGI application for `settings`."""
    store = open_store(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.dockyard = await build_state(settings, store)
        janitor = asyncio.create_task(_janitor(app.state.dockyard))
        try:
            yield
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
            await store.db.close()

    routes = [
        Route(
            "/v2/{path:path}", dispatch, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        ),
        Route("/v2", dispatch, methods=["GET", "HEAD"]),
        Route("/token", get_token, methods=["GET"]),
        Route("/token", post_token, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    if settings.rate_limit_per_second > 0:
        app.add_middleware(
            RateLimit, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )
    return app


def from_environment() -> Starlette:
    """The application factory `dockyard serve` hands to the server's worker processes."""
    import os
    from pathlib import Path

    from dockyard.config import load_settings

    config = os.environ.get("DOCKYARD_SERVER_CONFIG")
    settings = load_settings(Path(config) if config else None)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app(settings)
