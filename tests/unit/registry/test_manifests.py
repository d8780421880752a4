"""Manifest push/pull rules: negotiation, indexes, tags, referrers, deletes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from support.inprocess import ADMIN_PASSWORD, InProcess, running_app

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


# --- tag parameters (end-7b) --------------------------------------------------------------------


async def _image_bytes(app: InProcess, repo: str, seed: str) -> bytes:
    """An image manifest whose blobs are in `repo`, not pushed itself."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer {seed}".encode()
    descriptors = [
        {"mediaType": media_type, "digest": await app.push_blob(repo, data), "size": len(data)}
        for media_type, data in (
            ("application/vnd.oci.image.config.v1+json", config),
            ("application/vnd.oci.image.layer.v1.tar+gzip", layer),
        )
    ]
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0]}
    return json.dumps({**body, "layers": descriptors[1:]}).encode()


def _sha512(raw: bytes) -> str:
    return "sha512:" + hashlib.sha512(raw).hexdigest()


async def _put(app: InProcess, repo: str, reference: str, raw: bytes, query: str = "") -> Any:
    async with app.client.put(
        f"/v2/{repo}/manifests/{reference}{query}",
        data=raw,
        headers={**app.admin, "Content-Type": OCI_MANIFEST},
    ) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def _tag_digests(app: InProcess, repo: str) -> dict[str, str]:
    found = {}
    async with app.client.get(f"/v2/{repo}/tags/list", headers=app.admin) as resp:
        tags = (await resp.json())["tags"] if resp.status == 200 else []
    for tag in tags:
        async with app.client.head(f"/v2/{repo}/manifests/{tag}", headers=app.admin) as resp:
            found[tag] = resp.headers["Docker-Content-Digest"]
    return found


async def test_a_push_by_sha512_digest_with_tag_parameters_tags_that_digest(
    sqlite_app: InProcess,
) -> None:
    app, repo = sqlite_app, "admin/tag-param"
    raw = await _image_bytes(app, repo, "one")
    digest = _sha512(raw)
    status, headers, _ = await _put(app, repo, digest, raw, "?tag=1.2.3&tag=latest&tag=1.2.3")
    assert status == 201
    assert headers["Docker-Content-Digest"] == digest
    assert headers["Location"] == f"/v2/{repo}/manifests/{digest}"
    assert headers["OCI-Tag"] == "1.2.3, latest"  # each tag once, in the order given
    assert await _tag_digests(app, repo) == {"1.2.3": digest, "latest": digest}
    async with app.client.get(f"/v2/{repo}/manifests/latest", headers=app.admin) as resp:
        assert await resp.read() == raw
    # the same push by sha256 stores the same bytes under that digest, as its own manifest
    sha256 = "sha256:" + hashlib.sha256(raw).hexdigest()
    status, headers, _ = await _put(app, repo, sha256, raw, "?tag=latest")
    assert (status, headers["OCI-Tag"]) == (201, "latest")
    assert (await _tag_digests(app, repo))["latest"] == sha256
    # a push with no tag parameters says nothing of tags
    status, headers, _ = await _put(app, repo, digest, raw)
    assert status == 201
    assert "OCI-Tag" not in headers


async def test_tag_parameters_with_a_tag_push_apply_every_tag(sqlite_app: InProcess) -> None:
    app, repo = sqlite_app, "admin/tag-param-tag"
    raw = await _image_bytes(app, repo, "two")
    status, headers, _ = await _put(app, repo, "v2", raw, "?tag=stable")
    assert (status, headers["OCI-Tag"]) == (201, "v2, stable")
    digest = headers["Docker-Content-Digest"]
    assert await _tag_digests(app, repo) == {"v2": digest, "stable": digest}


async def test_one_refused_tag_parameter_refuses_the_whole_push(sqlite_app: InProcess) -> None:
    app, repo = sqlite_app, "admin/tag-param-refused"
    first = await _image_bytes(app, repo, "first")
    assert (await _put(app, repo, _sha512(first), first, "?tag=fixed"))[0] == 201
    await app.state.registry.repositories.configure(
        await app.state.accounts.authenticate("admin", ADMIN_PASSWORD), repo, immutable_tags=True
    )
    second = await _image_bytes(app, repo, "second")
    status, _, body = await _put(app, repo, _sha512(second), second, "?tag=new&tag=fixed")
    assert status == 403
    assert b"immutable" in body
    for query in ("?tag=ok&tag=-bad", "?tag=", "?" + "&".join(f"tag=t{i}" for i in range(101))):
        status, _, body = await _put(app, repo, _sha512(second), second, query)
        error = json.loads(body)["errors"][0]
        assert (status, error["code"]) == (400, "MANIFEST_INVALID"), body  # as distribution
        assert "tag" in error["message"]
    async with app.client.head(
        f"/v2/{repo}/manifests/{_sha512(second)}", headers=app.admin
    ) as resp:
        assert resp.status == 404  # nothing of a refused push is stored
    assert await _tag_digests(app, repo) == {"fixed": _sha512(first)}
    # a hundred tags is within the limit
    query = "?" + "&".join(f"tag=t{i}" for i in range(100))
    status, headers, _ = await _put(app, repo, _sha512(second), second, query)
    assert status == 201
    assert len(headers["OCI-Tag"].split(", ")) == 100


# --- sparse indexes ---------------------------------------------------------------------------

ABSENT_ARM64 = "sha256:" + "a" * 64


def _sparse_index(amd64: str, amd64_raw: bytes) -> bytes:
    """An index of a present linux/amd64 image and an absent linux/arm64 one."""
    entries = [
        (amd64, len(amd64_raw), "amd64"),
        (ABSENT_ARM64, 1234, "arm64"),
    ]
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": arch},
                }
                for digest, size, arch in entries
            ],
        }
    ).encode()


async def _put_index(app: InProcess, repo: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    async with app.client.put(
        f"/v2/{repo}/manifests/v1", data=raw, headers={**app.admin, "Content-Type": OCI_INDEX}
    ) as resp:
        return resp.status, (await resp.json()) if resp.status >= 400 else {}


async def _set_sparse(app: InProcess, repo: str, value: str) -> None:
    admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
    await app.state.registry.repositories.configure(admin, repo, sparse_indexes=value)


async def test_a_repository_with_sparse_indexes_takes_an_index_naming_absent_manifests(
    sqlite_app: InProcess,
) -> None:
    app, repo = sqlite_app, "admin/subset"
    amd64, amd64_raw = await app.push_image(repo, "amd64")
    raw = _sparse_index(amd64, amd64_raw)
    status, body = await _put_index(app, repo, raw)
    error = body["errors"][0]
    assert (status, error["code"]) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"] == {"digest": ABSENT_ARM64}
    assert f"dockyard admin repo set {repo} --sparse-indexes on" in error["message"]

    await _set_sparse(app, repo, "on")
    assert (await _put_index(app, repo, raw))[0] == 201
    async with app.client.get(
        f"/v2/{repo}/manifests/v1", headers={**app.admin, "Accept": OCI_INDEX}
    ) as resp:
        assert await resp.read() == raw  # the index's bytes, so its digest
    async with app.client.get(f"/v2/{repo}/manifests/{ABSENT_ARM64}", headers=app.admin) as resp:
        assert resp.status == 404
    # image manifests still need every blob
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ABSENT_ARM64}
    image = json.loads(amd64_raw)
    image["layers"].append({**layer, "size": 10})
    async with app.client.put(
        f"/v2/{repo}/manifests/broken",
        data=json.dumps(image).encode(),
        headers={**app.admin, "Content-Type": OCI_MANIFEST},
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize(
    ("site", "repository", "accepted"),
    [
        ({"index_platforms": "none"}, "site", True),
        ({"index_platforms": "none"}, "off", False),  # the repository's setting wins
        ({"index_platforms": "all"}, "on", True),
        ({"index_platforms": "list", "index_platform_list": ["linux/arm64"]}, "site", False),
        ({"index_platforms": "list", "index_platform_list": ["linux/amd64"]}, "site", True),
        ({"index_platforms": "list", "index_platform_list": ["windows/arm64"]}, "site", True),
    ],
)
async def test_the_site_setting_decides_unless_the_repository_says(
    tmp_path: Path, site: dict[str, Any], repository: str, accepted: bool
) -> None:
    async with running_app(tmp_path / "data", **site) as app:
        repo = "admin/site-rule"
        amd64, amd64_raw = await app.push_image(repo, "amd64")
        await _set_sparse(app, repo, repository)
        status, _ = await _put_index(app, repo, _sparse_index(amd64, amd64_raw))
        assert status == (201 if accepted else 400)
