"""Fixtures for the OCI distribution-spec v1.1 conformance port.

Each workflow module (pull, push, discovery, management) gets its own Dockyard server, one
aiohttp session authenticated as `admin`, and a fresh copy of the Go suite's test data; the
tests of a module run in file order and share state through `conformance.state`, the way the
`Specify` blocks of one Go workflow share their closure variables.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from conformance.suite import Conformance, RegistryClient, SuiteData
from support.peers import DockyardServer, free_port, launch_dockyard, log_tail

# OCI_NAMESPACE / OCI_CROSSMOUNT_NAMESPACE of the Go suite.
NAMESPACE = os.environ.get("OCI_NAMESPACE", "myorg/myrepo")
CROSSMOUNT_NAMESPACE = os.environ.get("OCI_CROSSMOUNT_NAMESPACE", "myorg/other")
ORG = "myorg"

# Server log of each workflow module, attached to the report of a failing check.
_server_logs: dict[str, Path] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    log = _server_logs.get(item.module.__name__) if hasattr(item, "module") else None
    if report.failed and log is not None:
        tail = log_tail(log)
        if tail.strip():
            report.sections.append((f"dockyard log (tail of {log})", tail))
    return report


@dataclass
class ExternalRegistry:
    """A registry named by OCI_ROOT_URL (and OCI_USERNAME / OCI_PASSWORD), as in setup.go."""

    url: str
    username: str
    password: str


@pytest.fixture(scope="module", params=["default", "blob-listen"])
def conformance_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockyardServer | ExternalRegistry]:
    """One `dockyard serve` per workflow module (embedded defaults, fresh data folder), and
    once more with `--blob-listen`, where every blob GET is redirected to the sendfile
    listener (the suite's client follows, as Go's does).

    peers.py's `dockyard_server_factory` is function-scoped, so this builds the same
    `DockyardServer` itself, the way that factory does, for the whole module. With
    OCI_ROOT_URL set, the suite runs against that registry instead (nothing is started).
    """
    if root_url := os.environ.get("OCI_ROOT_URL"):
        if request.param != "default":
            pytest.skip("an external registry runs the suite once")
        yield ExternalRegistry(
            root_url, os.environ.get("OCI_USERNAME", ""), os.environ.get("OCI_PASSWORD", "")
        )
        return
    args, env = [], {}
    if request.param == "blob-listen":
        args = ["--blob-listen", f"127.0.0.1:{free_port()}"]
        env = {"DOCKYARD_BLOB_REDIRECT_MIN_BYTES": "0"}
    server = launch_dockyard(tmp_path_factory.mktemp("dockyard-conformance"), env=env, args=args)
    _server_logs[request.module.__name__] = server.log
    try:
        yield server
    finally:
        server.stop()


def _ensure_org(server: DockyardServer) -> None:
    """Create org `myorg` owned by admin; an org that already exists is fine."""
    result = server.cli("admin", "org", "create", ORG, "--owner", "admin", check=False)
    if result.returncode != 0:
        text = f"{result.stdout}{result.stderr}"
        if "exist" not in text.lower():
            warnings.warn(
                f"`dockyard admin org create {ORG}` exited {result.returncode}: {text}",
                stacklevel=1,
            )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def conformance(
    conformance_server: DockyardServer | ExternalRegistry,
) -> AsyncIterator[Conformance]:
    """The Go suite's `client` (reggie, as admin) plus its test data, for one workflow."""
    server = conformance_server
    if isinstance(server, ExternalRegistry):
        username, password = server.username, server.password
    else:
        _ensure_org(server)
        username, password = "admin", server.admin_password
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as s:
        client = RegistryClient(s, server.url, NAMESPACE, username, password)
        yield Conformance(
            client=client,
            data=SuiteData.build(),
            namespace=NAMESPACE,
            crossmount_namespace=CROSSMOUNT_NAMESPACE,
            server=server,
        )
