"""Which URLs a webhook may call: checked when a webhook is saved and again at every delivery.

A webhook makes the server send requests to an address a user chose, so it must not become a
way into what only the server can reach: cloud metadata services and link-local addresses are
always refused; loopback and private networks only when the site allows them
(`webhook_allow_private`). An IPv6 address that carries an IPv4 one (mapped, translated,
compatible, NAT64, 6to4, Teredo, ISATAP) is judged by both. A host name is judged by every
address it resolves to: when saved, and at every delivery by the connection's own lookup
(`GuardedResolver`; a name may be re-pointed after it was saved), so the addresses checked are
the ones connected to and a delivery looks the name up once.
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
_ALLOW_HINT = "set webhook_allow_private: true in the server settings to allow it"

# IPv6 forms that carry an IPv4 address and lead to it (through the kernel, a translator or a
# tunnel), so the IPv4 address is judged too.
_COMPATIBLE = ip_network("::/96")  # IPv4-compatible (deprecated; Linux's sit0 still routes it)
_TRANSLATED = ip_network("::ffff:0:0:0/96")  # IPv4-translated (SIIT, RFC 2765)
_NAT64 = ip_network("64:ff9b::/96")  # NAT64 well-known prefix (RFC 6052)
_NAT64_LOCAL = ip_network("64:ff9b:1::/48")  # NAT64 local use (RFC 8215), any RFC 6052 length
_SIXTOFOUR = ip_network("2002::/16")
_ISATAP_ID = 0x00005EFE  # the interface identifier's high half, u/g bits masked (RFC 5214)
# Forms that mean nothing but their IPv4 address: whether they are private is its question.
_ONLY_IPV4 = (_COMPATIBLE, _TRANSLATED, _NAT64, _SIXTOFOUR, ip_network("::ffff:0:0/96"))
# Not globally reachable (IANA), though Python 3.11's ipaddress calls it global.
_NOT_GLOBAL = (_NAT64_LOCAL,)
# RFC 6052 section 2.2: where the IPv4 address sits for each prefix length, as (first bit,
# bits) pieces of the 128-bit address; bits 64-71 (the "u" octet) are always skipped.
_RFC6052_PIECES = {
    48: ((48, 16), (72, 16)),
    56: ((56, 8), (72, 24)),
    64: ((72, 32),),
    96: ((96, 32),),
}


class WebhookUrlRefused(Invalid, ValueError):
    """A URL a webhook may not call; the message says why and what would be accepted."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a webhook URL points: scheme, host (lowercase, no trailing dot) and port."""

    scheme: str
    host: str
    port: int


def forbidden_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may.

    An IPv6 address that embeds an IPv4 one (see `embedded_ipv4`) is refused when either is.
    """
    embedded = embedded_ipv4(address)
    for candidate in (address, *embedded):
        reason = _never_reason(candidate)
        if reason is not None:
            return _naming(address, candidate, reason)
    if allow_private:
        return None
    only_ipv4 = embedded and any(address in network for network in _ONLY_IPV4)
    for candidate in embedded if only_ipv4 else (address, *embedded):
        if not _is_global(candidate):
            kind = "a loopback" if candidate.is_loopback else "a private or reserved"
            return _naming(
                address, candidate, f"{kind} address; {_ALLOW_HINT}, or use a public URL"
            )
    return None


def _never_reason(address: IPAddress) -> str | None:
    """Why no site may let webhooks call `address` (None if some may)."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service address, which webhooks never call"
    if any(address in network for network in _LINK_LOCAL):
        return "a link-local address (169.254.0.0/16, fe80::/10), which webhooks never call"
    if address.is_multicast:
        return "a multicast address, which webhooks cannot call"
    return None


def _naming(address: IPAddress, candidate: IPAddress, reason: str) -> str:
    return reason if candidate == address else f"it embeds {candidate}, {reason}"


def _is_global(address: IPAddress) -> bool:
    return address.is_global and not any(address in network for network in _NOT_GLOBAL)


def embedded_ipv4(address: IPAddress) -> list[IPv4Address]:
    """Every IPv4 address an IPv6 address carries and may lead to, in the forms that embed one.

    IPv4-mapped and -translated, IPv4-compatible (but not `::` and `::1`), NAT64 (the
    well-known /96; the local-use /48 at each prefix length RFC 6052 allows in it), 6to4,
    Teredo (its server and its client, whose address is stored inverted) and ISATAP.
    """
    if not isinstance(address, IPv6Address):
        return []
    value = int(address)
    low = IPv4Address(value & 0xFFFFFFFF)
    found: list[IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    elif address in _TRANSLATED or address in _NAT64 or (address in _COMPATIBLE and value > 1):
        found.append(low)
    elif address in _NAT64_LOCAL:
        found.extend(_rfc6052(value, length) for length in _RFC6052_PIECES)
    elif address.sixtofour is not None:
        found.append(address.sixtofour)
    elif address.teredo is not None:
        found.extend(address.teredo)  # (server, client), the client's bits already inverted back
    if (value >> 32) & 0xFCFFFFFF == _ISATAP_ID:
        found.append(low)
    return list(dict.fromkeys(found))


def _rfc6052(value: int, prefix_length: int) -> IPv4Address:
    """The IPv4 address embedded in `value` under a NAT64 prefix of `prefix_length` bits."""
    ipv4 = 0
    for first, bits in _RFC6052_PIECES[prefix_length]:
        ipv4 = (ipv4 << bits) | ((value >> (128 - first - bits)) & ((1 << bits) - 1))
    return IPv4Address(ipv4)


def check_address(host: str, address: str, *, allow_private: bool) -> None:
    """Refuse `address` (which `host` resolved to) when a webhook may not connect to it."""
    parsed = ip_address(address.split("%", 1)[0])  # an IPv6 scope ("%eth0") is not part of it
    reason = forbidden_reason(parsed, allow_private=allow_private)
    if reason is not None:
        where = host if _is_ip(host) else f"{host} resolves to {parsed}"
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


def guarded_sessions(
    allow_private: bool, inner: Callable[[], AbstractResolver] | None = None
) -> SessionFactory:
    """Sessions that connect only to addresses a webhook may reach (see GuardedResolver).

    `inner` makes the resolver that does the lookups (aiohttp's threaded one by default).
    """

    def make() -> aiohttp.ClientSession:
        resolver = GuardedResolver(allow_private=allow_private, inner=inner() if inner else None)
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver))

    return make
