"""Which URLs a webhook may call: schemes, metadata and link-local addresses, private networks
only when allowed, and host names judged by every address they resolve to."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from dockyard.hub.webhook_urls import (
    GuardedResolver,
    Resolve,
    WebhookTarget,
    WebhookUrlRefused,
    check_resolved,
    parse_webhook_url,
)

ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    # every IPv6 form that embeds 169.254.169.254 (or another link-local address)
    "http://[::169.254.169.254]/",  # IPv4-compatible
    "http://[::a9fe:a9fe]/",
    "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated (SIIT)
    "http://[::ffff:0:169.254.169.254]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",  # NAT64 local use, /96
    "http://[64:ff9b:1:a9fe:a9:fe00::]/",  # NAT64 local use, /48 (RFC 6052 layout)
    "http://[64:ff9b:1:a9:fea9:fe00::]/",  # /56
    "http://[64:ff9b:1:0:a9:fea9:fe00:0]/",  # /64
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2001:0:a9fe:a9fe::1]/",  # Teredo, its server
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, its client (stored inverted)
    "http://[2606:2800:220:1:0:5efe:a9fe:a9fe]/",  # ISATAP
    "http://[2606:2800:220:1:200:5efe:a9fe:a9fe]/",
    "http://[2002:a9fe:0101::]/",  # 6to4 of 169.254.1.1
    "http://[::ffff:0:e000:1]/",  # 224.0.0.1, multicast
    "http://224.0.0.1/",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://example.com/",
    "//example.com/hook",
    "http:///no-host",
    "http://exa mple.com/",
    "http://example.com:99999/",
    "http://example.com/\r\nX-Injected: 1",
]
PRIVATE = [
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.10/hook",
    "http://0.0.0.0/hook",
    "http://[fd12:3456::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    # IPv6 forms that embed a loopback or private IPv4 address
    "http://[::127.0.0.1]/hook",
    "http://[::7f00:1]/hook",
    "http://[::ffff:0:7f00:1]/hook",
    "http://[64:ff9b::10.0.0.1]/hook",
    "http://[64:ff9b:1::7f00:1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[2002:c0a8:0101::1]/hook",  # 6to4 of 192.168.1.1
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",  # Teredo client 10.0.0.1
    "http://[2606:2800:220:1:0:5efe:a00:1]/hook",  # ISATAP of 10.0.0.1
]
# the same forms around a public IPv4 address lead to that address and may be called
PUBLIC_EMBEDDED = [
    "http://[::ffff:93.184.216.34]/hook",
    "http://[::ffff:0:5db8:d822]/hook",
    "http://[64:ff9b::93.184.216.34]/hook",
    "http://[2002:5db8:d822::1]/hook",
    "http://[2606:2800:220:1:200:5efe:5db8:d822]/hook",
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_refused_whatever_the_site_allows(url: str, allow_private: bool) -> None:
    with pytest.raises(WebhookUrlRefused):
        parse_webhook_url(url, allow_private=allow_private)


@pytest.mark.parametrize("url", PRIVATE)
def test_loopback_and_private_networks_only_when_allowed(url: str) -> None:
    with pytest.raises(WebhookUrlRefused, match="webhook_allow_private"):
        parse_webhook_url(url, allow_private=False)
    parse_webhook_url(url, allow_private=True)


@pytest.mark.parametrize("url", PUBLIC_EMBEDDED)
def test_embedded_public_addresses_may_be_called(url: str) -> None:
    assert parse_webhook_url(url, allow_private=False).scheme == "http"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::169.254.169.254]/", "refused: ::169.254.169.254, it embeds 169.254.169.254"),
        ("http://[2002:7f00:1::]/", "it embeds 127.0.0.1, a loopback address"),
    ],
)
def test_refusals_name_the_embedded_address(url: str, says: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_webhook_url(url, allow_private=False)
    assert says in str(refused.value)


def test_public_urls_give_their_target() -> None:
    assert parse_webhook_url(
        "https://ci.example.com/hooks/dhi-sync", allow_private=False
    ) == WebhookTarget("https", "ci.example.com", 443)
    assert parse_webhook_url(
        "HTTP://User:pw@93.184.216.34:8080/x?y=1", allow_private=False
    ) == WebhookTarget("http", "93.184.216.34", 8080)


def test_messages_say_why_and_what_to_do() -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_webhook_url("ftp://example.com/", allow_private=False)
    assert "http:// or https://" in str(refused.value)
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_webhook_url("http://169.254.169.254/", allow_private=True)
    assert "metadata" in str(refused.value)
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_webhook_url("http://127.0.0.1/", allow_private=False)
    assert "loopback" in str(refused.value)
    assert "webhook_allow_private: true" in str(refused.value)
    assert isinstance(refused.value, ValueError)


def resolving_to(*addresses: str) -> Resolve:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def test_a_name_is_refused_if_any_address_it_resolves_to_is_forbidden() -> None:
    public = resolving_to("93.184.216.34")
    target = await check_resolved(
        "https://hooks.example.com/x",
        allow_private=False,
        resolve=public,
    )
    assert target.host == "hooks.example.com"
    for addresses, allow in [
        (("93.184.216.34", "10.0.0.5"), False),
        (("93.184.216.34", "169.254.169.254"), True),
        (("2606:2800:220:1::1", "fe80::1%eth0"), True),
    ]:
        with pytest.raises(WebhookUrlRefused, match="resolves to"):
            await check_resolved(
                "https://hooks.example.com/x",
                allow_private=allow,
                resolve=resolving_to(*addresses),
            )


async def test_localhost_is_refused_by_resolution_unless_private_is_allowed() -> None:
    with pytest.raises(WebhookUrlRefused, match=r"localhost resolves to .*loopback"):
        await check_resolved("http://localhost:9000/hook", allow_private=False)
    target = await check_resolved("http://localhost:9000/hook", allow_private=True)
    assert target.port == 9000


async def test_a_name_that_resolves_to_nothing_is_an_os_error() -> None:
    with pytest.raises(OSError, match="no address"):
        await check_resolved(
            "http://empty.example/",
            allow_private=False,
            resolve=resolving_to(),
        )


class FixedResolver(AbstractResolver):
    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


async def test_the_connection_resolver_refuses_what_the_check_refuses() -> None:
    """The session's own lookups are checked, so a name re-pointed after the check (DNS
    rebinding) still cannot reach a forbidden address."""
    guarded = GuardedResolver(allow_private=False, inner=FixedResolver("169.254.169.254"))
    with pytest.raises(WebhookUrlRefused, match="metadata"):
        await guarded.resolve("rebound.example", 80)
    for embedded in ("::169.254.169.254", "::ffff:0:a9fe:a9fe", "64:ff9b:1::a9fe:a9fe"):
        guarded = GuardedResolver(allow_private=True, inner=FixedResolver(embedded))
        with pytest.raises(WebhookUrlRefused, match=r"embeds 169\.254\.169\.254"):
            await guarded.resolve("rebound.example", 80)
    for embedded in ("::127.0.0.1", "2002:7f00:1::"):
        guarded = GuardedResolver(allow_private=False, inner=FixedResolver(embedded))
        with pytest.raises(WebhookUrlRefused, match=r"embeds 127\.0\.0\.1, a loopback"):
            await guarded.resolve("rebound.example", 80)
    fine = GuardedResolver(allow_private=False, inner=FixedResolver("93.184.216.34"))
    assert (await fine.resolve("hooks.example.com", 443))[0]["host"] == "93.184.216.34"
