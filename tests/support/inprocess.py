"""Dockyard in the test's own process: the ASGI app and an aiohttp client, no socket.

`registry_app` runs once on SQLite and once on PostgreSQL (the same code on both databases);
`sqlite_app` runs on SQLite only, for tests about something other than the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp_asgi_connector import ASGIApplicationConnector
from argon2 import PasswordHasher
from starlette.applications import Starlette

from dockyard.api.state import EdgeState
from dockyard.app import create_app
from dockyard.auth import secrets
from dockyard.auth.policy import Role, Scope
from dockyard.client.hosts import SessionFactory
from dockyard.client.settings import RegistrySettings
from dockyard.config import Settings
from dockyard.metadata.db import Database

BASE = "http://dockyard.test"
ADMIN_PASSWORD = "admin-password"


Auth = dict[str, str]
"""Request headers carrying credentials (aiohttp deprecates its `auth=` parameter)."""


def basic(user: str, secret: str) -> Auth:
    return {"Authorization": aiohttp.encode_basic_auth(user, secret)}


@dataclass
class InProcess:
    """A running app: `client` talks to it; `state` reaches its services directly; `app`
    is the ASGI app (for sessions that reach it in process, see `session_factory`)."""

    client: aiohttp.ClientSession
    state: EdgeState
    settings: Settings
    admin: Auth
    app: Starlette

    def session_factory(self) -> SessionFactory:
        """Sessions that reach this app in process, whatever host they ask for."""

        def make(_settings: RegistrySettings) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=ASGIApplicationConnector(self.app), auto_decompress=False
            )

        return make

    async def user(self, name: str, password: str | None = None) -> Auth:
        password = password or f"{name}-password"
        await self.state.accounts.create_user(name, password)
        return basic(name, password)

    async def org(self, name: str, owner: str, members: dict[str, Role] | None = None) -> None:
        await self.state.accounts.create_org(name, owner)
        for user, role in (members or {}).items():
            await self.state.accounts.add_member(name, user, role)

    async def token(self, scope: Scope, user: str | None = None, org: str | None = None) -> Auth:
        token = await self.state.accounts.create_token("test", scope, user=user, org=org)
        return basic(org or user or "", token)

    async def push_blob(self, repo: str, data: bytes, auth: Auth | None = None) -> str:
        """Push `data` monolithically; return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        async with self.client.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers={**(auth or self.admin), "Content-Type": "application/octet-stream"},
        ) as resp:
            assert resp.status == 201, await resp.text()
        return digest

    async def push_image(
        self,
        repo: str,
        tag: str,
        layers: list[bytes] | None = None,
        auth: Auth | None = None,
        subject: dict[str, Any] | None = None,
        artifact_type: str | None = None,
    ) -> tuple[str, bytes]:
        """Push config, layers and an OCI manifest; return (manifest digest, manifest bytes)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        layers = [f"layer of {repo}:{tag}".encode()] if layers is None else layers
        descriptors = []
        for layer in layers:
            digest = await self.push_blob(repo, layer, auth)
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": len(layer),
                }
            )
        config_digest = await self.push_blob(repo, config, auth)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": descriptors,
        }
        if subject is not None:
            manifest["subject"] = subject
        if artifact_type is not None:
            manifest["artifactType"] = artifact_type
        raw = json.dumps(manifest).encode()
        async with self.client.put(
            f"/v2/{repo}/manifests/{tag}",
            data=raw,
            headers={
                **(auth or self.admin),
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            },
        ) as resp:
            assert resp.status == 201, await resp.text()
            return resp.headers["Docker-Content-Digest"], raw


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed in this process cost microseconds, not the production ~150 ms and 64 MiB
    (seconds each on a loaded machine, several per app: the admin at start, each user, each
    first login). No test here is about argon2's cost; `dockyard serve` subprocesses keep it."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(secrets, "_hasher", cheap, raising=False)


@contextlib.asynccontextmanager
async def running_app(
    data: Path,
    database_url: str | None = None,
    session_factory: SessionFactory | None = None,
    **overrides: Any,
) -> AsyncIterator[InProcess]:
    """Start the app (its lifespan included) on a data folder and give a client for it;
    `session_factory` reaches its upstream registries, `overrides` are further settings."""
    settings = Settings(
        data=data, database_url=database_url, admin_password=ADMIN_PASSWORD, **overrides
    )
    app = create_app(settings, session_factory)
    async with app.router.lifespan_context(app):
        connector = ASGIApplicationConnector(app)
        async with aiohttp.ClientSession(base_url=BASE, connector=connector) as client:
            admin = basic("admin", ADMIN_PASSWORD)
            yield InProcess(client, app.state.dockyard, settings, admin, app)


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.peers)])
async def registry_app(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[InProcess]:
    """Dockyard in process, once on SQLite and once on PostgreSQL."""
    url = request.getfixturevalue("postgres_database_url") if request.param == "postgres" else None
    async with running_app(tmp_path / "data", url) as running:
        yield running


@pytest_asyncio.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[InProcess]:
    """Dockyard in process on SQLite only."""
    async with running_app(tmp_path / "data") as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.peers)])
def db_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh database: once SQLite, once PostgreSQL."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'dockyard.db'}"


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The metadata database at `db_url`, migrated."""
    database = Database(db_url)
    await database.migrate()
    yield database
    await database.close()
