"""What the edge works with, built by `app.py` and kept on `app.state.dockyard`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.api.distribution.blobsend import BlobLinks
from dockyard.auth.accounts import Accounts
from dockyard.auth.tokens import TokenIssuer
from dockyard.hub.service import Hub
from dockyard.registry.service import Registry

if TYPE_CHECKING:
    from dockyard.config import Settings


@dataclass
class EdgeState:
    settings: Settings
    registry: Registry
    accounts: Accounts
    issuer: TokenIssuer
    hub: Hub
    blob_links: BlobLinks | None = None  # set while a blob sender listens (`blob_listen`)
