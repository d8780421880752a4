"""TLS settings against a real HTTPS server on 127.0.0.1 with a self-signed certificate:
verified with the registry's CA, refused without it (and not retried), skipped when insecure."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, RegistrySettings, TLSMode


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class HttpsRegistry:
    def __init__(self) -> None:
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_get("/v2/", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response({})


@pytest_asyncio.fixture
async def https(tmp_path: Path) -> AsyncIterator[tuple[str, Path, HttpsRegistry]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    registry = HttpsRegistry()
    server = TestServer(registry.app, host="127.0.0.1")
    await server.start_server(ssl=context)
    try:
        yield f"127.0.0.1:{server.port}", cert, registry
    finally:
        await server.close()


async def _ping(host: str, **settings: object) -> None:
    config = ClientConfig()
    config.set(RegistrySettings.model_validate({"name": host, **settings}))
    async with RegistryClient(Client(config, retry=RetryPolicy(attempts=3, base=0.01))) as client:
        await client.ping(host)


async def test_the_registry_ca_verifies_it(https: tuple[str, Path, HttpsRegistry]) -> None:
    host, cert, registry = https
    await _ping(host, tls=TLSMode.ENABLED, ca_file=cert)
    await _ping(host, tls=TLSMode.ENABLED, ca_pem=cert.read_text())
    assert registry.requests == 2


async def test_an_unknown_ca_is_refused_at_once(https: tuple[str, Path, HttpsRegistry]) -> None:
    host, _, registry = https
    with pytest.raises(ConnectionError, match=r"Certificate.*after 1 attempt\)"):
        await _ping(host, tls=TLSMode.ENABLED)
    assert registry.requests == 0


async def test_insecure_skips_verification(https: tuple[str, Path, HttpsRegistry]) -> None:
    host, _, registry = https
    await _ping(host, tls=TLSMode.INSECURE)
    assert registry.requests == 1
