"""Helpers for client tests: a fake clock, and clients wired to an ASGI app in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp_asgi_connector import ASGIApplicationConnector

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode

HOST = "registry.test"


class FakeTime:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def asgi_sessions(app: Any) -> Callable[[RegistrySettings], aiohttp.ClientSession]:
    """A session factory whose sessions talk to `app` in process."""

    def make(settings: RegistrySettings) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=ASGIApplicationConnector(app), auto_decompress=False)

    return make


def make_client(
    app: Any,
    fake_time: FakeTime,
    *,
    credential: Credential | None = None,
    attempts: int = 4,
    **settings: Any,
) -> Client:
    """A `Client` for `HOST` (plain HTTP) served by `app`, sleeping on `fake_time`."""
    config = ClientConfig()
    config.set(RegistrySettings(name=HOST, tls=TLSMode.DISABLED, credential=credential, **settings))
    return Client(
        config,
        session_factory=asgi_sessions(app),
        retry=RetryPolicy(attempts=attempts, base=0.5, cap=4.0, rand=lambda: 1.0),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )


@pytest_asyncio.fixture
async def client_for(fake_time: FakeTime) -> AsyncIterator[Callable[..., Client]]:
    """Make `Client`s for apps (see `make_client`); their sessions close at teardown."""
    made: list[Client] = []

    def make(app: Any, **kwargs: Any) -> Client:
        client = make_client(app, fake_time, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest_asyncio.fixture
async def registry_for(
    fake_time: FakeTime,
) -> AsyncIterator[Callable[..., RegistryClient]]:
    """Make `RegistryClient`s for apps; their sessions close at teardown."""
    made: list[RegistryClient] = []

    def make(app: Any, **kwargs: Any) -> RegistryClient:
        registry = RegistryClient(make_client(app, fake_time, **kwargs))
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()
