"""The registry: one object giving the /v2 edge every service it needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.auth.policy import Target
from dockyard.client.hosts import SessionFactory
from dockyard.config import ProxyUpstream
from dockyard.metadata.repositories import RepositoryRow
from dockyard.registry.blobs import Blobs
from dockyard.registry.context import Store
from dockyard.registry.indexes import IndexChecks
from dockyard.registry.manifests import Manifests
from dockyard.registry.proxy import PullThrough
from dockyard.registry.proxy_routes import CacheRepositories, ProxyRoutes
from dockyard.registry.referrers import Referrers
from dockyard.registry.repositories import Repositories, target
from dockyard.registry.uploads import Uploads


@dataclass(frozen=True, slots=True)
class Registry:
    store: Store
    repositories: Repositories
    blobs: Blobs
    uploads: Uploads
    manifests: Manifests
    referrers: Referrers
    pull_through: PullThrough | None = None  # set when upstreams are configured to pull through

    def forget_cached(self) -> None:
        """Drop every cached read, after maintenance that bypassed the services (collection)."""
        self.repositories.forget_cached()
        self.blobs.forget_cached()
        self.manifests.forget_cached()

    async def policy_target(self, name: str, repository: RepositoryRow | None) -> Target:
        """What the access policy decides on for `name` (a cache repository that the
        pull-through cache would make counts with the visibility it would get)."""
        if self.pull_through is None:
            return target(name, repository)
        return await self.pull_through.routes.policy_target(name, repository)

    async def close(self) -> None:
        """Stop what runs in the background (pull-through fetches) and close its sessions."""
        if self.pull_through is not None:
            await self.pull_through.close()

    @classmethod
    def over(
        cls,
        store: Store,
        proxies: Sequence[ProxyUpstream] = (),
        session_factory: SessionFactory | None = None,
        indexes: IndexChecks | None = None,
    ) -> Registry:
        """The registry over `store`; with `proxies`, pulls go through to those upstreams
        (reached with sessions from `session_factory`, default: `proxy_upstream`'s);
        `indexes` says which entries of a pushed index must exist (default: all)."""
        if not proxies:
            return cls(
                store,
                Repositories(store),
                Blobs(store),
                Uploads(store),
                Manifests(store, indexes),
                Referrers(store),
            )
        routes = ProxyRoutes(store, proxies)
        repositories = CacheRepositories(store, routes)
        blobs, uploads, manifests = Blobs(store), Uploads(store), Manifests(store, indexes)
        pull_through = PullThrough(
            routes, repositories, blobs, uploads, manifests, session_factory=session_factory
        )
        return cls(store, repositories, blobs, uploads, manifests, Referrers(store), pull_through)
