"""The registry: one object giving the /v2 edge every service it needs."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.registry.blobs import Blobs
from dockyard.registry.context import Store
from dockyard.registry.manifests import Manifests
from dockyard.registry.referrers import Referrers
from dockyard.registry.repositories import Repositories
from dockyard.registry.uploads import Uploads


@dataclass(frozen=True, slots=True)
class Registry:
    store: Store
    repositories: Repositories
    blobs: Blobs
    uploads: Uploads
    manifests: Manifests
    referrers: Referrers

    def forget_cached(self) -> None:
        """Drop every cached read, after maintenance that bypassed the services (collection)."""
        self.repositories.forget_cached()
        self.blobs.forget_cached()
        self.manifests.forget_cached()

    @classmethod
    def over(cls, store: Store) -> Registry:
        return cls(
            store,
            Repositories(store),
            Blobs(store),
            Uploads(store),
            Manifests(store),
            Referrers(store),
        )
