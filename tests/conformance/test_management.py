"""OCI distribution-spec v1.1 conformance, workflow "Content Management"
(conformance/04_management_test.go): deleting tags, manifests and blobs.

One test per Go `g.Specify`, in the Go order; `tagToDelete` and `numTags` of the Go workflow
live in `conformance.state`. The Go suite lets a registry refuse deletes (400 UNSUPPORTED or 405
for tags, 405 for blobs, a manifest still there afterwards); Dockyard supports every delete, so
those allowances are dropped and the delete itself must succeed.
"""

from __future__ import annotations

import json

import pytest

from conformance.suite import (
    MANIFEST_MEDIA_TYPE,
    OCTET_STREAM,
    TEST_TAG_NAME,
    Conformance,
    Response,
    expect_2xx,
    expect_status,
)

pytestmark = [pytest.mark.peers, pytest.mark.asyncio(loop_scope="module")]


def _tags(resp: Response) -> list[str]:
    """`json.Unmarshal([]byte(resp.String()), tagList)`: must parse."""
    try:
        doc = json.loads(resp.body)
    except ValueError as exc:
        raise AssertionError(f"tags list is not JSON ({exc}): {resp.describe()}") from None
    assert isinstance(doc, dict), resp.describe()
    return list(doc.get("tags") or [])


async def _upload_blob(c: Conformance, content: bytes, digest: str) -> None:
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/")
    resp = await c.client.do(
        "PUT",
        resp.relative_location(),
        query={"digest": digest},
        headers={"Content-Length": str(len(content)), "Content-Type": OCTET_STREAM},
        body=content,
    )
    expect_2xx(resp)


# --- Content Management / Setup -------------------------------------------------------------------


async def test_management_setup_populate_registry_with_test_config_blob(
    conformance: Conformance,
) -> None:
    """Content Management/Setup: "Populate registry with test config blob" (configs[3])."""
    d = conformance.data
    await _upload_blob(conformance, d.configs[3].content, d.configs[3].digest)


async def test_management_setup_populate_registry_with_test_layer(
    conformance: Conformance,
) -> None:
    """Content Management/Setup: "Populate registry with test layer"."""
    d = conformance.data
    await _upload_blob(conformance, d.layer_blob_data, d.layer_blob_digest)


async def test_management_setup_populate_registry_with_test_tag(conformance: Conformance) -> None:
    """Content Management/Setup: "Populate registry with test tag" (manifests[3] as tagtest0)."""
    c, d = conformance, conformance.data
    c.state["tag_to_delete"] = TEST_TAG_NAME
    resp = await c.client.do(
        "PUT",
        "/v2/<name>/manifests/<reference>",
        reference=TEST_TAG_NAME,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        body=d.manifests[3].content,
    )
    expect_2xx(resp)


async def test_management_setup_count_tags_before_delete(conformance: Conformance) -> None:
    """Content Management/Setup: "Check how many tags there are before anything gets deleted"."""
    c = conformance
    resp = await c.client.do("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    c.state["num_tags"] = len(_tags(resp))


# --- Content Management / Manifest delete ---------------------------------------------------------


async def test_management_delete_manifest_by_tag_202(conformance: Conformance) -> None:
    """Content Management/Manifest delete: "DELETE request to manifest tag should return 202,
    unless tag deletion is disallowed (400/405)" -- Dockyard allows it: 202 only."""
    c = conformance
    tag = c.state.get("tag_to_delete", "")
    assert tag, "tagToDelete is empty (the setup did not run)"
    resp = await c.client.do("DELETE", "/v2/<name>/manifests/<reference>", reference=tag)
    expect_status(resp, 202)


async def test_management_delete_manifest_by_digest_202_unless_already_deleted(
    conformance: Conformance,
) -> None:
    """Content Management/Manifest delete: "DELETE request to manifest (digest) should yield 202
    response unless already deleted"."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=conformance.data.manifests[3].digest
    )
    expect_status(resp, 202, 404)


async def test_management_get_deleted_manifest_404(conformance: Conformance) -> None:
    """Content Management/Manifest delete: "GET request to deleted manifest URL should yield 404
    response, unless delete is disallowed" -- Dockyard allows it: 404 only (Go also takes 200)."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/manifests/<digest>", digest=conformance.data.manifests[3].digest
    )
    expect_status(resp, 404)


async def test_management_tags_list_reflects_manifest_deletion(conformance: Conformance) -> None:
    """Content Management/Manifest delete: "GET request to tags list should reflect manifest
    deletion"."""
    c = conformance
    assert "num_tags" in c.state, "numTags was not counted (the setup did not run)"
    resp = await c.client.do("GET", "/v2/<name>/tags/list")
    expect_status(resp, 200)
    assert len(_tags(resp)) < c.state["num_tags"], resp.describe()


# --- Content Management / Blob delete -------------------------------------------------------------


async def test_management_delete_blob_202(conformance: Conformance) -> None:
    """Content Management/Blob delete: "DELETE request to blob URL should yield 202 response"
    (config blob, then layer blob; Go: 202, 404 or 405 -- 405 dropped)."""
    c, d = conformance, conformance.data
    resp = await c.client.do("DELETE", "/v2/<name>/blobs/<digest>", digest=d.configs[3].digest)
    expect_status(resp, 202, 404)
    resp = await c.client.do("DELETE", "/v2/<name>/blobs/<digest>", digest=d.layer_blob_digest)
    expect_status(resp, 202, 404)


async def test_management_get_deleted_blob_404(conformance: Conformance) -> None:
    """Content Management/Blob delete: "GET request to deleted blob URL should yield 404
    response" (Go runs it only when blob deletes are allowed; they always are here)."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=conformance.data.configs[3].digest
    )
    expect_status(resp, 404)
