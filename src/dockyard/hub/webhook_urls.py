"""Which URLs a webhook may call: checked when a webhook is saved and again at every delivery.

A webhook makes the server send requests to an address a user chose, so it must not become a
way into what only the server can reach: cloud metadata services and link-local addresses are
always refused; loopback and private networks only when the site allows them
(`webhook_allow_private`). A host name is judged by every address it resolves to, at delivery
time too (a name may be re-pointed after it was saved), and `GuardedResolver` makes the
connection itself use only addresses that passed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from dockyard.hub.errors import Invalid

IPAddress = IPv4Address | IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]
"""Resolve (host, port) to IP address strings."""
SessionFactory = Callable[[], aiohttp.ClientSession]
"""Makes the HTTP session one delivery is sent with (closed after it)."""

MAX_URL_LENGTH = 2048
SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal"})
METADATA_ADDRESSES = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_LINK_LOCAL = (ip_network("169.254.0.0/16"), ip_network("fe80::/10"))
_NAT64 = ip_network("64:ff9b::/96")
_ALLOW_HINT = "set webhook_allow_private: true in the server settings to allow it"


class WebhookUrlRefused(Invalid, ValueError):
    """A URL a webhook may not call; the message says why and what would be accepted."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a webhook URL points: scheme, host (lowercase, no trailing dot) and port."""

    scheme: str
    host: str
    port: int


def forbidden_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may."""
    for candidate in (address, *_embedded_ipv4(address)):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata service address, which webhooks never call"
        if any(candidate in network for network in _LINK_LOCAL):
            return "a link-local address (169.254.0.0/16, fe80::/10), which webhooks never call"
        if candidate.is_multicast:
            return "a multicast address, which webhooks cannot call"
    reached = _translated(address) or address
    if reached.is_global or allow_private:
        return None
    kind = "a loopback" if reached.is_loopback else "a private or reserved"
    return f"{kind} address; {_ALLOW_HINT}, or use a public URL"


def _translated(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, NAT64), if any."""
    if not isinstance(address, IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _embedded_ipv4(address: IPAddress) -> list[IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, NAT64, 6to4), judged like the IPv6."""
    if not isinstance(address, IPv6Address):
        return []
    return [a for a in (_translated(address), address.sixtofour) if a is not None]


def check_address(host: str, address: str, *, allow_private: bool) -> None:
    """Refuse `address` (which `host` resolved to) when a webhook may not connect to it."""
    parsed = ip_address(address.split("%", 1)[0])  # an IPv6 scope ("%eth0") is not part of it
    reason = forbidden_reason(parsed, allow_private=allow_private)
    if reason is not None:
        where = str(parsed) if host == str(parsed) else f"{host} resolves to {parsed}"
        raise WebhookUrlRefused(f"webhook URL refused: {where}, {reason}")


def parse_webhook_url(url: str, *, allow_private: bool) -> WebhookTarget:
    """The URL's target if it may be called, judged without DNS; else raise WebhookUrlRefused."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlRefused(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise WebhookUrlRefused("webhook URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"webhook URL {url!r} cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise WebhookUrlRefused(
            f"webhook URL {url!r} must start with http:// or https://, not {scheme or 'nothing'}"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlRefused(f"webhook URL {url!r} names no host")
    if host in METADATA_HOSTS:
        raise WebhookUrlRefused(
            f"webhook URL refused: {host} is a cloud metadata service, which webhooks never call"
        )
    if _is_ip(host):
        check_address(host, host, allow_private=allow_private)
    return WebhookTarget(scheme, host, port or (443 if scheme == "https" else 80))


def _is_ip(host: str) -> bool:
    try:
        ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (raises OSError when none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_resolved(
    url: str, *, allow_private: bool, resolve: Resolve = system_resolve
) -> WebhookTarget:
    """Check the URL, then every address its host resolves to (OSError if it resolves to none)."""
    target = parse_webhook_url(url, allow_private=allow_private)
    if not _is_ip(target.host):
        addresses = await resolve(target.host, target.port)
        if not addresses:
            raise OSError(f"{target.host} resolves to no address")
        for address in addresses:
            check_address(target.host, address, allow_private=allow_private)
    return target


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses forbidden addresses.

    A session for webhooks connects only to what this resolver returned, so the addresses that
    were checked are the ones used: a name re-pointed between the check and the connection
    (DNS rebinding) is refused here too.
    """

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"], allow_private=self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_sessions(allow_private: bool) -> SessionFactory:
    """Sessions that connect only to addresses a webhook may reach (see GuardedResolver)."""

    def make() -> aiohttp.ClientSession:
        resolver = GuardedResolver(allow_private=allow_private)
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))

    return make
