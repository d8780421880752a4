"""Manifest push/pull rules: negotiation, indexes, tags, referrers, deletes."""

from __future__ import annotations

import json

import pytest

from support.inprocess import InProcess

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


async def _push_index(
    app: InProcess, repo: str, tag: str, children: list[tuple[str, bytes, str]]
) -> str:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "platform": {"os": "linux", "architecture": arch},
            }
            for digest, raw, arch in children
        ],
    }
    async with app.client.put(
        f"/v2/{repo}/manifests/{tag}",
        data=json.dumps(index).encode(),
        headers={**app.admin, "Content-Type": OCI_INDEX},
    ) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["Docker-Content-Digest"]


async def test_index_by_tag_falls_back_to_linux_amd64_for_clients_without_index_support(
    registry_app: InProcess,
) -> None:
    app = registry_app
    amd64, amd64_raw = await app.push_image("admin/multi", "amd64-only")
    arm64, arm64_raw = await app.push_image("admin/multi", "arm64-only", layers=[b"arm"])
    index = await _push_index(
        app, "admin/multi", "latest", [(arm64, arm64_raw, "arm64"), (amd64, amd64_raw, "amd64")]
    )
    async with app.client.get(
        "/v2/admin/multi/manifests/latest", headers={**app.admin, "Accept": OCI_MANIFEST}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Docker-Content-Digest"] == amd64
        assert await resp.read() == amd64_raw
    async with app.client.get(
        "/v2/admin/multi/manifests/latest",
        headers={**app.admin, "Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
    ) as resp:
        assert resp.headers["Docker-Content-Digest"] == index
        assert resp.headers["Content-Type"] == OCI_INDEX
    # an image manifest the client does not accept is unknown to it
    async with app.client.get(
        "/v2/admin/multi/manifests/amd64-only", headers={**app.admin, "Accept": DOCKER_MANIFEST}
    ) as resp:
        assert resp.status == 404
        assert (await resp.json())["errors"][0]["code"] == "MANIFEST_UNKNOWN"


async def test_index_naming_a_missing_child_is_refused(registry_app: InProcess) -> None:
    app = registry_app
    _digest, _raw = await app.push_image("admin/multi", "one")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 10}],
    }
    async with app.client.put(
        "/v2/admin/multi/manifests/broken",
        data=json.dumps(index).encode(),
        headers={**app.admin, "Content-Type": OCI_INDEX},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


async def test_tags_paginate_with_link_header(registry_app: InProcess) -> None:
    app = registry_app
    _digest, raw = await app.push_image("admin/tags", "t0")
    for name in ("t1", "t2", "t3", "t4"):
        async with app.client.put(
            f"/v2/admin/tags/manifests/{name}",
            data=raw,
            headers={**app.admin, "Content-Type": OCI_MANIFEST},
        ) as resp:
            assert resp.status == 201
    seen: list[str] = []
    url = "/v2/admin/tags/tags/list?n=2"
    for _ in range(5):
        async with app.client.get(url, headers=app.admin) as resp:
            body = await resp.json()
            seen += body["tags"]
            link = resp.headers.get("Link")
        if link is None:
            break
        url = link.split(";")[0].strip("<>")
    assert seen == ["t0", "t1", "t2", "t3", "t4"]
    async with app.client.get("/v2/admin/tags/tags/list?n=0", headers=app.admin) as resp:
        assert (await resp.json())["tags"] == []


@pytest.mark.parametrize("path", ["/v2/admin/tags/tags/list", "/v2/_catalog"])
async def test_a_page_size_that_is_no_count_is_refused_and_a_huge_one_capped(
    sqlite_app: InProcess, path: str
) -> None:
    app = sqlite_app
    await app.push_image("admin/tags", "t0")
    for bad in ("abc", "-1", "1.5", "٣"):  # the last is an Arabic-Indic digit three
        async with app.client.get(path, params={"n": bad}, headers=app.admin) as resp:
            assert resp.status == 400
            (error,) = (await resp.json())["errors"]
            assert error["code"] == "PAGINATION_NUMBER_INVALID"
            assert "non-negative integer" in error["message"]
    for huge in ("9" * 30, "1" * 5000, "0" * 40 + "1"):
        async with app.client.get(path, params={"n": huge}, headers=app.admin) as resp:
            assert resp.status == 200, huge
            body = await resp.json()
            assert body.get("tags", body.get("repositories")) == (
                ["t0"] if "tags" in path else ["admin/tags"]
            )


async def test_catalog_paginates(registry_app: InProcess) -> None:
    app = registry_app
    for name in ("admin/a", "admin/b", "admin/c"):
        await app.push_image(name, "v1")
    async with app.client.get("/v2/_catalog?n=2", headers=app.admin) as resp:
        assert (await resp.json())["repositories"] == ["admin/a", "admin/b"]
        link = resp.headers["Link"]
    async with app.client.get(link.split(";")[0].strip("<>"), headers=app.admin) as resp:
        assert (await resp.json())["repositories"] == ["admin/c"]
        assert "Link" not in resp.headers


async def test_referrers_include_fallback_tag_entries_and_filter(registry_app: InProcess) -> None:
    app = registry_app
    subject_digest, subject_raw = await app.push_image("admin/ref", "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_raw)}
    sbom, _ = await app.push_image(
        "admin/ref",
        "sbom",
        layers=[b"sbom"],
        subject=subject,
        artifact_type="application/spdx+json",
    )
    # an attestation pushed by a client that used the fallback tag scheme, without `subject`
    legacy, legacy_raw = await app.push_image("admin/ref", "legacy", layers=[b"sig"])
    fallback = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": legacy,
                "size": len(legacy_raw),
                "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json",
            }
        ],
    }
    tag = subject_digest.replace(":", "-")
    async with app.client.put(
        f"/v2/admin/ref/manifests/{tag}",
        data=json.dumps(fallback).encode(),
        headers={**app.admin, "Content-Type": OCI_INDEX},
    ) as resp:
        assert resp.status == 201
    async with app.client.get(
        f"/v2/admin/ref/referrers/{subject_digest}", headers=app.admin
    ) as resp:
        assert resp.headers["Content-Type"] == OCI_INDEX
        digests = [m["digest"] for m in (await resp.json())["manifests"]]
        assert digests == [sbom, legacy]
    async with app.client.get(
        f"/v2/admin/ref/referrers/{subject_digest}?artifactType=application/spdx%2Bjson",
        headers=app.admin,
    ) as resp:
        assert resp.headers["OCI-Filters-Applied"] == "artifactType"
        entries = (await resp.json())["manifests"]
        assert [(m["digest"], m["artifactType"]) for m in entries] == [
            (sbom, "application/spdx+json")
        ]


async def test_delete_manifest_removes_its_tags_and_tag_delete_keeps_manifest(
    registry_app: InProcess,
) -> None:
    app = registry_app
    digest, raw = await app.push_image("admin/del", "a")
    async with app.client.put(
        "/v2/admin/del/manifests/b", data=raw, headers={**app.admin, "Content-Type": OCI_MANIFEST}
    ) as resp:
        assert resp.status == 201
    async with app.client.delete("/v2/admin/del/manifests/a", headers=app.admin) as resp:
        assert resp.status == 202
    async with app.client.get(f"/v2/admin/del/manifests/{digest}", headers=app.admin) as resp:
        assert resp.status == 200
    async with app.client.delete(f"/v2/admin/del/manifests/{digest}", headers=app.admin) as resp:
        assert resp.status == 202
    async with app.client.get("/v2/admin/del/tags/list", headers=app.admin) as resp:
        assert (await resp.json())["tags"] == []


async def test_manifest_bytes_are_served_exactly_as_pushed(registry_app: InProcess) -> None:
    app = registry_app
    _, raw = await app.push_image("admin/bytes", "v1")
    odd = raw.replace(b'"schemaVersion": 2', b'"schemaVersion":    2') + b"\n\n"
    async with app.client.put(
        "/v2/admin/bytes/manifests/odd",
        data=odd,
        headers={**app.admin, "Content-Type": OCI_MANIFEST},
    ) as resp:
        digest = resp.headers["Docker-Content-Digest"]
    async with app.client.get(f"/v2/admin/bytes/manifests/{digest}", headers=app.admin) as resp:
        assert await resp.read() == odd
    async with app.client.head("/v2/admin/bytes/manifests/odd", headers=app.admin) as resp:
        assert resp.headers["Content-Length"] == str(len(odd))
        assert resp.headers["Docker-Content-Digest"] == digest
