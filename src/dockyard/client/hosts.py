"""The `Client`: one aiohttp session and one `Transport` per registry host, made on first use and
closed together."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from types import TracebackType

import aiohttp

from dockyard.client.retry import Clock, RetryPolicy, Sleep
from dockyard.client.settings import (
    ClientConfig,
    Credential,
    RegistrySettings,
    TLSMode,
    docker_credentials,
    normalize_registry,
    resolve,
)
from dockyard.client.transport import Transport

SessionFactory = Callable[[RegistrySettings], aiohttp.ClientSession]
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0


def user_agent() -> str:
    try:
        return f"dockyard/{metadata.version('dockyard')}"
    except metadata.PackageNotFoundError:
        return "dockyard"


def ssl_context(settings: RegistrySettings) -> ssl.SSLContext | bool:
    """What aiohttp should do about TLS for `settings`: verify (with any extra CAs) or not."""
    if settings.tls is not TLSMode.ENABLED:
        return False  # insecure: no verification; disabled: plain http, never used
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    if settings.ca_pem:
        context.load_verify_locations(cadata=settings.ca_pem)
    return context


def default_session(
    settings: RegistrySettings,
    *,
    trust_env: bool = False,
    resolver: aiohttp.abc.AbstractResolver | None = None,
    agent: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> aiohttp.ClientSession:
    """A session for one registry: its TLS settings, raw bytes (no transparent decompression,
    digests are of what was sent), bounded connect and read timeouts, no overall timeout (a
    large blob takes as long as it takes); `resolver` and `agent` override name resolution and
    the User-Agent."""
    connector = aiohttp.TCPConnector(
        ssl=ssl_context(settings),
        limit=settings.req_concurrent or 100,
        ttl_dns_cache=300,
        resolver=resolver,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        trust_env=trust_env,
        headers={"User-Agent": agent or user_agent()},
    )


class Client:
    """Registry settings plus one session and transport per registry host.

    `config` holds settings and credentials (`ClientConfig.load()` reads the user's); `docker`
    is the fallback credentials by registry (default: none; `docker_credentials()` reads
    Docker's config file, see `Client.from_user_config`). `session_factory` makes the session
    for a registry: the seam tests use to talk to an app in process. Use as an async context
    manager, or call `close()`.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        docker: Mapping[str, Credential] | None = None,
        session_factory: SessionFactory | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config or ClientConfig()
        self.docker = dict(docker or {})
        self.retry = retry or RetryPolicy()
        self._session_factory = session_factory or default_session
        self._clock = clock
        self._sleep = sleep
        self._transports: dict[str, Transport] = {}

    @classmethod
    def from_user_config(
        cls, config_path: Path | None = None, docker_config: Path | None = None
    ) -> Client:
        """A client with the user's `registries.json` and Docker's credentials as fallback."""
        return cls(ClientConfig.load(config_path), docker=docker_credentials(docker_config))

    def settings(self, registry: str) -> RegistrySettings:
        """The settings (with credential) this client uses for `registry`."""
        return resolve(self.config, registry, self.docker)

    def transport(self, registry: str) -> Transport:
        """The transport for `registry`, made (with its session) on first use."""
        name = normalize_registry(registry)
        found = self._transports.get(name)
        if found is None:
            settings = self.settings(name)
            session = self._session_factory(settings)
            found = Transport(
                settings, session, retry=self.retry, clock=self._clock, sleep=self._sleep
            )
            self._transports[name] = found
        return found

    async def close(self) -> None:
        """Close every session this client made."""
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            await transport.session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
