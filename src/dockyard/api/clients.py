"""Which client a request comes from, as the limits count clients."""

from __future__ import annotations

import ipaddress

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from starlette.types import ASGIApp, Receive, Scope, Send


def client_address(scope: Scope) -> str:
    """The peer's address; an IPv6 peer is its /64, since one host is given a whole /64.

    This is the address of the connection's other end, unless that is a trusted proxy
    (`TrustedProxies`): then the client its `X-Forwarded-For` names.
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


class TrustedProxies:
    """Requests that come through a proxy of `trusted` (addresses and networks) are the
    client's its `X-Forwarded-For` names (the last address there that is not itself a trusted
    proxy), and their scheme the one `X-Forwarded-Proto` says. From anyone else those headers
    mean nothing: a client cannot pick the address its limits count against."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = wrap_asgi_with_proxy_headers(app, trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
