"""Which client a request comes from, as the limits count clients."""

from __future__ import annotations

import ipaddress

from starlette.types import Scope


def client_address(scope: Scope) -> str:
    """The peer's address; an IPv6 peer is its /64, since one host is given a whole /64.

    This is the address of the connection's other end: behind a reverse proxy, every client
    shares the proxy's address.
    """
    client = scope.get("client")
    return client_of(str(client[0])) if client else "-"


def client_of(host: str) -> str:
    """Whom a peer address counts as: an IPv4 address (an IPv4-mapped one too) as it is, an
    IPv6 address as its /64; text that is no address, unchanged."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.partition("%")[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
