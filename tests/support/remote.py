"""Clients for registries on loopback, shared by the client, target and copy tests."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pytest_asyncio

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from support.ocilayout import Image

TEST_TIMEOUT = 120.0
P = ParamSpec("P")
T = TypeVar("T")


def bounded(test: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Fail a test that runs longer than TEST_TIMEOUT instead of hanging the suite."""

    @functools.wraps(test)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        async with asyncio.timeout(TEST_TIMEOUT):
            return await test(*args, **kwargs)

    return run


def remote(host: str, credential: Credential | None = None, **settings: Any) -> RegistryClient:
    """A client for a loopback registry: plain HTTP, quick retries."""
    config = ClientConfig()
    config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED, credential=credential, **settings))
    return RegistryClient(Client(config, retry=RetryPolicy(attempts=4, base=0.05, cap=0.5)))


@dataclass
class Peer:
    """A registry under test and a client for it."""

    host: str
    registry: RegistryClient
    creds: str | None = None

    def ref(self, text: str) -> Reference:
        return Reference.parse(f"{self.host}/{text}")


Connect = Callable[..., RegistryClient]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Connect]:
    """Make clients for loopback hosts (see `remote`); all closed at teardown."""
    made: list[RegistryClient] = []

    def make(host: str, credential: Credential | None = None, **settings: Any) -> RegistryClient:
        registry = remote(host, credential, **settings)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        await registry.close()


async def push(peer: Peer, ref: Reference, image: Image) -> Manifest:
    """Push an image's blobs, then its manifest to `ref` (its tag, or by digest)."""
    for blob in image.blobs():
        desc = Descriptor.from_json(blob.descriptor())
        if await peer.registry.blob_head(ref, desc) is None:
            await peer.registry.blob_put(ref, desc, blob.data)
    manifest = parse_manifest(image.manifest.data)
    await peer.registry.manifest_put(ref, manifest)
    return manifest
