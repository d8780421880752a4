"""Bad input at the /v2 edge: malformed manifests, lying clients, broken uploads, bad names.

Most cases run in process (`sqlite_app`, or `registry_app` on both databases where the database
decides the outcome); the cases only a real socket can produce (a Content-Length that lies, a
body cut off halfway, a raw `..` in the request line) talk hand-written HTTP/1.1 to a real
`dockyard serve`.

Every error answer is checked the same way (`expect_error`): the status, the spec code, and an
`{"errors":[{"code","message",...}]}` body with a non-empty message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from sqlalchemy import func, select

from dockyard.metadata.tables import blobs as blobs_table
from dockyard.metadata.tables import repository_blobs
from support.inprocess import InProcess, running_app
from support.ocilayout import (
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP,
    digest_of,
    index_bytes,
    json_bytes,
    manifest_bytes,
    random_bytes,
)
from support.peers import DockyardServer, launch_dockyard, upload_data
from support.peers import _attach_log as attach_log

OCTET = {"Content-Type": "application/octet-stream"}
MAX_MANIFEST = 4 * 1024 * 1024
ERROR_KEYS = {"code", "message", "detail"}


# --- helpers ---------------------------------------------------------------------------------


def check_error_body(body: bytes, code: str | set[str]) -> dict[str, Any]:
    """The body is the spec's error envelope with a non-empty message; return the first error."""
    parsed = json.loads(body)
    assert isinstance(parsed, dict), body
    assert set(parsed) == {"errors"}, body
    errors = parsed["errors"]
    assert isinstance(errors, list), body
    assert errors, body
    for entry in errors:
        assert isinstance(entry, dict), body
        assert set(entry) <= ERROR_KEYS, body
        assert isinstance(entry.get("code"), str), body
        assert entry["code"], body
        assert isinstance(entry.get("message"), str), body
        assert entry["message"].strip(), body
    codes = {code} if isinstance(code, str) else code
    assert errors[0]["code"] in codes, body
    first: dict[str, Any] = errors[0]
    return first


async def expect_error(
    resp: aiohttp.ClientResponse, status: int, code: str | set[str]
) -> dict[str, Any]:
    """Assert an error answer: status, JSON content type, envelope; return the first error."""
    body = await resp.read()
    assert resp.status == status, (resp.method, str(resp.url), resp.status, body)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    return check_error_body(body, code)


def sha256(data: bytes) -> str:
    return digest_of(data)


@dataclass
class PushedImage:
    repo: str
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
            "digest": self.digest,
            "size": len(self.manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
        }


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    return manifest_bytes(
        {"mediaType": MEDIA_TYPE_IMAGE_CONFIG, "digest": sha256(config), "size": len(config)},
        [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b in layers],
        **extra,
    )


async def put_manifest(
    app: InProcess, repo: str, reference: str, raw: bytes, media_type: str | None = None
) -> aiohttp.ClientResponse:
    headers = {**app.admin}
    if media_type is not None:
        headers["Content-Type"] = media_type
    resp = await app.client.put(f"/v2/{repo}/manifests/{reference}", data=raw, headers=headers)
    await resp.read()
    return resp


async def push_image(app: InProcess, repo: str, tag: str, seed: str) -> PushedImage:
    config = json_bytes({"architecture": "amd64", "os": "linux", "seed": seed})
    layer = random_bytes(1000, seed)
    await app.push_blob(repo, config)
    await app.push_blob(repo, layer)
    raw = image_manifest(config, [layer])
    resp = await put_manifest(app, repo, tag, raw, MEDIA_TYPE_IMAGE_MANIFEST)
    assert resp.status == 201, await resp.text()
    return PushedImage(repo, config, layer, raw)


async def status_of(app: InProcess, method: str, path: str, **kwargs: Any) -> int:
    headers = {**app.admin, **kwargs.pop("headers", {})}
    async with app.client.request(method, path, headers=headers, **kwargs) as resp:
        await resp.read()
        return resp.status


async def assert_manifest_absent(app: InProcess, repo: str, *references: str) -> None:
    for reference in references:
        async with app.client.get(
            f"/v2/{repo}/manifests/{reference}",
            headers={
                **app.admin,
                "Accept": f"{MEDIA_TYPE_IMAGE_MANIFEST},{MEDIA_TYPE_IMAGE_INDEX}",
            },
        ) as resp:
            await expect_error(resp, 404, {"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})


async def assert_blob_absent(app: InProcess, repo: str, *digests: str) -> None:
    for digest in digests:
        async with app.client.get(f"/v2/{repo}/blobs/{digest}", headers=app.admin) as resp:
            await expect_error(resp, 404, {"BLOB_UNKNOWN", "NAME_UNKNOWN"})
        assert await status_of(app, "HEAD", f"/v2/{repo}/blobs/{digest}") == 404


async def tags_of(app: InProcess, repo: str) -> list[str]:
    async with app.client.get(f"/v2/{repo}/tags/list", headers=app.admin) as resp:
        if resp.status == 404:
            await expect_error(resp, 404, "NAME_UNKNOWN")
            return []
        assert resp.status == 200, await resp.text()
        tags: list[str] = (await resp.json())["tags"]
        return tags


async def start_session(app: InProcess, repo: str) -> str:
    async with app.client.post(f"/v2/{repo}/blobs/uploads/", headers=app.admin) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["Location"]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def storage_files(data: Path, under: str) -> list[Path]:
    root = data / "storage" / under
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- malformed manifests ---------------------------------------------------------------------

_CONFIG = json_bytes({"architecture": "amd64", "os": "linux"})
_CONFIG_DESC = {
    "mediaType": MEDIA_TYPE_IMAGE_CONFIG,
    "digest": sha256(_CONFIG),
    "size": len(_CONFIG),
}

MALFORMED: dict[str, tuple[bytes, str | None]] = {
    "not-json": (b"{this is not json", MEDIA_TYPE_IMAGE_MANIFEST),
    "truncated": (image_manifest(_CONFIG, [])[:-5], MEDIA_TYPE_IMAGE_MANIFEST),
    "empty-body": (b"", MEDIA_TYPE_IMAGE_MANIFEST),
    "array": (b"[]", MEDIA_TYPE_IMAGE_MANIFEST),
    "string": (b'"manifest"', MEDIA_TYPE_IMAGE_MANIFEST),
    "bad-utf8": (b'{"schemaVersion":2,"x":"\xff\xfe"}', MEDIA_TYPE_IMAGE_MANIFEST),
    "deep-nesting": (b"[" * 200_000 + b"]" * 200_000, MEDIA_TYPE_IMAGE_MANIFEST),
    "schema-1": (
        json_bytes({"schemaVersion": 1, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST}),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "no-schema-version": (
        json_bytes({"mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": _CONFIG_DESC, "layers": []}),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "no-layers": (
        json_bytes(
            {"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST, "config": _CONFIG_DESC}
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "layers-not-array": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": _CONFIG_DESC,
                "layers": {"a": 1},
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "config-not-object": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": "sha256:abc",
                "layers": [],
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "bad-descriptor-digest": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": {**_CONFIG_DESC, "digest": "sha256:NOTHEX"},
                "layers": [],
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "negative-size": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": {**_CONFIG_DESC, "size": -1},
                "layers": [],
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "string-size": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": {**_CONFIG_DESC, "size": "2"},
                "layers": [],
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "media-type-disagrees-with-content-type": (
        image_manifest(_CONFIG, []),
        MEDIA_TYPE_IMAGE_INDEX,
    ),
    "unknown-media-type": (
        json_bytes({"schemaVersion": 2, "mediaType": "text/plain", "config": _CONFIG_DESC}),
        "text/plain",
    ),
    "index-without-manifests": (
        json_bytes({"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX}),
        MEDIA_TYPE_IMAGE_INDEX,
    ),
    "annotations-not-strings": (
        json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
                "config": _CONFIG_DESC,
                "layers": [],
                "annotations": {"n": 1},
            }
        ),
        MEDIA_TYPE_IMAGE_MANIFEST,
    ),
    "docker-schema1": (
        b'{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}',
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ),
}


async def test_malformed_manifests_are_manifest_invalid(sqlite_app: InProcess) -> None:
    app = sqlite_app
    repo = "bad/manifest"
    await app.push_blob(repo, _CONFIG)
    for case, (raw, media_type) in MALFORMED.items():
        async with app.client.put(
            f"/v2/{repo}/manifests/v1",
            data=raw,
            headers={**app.admin, **({"Content-Type": media_type} if media_type else {})},
        ) as resp:
            assert resp.status == 400, (case, resp.status, (await resp.read())[:300])
            await expect_error(resp, 400, "MANIFEST_INVALID")
        await assert_manifest_absent(app, repo, "v1", digest_of(raw))
    assert await tags_of(app, repo) == []
    # the repository still takes a good manifest afterwards
    good = image_manifest(_CONFIG, [])
    assert (await put_manifest(app, repo, "v1", good, MEDIA_TYPE_IMAGE_MANIFEST)).status == 201


# --- manifests that name what is not there ---------------------------------------------------


async def test_manifest_naming_missing_blobs_stores_nothing(registry_app: InProcess) -> None:
    app = registry_app
    repo = "bad/missing-blob"
    config = json_bytes({"architecture": "amd64", "os": "linux", "n": 1})
    present, missing = random_bytes(300, "present"), random_bytes(300, "missing")
    await app.push_blob(repo, config)
    await app.push_blob(repo, present)
    raw = image_manifest(config, [present, missing])

    for reference in ("v1", digest_of(raw)):
        resp = await app.client.put(
            f"/v2/{repo}/manifests/{reference}",
            data=raw,
            headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
        )
        error = await expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
        assert error["detail"]["digest"] == sha256(missing)

    # a missing config is refused just the same
    no_config = image_manifest(json_bytes({"other": "config"}), [present])
    resp = await app.client.put(
        f"/v2/{repo}/manifests/v2",
        data=no_config,
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    )
    await expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")

    await assert_manifest_absent(app, repo, "v1", "v2", digest_of(raw), digest_of(no_config))
    assert await tags_of(app, repo) == []
    async with app.client.get(f"/v2/{repo}/referrers/{digest_of(raw)}", headers=app.admin) as r:
        assert r.status == 200
        assert (await r.json())["manifests"] == []

    # a blob of another repository does not count either
    await app.push_blob("bad/elsewhere", missing)
    resp = await put_manifest(app, repo, "v1", raw, MEDIA_TYPE_IMAGE_MANIFEST)
    assert resp.status == 400
    # once the blob is pushed here, the same bytes are accepted
    await app.push_blob(repo, missing)
    resp = await put_manifest(app, repo, "v1", raw, MEDIA_TYPE_IMAGE_MANIFEST)
    assert resp.status == 201
    assert resp.headers["Docker-Content-Digest"] == digest_of(raw)


async def test_refused_manifest_push_creates_no_repository(sqlite_app: InProcess) -> None:
    app = sqlite_app
    missing = image_manifest(json_bytes({"never": "pushed"}), [])
    for name, raw in (("fresh/garbage", b"{not json"), ("fresh/missing", missing)):
        resp = await put_manifest(app, name, "v1", raw, MEDIA_TYPE_IMAGE_MANIFEST)
        assert resp.status == 400
    async with app.client.get("/v2/_catalog", headers=app.admin) as resp:
        assert (await resp.json())["repositories"] == []
    async with app.client.get("/v2/fresh/garbage/tags/list", headers=app.admin) as resp:
        await expect_error(resp, 404, "NAME_UNKNOWN")


async def test_index_naming_a_missing_child_stores_nothing(registry_app: InProcess) -> None:
    app = registry_app
    repo = "bad/missing-child"
    present = await push_image(app, repo, "amd64", "child-present")
    ghost = {
        "mediaType": MEDIA_TYPE_IMAGE_MANIFEST,
        "digest": sha256(b"never pushed"),
        "size": 12,
        "platform": {"architecture": "arm64", "os": "linux"},
    }
    raw = index_bytes([present.descriptor(), ghost])
    resp = await app.client.put(
        f"/v2/{repo}/manifests/multi",
        data=raw,
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_INDEX},
    )
    error = await expect_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"]["digest"] == ghost["digest"]
    await assert_manifest_absent(app, repo, "multi", digest_of(raw))
    assert await tags_of(app, repo) == ["amd64"]

    # a child that exists only as a blob (not as a manifest) is not a manifest
    blob_child = random_bytes(64, "blob-not-manifest")
    await app.push_blob(repo, blob_child)
    fake = {**ghost, "digest": sha256(blob_child), "size": len(blob_child)}
    raw = index_bytes([present.descriptor(), fake])
    resp = await put_manifest(app, repo, "multi", raw, MEDIA_TYPE_IMAGE_INDEX)
    assert resp.status == 400
    await assert_manifest_absent(app, repo, "multi", digest_of(raw))


async def test_descriptor_size_must_match_the_blob(registry_app: InProcess) -> None:
    app = registry_app
    repo = "bad/size"
    config = json_bytes({"architecture": "amd64", "os": "linux"})
    layer = random_bytes(500, "sized")
    await app.push_blob(repo, config)
    await app.push_blob(repo, layer)
    config_desc = {
        "mediaType": MEDIA_TYPE_IMAGE_CONFIG,
        "digest": sha256(config),
        "size": len(config),
    }
    for size in (len(layer) + 1, len(layer) - 1, 0):
        layer_desc = {"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": sha256(layer), "size": size}
        raw = manifest_bytes(config_desc, [layer_desc])
        resp = await app.client.put(
            f"/v2/{repo}/manifests/v1",
            data=raw,
            headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
        )
        error = await expect_error(resp, 400, "MANIFEST_INVALID")
        assert sha256(layer) in error["message"]
        await assert_manifest_absent(app, repo, digest_of(raw))
    # the config's size is checked too
    raw = manifest_bytes({**config_desc, "size": len(config) + 10}, [])
    resp = await put_manifest(app, repo, "v1", raw, MEDIA_TYPE_IMAGE_MANIFEST)
    assert resp.status == 400
    assert await tags_of(app, repo) == []


async def test_manifest_pushed_by_a_digest_it_does_not_have(sqlite_app: InProcess) -> None:
    app = sqlite_app
    image = await push_image(app, "bad/by-digest", "base", "by-digest")
    other = image_manifest(image.config, [image.layer], annotations={"x": "y"})
    claimed = digest_of(image.manifest + b" ")
    resp = await app.client.put(
        f"/v2/bad/by-digest/manifests/{claimed}",
        data=other,
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    )
    error = await expect_error(resp, 400, "DIGEST_INVALID")
    assert error["detail"] == {"expected": claimed, "actual": digest_of(other)}
    await assert_manifest_absent(app, "bad/by-digest", claimed, digest_of(other))

    # a reference that looks like a digest but is malformed is refused, not taken as a tag
    for reference in ("sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32):
        resp = await app.client.put(
            f"/v2/bad/by-digest/manifests/{reference}",
            data=other,
            headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
        )
        await expect_error(resp, 400, "DIGEST_INVALID")
    assert await tags_of(app, "bad/by-digest") == ["base"]

    # pushed by its own digest, it is stored under it
    resp = await put_manifest(
        app, "bad/by-digest", digest_of(other), other, MEDIA_TYPE_IMAGE_MANIFEST
    )
    assert resp.status == 201


async def test_oversize_manifest_is_413(sqlite_app: InProcess) -> None:
    app = sqlite_app
    repo = "bad/oversize"
    await app.push_blob(repo, _CONFIG)
    base = image_manifest(_CONFIG, [], annotations={"pad": ""})
    exact = image_manifest(_CONFIG, [], annotations={"pad": "x" * (MAX_MANIFEST - len(base))})
    assert len(exact) == MAX_MANIFEST
    over = image_manifest(_CONFIG, [], annotations={"pad": "x" * (MAX_MANIFEST - len(base) + 1)})

    # refused from Content-Length alone
    resp = await app.client.put(
        f"/v2/{repo}/manifests/big",
        data=over,
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    )
    await expect_error(resp, 413, "SIZE_INVALID")

    # and when the body comes without a length (chunked)
    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    resp = await app.client.put(
        f"/v2/{repo}/manifests/big",
        data=chunked(over + b" " * (1 << 20)),
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    )
    await expect_error(resp, 413, "SIZE_INVALID")
    # also by digest
    resp = await app.client.put(
        f"/v2/{repo}/manifests/{digest_of(over)}",
        data=over,
        headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
    )
    await expect_error(resp, 413, "SIZE_INVALID")
    await assert_manifest_absent(app, repo, "big", digest_of(over))

    # exactly 4 MiB is still a manifest
    resp = await put_manifest(app, repo, "big", exact, MEDIA_TYPE_IMAGE_MANIFEST)
    assert resp.status == 201
    async with app.client.get(
        f"/v2/{repo}/manifests/big",
        headers={**app.admin, "Accept": MEDIA_TYPE_IMAGE_MANIFEST},
    ) as got:
        assert await got.read() == exact


# --- blob uploads ----------------------------------------------------------------------------


async def test_wrong_digest_on_upload_complete(registry_app: InProcess) -> None:
    app = registry_app
    repo = "bad/digest"
    data = random_bytes(20_000, "wrong-digest")
    wrong = sha256(b"something else")

    # monolithic POST
    resp = await app.client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": wrong},
        data=data,
        headers={**app.admin, **OCTET},
    )
    error = await expect_error(resp, 400, "DIGEST_INVALID")
    assert error["detail"] == {"expected": wrong, "actual": sha256(data)}

    # POST + PATCH + PUT
    location = await start_session(app, repo)
    async with app.client.patch(location, data=data, headers={**app.admin, **OCTET}) as resp:
        assert resp.status == 202
    resp = await app.client.put(location, params={"digest": wrong}, headers=app.admin)
    await expect_error(resp, 400, "DIGEST_INVALID")
    # the session is gone with it
    async with app.client.get(location, headers=app.admin) as resp:
        await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")

    # POST + PUT with the body
    location = await start_session(app, repo)
    resp = await app.client.put(
        location, params={"digest": wrong}, data=data, headers={**app.admin, **OCTET}
    )
    await expect_error(resp, 400, "DIGEST_INVALID")

    await assert_blob_absent(app, repo, wrong, sha256(data))

    # malformed or missing digests are refused, and the session survives them
    location = await start_session(app, repo)
    for params in ({"digest": "sha256:xyz"}, {"digest": "nope"}, {}):
        resp = await app.client.put(location, params=params, data=data, headers=app.admin)
        await expect_error(resp, 400, "DIGEST_INVALID")
    resp = await app.client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": "sha256:short"},
        data=data,
        headers={**app.admin, **OCTET},
    )
    await expect_error(resp, 400, "DIGEST_INVALID")
    await assert_blob_absent(app, repo, sha256(data))
    assert storage_files(app.settings.data, "blobs") == []

    # the right digest then works
    async with app.client.put(
        location, params={"digest": sha256(data)}, data=data, headers={**app.admin, **OCTET}
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with app.client.get(f"/v2/{repo}/blobs/{sha256(data)}", headers=app.admin) as resp:
        assert await resp.read() == data


async def test_patch_not_at_the_current_offset_is_416(sqlite_app: InProcess) -> None:
    app = sqlite_app
    repo = "bad/range"
    data = random_bytes(30, "chunks")
    location = await start_session(app, repo)

    async def patch(chunk: bytes, content_range: str) -> aiohttp.ClientResponse:
        resp = await app.client.patch(
            location,
            data=chunk,
            headers={**app.admin, **OCTET, "Content-Range": content_range},
        )
        await resp.read()
        return resp

    # nothing uploaded yet: a chunk must start at 0
    resp = await patch(data[10:20], "10-19")
    await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
    assert resp.headers["Range"] == "0-0"
    assert (await patch(data[:10], "0-9")).status == 202

    for content_range, chunk in (("0-9", data[:10]), ("20-29", data[20:30]), ("5-14", data[5:15])):
        resp = await patch(chunk, content_range)
        await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
        assert resp.headers["Range"] == "0-9", content_range

    # a Content-Range that disagrees with the body length, or is not a range at all
    resp = await patch(data[10:20], "10-25")
    await expect_error(resp, 400, "BLOB_UPLOAD_INVALID")
    resp = await patch(data[10:20], "ten-twenty")
    await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")

    # the upload was not disturbed: it resumes at 10 and completes with the right bytes
    async with app.client.get(location, headers=app.admin) as resp:
        assert resp.status == 204
        assert resp.headers["Range"] == "0-9"
    assert (await patch(data[10:20], "10-19")).status == 202
    # a final PUT whose Content-Range does not follow on is refused too
    resp = await app.client.put(
        location,
        params={"digest": sha256(data)},
        data=data[25:30],
        headers={**app.admin, **OCTET, "Content-Range": "25-29"},
    )
    await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
    assert resp.headers["Range"] == "0-19"
    async with app.client.put(
        location,
        params={"digest": sha256(data)},
        data=data[20:30],
        headers={**app.admin, **OCTET, "Content-Range": "20-29"},
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with app.client.get(f"/v2/{repo}/blobs/{sha256(data)}", headers=app.admin) as resp:
        assert await resp.read() == data


async def test_unknown_upload_id_is_404(sqlite_app: InProcess) -> None:
    app = sqlite_app
    repo = "bad/uploads"
    await app.push_blob(repo, b"make the repository exist")
    ids = [str(uuid.uuid4()), "not-a-uuid", "0" * 400, "%2e%2e"]
    for upload_id in ids:
        path = yarl.URL(f"/v2/{repo}/blobs/uploads/{upload_id}", encoded=True)
        for method, kwargs in (
            ("GET", {}),
            ("PATCH", {"data": b"abc", "headers": {**app.admin, **OCTET}}),
            ("PUT", {"data": b"abc", "params": {"digest": sha256(b"abc")}}),
            ("DELETE", {}),
        ):
            kwargs.setdefault("headers", app.admin)
            async with app.client.request(method, path, **kwargs) as resp:
                await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    await assert_blob_absent(app, repo, sha256(b"abc"))

    # a session that completed or was cancelled is unknown afterwards
    done = await start_session(app, repo)
    async with app.client.put(
        done, params={"digest": sha256(b"x")}, data=b"x", headers={**app.admin, **OCTET}
    ) as resp:
        assert resp.status == 201
    cancelled = await start_session(app, repo)
    assert await status_of(app, "DELETE", cancelled) == 204
    for location in (done, cancelled):
        async with app.client.get(location, headers=app.admin) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
        async with app.client.patch(location, data=b"y", headers={**app.admin, **OCTET}) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    # an upload in a repository that does not exist
    async with app.client.get(
        f"/v2/bad/never-pushed/blobs/uploads/{uuid.uuid4()}", headers=app.admin
    ) as resp:
        await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_upload_id_of_another_repository_is_404(sqlite_app: InProcess) -> None:
    app = sqlite_app
    await app.push_blob("bad/other", b"other exists")
    location = await start_session(app, "bad/mine")
    upload_id = location.rsplit("/", 1)[1]
    first = b"first half|"
    async with app.client.patch(location, data=first, headers={**app.admin, **OCTET}) as resp:
        assert resp.status == 202

    for repo in ("bad/other", "bad/absent", "bad/mine/sub"):
        path = f"/v2/{repo}/blobs/uploads/{upload_id}"
        async with app.client.get(path, headers=app.admin) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
        async with app.client.patch(path, data=b"intruder", headers={**app.admin, **OCTET}) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
        async with app.client.put(
            path,
            params={"digest": sha256(first + b"intruder")},
            data=b"intruder",
            headers={**app.admin, **OCTET},
        ) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
        async with app.client.delete(path, headers=app.admin) as resp:
            await expect_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    await assert_blob_absent(app, "bad/other", sha256(first + b"intruder"))

    # the session in its own repository is untouched and completes
    async with app.client.get(location, headers=app.admin) as resp:
        assert resp.status == 204
        assert resp.headers["Range"] == f"0-{len(first) - 1}"
    whole = first + b"second half"
    async with app.client.put(
        location,
        params={"digest": sha256(whole)},
        data=b"second half",
        headers={**app.admin, **OCTET},
    ) as resp:
        assert resp.status == 201
    async with app.client.get(f"/v2/bad/mine/blobs/{sha256(whole)}", headers=app.admin) as resp:
        assert await resp.read() == whole
    await assert_blob_absent(app, "bad/other", sha256(whole))


# --- blob GET with Range ---------------------------------------------------------------------


async def test_blob_range_requests(sqlite_app: InProcess) -> None:
    app = sqlite_app
    data = random_bytes(10_000, "ranges")
    digest = await app.push_blob("bad/ranges", data)
    path = f"/v2/bad/ranges/blobs/{digest}"
    size = len(data)

    for header, start, end in (
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1234-5677", 1234, 5677),
        ("bytes=9000-", 9000, size - 1),
        ("bytes=-100", size - 100, size - 1),
        ("bytes=9990-20000", 9990, size - 1),
        ("bytes=-20000", 0, size - 1),
    ):
        async with app.client.get(path, headers={**app.admin, "Range": header}) as resp:
            body = await resp.read()
            assert resp.status == 206, (header, resp.status, body[:200])
            assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}", header
            assert body == data[start : end + 1], header
            assert int(resp.headers["Content-Length"]) == end - start + 1

    for header in ("bytes=10000-", "bytes=20000-30000"):
        async with app.client.get(path, headers={**app.admin, "Range": header}) as resp:
            await resp.read()
            assert resp.status == 416, header
            assert resp.headers["Content-Range"] == f"bytes */{size}"

    # without Range, the whole blob
    async with app.client.get(path, headers=app.admin) as resp:
        assert resp.status == 200
        assert await resp.read() == data


async def test_blob_range_errors_use_the_error_envelope(sqlite_app: InProcess) -> None:
    app = sqlite_app
    data = random_bytes(100, "range-envelope")
    digest = await app.push_blob("bad/ranges", data)
    path = f"/v2/bad/ranges/blobs/{digest}"
    async with app.client.get(path, headers={**app.admin, "Range": "bytes=100-"}) as resp:
        await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
        assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    async with app.client.get(path, headers={**app.admin, "Range": "items=0-1"}) as resp:
        assert resp.status in (200, 400, 416)
        if resp.status != 200:
            await expect_error(resp, resp.status, {"BLOB_UPLOAD_INVALID", "SIZE_INVALID"})


# --- names, tags, methods, credentials -------------------------------------------------------

BAD_NAMES = {
    "dot-dot": "bad/%2e%2e/up",
    "dot-dot-only": "%2e%2e",
    "uppercase": "Bad/Upper",
    "too-long": "a" * 256,
    "too-long-components": "/".join(["abcdefghij"] * 23) + "/abcde",  # 258 characters
    "double-dot-separator": "bad/a..b",
    "leading-dash": "bad/-a",
    "empty-component": "bad//a",
    "trailing-slash": "bad/a/",
    "space": "bad/a%20b",
    "unicode": "bad/%C3%A5",
}


async def test_invalid_repository_names_are_name_invalid(sqlite_app: InProcess) -> None:
    app = sqlite_app
    digest = sha256(b"x")
    for case, name in BAD_NAMES.items():
        for method, suffix, kwargs in (
            ("GET", "manifests/latest", {}),
            ("HEAD", "manifests/latest", {}),
            ("PUT", "manifests/latest", {"data": image_manifest(_CONFIG, [])}),
            ("GET", f"blobs/{digest}", {}),
            ("POST", "blobs/uploads/", {}),
            ("POST", "blobs/uploads/", {"params": {"digest": digest}, "data": b"x"}),
            ("GET", "tags/list", {}),
            ("GET", f"referrers/{digest}", {}),
        ):
            url = yarl.URL(f"/v2/{name}/{suffix}", encoded=True)
            async with app.client.request(method, url, headers=app.admin, **kwargs) as resp:
                if method == "HEAD":
                    assert resp.status == 400, (case, method, suffix)
                else:
                    await expect_error(resp, 400, "NAME_INVALID")
    async with app.client.get("/v2/_catalog", headers=app.admin) as resp:
        assert (await resp.json())["repositories"] == []
    # the longest valid name works
    longest = "/".join(["abcdefghij"] * 23) + "/ab"
    assert len(longest) == 255
    await app.push_blob(longest, b"x")


async def test_invalid_tags_on_put_are_refused(sqlite_app: InProcess) -> None:
    app = sqlite_app
    image = await push_image(app, "bad/tags", "ok", "tags")
    for tag in ("-lead", ".lead", "a" * 129, "plus+sign", "sp%20ace", "t%C3%A5g", "semi;colon"):
        url = yarl.URL(f"/v2/bad/tags/manifests/{tag}", encoded=True)
        async with app.client.put(
            url,
            data=image.manifest,
            headers={**app.admin, "Content-Type": MEDIA_TYPE_IMAGE_MANIFEST},
        ) as resp:
            await expect_error(resp, 400, {"MANIFEST_INVALID", "TAG_INVALID"})
    assert await tags_of(app, "bad/tags") == ["ok"]
    longest = "_" + "a" * 127
    assert (await put_manifest(app, "bad/tags", longest, image.manifest)).status == 201
    assert sorted(await tags_of(app, "bad/tags")) == sorted(["ok", longest])


async def test_malformed_digests_and_parameters_are_400(sqlite_app: InProcess) -> None:
    app = sqlite_app
    await push_image(app, "bad/params", "v1", "params")
    for digest in ("sha256:xyz", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256"):
        for method, path in (
            ("GET", f"/v2/bad/params/blobs/{digest}"),
            ("DELETE", f"/v2/bad/params/blobs/{digest}"),
            ("GET", f"/v2/bad/params/referrers/{digest}"),
            ("DELETE", f"/v2/bad/params/manifests/{digest}"),
        ):
            async with app.client.request(method, path, headers=app.admin) as resp:
                if digest == "sha256":  # not digest-shaped at all
                    assert resp.status in (400, 404), (method, path)
                    if resp.status == 400:
                        await expect_error(resp, 400, {"DIGEST_INVALID", "NAME_INVALID"})
                else:
                    await expect_error(resp, 400, "DIGEST_INVALID")
        assert await status_of(app, "HEAD", f"/v2/bad/params/blobs/{digest}") in (400, 404)
    async with app.client.post(
        "/v2/bad/params/blobs/uploads/",
        params={"mount": "sha256:nope", "from": "bad/other"},
        headers=app.admin,
    ) as resp:
        await expect_error(resp, 400, "DIGEST_INVALID")
    for n in ("abc", "-1", "1.5"):
        async with app.client.get(
            "/v2/bad/params/tags/list", params={"n": n}, headers=app.admin
        ) as resp:
            assert resp.status == 400, n
            codes = {"PAGINATION_NUMBER_INVALID", "BLOB_UPLOAD_INVALID"}
            check_error_body(await resp.read(), codes)
    assert await tags_of(app, "bad/params") == ["v1"]


UNSUPPORTED = [
    ("POST", "/v2/bad/methods/manifests/latest"),
    ("PATCH", "/v2/bad/methods/manifests/latest"),
    ("PUT", "/v2/bad/methods/blobs/{digest}"),
    ("PATCH", "/v2/bad/methods/blobs/{digest}"),
    ("POST", "/v2/bad/methods/blobs/{digest}"),
    ("PUT", "/v2/bad/methods/tags/list"),
    ("DELETE", "/v2/bad/methods/tags/list"),
    ("PUT", "/v2/bad/methods/blobs/uploads/"),
    ("POST", "/v2/bad/methods/blobs/uploads/{upload}"),
    ("DELETE", "/v2/bad/methods/referrers/{digest}"),
    ("POST", "/v2/"),
    ("DELETE", "/v2/"),
    ("OPTIONS", "/v2/bad/methods/manifests/latest"),
    ("TRACE", "/v2/"),
]


async def test_unsupported_methods_are_405(sqlite_app: InProcess) -> None:
    app = sqlite_app
    image = await push_image(app, "bad/methods", "latest", "methods")
    digest = sha256(image.layer)
    upload = (await start_session(app, "bad/methods")).rsplit("/", 1)[1]
    for method, template in UNSUPPORTED:
        path = template.format(digest=digest, upload=upload)
        async with app.client.request(method, path, headers=app.admin, data=b"") as resp:
            await expect_error(resp, 405, "UNSUPPORTED")
    # nothing was changed by them
    async with app.client.get(f"/v2/bad/methods/blobs/{digest}", headers=app.admin) as resp:
        assert await resp.read() == image.layer
    assert await tags_of(app, "bad/methods") == ["latest"]


async def test_catalog_refuses_methods_other_than_get(sqlite_app: InProcess) -> None:
    app = sqlite_app
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        async with app.client.request(method, "/v2/_catalog", headers=app.admin) as resp:
            await expect_error(resp, 405, "UNSUPPORTED")


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


MALFORMED_AUTH = {
    "not-base64": "Basic !!!not-base64!!!",
    "no-colon": _basic(b"adminpassword"),
    "bad-utf8": _basic(b"admin:\xff\xfe"),
    "empty": "Basic ",
    "scheme-only": "Basic",
    "padding-missing": "Basic YWRtaW46",  # "admin:" minus a padding character
    "unknown-scheme": "Digest username=admin",
    "wrong-password": _basic(b"admin:wrong"),
    "unknown-user": _basic(b"nobody:nothing"),
    "garbage-bearer": "Bearer not.a.token",
}


async def test_malformed_basic_credentials_are_401(sqlite_app: InProcess) -> None:
    app = sqlite_app
    await push_image(app, "bad/auth", "v1", "auth")
    endpoints = (
        ("GET", "/v2/"),
        ("GET", "/v2/bad/auth/manifests/v1"),
        ("POST", "/v2/bad/auth/blobs/uploads/"),
        ("GET", "/v2/_catalog"),
    )
    for case, header in MALFORMED_AUTH.items():
        # wrong secrets cost a password hash each: one endpoint is enough for those
        wrong_secret = case in ("wrong-password", "unknown-user", "padding-missing")
        for method, path in endpoints[:1] if wrong_secret else endpoints:
            async with app.client.request(method, path, headers={"Authorization": header}) as resp:
                await expect_error(resp, 401, "UNAUTHORIZED")
                assert resp.headers["WWW-Authenticate"].startswith("Bearer realm="), case
    # anonymous is challenged, and admin still works
    async with app.client.get("/v2/") as resp:
        await expect_error(resp, 401, "UNAUTHORIZED")
    assert await status_of(app, "GET", "/v2/") == 200
    assert await tags_of(app, "bad/auth") == ["v1"]


# --- the same blob from many clients at once -------------------------------------------------


async def _concurrent_pushes(app: InProcess, repo: str, data: bytes, clients: int = 8) -> None:
    digest = sha256(data)
    half = len(data) // 2

    async def monolithic() -> int:
        async with app.client.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": digest},
            data=data,
            headers={**app.admin, **OCTET},
        ) as resp:
            await resp.read()
            return resp.status

    async def chunked() -> int:
        async with app.client.post(f"/v2/{repo}/blobs/uploads/", headers=app.admin) as resp:
            if resp.status != 202:
                return resp.status
            location = resp.headers["Location"]
        async with app.client.patch(
            location,
            data=data[:half],
            headers={**app.admin, **OCTET, "Content-Range": f"0-{half - 1}"},
        ) as resp:
            if resp.status != 202:
                return resp.status
        async with app.client.put(
            location, params={"digest": digest}, data=data[half:], headers={**app.admin, **OCTET}
        ) as resp:
            await resp.read()
            return resp.status

    pushes = [monolithic() if i % 2 == 0 else chunked() for i in range(clients)]
    statuses = await asyncio.wait_for(asyncio.gather(*pushes), timeout=60)
    assert statuses == [201] * clients

    async with app.client.get(f"/v2/{repo}/blobs/{digest}", headers=app.admin) as resp:
        assert resp.status == 200
        assert await resp.read() == data
    blob_files = storage_files(app.settings.data, "blobs")
    assert [p for p in blob_files if p.parent.name == digest.removeprefix("sha256:")] == [
        app.settings.data / "storage" / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
    ]
    assert storage_files(app.settings.data, "uploads") == []
    async with app.state.registry.store.db.read() as conn:
        rows = await conn.execute(
            select(func.count()).select_from(blobs_table).where(blobs_table.c.digest == digest)
        )
        assert rows.scalar() == 1
        links = await conn.execute(
            select(func.count())
            .select_from(repository_blobs)
            .where(repository_blobs.c.digest == digest)
        )
        assert links.scalar() == 1


async def test_same_blob_pushed_concurrently_by_eight_clients(registry_app: InProcess) -> None:
    app = registry_app
    repo = "bad/concurrent"
    await app.push_blob(repo, b"the repository exists before the race")
    data = random_bytes(3 * 1024 * 1024 + 17, "concurrent")
    await _concurrent_pushes(app, repo, data)
    # and once more, now that it exists: every push still succeeds, still one blob
    await _concurrent_pushes(app, repo, data)


@contextlib.asynccontextmanager
async def table_write_lock(database_url: str, table: str) -> AsyncIterator[Any]:
    """Hold PostgreSQL's SHARE lock on `table`: reads go on, INSERTs wait until it is released.

    That lines concurrent requests up deterministically at the INSERT they race on; the
    yielded function waits (bounded) until `n` backends are queued there.
    """
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"LOCK TABLE {table} IN SHARE MODE")

        async def waiters(n: int) -> None:
            deadline = time.monotonic() + 20
            query = (
                # This database's relation only: tests in parallel lock tables of that name
                # in theirs.
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE c.relname = $1 AND NOT l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            while await conn.fetchval(query, table) < n:
                assert time.monotonic() < deadline, f"{n} writers never queued on {table}"
                await asyncio.sleep(0.02)
            await transaction.rollback()

        yield waiters
    finally:
        await conn.close()


async def test_first_pushes_to_a_new_repository_race_sqlite(sqlite_app: InProcess) -> None:
    await _concurrent_pushes(sqlite_app, "bad/brand-new", random_bytes(100_000, "new-repo"))


@pytest.mark.peers
async def test_first_pushes_to_a_new_repository_race_postgres(
    tmp_path: Path, postgres_database_url: str
) -> None:
    async with running_app(tmp_path / "data", postgres_database_url) as app:

        async def start() -> int:
            return await status_of(app, "POST", "/v2/bad/brand-new/blobs/uploads/")

        async with table_write_lock(postgres_database_url, "repositories") as queued:
            pushes = [asyncio.create_task(start()) for _ in range(2)]
            await queued(2)
        statuses = await asyncio.wait_for(asyncio.gather(*pushes, return_exceptions=True), 30)
        assert statuses == [202, 202]


async def _concurrent_tag_pushes(app: InProcess, clients: int = 8) -> None:
    """`clients` PUTs of one new tag at once: half the same manifest, half different ones."""
    repo = "bad/tag-race"
    images = [await push_image(app, repo, f"seed{i}", f"tag-race-{i}") for i in range(4)]

    async def put(raw: bytes) -> int:
        resp = await put_manifest(app, repo, "contested", raw, MEDIA_TYPE_IMAGE_MANIFEST)
        return resp.status

    same = [put(images[0].manifest) for _ in range(clients // 2)]
    different = [put(images[i % 4].manifest) for i in range(clients // 2)]
    statuses = await asyncio.wait_for(asyncio.gather(*same, *different), timeout=60)
    assert statuses == [201] * clients
    async with app.client.get(
        f"/v2/{repo}/manifests/contested",
        headers={**app.admin, "Accept": MEDIA_TYPE_IMAGE_MANIFEST},
    ) as resp:
        assert resp.status == 200
        assert await resp.read() in {image.manifest for image in images}
    assert (await tags_of(app, repo)).count("contested") == 1


async def test_same_new_tag_pushed_concurrently_sqlite(sqlite_app: InProcess) -> None:
    await _concurrent_tag_pushes(sqlite_app)


@pytest.mark.peers
async def test_same_new_tag_pushed_concurrently_postgres(
    tmp_path: Path, postgres_database_url: str
) -> None:
    async with running_app(tmp_path / "data", postgres_database_url) as app:
        repo = "bad/tag-race"
        images = [await push_image(app, repo, f"seed{i}", f"tag-race-{i}") for i in range(2)]

        async def put(image: PushedImage) -> int:
            resp = await put_manifest(app, repo, "contested", image.manifest)
            return resp.status

        # manifest pushes to one repository serialize on its row lock, so concurrent pushes of
        # one new tag cannot both insert it
        pushes = [asyncio.create_task(put(image)) for image in images * 4]
        statuses = await asyncio.wait_for(asyncio.gather(*pushes, return_exceptions=True), 30)
        assert statuses == [201] * 8
        assert (await tags_of(app, repo)).count("contested") == 1


# --- hand-written HTTP against a real server -------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockyardServer]:
    """One `dockyard serve` (SQLite, fresh data) for this module's socket-level cases, which
    each use their own repository: starting one per test would cost more than the tests."""
    server = launch_dockyard(tmp_path_factory.mktemp("dockyard-bad-input"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(shared_server: DockyardServer, request: pytest.FixtureRequest) -> DockyardServer:
    """The shared server, its log attached to this test's report if it fails."""
    attach_log(request, f"dockyard {shared_server.host}", shared_server.log)
    return shared_server


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_response(reader: asyncio.StreamReader) -> RawResponse | None:
    """One HTTP/1.1 response (Content-Length or chunked body), None if the server closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return RawResponse(status, headers, body)


def _auth_line(server: DockyardServer) -> str:
    token = base64.b64encode(f"admin:{server.admin_password}".encode()).decode()
    return f"Authorization: Basic {token}\r\n"


async def raw_exchange(
    server: DockyardServer,
    head: str,
    body: bytes = b"",
    *,
    half_close: bool = False,
    limit: float = 15.0,
) -> RawResponse | None:
    """Send `head` (request line and headers, without the blank line) and `body` as they are;
    read one response. `half_close` shuts the write side down after sending (a client gone)."""

    async def go() -> RawResponse | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(head.encode("latin-1") + b"\r\n" + body)
            await writer.drain()
            if half_close:
                writer.write_eof()
            return await _read_response(reader)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.wait_for(go(), limit)


def _request_head(server: DockyardServer, method: str, path: str, **headers: str | int) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {server.host}"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in headers.items()]
    return "\r\n".join(lines) + "\r\n" + _auth_line(server)


async def server_answers(server: DockyardServer) -> None:
    response = await raw_exchange(server, _request_head(server, "GET", "/v2/"))
    assert response is not None
    assert response.status == 200


def http_session(server: DockyardServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=server.url,
        headers={"Authorization": aiohttp.encode_basic_auth("admin", server.admin_password)},
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def head_status(session: aiohttp.ClientSession, path: str) -> int:
    async with session.head(path) as resp:
        return resp.status


async def test_raw_dot_dot_and_garbage_requests(server: DockyardServer) -> None:
    for path in ("/v2/a/../b/manifests/latest", "/v2/../../etc/passwd", "/v2/a/%2E%2E/b/tags/list"):
        response = await raw_exchange(server, _request_head(server, "GET", path))
        assert response is not None
        if path.startswith("/v2/../"):
            # a path that climbs out of /v2 is not a /v2 route at all
            assert response.status in (400, 404), response
        else:
            assert response.status == 400, (path, response)
            check_error_body(response.body, "NAME_INVALID")
    for garbage in ("GARBAGE", "GET", "GET /v2/ HTTP/9.9", "\x00\x01\x02 / HTTP/1.1"):
        await raw_exchange(server, garbage + "\r\n", half_close=True)
    await server_answers(server)


async def test_content_length_that_lies(server: DockyardServer) -> None:
    data = random_bytes(100, "liar")
    digest_all, digest_half = sha256(data), sha256(data[:50])
    repo = "bad/liar"

    # says 100, sends 50 and goes away: monolithic upload, then a PATCH
    head = _request_head(
        server,
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest_all}",
        Content_Type="application/octet-stream",
        Content_Length=100,
    )
    await raw_exchange(server, head, data[:50], half_close=True)

    async with http_session(server) as session:
        async with session.post(f"/v2/{repo}/blobs/uploads/") as resp:
            assert resp.status == 202
            location = resp.headers["Location"]
        head = _request_head(
            server, "PATCH", location, Content_Type="application/octet-stream", Content_Length=100
        )
        await raw_exchange(server, head, data[:50], half_close=True)
        # says 50, sends 100: the first 50 are the body, the rest is not a request
        head = _request_head(
            server,
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={digest_all}",
            Content_Type="application/octet-stream",
            Content_Length=50,
        )
        response = await raw_exchange(server, head, data)
        assert response is not None
        assert response.status == 400
        check_error_body(response.body, "DIGEST_INVALID")

        # manifests too: says 100, sends 50
        head = _request_head(
            server,
            "PUT",
            f"/v2/{repo}/manifests/liar",
            Content_Type=MEDIA_TYPE_IMAGE_MANIFEST,
            Content_Length=len(image_manifest(_CONFIG, [])) + 50,
        )
        await raw_exchange(server, head, image_manifest(_CONFIG, []), half_close=True)

        for digest in (digest_all, digest_half):
            assert await head_status(session, f"/v2/{repo}/blobs/{digest}") == 404
        async with session.get(f"/v2/{repo}/tags/list") as resp:
            assert (await resp.json())["tags"] == []
        # the server keeps serving, and takes the honest version
        async with session.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": digest_all}, data=data, headers=OCTET
        ) as resp:
            assert resp.status == 201
        async with session.get(f"/v2/{repo}/blobs/{digest_all}") as resp:
            assert await resp.read() == data
    await server_answers(server)


async def test_truncated_chunk_resumes_from_the_reported_offset(
    server: DockyardServer,
) -> None:
    repo = "bad/resume"
    data = random_bytes(10 * 1024 * 1024 + 333, "resume")
    digest = sha256(data)
    sent = 6 * 1024 * 1024 + 1000
    async with http_session(server) as session:
        async with session.post(f"/v2/{repo}/blobs/uploads/") as resp:
            assert resp.status == 202
            location = resp.headers["Location"]
        head = _request_head(
            server,
            "PATCH",
            location,
            Content_Type="application/octet-stream",
            Content_Length=len(data),
            Content_Range=f"0-{len(data) - 1}",
        )
        upload_file = upload_data(server.data, location.rsplit("/", 1)[1])
        await send_until_stored(server, head, data[:sent], upload_file, 4 * 1024 * 1024)

        # resume the way a client does: ask for the offset, send from there, and on 416 take the
        # offset the refusal names
        async with session.get(location) as resp:
            assert resp.status == 204, await resp.text()
            offset = _offset(resp.headers["Range"])
        for _attempt in range(20):
            assert 0 <= offset <= sent
            rest = data[offset:]
            async with session.patch(
                location,
                data=rest,
                headers={**OCTET, "Content-Range": f"{offset}-{len(data) - 1}"},
            ) as resp:
                if resp.status == 202:
                    assert resp.headers["Range"] == f"0-{len(data) - 1}"
                    break
                await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
                offset = _offset(resp.headers["Range"])
        else:
            pytest.fail("the upload never accepted the resumed chunk")
        async with session.put(location, params={"digest": digest}) as resp:
            assert resp.status == 201, await resp.text()
        async with session.get(f"/v2/{repo}/blobs/{digest}") as resp:
            assert hashlib.sha256(await resp.read()).hexdigest() == digest.split(":")[1]
    assert file_size(upload_file) == -1, "the completed upload left its data behind"


async def send_until_stored(
    server: DockyardServer, head: str, body: bytes, stored: Path, at_least: int
) -> None:
    """Send a request and cut the connection once the server has written `at_least` bytes of it
    to `stored`: the handler is then certainly running, so what follows sees its outcome."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode("latin-1") + b"\r\n" + body)
        await asyncio.wait_for(writer.drain(), 30)
        deadline = time.monotonic() + 20
        while file_size(stored) < at_least:
            assert time.monotonic() < deadline, f"the server never stored {at_least} bytes"
            await asyncio.sleep(0.02)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    del reader


def _offset(range_header: str) -> int:
    """The byte count an upload's `Range: 0-<last>` reports (`0-0` may mean empty)."""
    last = int(range_header.split("-")[1])
    return 0 if last == 0 else last + 1


async def test_blob_ranges_through_the_real_server(server: DockyardServer) -> None:
    data = random_bytes(300_000, "server-ranges")
    digest = sha256(data)
    async with http_session(server) as session:
        async with session.post(
            "/v2/bad/ranges/blobs/uploads/", params={"digest": digest}, data=data, headers=OCTET
        ) as resp:
            assert resp.status == 201
        path = f"/v2/bad/ranges/blobs/{digest}"
        for header, start, end in (
            ("bytes=0-0", 0, 0),
            ("bytes=100000-199999", 100000, 199999),
            ("bytes=-1000", len(data) - 1000, len(data) - 1),
            ("bytes=299000-", 299000, len(data) - 1),
        ):
            async with session.get(path, headers={"Range": header}) as resp:
                assert resp.status == 206, header
                assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
                assert await resp.read() == data[start : end + 1]
        async with session.get(path, headers={"Range": f"bytes={len(data)}-"}) as resp:
            assert resp.status == 416
            assert resp.headers["Content-Range"] == f"bytes */{len(data)}"
        async with session.get(path) as resp:
            assert resp.status == 200
            assert await resp.read() == data


async def test_manifest_with_a_key_twice_is_refused_through_the_real_server(
    server: DockyardServer,
) -> None:
    """Python and Go keep the last of two `config` values, other parsers the first: a client
    verifying what this registry accepted could be shown another image, so it is refused."""
    repo = "bad/duplicate-keys"
    other = json_bytes({"architecture": "arm64", "os": "linux"})
    async with http_session(server) as session:
        for blob in (_CONFIG, other):
            async with session.post(
                f"/v2/{repo}/blobs/uploads/",
                params={"digest": sha256(blob)},
                data=blob,
                headers=OCTET,
            ) as resp:
                assert resp.status == 201
        config = {"mediaType": MEDIA_TYPE_IMAGE_CONFIG, "digest": sha256(other), "size": len(other)}
        good = image_manifest(_CONFIG, [])
        raw = good.replace(b'"config":', b'"config":' + json.dumps(config).encode() + b',"config":')
        assert raw.count(b'"config":') == 2
        assert json.loads(raw)["config"]["digest"] == sha256(_CONFIG)
        headers = {"Content-Type": MEDIA_TYPE_IMAGE_MANIFEST}
        async with session.put(f"/v2/{repo}/manifests/v1", data=raw, headers=headers) as resp:
            error = await expect_error(resp, 400, "MANIFEST_INVALID")
        assert "'config' twice" in error["message"]
        assert error["detail"] == {"key": "config"}
        async with session.head(f"/v2/{repo}/manifests/{sha256(raw)}") as resp:
            assert resp.status == 404
        async with session.put(f"/v2/{repo}/manifests/v1", data=good, headers=headers) as resp:
            assert resp.status == 201
