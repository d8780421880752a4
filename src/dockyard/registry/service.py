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
