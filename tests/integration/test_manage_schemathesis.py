"""Schemathesis against the management API of a real `dockyard serve`, signed in as the site
admin: no answer is a 500, and every answer (status, content type, body) is one the OpenAPI
document describes.

The admin signs in with a Bearer token from /token: each organization created drops the
server's cache of verified Basic credentials, and argon2 on every request after that would
spend the time budget on password checks.

Deterministic (Hypothesis derandomized, no example database) and bounded: a few examples per
operation, positive and negative, so the whole run stays well under a minute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.datastructures import State

from dockyard.api.manage import create_manage_api
from support.inprocess import basic
from support.peers import DockyardServer, launch_dockyard, log_tail

EXAMPLES_PER_OPERATION = 25
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@dataclass
class Server:
    process: DockyardServer
    admin: dict[str, str]  # a Bearer token of the site admin


@pytest.fixture(scope="module")
def manage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole run, with an organization to find."""
    process = launch_dockyard(tmp_path_factory.mktemp("manage-api"))
    try:
        password = basic("admin", process.admin_password)
        issued = requests.get(f"{process.url}/token", headers=password, timeout=10)
        assert issued.status_code == 200, issued.text
        admin = {"Authorization": f"Bearer {issued.json()['token']}"}
        api = f"{process.url}/api/v1"
        created = requests.post(f"{api}/orgs", json={"name": "acme"}, headers=admin, timeout=10)
        assert created.status_code == 201, created.text
        _push(process.url, "acme/app", password)
        yield Server(process, admin)
    finally:
        process.stop()


def _push(url: str, repository: str, auth: dict[str, str]) -> None:
    """A one-layer image tagged `1`, so listings have something in them."""
    descriptors = {}
    for role, data in (("config", b"{}"), ("layer", b"layer")):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        pushed = requests.post(
            f"{url}/v2/{repository}/blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers={**auth, "Content-Type": "application/octet-stream"},
            timeout=10,
        )
        assert pushed.status_code == 201, pushed.text
        descriptors[role] = {"digest": digest, "size": len(data)}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **descriptors["config"],
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **descriptors["layer"]}],
    }
    tagged = requests.put(
        f"{url}/v2/{repository}/manifests/1",
        data=json.dumps(manifest),
        headers={**auth, "Content-Type": OCI_MANIFEST},
        timeout=10,
    )
    assert tagged.status_code == 201, tagged.text


@pytest.fixture(scope="module")
def manage_api(manage_server: Server) -> schemathesis.BaseSchema:
    """The document as the server serves it (base URL from its `servers`)."""
    return schemathesis.openapi.from_url(f"{manage_server.process.url}/api/v1/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the app's own document (collection needs them
    before a server runs; the test then uses the served document)."""
    document = create_manage_api(State()).openapi()
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), _operations())
def test_manage_api_conforms(
    manage_api: schemathesis.BaseSchema,
    manage_server: Server,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    """No 500s; every status, content type and body is the one the document describes."""

    @given(case=manage_api[path][method].as_strategy(mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def exchange(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=manage_server.admin, checks=CHECKS, timeout=30)

    try:
        exchange()
    except Exception:
        log = manage_server.process.log
        print(f"--- {log} ---\n{log_tail(log)}")
        raise
