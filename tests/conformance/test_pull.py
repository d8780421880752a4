"""OCI distribution-spec v1.1 conformance, workflow "Pull" (conformance/01_pull_test.go).

One test per Go `g.Specify`, in the Go order; the test names carry the Go context and spec text.
"""

from __future__ import annotations

import pytest

from conformance.suite import (
    ERROR_CODES,
    MANIFEST_MEDIA_TYPE,
    OCTET_STREAM,
    TEST_TAG_NAME,
    Conformance,
    expect_2xx,
    expect_deleted,
    expect_deleted_or_gone,
    expect_status,
)

pytestmark = [pytest.mark.peers, pytest.mark.asyncio(loop_scope="module")]


async def _upload_blob(c: Conformance, content: bytes, digest: str) -> None:
    """POST an upload session, then PUT the whole blob to its Location (Setup steps)."""
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/")
    resp = await c.client.do(
        "PUT",
        resp.relative_location(),
        query={"digest": digest},
        headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(content))},
        body=content,
    )
    expect_2xx(resp)


# --- Pull / Setup ---------------------------------------------------------------------------------


async def test_pull_setup_populate_registry_with_test_blob_config0(
    conformance: Conformance,
) -> None:
    """Pull/Setup: "Populate registry with test blob" (configs[0])."""
    d = conformance.data
    await _upload_blob(conformance, d.configs[0].content, d.configs[0].digest)


async def test_pull_setup_populate_registry_with_test_blob_config1(
    conformance: Conformance,
) -> None:
    """Pull/Setup: "Populate registry with test blob" (configs[1])."""
    d = conformance.data
    await _upload_blob(conformance, d.configs[1].content, d.configs[1].digest)


async def test_pull_setup_populate_registry_with_test_layer(conformance: Conformance) -> None:
    """Pull/Setup: "Populate registry with test layer"."""
    d = conformance.data
    await _upload_blob(conformance, d.layer_blob_data, d.layer_blob_digest)


async def test_pull_setup_populate_registry_with_test_manifest_by_tag(
    conformance: Conformance,
) -> None:
    """Pull/Setup: "Populate registry with test manifest" (manifests[0] as tag tagtest0)."""
    d = conformance.data
    conformance.state["tag"] = TEST_TAG_NAME
    resp = await conformance.client.do(
        "PUT",
        "/v2/<name>/manifests/<reference>",
        reference=TEST_TAG_NAME,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        body=d.manifests[0].content,
    )
    expect_2xx(resp)


async def test_pull_setup_populate_registry_with_test_manifest_by_digest(
    conformance: Conformance,
) -> None:
    """Pull/Setup: "Populate registry with test manifest" (manifests[1] by digest)."""
    d = conformance.data
    resp = await conformance.client.do(
        "PUT",
        "/v2/<name>/manifests/<reference>",
        reference=d.manifests[1].digest,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        body=d.manifests[1].content,
    )
    expect_2xx(resp)


async def test_pull_setup_get_tag_name_from_environment() -> None:
    """Pull/Setup: "Get tag name from environment" (only when the setup is skipped)."""
    pytest.skip("RunOnlyIfNot(runPullSetup): the setup always runs against a fresh Dockyard")


# --- Pull / Pull blobs ----------------------------------------------------------------------------


async def test_pull_blobs_head_nonexistent_blob_404(conformance: Conformance) -> None:
    """Pull/Pull blobs: "HEAD request to nonexistent blob should result in 404 response"."""
    resp = await conformance.client.do(
        "HEAD", "/v2/<name>/blobs/<digest>", digest=conformance.data.dummy_digest
    )
    expect_status(resp, 404)


async def test_pull_blobs_head_existing_blob_200(conformance: Conformance) -> None:
    """Pull/Pull blobs: "HEAD request to existing blob should yield 200"."""
    d = conformance.data
    resp = await conformance.client.do(
        "HEAD", "/v2/<name>/blobs/<digest>", digest=d.configs[0].digest
    )
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        assert h == d.configs[0].digest, resp.describe()


async def test_pull_blobs_get_nonexistent_blob_404(conformance: Conformance) -> None:
    """Pull/Pull blobs: "GET nonexistent blob should result in 404 response"."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=conformance.data.dummy_digest
    )
    expect_status(resp, 404)


async def test_pull_blobs_get_existing_blob_200(conformance: Conformance) -> None:
    """Pull/Pull blobs: "GET request to existing blob URL should yield 200"."""
    d = conformance.data
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=d.configs[0].digest
    )
    expect_status(resp, 200)


# --- Pull / Pull manifests ------------------------------------------------------------------------


async def test_pull_manifests_head_nonexistent_manifest_404(conformance: Conformance) -> None:
    """Pull/Pull manifests: "HEAD request to nonexistent manifest should return 404"."""
    resp = await conformance.client.do(
        "HEAD",
        "/v2/<name>/manifests/<reference>",
        reference=conformance.data.nonexistent_manifest,
    )
    expect_status(resp, 404)


async def _head_manifest_by_digest(c: Conformance, index: int) -> None:
    d = c.data
    resp = await c.client.do(
        "HEAD",
        "/v2/<name>/manifests/<digest>",
        digest=d.manifests[index].digest,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        assert h == d.manifests[index].digest, resp.describe()


async def test_pull_manifests_head_manifest0_by_digest_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "HEAD request to manifest[0] path (digest) should yield 200
    response"."""
    await _head_manifest_by_digest(conformance, 0)


async def test_pull_manifests_head_manifest1_by_digest_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "HEAD request to manifest[1] path (digest) should yield 200
    response"."""
    await _head_manifest_by_digest(conformance, 1)


async def test_pull_manifests_head_manifest_by_tag_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "HEAD request to manifest path (tag) should yield 200 response"."""
    tag = conformance.state.get("tag", "")
    assert tag, "tag is empty (the setup did not run)"
    resp = await conformance.client.do(
        "HEAD",
        "/v2/<name>/manifests/<reference>",
        reference=tag,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(resp, 200)
    if h := resp.header("Docker-Content-Digest"):
        assert h == conformance.data.manifests[0].digest, resp.describe()


async def test_pull_manifests_get_nonexistent_manifest_404(conformance: Conformance) -> None:
    """Pull/Pull manifests: "GET nonexistent manifest should return 404"."""
    resp = await conformance.client.do(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference=conformance.data.nonexistent_manifest,
    )
    expect_status(resp, 404)


async def _get_manifest_by_digest(c: Conformance, index: int) -> None:
    resp = await c.client.do(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=c.data.manifests[index].digest,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(resp, 200)


async def test_pull_manifests_get_manifest0_by_digest_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "GET request to manifest[0] path (digest) should yield 200 response"."""
    await _get_manifest_by_digest(conformance, 0)


async def test_pull_manifests_get_manifest1_by_digest_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "GET request to manifest[1] path (digest) should yield 200 response"."""
    await _get_manifest_by_digest(conformance, 1)


async def test_pull_manifests_get_manifest_by_tag_200(conformance: Conformance) -> None:
    """Pull/Pull manifests: "GET request to manifest path (tag) should yield 200 response"."""
    tag = conformance.state.get("tag", "")
    assert tag, "tag is empty (the setup did not run)"
    resp = await conformance.client.do(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference=tag,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(resp, 200)


# --- Pull / Error codes ---------------------------------------------------------------------------


async def test_pull_error_codes_400_body_is_oci_conforming_json(conformance: Conformance) -> None:
    """Pull/Error codes: "400 response body should contain OCI-conforming JSON message".

    The Go test sets a body on this GET, but resty drops GET payloads, so none is sent.
    """
    resp = await conformance.client.do(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference="sha256:totallywrong",
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        body=conformance.data.invalid_manifest_content,
    )
    expect_status(resp, 400, 404)
    if resp.status == 400:
        errors = resp.errors()
        assert errors, resp.describe()
        assert errors[0].get("code") in ERROR_CODES, resp.describe()


# --- Pull / Teardown (deleteManifestBeforeBlobs = true) -------------------------------------------


async def test_pull_teardown_delete_manifest0(conformance: Conformance) -> None:
    """Pull/Teardown: "Delete manifest[0] created in setup" (Go also accepts 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=conformance.data.manifests[0].digest
    )
    expect_deleted(resp)


async def test_pull_teardown_delete_manifest1(conformance: Conformance) -> None:
    """Pull/Teardown: "Delete manifest[1] created in setup" (Go also accepts 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=conformance.data.manifests[1].digest
    )
    expect_deleted(resp)


async def test_pull_teardown_delete_config0_blob(conformance: Conformance) -> None:
    """Pull/Teardown: "Delete config[0] blob created in setup" (Go: 2xx, 404 or 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=conformance.data.configs[0].digest
    )
    expect_deleted_or_gone(resp)


async def test_pull_teardown_delete_config1_blob(conformance: Conformance) -> None:
    """Pull/Teardown: "Delete config[1] blob created in setup" (Go: 2xx, 404 or 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=conformance.data.configs[1].digest
    )
    expect_deleted_or_gone(resp)


async def test_pull_teardown_delete_layer_blob(conformance: Conformance) -> None:
    """Pull/Teardown: "Delete layer blob created in setup" (Go: 2xx, 404 or 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=conformance.data.layer_blob_digest
    )
    expect_deleted_or_gone(resp)
