"""The pull-through cache: pulls of proxied repositories are served from the local store, and
what is missing there (or a tag past its TTL) is fetched from upstream and stored on the way.

As in distribution's proxy mode, a manifest is stored without checking that its blobs are
here: they are fetched when a client asks for them (a Docker daemon skips the layers it has, and
an index names every platform's images, most of which nobody pulls). Blobs and manifests by
digest never change, so once cached they are served without asking upstream; a tag is checked
again (HEAD first: Docker Hub does not count a HEAD as a pull) once it is `ttl_seconds` old.
When upstream cannot answer, what is cached is served; when nothing is, the client gets
`UpstreamUnavailable` (503). Concurrent misses for the same thing share one upstream fetch,
which runs to its end even if the client that started it goes away.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.client.hosts import SessionFactory
from dockyard.client.registry import RegistryClient
from dockyard.config import ProxyUpstream
from dockyard.metadata import content
from dockyard.metadata import manifests as manifest_rows
from dockyard.metadata import proxy as proxy_rows
from dockyard.metadata import repositories as repository_rows
from dockyard.metadata.manifests import ManifestRow
from dockyard.metadata.repositories import RepositoryRow
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.errors import (
    BlobUnknown,
    ManifestUnknown,
    NameUnknown,
    OciError,
    UpstreamUnavailable,
)
from dockyard.oci.manifest import Manifest
from dockyard.oci.names import TAG_PATTERN
from dockyard.registry.blobs import BlobInfo, Blobs
from dockyard.registry.cache import ReadCache, store_cache
from dockyard.registry.flights import Flights
from dockyard.registry.manifests import Manifests
from dockyard.registry.proxy_routes import ProxyRoutes, Route
from dockyard.registry.proxy_upstream import UpstreamDown, upstream_client, upstream_errors
from dockyard.registry.repositories import Repositories, create_in
from dockyard.registry.uploads import Uploads

log = logging.getLogger("dockyard.proxy")
OCTET_STREAM = "application/octet-stream"


class PullThrough:
    """Pulls of the repositories `routes` maps to an upstream, through this registry's store.

    `session_factory` makes the sessions that reach upstreams (default: `upstream_session`);
    `clock` gives wall-clock seconds (tag ages are shared by every node, in the database).
    """

    def __init__(
        self,
        routes: ProxyRoutes,
        repositories: Repositories,
        blobs: Blobs,
        uploads: Uploads,
        manifests: Manifests,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.store = repositories.store
        self.repositories = repositories
        self.blobs = blobs
        self.uploads = uploads
        self.manifests = manifests
        self.clock = clock
        self._session_factory = session_factory
        self._clients: dict[ProxyUpstream, RegistryClient] = {}
        self._flights = Flights()
        self._fetched: ReadCache[float] = store_cache(self.store)

    def client(self, upstream: ProxyUpstream) -> RegistryClient:
        """The client for `upstream`, made on first use."""
        found = self._clients.get(upstream)
        if found is None:
            found = self._clients[upstream] = upstream_client(upstream, self._session_factory)
        return found

    async def close(self) -> None:
        """Stop the fetches in flight and close the upstream sessions."""
        await self._flights.close()
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    # --- manifests -------------------------------------------------------------------------

    async def manifest(
        self,
        name: str,
        repository: RepositoryRow | None,
        reference: str,
        accept: frozenset[str] | None = None,
    ) -> ManifestRow | None:
        """The manifest `reference` names in repository `name` (see `Manifests.get`), fetched
        from upstream when it is not cached or its tag is past its TTL; None when `name` is not
        a proxied repository. `ManifestUnknown` when upstream does not have it either."""
        route = await self.routes.pull_route(name, repository)
        if route is None:
            return None
        if is_digest(reference):
            await self._ensure_manifest(route, name, repository, Digest.parse(reference))
        elif TAG_PATTERN.fullmatch(reference):
            await self._refresh_tag(route, name, repository, reference)
        else:
            return None  # no tag has that form: the local lookup says so
        return await self.manifests.get(await self._existing(name), reference, accept)

    async def _ensure_manifest(
        self, route: Route, name: str, repository: RepositoryRow | None, digest: Digest
    ) -> None:
        if repository is not None and await self._local(repository, str(digest)) is not None:
            return

        async def fetch() -> None:
            detail = {"name": name, "reference": str(digest)}
            with upstream_errors(
                f"manifest {digest} of {route.describe()}", ManifestUnknown, detail
            ):
                manifest = await self.client(route.upstream).manifest_get(
                    route.remote.with_digest(digest)
                )
            await self._store(route, name, manifest, None)

        await self._fly(("manifest", name, str(digest)), fetch, route, name, f"manifest {digest}")

    async def _refresh_tag(
        self, route: Route, name: str, repository: RepositoryRow | None, tag: str
    ) -> None:
        cached = await self._local(repository, tag)
        if cached is not None and await self._fresh(route, cached_in=repository, tag=tag):
            return

        async def fetch() -> None:
            await self._fetch_tag(route, name, tag, cached.digest if cached else None)

        try:
            await self._flights.run(("tag", name, tag), fetch)
        except UpstreamDown as exc:
            if cached is None:
                raise self._unavailable(route, name, f"tag {tag!r}", exc) from exc
            log.warning("serving the cached %s:%s: %s", name, tag, exc)

    async def _fetch_tag(self, route: Route, name: str, tag: str, cached: str | None) -> None:
        """Ask upstream where `tag` points; fetch the manifest unless that is `cached`."""
        client = self.client(route.upstream)
        remote = route.remote.with_tag(tag)
        detail = {"name": name, "reference": tag}
        manifest = None
        what = f"tag {tag!r} of {route.describe()}"
        with upstream_errors(what, ManifestUnknown, detail, cached=cached is not None):
            moved = True
            if cached is not None:  # a HEAD first: Docker Hub counts only GETs as pulls
                head = await client.manifest_head(remote)
                if head is None:
                    raise ManifestUnknown("the tag is gone")
                moved = str(head.digest) != cached
            if moved:
                manifest = await client.manifest_get(remote)
        if manifest is not None:
            log.info("fetched %s:%s (%s) from %s", name, tag, manifest.digest, route.describe())
        await self._store(route, name, manifest, tag)

    async def _fresh(self, route: Route, cached_in: RepositoryRow | None, tag: str) -> bool:
        """Whether `tag` was fetched or confirmed upstream less than the TTL ago."""
        if cached_in is None:
            return False
        key = (cached_in.id, tag)

        async def load() -> float | None:
            async with self.store.db.read() as conn:
                return await proxy_rows.fetched_at(conn, cached_in.id, tag)

        when = await self._fetched.fetch(key, load)
        if when is None:
            return False
        return self.clock() - when < route.upstream.ttl_seconds

    async def _local(self, repository: RepositoryRow | None, reference: str) -> ManifestRow | None:
        if repository is None:
            return None
        with contextlib.suppress(ManifestUnknown):
            return await self.manifests.get(repository, reference)
        return None

    async def _store(
        self, route: Route, name: str, manifest: Manifest | None, tag: str | None
    ) -> None:
        """Store `manifest` (tagged `tag`) in the cache repository `name`, made if need be;
        record that `tag` was checked upstream now."""
        db, now = self.store.db, self.clock()
        moved = False
        async with db.write() as conn:
            repository = await self._cache_repository(conn, route, name, now)
            if manifest is not None:
                moved = await self._put(conn, repository, manifest, tag)
            if tag is not None:
                await proxy_rows.set_fetched(db, conn, repository.id, tag, now)
        self.routes.cached(repository)
        if tag is not None:
            self._fetched.put((repository.id, tag), now)
        if moved:  # after the commit, so no reader re-caches where the tag pointed before
            self.manifests.forget_cached()

    async def _put(
        self, conn: AsyncConnection, repository: RepositoryRow, manifest: Manifest, tag: str | None
    ) -> bool:
        """Store the manifest's exact bytes with what it references (not checked: see the
        module); point `tag` at it. Whether the tag moved."""
        db = self.store.db
        await repository_rows.lock(conn, repository.id)  # as a push does: collection waits
        await manifest_rows.put(db, conn, repository.id, manifest)
        if tag is None:
            return False
        previous = await repository_rows.set_tag(conn, repository.id, tag, str(manifest.digest))
        return previous != str(manifest.digest)

    async def _cache_repository(
        self, conn: AsyncConnection, route: Route, name: str, now: float
    ) -> RepositoryRow:
        """The cache repository `name`, made (with the proxy's visibility) if it is new."""
        db = self.store.db
        repository = await repository_rows.by_name(conn, name)
        if repository is None:
            repository = await create_in(db, conn, name)
            if repository.visibility != route.upstream.visibility:
                visibility = route.upstream.visibility
                await repository_rows.update_settings(conn, repository.id, visibility)
                repository = dataclasses.replace(repository, visibility=visibility)
        elif route.mirror and not await proxy_rows.is_cache(conn, repository.id):
            raise NameUnknown(
                f"repository {name!r} was pushed here meanwhile: it is no cache of "
                f"{route.describe()}"
            )
        await proxy_rows.mark_cache(db, conn, repository.id, now)
        return repository

    # --- blobs -----------------------------------------------------------------------------

    async def blob(
        self, name: str, repository: RepositoryRow | None, digest: Digest, fetch: bool = True
    ) -> BlobInfo | None:
        """The blob in repository `name`, fetched from upstream and stored when it is not
        here (with `fetch` false, only its size is asked upstream: a HEAD); None when `name`
        is not a proxied repository. `BlobUnknown` when upstream does not have it either."""
        route = await self.routes.pull_route(name, repository)
        if route is None:
            return None
        with contextlib.suppress(BlobUnknown):
            return await self.blobs.stat(repository, digest)
        if not fetch:
            return BlobInfo(digest, await self._upstream_size(route, name, digest), None)

        async def start() -> None:
            await self._fetch_blob(route, name, digest)

        await self._fly(("blob", name, str(digest)), start, route, name, f"blob {digest}")
        return await self.blobs.stat(await self._existing(name), digest)

    async def _upstream_size(self, route: Route, name: str, digest: Digest) -> int:
        """The size upstream gives the blob; `BlobUnknown` when it has none."""
        detail = {"digest": str(digest)}
        try:
            with upstream_errors(f"blob {digest} of {route.describe()}", BlobUnknown, detail):
                found = await self.client(route.upstream).blob_head(
                    route.remote, Descriptor(OCTET_STREAM, digest, -1)
                )
        except UpstreamDown as exc:
            raise self._unavailable(route, name, f"blob {digest}", exc) from exc
        if found is None:
            raise BlobUnknown(f"blob {digest} is not known to {route.describe()}", detail)
        if found.size < 0:
            raise UpstreamUnavailable(f"{route.describe()} did not give the size of blob {digest}")
        return found.size

    async def _fetch_blob(self, route: Route, name: str, digest: Digest) -> None:
        """Make the blob visible in the cache repository: linked when this registry has its
        bytes already (upstream confirmed it has the blob), else streamed from upstream into
        an upload session, verified, then linked."""
        size = await self._upstream_size(route, name, digest)
        async with self.store.db.write() as conn:
            repository = await self._cache_repository(conn, route, name, self.clock())
        self.routes.cached(repository)
        if await self._link_stored(repository, digest, size):
            return
        body = self.client(route.upstream).blob_get(
            route.remote, Descriptor(OCTET_STREAM, digest, size)
        )
        upload_id = await self.uploads.start(repository)
        try:
            with upstream_errors(f"blob {digest} of {route.describe()}", BlobUnknown):
                await self.uploads.complete(repository, upload_id, digest, body, size)
        except BaseException:
            with contextlib.suppress(OciError):  # gone already after a digest mismatch
                await self.uploads.cancel(repository, upload_id)
            raise
        log.info("fetched blob %s (%d bytes) of %s from %s", digest, size, name, route.describe())

    async def _link_stored(self, repository: RepositoryRow, digest: Digest, size: int) -> bool:
        """Link the blob when its bytes are here already; whether they were."""
        db = self.store.db
        async with db.write() as conn:
            # under the digest's lock, a blob row means its bytes are in place (see gc.py)
            if await content.lock_blob(db, conn, str(digest)) != size:
                return False
            if not await self.store.blobs.holds(digest, size):
                return False  # fetched again: the upload replaces the file (see Uploads)
            await content.link_blob(db, conn, repository.id, str(digest), size)
        return True

    # --- shared ----------------------------------------------------------------------------

    async def _fly(
        self,
        key: Hashable,
        start: Callable[[], Coroutine[Any, Any, None]],
        route: Route,
        name: str,
        what: str,
    ) -> None:
        """Run `start` once for every caller asking for `key`; upstream failures become
        `UpstreamUnavailable` (there is nothing cached to serve instead)."""
        try:
            await self._flights.run(key, start)
        except UpstreamDown as exc:
            raise self._unavailable(route, name, what, exc) from exc

    def _unavailable(self, route: Route, name: str, what: str, exc: Exception) -> OciError:
        return UpstreamUnavailable(
            f"{what} of {name!r} is not cached and its upstream {route.upstream.url} cannot "
            f"answer now ({exc}); try again later"
        )

    async def _existing(self, name: str) -> RepositoryRow:
        repository = await self.repositories.get(name)
        if repository is None:
            raise NameUnknown(f"repository {name!r} is not known to this registry", {"name": name})
        return repository
