"""The client a sync config asks for: its `creds` laid over the user's registry settings,
connections to each `hostname`, its `userAgent`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from dockyard.client.hosts import Client, SessionFactory, default_session
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import (
    ClientConfig,
    Credential,
    RegistrySettings,
    docker_credentials,
)
from dockyard.sync.model import SyncConfig


def sync_client_config(config: SyncConfig, base: ClientConfig | None = None) -> ClientConfig:
    """The user's registry settings (`base`, default: `registries.json` under
    `$DOCKYARD_CONFIG`) with the config's `creds` laid over them."""
    settings = (base if base is not None else ClientConfig.load()).model_copy(deep=True)
    for creds in config.creds:
        changes: dict[str, Any] = {}
        if creds.tls is not None:
            changes["tls"] = creds.tls
        if creds.regcert:
            changes["ca_pem"] = creds.regcert
        if creds.req_per_sec is not None:
            changes["req_per_sec"] = creds.req_per_sec
        if creds.req_concurrent is not None:
            changes["req_concurrent"] = creds.req_concurrent
        if creds.blob_chunk is not None:
            changes["blob_chunk"] = creds.blob_chunk
        if creds.user is not None or creds.password is not None:
            changes["credential"] = Credential(
                username=creds.user or "", password=creds.password or ""
            )
        settings.update(creds.registry, **changes)
    return settings


def sync_client(
    config: SyncConfig,
    base: ClientConfig | None = None,
    *,
    docker: Mapping[str, Credential] | None = None,
    retry: RetryPolicy | None = None,
) -> Client:
    """A `Client` with the settings `sync_client_config` gives, Docker's credentials as a
    fallback (unless `skipDockerConfig`), connections to each `creds` `hostname`, and the
    config's `userAgent`."""
    if docker is None:
        docker = {} if config.defaults.skip_docker_config else docker_credentials()
    routes = {c.registry: c.hostname for c in config.creds if c.hostname}
    agent = config.defaults.user_agent
    factory: SessionFactory | None = None
    if routes or agent:

        def make(settings: RegistrySettings) -> aiohttp.ClientSession:
            return _session(settings, routes.get(settings.name), agent)

        factory = make
    return Client(
        sync_client_config(config, base), docker=docker, session_factory=factory, retry=retry
    )


def _session(
    settings: RegistrySettings, hostname: str | None, agent: str | None
) -> aiohttp.ClientSession:
    """`hosts.default_session`, connecting to `hostname` for the registry's host when given."""
    resolver = _Redirect(settings.api_host, hostname) if hostname is not None else None
    return default_session(settings, resolver=resolver, agent=agent)


def _split_host(text: str) -> tuple[str, int | None]:
    """`host[:port]` (or `[v6]:port`) as host and port (None when not given)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return text, None


class _Redirect(AbstractResolver):
    """Resolves the registry's host (`name`) to `hostname` (regsync's `creds.hostname`), and
    every other host (token services) as usual."""

    def __init__(self, name: str, hostname: str) -> None:
        self.host, self.port = _split_host(name.lower())
        self.to_host, self.to_port = _split_host(hostname)
        self.inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower() == self.host and (self.port is None or port == self.port):
            found = await self.inner.resolve(self.to_host, self.to_port or port, family)
            for entry in found:
                entry["hostname"] = host
            return found
        return await self.inner.resolve(host, port, family)

    async def close(self) -> None:
        await self.inner.close()
