"""What every registry service works with: the database and the content store."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.metadata.db import Database
from dockyard.storage.blobs import BlobStore
from dockyard.storage.uploads import UploadStore


@dataclass(frozen=True, slots=True)
class Store:
    db: Database
    blobs: BlobStore
    uploads: UploadStore
