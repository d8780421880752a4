"""What every registry service works with: the database and the content store."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.metadata.db import Database
from dockyard.storage.blobs import BlobStore
from dockyard.storage.generation import Generation
from dockyard.storage.uploads import UploadStore


@dataclass(frozen=True, slots=True)
class Store:
    db: Database
    blobs: BlobStore
    uploads: UploadStore
    cache_seconds: float = 1.0  # how long other hosts' writes may go unseen (registry/cache.py)
    # shared by this host's workers: one stamp for content, one for accounts, so that a push
    # does not void every worker's verified credentials (each costs an argon2 check to redo)
    generation: Generation = field(default_factory=Generation)
    accounts_generation: Generation = field(default_factory=Generation)
