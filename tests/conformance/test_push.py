"""OCI distribution-spec v1.1 conformance, workflow "Push" (conformance/02_push_test.go).

One test per Go `g.Specify`, in the Go order; `lastResponse`, `prevResponse` and
`emptyLayerManifestRef` of the Go workflow live in `conformance.state`.
"""

from __future__ import annotations

import os
import warnings

import pytest

from conformance.suite import (
    EMPTY_LAYER_TEST_TAG,
    MANIFEST_MEDIA_TYPE,
    OCTET_STREAM,
    Conformance,
    Response,
    expect_deleted,
    expect_deleted_or_gone,
    expect_status,
)

pytestmark = [pytest.mark.peers, pytest.mark.asyncio(loop_scope="module")]

# OCI_AUTOMATIC_CROSSMOUNT: unset skips the two automatic cross-mount checks, as in Go.
_AUTO_CROSSMOUNT = os.environ.get("OCI_AUTOMATIC_CROSSMOUNT")
RUN_AUTOMATIC_CROSSMOUNT_TEST = _AUTO_CROSSMOUNT is not None
AUTOMATIC_CROSSMOUNT_ENABLED = (_AUTO_CROSSMOUNT or "").lower() in ("1", "t", "true")


def _last(c: Conformance, key: str = "last_response") -> Response:
    resp = c.state.get(key)
    assert resp is not None, f"{key} is nil: an earlier check of this workflow failed"
    return resp


# --- Push / Blob Upload Streamed ------------------------------------------------------------------


async def test_push_streamed_patch_with_blob_in_body_202(conformance: Conformance) -> None:
    """Push/Blob Upload Streamed: "PATCH request with blob in body should yield 202 response".

    No Content-Length is declared: the body goes with Transfer-Encoding: chunked.
    """
    c, d = conformance, conformance.data
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/")
    assert resp.header("Location"), resp.describe()
    resp = await c.client.do(
        "PATCH",
        resp.relative_location(),
        headers={"Content-Type": OCTET_STREAM},
        body=d.test_blob_a,
        stream=True,
    )
    expect_status(resp, 202)
    c.state["last_response"] = resp


async def test_push_streamed_put_session_url_with_digest_201(conformance: Conformance) -> None:
    """Push/Blob Upload Streamed: "PUT request to session URL with digest should yield 201
    response"."""
    c, d = conformance, conformance.data
    last = _last(c)
    resp = await c.client.do(
        "PUT",
        last.relative_location(),
        query={"digest": d.test_blob_a_digest},
        # Go sets Content-Length: <blob size> but sends no body; on the wire that is 0.
        headers={"Content-Type": OCTET_STREAM, "Content-Length": d.test_blob_a_length},
    )
    expect_status(resp, 201)
    assert resp.header("Location"), resp.describe()


# --- Push / Blob Upload Monolithic ----------------------------------------------------------------


async def test_push_monolithic_get_nonexistent_blob_404(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "GET nonexistent blob should result in 404 response"."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=conformance.data.dummy_digest
    )
    expect_status(resp, 404)


async def test_push_monolithic_post_with_digest_and_blob_201_or_202(
    conformance: Conformance,
) -> None:
    """Push/Blob Upload Monolithic: "POST request with digest and blob should yield a 201 or
    202"."""
    c, d = conformance, conformance.data
    resp = await c.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        query={"digest": d.configs[1].digest},
        headers={"Content-Length": d.configs[1].content_length, "Content-Type": OCTET_STREAM},
        body=d.configs[1].content,
    )
    assert resp.header("Location"), resp.describe()
    expect_status(resp, 201, 202)
    c.state["last_response"] = resp


async def test_push_monolithic_get_blob_from_prior_request_200_or_404(
    conformance: Conformance,
) -> None:
    """Push/Blob Upload Monolithic: "GET request to blob URL from prior request should yield 200
    or 404 based on response code" (202: the digest was ignored, so no blob yet)."""
    c, d = conformance, conformance.data
    last = _last(c)
    resp = await c.client.do("GET", "/v2/<name>/blobs/<digest>", digest=d.configs[1].digest)
    if last.status == 202:
        expect_status(resp, 404)
    else:
        expect_status(resp, 200)


async def test_push_monolithic_post_yields_session_id(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "POST request should yield a session ID"."""
    resp = await conformance.client.do("POST", "/v2/<name>/blobs/uploads/")
    expect_status(resp, 202)
    conformance.state["last_response"] = resp


async def test_push_monolithic_put_upload_of_blob_201(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "PUT upload of a blob should yield a 201 Response"."""
    c, d = conformance, conformance.data
    last = _last(c)
    resp = await c.client.do(
        "PUT",
        last.relative_location(),
        query={"digest": d.configs[1].digest},
        headers={"Content-Length": d.configs[1].content_length, "Content-Type": OCTET_STREAM},
        body=d.configs[1].content,
    )
    assert resp.header("Location"), resp.describe()
    expect_status(resp, 201)


async def test_push_monolithic_get_existing_blob_200(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "GET request to existing blob should yield 200 response"."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=conformance.data.configs[1].digest
    )
    expect_status(resp, 200)


async def test_push_monolithic_put_upload_of_layer_blob_201(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "PUT upload of a layer blob should yield a 201 Response"."""
    c, d = conformance, conformance.data
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/")
    resp = await c.client.do(
        "PUT",
        resp.relative_location(),
        query={"digest": d.layer_blob_digest},
        headers={"Content-Length": d.layer_blob_content_length, "Content-Type": OCTET_STREAM},
        body=d.layer_blob_data,
    )
    assert resp.header("Location"), resp.describe()
    expect_status(resp, 201)


async def test_push_monolithic_get_existing_layer_200(conformance: Conformance) -> None:
    """Push/Blob Upload Monolithic: "GET request to existing layer should yield 200 response"."""
    resp = await conformance.client.do(
        "GET", "/v2/<name>/blobs/<digest>", digest=conformance.data.layer_blob_digest
    )
    expect_status(resp, 200)


# --- Push / Blob Upload Chunked -------------------------------------------------------------------


async def test_push_chunked_out_of_order_blob_upload_416(conformance: Conformance) -> None:
    """Push/Blob Upload Chunked: "Out-of-order blob upload should return 416"."""
    c, d = conformance, conformance.data
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.header("Location"), resp.describe()

    # Rebuild the chunked blob if the minimum chunk size is above our chunk size.
    if min_size_str := resp.header("OCI-Chunk-Min-Length"):
        min_size = int(min_size_str)
        if min_size > len(d.test_blob_b_chunk1):
            d.setup_chunked_blob(min_size * 2 - 2)

    resp = await c.client.do(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": d.test_blob_b_chunk2_length,
            "Content-Range": d.test_blob_b_chunk2_range,
        },
        body=d.test_blob_b_chunk2,
    )
    expect_status(resp, 416)


async def test_push_chunked_patch_first_chunk_202(conformance: Conformance) -> None:
    """Push/Blob Upload Chunked: "PATCH request with first chunk should return 202"."""
    c, d = conformance, conformance.data
    resp = await c.client.do("POST", "/v2/<name>/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.header("Location"), resp.describe()
    c.state["prev_response"] = resp
    resp = await c.client.do(
        "PATCH",
        resp.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": d.test_blob_b_chunk1_length,
            "Content-Range": d.test_blob_b_chunk1_range,
        },
        body=d.test_blob_b_chunk1,
    )
    expect_status(resp, 202)
    assert resp.header("Range") == d.test_blob_b_chunk1_range, resp.describe()
    c.state["last_response"] = resp


async def test_push_chunked_retry_previous_blob_chunk_416(conformance: Conformance) -> None:
    """Push/Blob Upload Chunked: "Retry previous blob chunk should return 416"."""
    c, d = conformance, conformance.data
    prev = _last(c, "prev_response")
    resp = await c.client.do(
        "PATCH",
        prev.relative_location(),
        headers={
            "Content-Type": OCTET_STREAM,
            "Content-Length": d.test_blob_b_chunk1_length,
            "Content-Range": d.test_blob_b_chunk1_range,
        },
        body=d.test_blob_b_chunk1,
    )
    expect_status(resp, 416)


async def test_push_chunked_get_stale_upload_204_with_range_and_location(
    conformance: Conformance,
) -> None:
    """Push/Blob Upload Chunked: "Get on stale blob upload should return 204 with a range and
    location"."""
    c, d = conformance, conformance.data
    prev = _last(c, "prev_response")
    resp = await c.client.do("GET", prev.relative_location())
    expect_status(resp, 204)
    assert resp.header("Location"), resp.describe()
    assert resp.header("Range") == d.test_blob_b_chunk1_range, resp.describe()
    c.state["last_response"] = resp


async def test_push_chunked_patch_second_chunk_202(conformance: Conformance) -> None:
    """Push/Blob Upload Chunked: "PATCH request with second chunk should return 202"."""
    c, d = conformance, conformance.data
    last = _last(c)
    resp = await c.client.do(
        "PATCH",
        last.relative_location(),
        headers={
            "Content-Length": d.test_blob_b_chunk2_length,
            "Content-Range": d.test_blob_b_chunk2_range,
            "Content-Type": OCTET_STREAM,
        },
        body=d.test_blob_b_chunk2,
    )
    expect_status(resp, 202)
    assert resp.header("Location"), resp.describe()
    c.state["last_response"] = resp


async def test_push_chunked_put_with_digest_201(conformance: Conformance) -> None:
    """Push/Blob Upload Chunked: "PUT request with digest should return 201"."""
    c, d = conformance, conformance.data
    last = _last(c)
    resp = await c.client.do(
        "PUT",
        last.relative_location(),
        query={"digest": d.test_blob_b_digest},
        headers={"Content-Length": "0", "Content-Type": OCTET_STREAM},
    )
    expect_status(resp, 201)
    assert resp.header("Location"), resp.describe()


# --- Push / Cross-Repository Blob Mount -----------------------------------------------------------


async def test_push_crossmount_without_from_yields_session_id(conformance: Conformance) -> None:
    """Push/Cross-Repository Blob Mount: "Cross-mounting of a blob without the from argument
    should yield session id"."""
    c = conformance
    resp = await c.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=c.crossmount_namespace,
        query={"mount": c.data.dummy_digest},
    )
    expect_status(resp, 202)
    assert resp.absolute_location(), resp.describe()


async def test_push_crossmount_post_mount_from_another_repository_201_or_202(
    conformance: Conformance,
) -> None:
    """Push/Cross-Repository Blob Mount: "POST request to mount another repository's blob should
    return 201 or 202"."""
    c = conformance
    resp = await c.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=c.crossmount_namespace,
        query={"mount": c.data.test_blob_a_digest, "from": c.namespace},
    )
    expect_status(resp, 201, 202)
    c.state["last_response"] = resp


async def test_push_crossmount_get_digest_within_crossmount_namespace_200(
    conformance: Conformance,
) -> None:
    """Push/Cross-Repository Blob Mount: "GET request to test digest within cross-mount namespace
    should return 200" (only after a 201)."""
    c = conformance
    last = _last(c)
    if last.status != 201:
        pytest.skip("RunOnlyIf(lastResponse.StatusCode() == 201)")
    expected = f"/v2/{c.crossmount_namespace}/blobs/{c.data.test_blob_a_digest}"
    assert last.relative_location() == expected, last.describe()
    resp = await c.client.do("GET", last.relative_location())
    expect_status(resp, 200)


async def test_push_crossmount_of_nonexistent_blob_yields_session_id(
    conformance: Conformance,
) -> None:
    """Push/Cross-Repository Blob Mount: "Cross-mounting of nonexistent blob should yield session
    id" (only after a 202)."""
    c = conformance
    last = _last(c)
    if last.status != 202:
        pytest.skip("RunOnlyIf(lastResponse.StatusCode() == 202)")
    prefix = f"/v2/{c.crossmount_namespace}/blobs/uploads/"
    assert last.relative_location().startswith(prefix), last.describe()


async def test_push_crossmount_without_from_automatic_discovery_enabled_201(
    conformance: Conformance,
) -> None:
    """Push/Cross-Repository Blob Mount: "Cross-mounting without from, and automatic content
    discovery enabled should return a 201"."""
    c = conformance
    if not RUN_AUTOMATIC_CROSSMOUNT_TEST:
        pytest.skip("RunOnlyIf(runAutomaticCrossmountTest): OCI_AUTOMATIC_CROSSMOUNT is unset")
    if _last(c).status != 201:
        pytest.skip("RunOnlyIf(lastResponse.StatusCode() == 201)")
    if not AUTOMATIC_CROSSMOUNT_ENABLED:
        pytest.skip("RunOnlyIf(automaticCrossmountEnabled)")
    resp = await c.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=c.crossmount_namespace,
        query={"mount": c.data.test_blob_a_digest},
    )
    expect_status(resp, 201)


async def test_push_crossmount_without_from_automatic_discovery_disabled_202(
    conformance: Conformance,
) -> None:
    """Push/Cross-Repository Blob Mount: "Cross-mounting without from, and automatic content
    discovery disabled should return a 202"."""
    c = conformance
    if not RUN_AUTOMATIC_CROSSMOUNT_TEST:
        pytest.skip("RunOnlyIf(runAutomaticCrossmountTest): OCI_AUTOMATIC_CROSSMOUNT is unset")
    if _last(c).status != 201:
        pytest.skip("RunOnlyIf(lastResponse.StatusCode() == 201)")
    if AUTOMATIC_CROSSMOUNT_ENABLED:
        pytest.skip("RunOnlyIfNot(automaticCrossmountEnabled)")
    resp = await c.client.do(
        "POST",
        "/v2/<name>/blobs/uploads/",
        name=c.crossmount_namespace,
        query={"mount": c.data.test_blob_a_digest},
    )
    expect_status(resp, 202)


# --- Push / Manifest Upload -----------------------------------------------------------------------


async def test_push_manifest_get_nonexistent_manifest_404(conformance: Conformance) -> None:
    """Push/Manifest Upload: "GET nonexistent manifest should return 404"."""
    resp = await conformance.client.do(
        "GET",
        "/v2/<name>/manifests/<reference>",
        reference=conformance.data.nonexistent_manifest,
    )
    expect_status(resp, 404)


async def test_push_manifest_put_accepts_manifest_upload(conformance: Conformance) -> None:
    """Push/Manifest Upload: "PUT should accept a manifest upload" (tags test0..test3)."""
    c, d = conformance, conformance.data
    for i in range(4):
        resp = await c.client.do(
            "PUT",
            "/v2/<name>/manifests/<reference>",
            reference=f"test{i}",
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            body=d.manifests[1].content,
        )
        assert resp.header("Location"), resp.describe()
        expect_status(resp, 201)


async def test_push_manifest_upload_with_no_layers(conformance: Conformance) -> None:
    """Push/Manifest Upload: "Registry should accept a manifest upload with no layers".

    As in Go, anything but 201 only warns ("image manifest with no layers is not supported").
    """
    c, d = conformance, conformance.data
    resp = await c.client.do(
        "PUT",
        "/v2/<name>/manifests/<reference>",
        reference=EMPTY_LAYER_TEST_TAG,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE},
        body=d.empty_layer_manifest_content,
    )
    if resp.status == 201:
        location = resp.header("Location")
        c.state["empty_layer_manifest_ref"] = location
        assert location, resp.describe()
    else:
        warnings.warn(
            f"image manifest with no layers is not supported: {resp.describe()}", stacklevel=1
        )


async def test_push_manifest_get_manifest_by_digest_200(conformance: Conformance) -> None:
    """Push/Manifest Upload: "GET request to manifest URL (digest) should yield 200 response"."""
    resp = await conformance.client.do(
        "GET",
        "/v2/<name>/manifests/<digest>",
        digest=conformance.data.manifests[1].digest,
        headers={"Accept": MANIFEST_MEDIA_TYPE},
    )
    expect_status(resp, 200)


# --- Push / Teardown (deleteManifestBeforeBlobs = true) -------------------------------------------


async def test_push_teardown_delete_manifest_created_in_tests(conformance: Conformance) -> None:
    """Push/Teardown: "Delete manifest created in tests" (manifests[1], then the empty-layer
    manifest if it was accepted; Go also accepts 405)."""
    c, d = conformance, conformance.data
    resp = await c.client.do(
        "DELETE", "/v2/<name>/manifests/<digest>", digest=d.manifests[1].digest
    )
    expect_deleted(resp)
    if c.state.get("empty_layer_manifest_ref"):
        resp = await c.client.do(
            "DELETE",
            "/v2/<name>/manifests/<reference>",
            reference=d.empty_layer_manifest_digest,
        )
        expect_deleted(resp)


async def test_push_teardown_delete_config_blob(conformance: Conformance) -> None:
    """Push/Teardown: "Delete config blob created in tests" (Go: 2xx, 404 or 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=conformance.data.configs[1].digest
    )
    expect_deleted_or_gone(resp)


async def test_push_teardown_delete_layer_blob(conformance: Conformance) -> None:
    """Push/Teardown: "Delete layer blob created in setup" (Go: 2xx, 404 or 405)."""
    resp = await conformance.client.do(
        "DELETE", "/v2/<name>/blobs/<digest>", digest=conformance.data.layer_blob_digest
    )
    expect_deleted_or_gone(resp)
