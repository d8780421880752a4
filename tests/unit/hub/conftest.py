"""Fixtures of the webhook tests (see `support.webhooks`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from dockyard.hub.webhooks import Webhooks
from dockyard.metadata.db import Database
from support.webhooks import Receiver, service, serving_receiver


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that records every request (see `Receiver`)."""
    async with serving_receiver() as recorder:
        yield recorder


@pytest.fixture
def hooks(db: Database) -> Webhooks:
    return service(db)
