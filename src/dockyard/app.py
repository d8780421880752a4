"""The composition root: the only module that builds concrete drivers and services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route

from dockyard.api.clients import TrustedProxies
from dockyard.api.distribution.blobsend import BlobLinks, BlobSender
from dockyard.api.distribution.routes import dispatch
from dockyard.api.errors import EXCEPTION_HANDLERS
from dockyard.api.hostcheck import HostCheck
from dockyard.api.manage import create_manage_api
from dockyard.api.ratelimit import RateLimit
from dockyard.api.state import EdgeState
from dockyard.api.token import get_token, post_token
from dockyard.auth.accounts import Accounts
from dockyard.auth.limits import buckets_for
from dockyard.auth.throttle import LoginThrottle, ThrottleLimits
from dockyard.auth.tokens import TokenIssuer, new_signing_key
from dockyard.build.apk.install import ApkPackages
from dockyard.build.apt.install import AptPackages
from dockyard.build.apt.sources import machine_package_sources
from dockyard.build.packages import PackageLayers
from dockyard.client.hosts import SessionFactory
from dockyard.config import Settings
from dockyard.hub.builds import CustomizationBuilds
from dockyard.hub.catalog import Catalog
from dockyard.hub.customizations import BUILD_JOB, Customizations
from dockyard.hub.jobs import JobQueue
from dockyard.hub.mirror_sync import MirrorSync
from dockyard.hub.mirrors import SYNC_JOB, Mirrors
from dockyard.hub.rebuilds import CHECK_JOB, Rebuilds
from dockyard.hub.service import Hub
from dockyard.hub.webhook_urls import guarded_sessions
from dockyard.hub.webhooks import Webhooks, WebhookSettings
from dockyard.metadata import events
from dockyard.metadata import settings as site_settings
from dockyard.metadata.db import Database
from dockyard.registry.context import Store
from dockyard.registry.gc import expire_uploads
from dockyard.registry.indexes import IndexChecks
from dockyard.registry.service import Registry
from dockyard.storage.blobs import BlobStore
from dockyard.storage.buckets import SharedTable
from dockyard.storage.driver.filesystem import FilesystemDriver
from dockyard.storage.generation import Generation
from dockyard.storage.uploads import UploadStore

log = logging.getLogger("dockyard")
EVENT_RETENTION_SECONDS = 7 * 86400.0  # dispatched events no webhook delivery refers to


def embedded_database(settings: Settings) -> Path:
    """The SQLite file of a data folder (used when no `database_url` is set)."""
    return settings.data.resolve() / "dockyard.db"


async def missing_site(settings: Settings) -> str | None:
    """Why `settings` name no Dockyard site, naming where it looked; None when they do.
    Creates nothing (opening a store would create an empty site)."""
    if settings.database_url is None:
        path = embedded_database(settings)
        if path.is_file():
            return None
        return f"no Dockyard site in the data folder {path.parent} (it holds no {path.name})"
    db = Database(settings.database_url)
    try:
        if await db.has_schema():
            return None
    finally:
        await db.close()
    return f"no Dockyard site in the database {db.shown_url()} (its tables were never created)"


def run_folder(settings: Settings) -> Path:
    """The files this host's workers share while they run (stamps, limit tables)."""
    return settings.data / "run"


def open_store(settings: Settings) -> Store:
    """The database and content store a data folder (or configured URL) holds."""
    settings.data.mkdir(parents=True, exist_ok=True)
    embedded = f"sqlite+aiosqlite:///{embedded_database(settings)}"
    db = Database(settings.database_url or embedded)
    driver = FilesystemDriver(settings.data / "storage")
    stamps = run_folder(settings)
    return Store(
        db,
        BlobStore(driver),
        UploadStore(
            driver,
            per_repository=settings.upload_sessions_per_repository,
            per_account=settings.upload_sessions_per_account,
        ),
        settings.metadata_cache_seconds,
        Generation(stamps / "cache-generation"),
        Generation(stamps / "accounts-generation"),
    )


async def prepare(store: Store) -> None:
    """Bring the schema up to date (every command that touches the store does this first)."""
    await store.db.migrate()


def build_accounts(store: Store, settings: Settings) -> Accounts:
    run = run_folder(settings)
    limits = ThrottleLimits(
        settings.login_failures_per_address,
        settings.login_failures_per_account_address,
        settings.login_failures_per_account,
        settings.login_failure_window_seconds,
    )
    # the known addresses get a table of their own, larger: a full one forgets the oldest
    known = SharedTable(run / "login-addresses", slots=1 << 18)
    throttle = LoginThrottle(
        buckets_for(store.db, SharedTable(run / "login-failures"), known), limits
    )
    return Accounts(store.db, store.accounts_generation, settings.basic_cache_seconds, throttle)


async def build_state(
    settings: Settings, store: Store, session_factory: SessionFactory | None = None
) -> EdgeState:
    """Everything the edge needs; `session_factory` reaches upstream registries (pull-through
    caches and mirrors)."""
    await prepare(store)
    accounts = build_accounts(store, settings)
    created = await accounts.bootstrap_admin(settings.admin_password)
    if created is not None:
        given = settings.source_of("admin_password") or "the admin_password setting"
        shown = f"from {given}" if settings.admin_password else f"{created} (shown once)"
        print(f"Created the site admin: user 'admin', password {shown}", flush=True)
    key = await site_settings.get_or_set(store.db, "token_signing_key", new_signing_key())
    indexes = IndexChecks.of(settings.index_platforms, settings.index_platform_list)
    registry = Registry.over(store, settings.proxies, session_factory, indexes)
    return EdgeState(
        settings,
        registry,
        accounts,
        TokenIssuer(key, settings.service),
        build_hub(registry, settings, session_factory),
    )


def package_layer(settings: Settings) -> PackageLayers | None:
    """The package layer of builds: apt for Debian and Ubuntu bases (the configured sources,
    else this machine's own), apk for Alpine bases (the configured apk sources); picked per
    base by its distribution."""
    sources = settings.package_sources
    if sources is None:
        sources = machine_package_sources()
    cache = settings.data / "cache" / "packages"
    apt = AptPackages(sources, cache) if sources else None
    apk = ApkPackages(settings.apk_sources, cache) if settings.apk_sources else None
    return PackageLayers(apt, apk) if apt or apk else None


def build_hub(
    registry: Registry, settings: Settings, session_factory: SessionFactory | None = None
) -> Hub:
    """The hub's services over `registry`; `session_factory` reaches upstream registries."""
    queue = JobQueue(registry.store.db, lease_seconds=settings.job_lease_seconds)
    catalog = Catalog(registry.store.db, session_factory)
    mirrors = Mirrors(registry, catalog, queue, default_interval=settings.sync_interval_seconds)
    webhooks = Webhooks(
        registry.store.db,
        queue,
        WebhookSettings.from_settings(settings),
        guarded_sessions(settings.webhook_allow_private),
    )
    sync = MirrorSync(
        registry, catalog, session_factory=session_factory, parallel=settings.mirror_parallel_tags
    )
    hub = Hub(
        queue,
        catalog,
        mirrors,
        webhooks,
        {
            SYNC_JOB: sync,
            BUILD_JOB: CustomizationBuilds(
                registry, settings.data / "build", lambda: package_layer(settings)
            ),
            **webhooks.handlers(),
        },
        Customizations(
            registry,
            queue,
            packages=lambda: package_layer(settings),
            workdir=settings.data / "build",
        ),
        ticks=[mirrors.schedule_due, webhooks.dispatch_events],
    )
    hub.rebuilds = rebuilds = Rebuilds(hub.customizations, settings.package_check_interval_seconds)
    hub.ticks += [rebuilds.rebuild_on_pushes, rebuilds.schedule_package_checks]
    hub.handlers = {**hub.handlers, CHECK_JOB: rebuilds.check_packages}
    mirrors.wake = hub.customizations.wake = hub.wake
    return hub


@contextlib.asynccontextmanager
async def background(state: EdgeState) -> AsyncIterator[None]:
    """Run the janitor and, unless turned off, the hub's worker while the body runs."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_janitor(state))]
    if state.settings.run_workers:
        tasks.append(
            asyncio.create_task(state.hub.run(stop, concurrency=state.settings.worker_concurrency))
        )
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def blob_sender(state: EdgeState, store: Store) -> AsyncIterator[None]:
    """With `blob_listen` set, this process's sendfile listener, and links to it on `state`."""
    settings = state.settings
    if settings.blob_address is None:
        yield
        return
    key = await site_settings.get_or_set(store.db, "blob_link_key", secrets.token_hex(32))
    links = BlobLinks(bytes.fromhex(key), settings.blob_base_url, settings.blob_redirect_min_bytes)
    sender = BlobSender(store.blobs, links, *settings.blob_address)
    sender.start()
    state.blob_links = links
    try:
        yield
    finally:
        state.blob_links = None
        await asyncio.to_thread(sender.close)


async def _janitor(state: EdgeState) -> None:
    """Expire abandoned upload sessions and old events, now and then."""
    settings = state.settings
    while True:
        try:
            removed = await expire_uploads(
                state.registry.store, time.time() - settings.upload_expiry_seconds
            )
            if removed:
                log.info("expired %d abandoned upload sessions", removed)
            async with state.registry.store.db.write() as conn:
                await events.prune(conn, time.time() - EVENT_RETENTION_SECONDS)
        except Exception:
            log.exception("upload expiry failed; retrying at the next interval")
        await asyncio.sleep(settings.janitor_interval_seconds)


async def run_worker(settings: Settings) -> None:
    """`dockyard worker`: run the hub's jobs and periodic duties until SIGTERM or SIGINT."""
    import signal

    store = open_store(settings)
    try:
        state = await build_state(settings, store)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("worker running jobs (%d at a time)", settings.worker_concurrency)
        await state.hub.run(stop, concurrency=settings.worker_concurrency)
    finally:
        await store.db.close()


def create_app(settings: Settings, session_factory: SessionFactory | None = None) -> Starlette:
    """The ASGI application for `settings`; `session_factory` reaches the pull-through
    upstreams (default: real connections)."""
    store = open_store(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.dockyard = await build_state(settings, store, session_factory)
        try:
            async with background(app.state.dockyard), blob_sender(app.state.dockyard, store):
                yield
        finally:
            await app.state.dockyard.registry.close()
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
    app.mount("/api/v1", create_manage_api(app.state))  # shares app.state.dockyard
    if settings.rate_limit_per_second > 0:
        app.add_middleware(
            RateLimit,
            rate=settings.rate_limit_per_second,
            burst=settings.rate_limit_burst,
            buckets=buckets_for(
                store.db, SharedTable(run_folder(settings) / "rate-limit", 1 << 17)
            ),
        )
    if settings.trusted_proxies:
        app.add_middleware(TrustedProxies, trusted=settings.trusted_proxies)
    app.add_middleware(HostCheck)  # the outermost: nothing reads a Host it has not checked
    return app


def from_environment() -> Starlette:
    """The application factory `dockyard serve` hands to the server's worker processes."""
    import os
    from pathlib import Path

    from dockyard.config import load_settings

    config = os.environ.get("DOCKYARD_SERVER_CONFIG")
    settings = load_settings(Path(config) if config else None)
    configure_logging(settings)
    return create_app(settings)


def configure_logging(settings: Settings) -> None:
    """Log lines with time, level and logger, at `settings.log_level`."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
