"""The Host grammar the edge accepts before it repeats a Host back to a client."""

from __future__ import annotations

import pytest

from dockyard.api.hosts import valid_host


@pytest.mark.parametrize(
    "host",
    [
        "registry.example.com",
        "registry.example.com:5000",
        "localhost",
        "127.0.0.1:5000",
        "[::1]",
        "[::1]:5000",
        "[2001:db8::1]:443",
        "registry_1",  # a compose service name
        "EXAMPLE.com.",
    ],
)
def test_valid_hosts(host: str) -> None:
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        'evil", error="x',
        "evil,realm=x",
        "a b",
        "a\tb",
        "a\r\nb",
        "évil.example",
        "host:port",
        "host:123456",
        "[::1",
        "::1",
        "[::1]x",
        "-",
        "a" * 300,
        "user@host",
        "host/path",
    ],
)
def test_invalid_hosts(host: str) -> None:
    assert not valid_host(host)
