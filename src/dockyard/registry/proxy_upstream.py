"""Reaching a pull-through cache's upstream: one client per upstream, and its failures sorted
into "upstream does not have it" and "upstream cannot answer now"."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp

from dockyard.client.hosts import Client, SessionFactory, default_session
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import (
    ClientConfig,
    Credential,
    RegistrySettings,
    TLSMode,
    normalize_registry,
)
from dockyard.config import ProxyUpstream
from dockyard.oci.errors import OciError

# A client is waiting: fail over to the cached content soon rather than retry for long.
RETRY = RetryPolicy(attempts=2, base=0.2, cap=1.0)
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
# Upstream answers meaning "not here" (Docker Hub answers 401 for repositories it does not have).
_MISSING = frozenset({401, 403, 404})
_UNREACHABLE = (aiohttp.ClientError, ConnectionError, TimeoutError, OSError)


class UpstreamDown(Exception):
    """The upstream could not answer: unreachable, timed out, 5xx, 429, or a wrong answer."""


def registry_settings(upstream: ProxyUpstream) -> RegistrySettings:
    """The client settings of `upstream`: its TLS mode and credential."""
    credential = None
    if upstream.username is not None:
        credential = Credential(username=upstream.username, password=upstream.password or "")
    return RegistrySettings(
        name=normalize_registry(upstream.url),
        tls=TLSMode(upstream.tls_mode),
        credential=credential,
    )


def upstream_session(settings: RegistrySettings) -> aiohttp.ClientSession:
    """The client's default session with short connect and read timeouts: when an upstream is
    down, a waiting client should get the cached content soon."""
    return default_session(settings, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)


def upstream_client(
    upstream: ProxyUpstream, session_factory: SessionFactory | None = None
) -> RegistryClient:
    """A client for `upstream` alone (its own credential, quick retries); the caller closes it."""
    config = ClientConfig()
    config.set(registry_settings(upstream))
    return RegistryClient(
        Client(config, session_factory=session_factory or upstream_session, retry=RETRY)
    )


@contextlib.contextmanager
def upstream_errors(
    what: str, missing: type[OciError], detail: object = None, *, cached: bool = False
) -> Iterator[None]:
    """Raise `missing(...)` when upstream has no `what` (401, 403, 404), `UpstreamDown` when
    it could not answer; other errors pass.

    With something `cached`, only a 404 says it is gone: a refusal (401, 403) may as well be
    credentials that stopped working, and then serving the cached copy is the better answer.
    """
    try:
        yield
    except OciError as err:
        if err.status == 404 or (err.status in _MISSING and not cached):
            raise missing(f"{what} is not known upstream ({err.message})", detail) from err
        raise UpstreamDown(f"{what}: {err.message}") from err
    except _UNREACHABLE as exc:
        raise UpstreamDown(f"{what}: {type(exc).__name__}: {exc}") from exc
