"""Numbers and strings from the client that are too big, negative or odd, at the /v2 edge.

Each reaches `int()`, the JSON parser or the database only after it is checked, so the answer is
the spec's error (or the ordinary result), never a 500. The cases where the database decides run
on SQLite and PostgreSQL (`registry_app`): PostgreSQL refuses NUL characters in text, and both
refuse integers past 64 bits.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp
import pytest

from support.inprocess import InProcess

HUGE = "99999999999999999999999"  # > 2**63
LONG = "1" * 5000  # past Python's 4300-digit limit for int()
OCTET = {"Content-Type": "application/octet-stream"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


async def expect_error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a spec error answer (status, code, a non-empty message); return the error."""
    body = await resp.read()
    assert resp.status == status, (resp.method, str(resp.url), resp.status, body)
    errors = json.loads(body)["errors"]
    assert errors[0]["code"] == code, body
    assert errors[0]["message"].strip(), body
    first: dict[str, Any] = errors[0]
    return first


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- Range on blob GET -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        f"bytes={HUGE}-",
        f"bytes=0-{HUGE}0",  # fine: the end is clamped to the blob
        f"bytes={HUGE}-{HUGE}0",
        f"bytes=-{HUGE}",  # fine: the last 2**76 bytes are the whole blob
        f"bytes={LONG}-",
        f"bytes=0-{LONG}",  # fine, as above
        f"bytes=-{LONG}",  # fine, as above
        "bytes=-0",
        "bytes=--5",
        "bytes=5--3",
        "bytes=-5-10",
        "bytes=1_0-20",
        "bytes=+1-5",
        "bytes=\u00b2-5",
    ],
)
async def test_blob_range_numbers(sqlite_app: InProcess, header: str) -> None:
    app = sqlite_app
    data = b"0123456789" * 10
    digest = await app.push_blob("big/range", data)
    path = f"/v2/big/range/blobs/{digest}"
    async with app.client.get(path, headers={**app.admin, "Range": header}) as resp:
        if header in (f"bytes=0-{HUGE}0", f"bytes=-{HUGE}", f"bytes=0-{LONG}", f"bytes=-{LONG}"):
            assert resp.status == 206, await resp.read()
            assert await resp.read() == data
            return
        error = await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")
        assert len(error["message"]) < 300, error  # no 5,000-digit echo


# --- Content-Range and Content-Length on uploads ---------------------------------------------


async def _session(app: InProcess, repo: str) -> str:
    async with app.client.post(f"/v2/{repo}/blobs/uploads/", headers=app.admin) as resp:
        assert resp.status == 202, await resp.text()
        location: str = resp.headers["Location"]
    return location


@pytest.mark.parametrize(
    ("content_range", "status"),
    [
        (f"{HUGE}-{int(HUGE) + 3}", 416),  # not where the upload ends
        (f"0-{HUGE}", 416),  # past the largest blob size
        (f"{2**63 - 4}-{2**63 - 1}", 416),
        (f"{2**63}-{2**63 + 3}", 416),  # past the largest blob size
        ("0-7", 400),  # covers more than the body
        (f"{LONG}-{LONG}", 416),
        (f"0-{LONG}", 416),
        ("-1-3", 416),
        ("0--3", 416),
        ("3-1", 416),
        ("1_0-20", 416),
        ("+0-3", 416),
    ],
)
async def test_patch_content_range_numbers(
    sqlite_app: InProcess, content_range: str, status: int
) -> None:
    app = sqlite_app
    location = await _session(app, "big/patch")
    headers = {**app.admin, **OCTET, "Content-Range": content_range}
    async with app.client.patch(location, data=b"abcd", headers=headers) as resp:
        error = await expect_error(resp, status, "BLOB_UPLOAD_INVALID")
        assert len(error["message"]) < 300, error
    # the session is still usable from the start
    headers = {**app.admin, **OCTET, "Content-Range": "0-3"}
    async with app.client.patch(location, data=b"abcd", headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == "0-3"


@pytest.mark.parametrize(
    "content_range", [f"{HUGE}-{int(HUGE) + 3}", f"{LONG}-{LONG}", "1_0-13", "\u00b2-5"]
)
async def test_put_content_range_numbers(sqlite_app: InProcess, content_range: str) -> None:
    app = sqlite_app
    location = await _session(app, "big/put")
    headers = {**app.admin, **OCTET, "Content-Range": content_range}
    async with app.client.put(
        location, params={"digest": sha256(b"abcd")}, data=b"abcd", headers=headers
    ) as resp:
        await expect_error(resp, 416, "BLOB_UPLOAD_INVALID")


async def asgi(
    app: InProcess, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """One request straight to the ASGI app, for headers aiohttp refuses to send."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("dockyard.test", 80),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app.app(scope, receive, send)
    return status, b"".join(chunks)


@pytest.mark.parametrize("length", [HUGE, str(2**63), LONG, "-1", "1_0", "+4", "\u00b2"])
async def test_content_length_numbers(sqlite_app: InProcess, length: str) -> None:
    app = sqlite_app
    location = await _session(app, "big/length")
    headers = {**app.admin, **OCTET, "Content-Length": length}
    status, body = await asgi(app, "PATCH", location, headers, b"abcd")
    assert status == 400, body
    error = json.loads(body)["errors"][0]
    assert error["code"] == "SIZE_INVALID", body
    assert len(error["message"]) < 300, error
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"{}"), "size": 2},
        "layers": [],
    }
    headers = {**app.admin, "Content-Type": OCI_MANIFEST, "Content-Length": length}
    raw = json.dumps(manifest).encode()
    status, body = await asgi(app, "PUT", "/v2/big/length/manifests/latest", headers, raw)
    assert status in (400, 413), body
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID", body


# --- descriptor sizes and schemaVersion in pushed manifests ----------------------------------


@pytest.mark.parametrize(
    "size",
    [HUGE, "9223372036854775808", "-1", "1e30", "1.5", "2.0", "true", "null", '"4"', LONG],
)
@pytest.mark.parametrize("where", ["config", "layer", "foreign-layer", "subject", "index"])
async def test_descriptor_size_numbers(sqlite_app: InProcess, size: str, where: str) -> None:
    app = sqlite_app
    repo = "big/sizes"
    digest, _ = await app.push_image(repo, "base")
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = await app.push_blob(repo, config)
    odd = '"ODD-SIZE"'  # stands for `size`, spliced into the JSON text after dumping

    def descriptor(media_type: str, digest: str, size: Any = odd) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": digest, "size": size}

    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config_digest, len(config)),
        "layers": [],
    }
    media_type = OCI_MANIFEST
    if where == "config":
        manifest["config"] = descriptor(OCI_CONFIG, config_digest)
    elif where == "layer":
        manifest["layers"] = [descriptor(LAYER, config_digest)]
    elif where == "foreign-layer":
        manifest["layers"] = [descriptor(FOREIGN, sha256(b"elsewhere"))]
    elif where == "subject":
        manifest["subject"] = descriptor(OCI_MANIFEST, digest)
    elif where == "index":
        media_type = "application/vnd.oci.image.index.v1+json"
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [descriptor(OCI_MANIFEST, digest)],
        }
    raw = json.dumps(manifest).replace(json.dumps(odd), size).encode()
    assert b"ODD-SIZE" not in raw
    headers = {**app.admin, "Content-Type": media_type}
    async with app.client.put(f"/v2/{repo}/manifests/odd", data=raw, headers=headers) as resp:
        error = await expect_error(resp, 400, "MANIFEST_INVALID")
        assert len(error["message"]) < 500, error


async def test_the_largest_int64_size_is_accepted_for_a_foreign_layer(
    sqlite_app: InProcess,
) -> None:
    app = sqlite_app
    config = b'{"architecture":"amd64","os":"linux"}'
    config_digest = await app.push_blob("big/foreign", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": FOREIGN, "digest": sha256(b"elsewhere"), "size": 2**63 - 1}],
    }
    headers = {**app.admin, "Content-Type": OCI_MANIFEST}
    async with app.client.put(
        "/v2/big/foreign/manifests/ok", data=json.dumps(manifest).encode(), headers=headers
    ) as resp:
        assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("version", [HUGE, "-2", "2.0", "2e0", "true", '"2"', LONG])
async def test_schema_version_numbers(sqlite_app: InProcess, version: str) -> None:
    app = sqlite_app
    config = b"{}"
    config_digest = await app.push_blob("big/schema", config)
    manifest = {
        "schemaVersion": "ODD-VERSION",
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": 2},
        "layers": [],
    }
    raw = json.dumps(manifest).replace('"ODD-VERSION"', version).encode()
    assert b"ODD-VERSION" not in raw
    headers = {**app.admin, "Content-Type": OCI_MANIFEST}
    async with app.client.put("/v2/big/schema/manifests/v", data=raw, headers=headers) as resp:
        error = await expect_error(resp, 400, "MANIFEST_INVALID")
        assert len(error["message"]) < 500, error


# --- NUL and other odd strings in query parameters and references ----------------------------


@pytest.mark.parametrize("last", ["\x00", "a\x00", "v1\x00zzz", "\U0001f600", "\ufffd", LONG])
async def test_listing_last_with_odd_strings(registry_app: InProcess, last: str) -> None:
    app = registry_app
    for tag in ("a", "a0", "v1", "v1.1", "v2"):
        await app.push_image("big/last", tag)
    expected_tags = sorted(t for t in ("a", "a0", "v1", "v1.1", "v2") if t > last)
    async with app.client.get(
        "/v2/big/last/tags/list", params={"last": last}, headers=app.admin
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["tags"] == expected_tags
    async with app.client.get(
        "/v2/big/last/tags/list", params={"last": last, "n": "2"}, headers=app.admin
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["tags"] == expected_tags[:2]
    async with app.client.get("/v2/_catalog", params={"last": last}, headers=app.admin) as resp:
        assert resp.status == 200, await resp.text()
        expected_repos = [r for r in ["big/last"] if r > last]
        assert (await resp.json())["repositories"] == expected_repos


async def test_references_with_nul(registry_app: InProcess) -> None:
    app = registry_app
    await app.push_image("big/nul", "v1")
    for reference in ("v1%00", "%00", "sha256:%00", "v1%00x"):
        path = f"/v2/big/nul/manifests/{reference}"
        async with app.client.get(path, headers=app.admin) as resp:
            assert resp.status in (400, 404), await resp.read()
            await expect_error(
                resp, resp.status, "MANIFEST_UNKNOWN" if resp.status == 404 else "DIGEST_INVALID"
            )
        async with app.client.delete(path, headers=app.admin) as resp:
            assert resp.status in (400, 404), await resp.read()
        async with app.client.put(
            path, data=b"{}", headers={**app.admin, "Content-Type": OCI_MANIFEST}
        ) as resp:
            assert resp.status == 400, await resp.read()
    for name in ("big/nul%00", "big%00/nul"):
        async with app.client.get(f"/v2/{name}/tags/list", headers=app.admin) as resp:
            await expect_error(resp, 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "params",
    [
        {"mount": "sha256:\x00", "from": "big/src"},
        {"mount": "sha256:" + "a" * 64, "from": "big/src\x00"},
        {"mount": "sha256:" + "a" * 64, "from": "\x00"},
        {"mount": "sha256:" + LONG, "from": "big/src"},
        {"digest": "sha256:\x00"},
        {"digest": "sha256:" + "a" * 63 + "\x00"},
    ],
)
async def test_upload_parameters_with_odd_strings(
    registry_app: InProcess, params: dict[str, str]
) -> None:
    app = registry_app
    await app.push_blob("big/src", b"source")
    async with app.client.post(
        "/v2/big/dst/blobs/uploads/", params=params, data=b"", headers={**app.admin, **OCTET}
    ) as resp:
        if "\x00" in params.get("from", ""):
            await expect_error(resp, 400, "NAME_INVALID")
        else:
            await expect_error(resp, 400, "DIGEST_INVALID")


async def test_referrers_artifact_type_with_nul(registry_app: InProcess) -> None:
    app = registry_app
    digest, _ = await app.push_image("big/ref", "v1")
    for artifact_type in ("\x00", "application/x\x00y", LONG):
        async with app.client.get(
            f"/v2/big/ref/referrers/{digest}",
            params={"artifactType": artifact_type},
            headers=app.admin,
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["manifests"] == []
