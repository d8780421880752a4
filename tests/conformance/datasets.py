"""Test data of the distribution-spec's main-branch conformance program (`conformance/
testdata.go`, the data sets `GenerateData` in `run.go` builds) and the requests its data-set
workflows send (`conformance/api.go`), for the data sets that exercise digest algorithms and
tag parameters: `sha512`, `tag-param-sha256` and `tag-param-sha512`.

A data set is content (blobs, manifests in push order, tags, expected referrers) generated with
one digest algorithm: every layer, config, manifest and index digest, and every descriptor that
names them, use it. Documents are compact JSON in Go's field order (`json.Marshal` of the
image-spec structs); digests are computed here from the exact bytes pushed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import secrets
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conformance.suite import (
    CONFIG_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    OCTET_STREAM,
    RegistryClient,
    Response,
)

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
EMPTY_JSON = "application/vnd.oci.empty.v1+json"
EXAMPLE_TYPE_1 = "application/vnd.example.oci.conformance.v1"
EXAMPLE_TYPE_2 = "application/vnd.example.oci.conformance.v2"
CHUNK_MIN = 1024  # config.go chunkMin
PLATFORMS = ({"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"})


def digest(data: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _compact(value: Any) -> bytes:
    """Go's `json.Marshal`: no spaces, fields in the order given."""
    return json.dumps(value, separators=(",", ":")).encode()


def _descriptor(
    media_type: str, dig: str, size: int, platform: dict[str, str] | None = None
) -> dict[str, Any]:
    """image.Descriptor's fields in Go's order (mediaType, digest, size, ..., platform)."""
    d: dict[str, Any] = {"mediaType": media_type, "digest": dig, "size": size}
    if platform is not None:
        d["platform"] = dict(platform)
    return d


def _gzipped_tar(number: int) -> tuple[bytes, bytes]:
    """testdata.go genLayer: a tar of one text file (random contents), and its gzip."""
    text = (
        f"Conformance test file contents for file number {number}.\n"
        f"Todays lucky number is {secrets.randbelow(2**63)}\n"
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"./conformance-{number}.txt")
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
    plain = buffer.getvalue()
    return plain, gzip.compress(plain, mtime=0)


@dataclass
class DataSet:
    """testdata.go `testData`: what one data set pushes and expects back."""

    name: str
    algorithm: str = "sha256"
    tag_parameters: bool = False  # push manifests by digest with their tags as `?tag=`
    tags: dict[str, str] = field(default_factory=dict)  # tag -> manifest digest
    tag_pushed: set[str] = field(default_factory=set)
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # manOrder: children before parents
    referrers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # subject -> goals

    # --- generators (testdata.go) ------------------------------------------------------------

    def add_blob(self, data: bytes, media_type: str = OCTET_STREAM) -> dict[str, Any]:
        dig = digest(data, self.algorithm)
        self.blobs[dig] = data
        return _descriptor(media_type, dig, len(data))

    def layer(self, number: int) -> tuple[dict[str, Any], str]:
        """genLayer: the gzipped layer's descriptor and the uncompressed digest (a diff_id)."""
        plain, compressed = _gzipped_tar(number)
        return self.add_blob(compressed, LAYER_GZIP), digest(plain, self.algorithm)

    def config(self, platform: dict[str, str], diff_ids: list[str]) -> dict[str, Any]:
        """genConfig: image.Image{Author, Platform, RootFS} marshalled as Go does."""
        body = {
            "author": "OCI Conformance Test",
            **platform,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        return self.add_blob(_compact(body), CONFIG_MEDIA_TYPE)

    def manifest(
        self,
        config: dict[str, Any],
        layers: list[dict[str, Any]],
        *,
        tag: str | None = None,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> str:
        """genManifest: an image manifest; a subject makes it an expected referrer."""
        body: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE}
        if artifact_type:
            body["artifactType"] = artifact_type
        body["config"], body["layers"] = config, layers
        if subject is not None:
            body["subject"] = subject
        if annotations:
            body["annotations"] = annotations
        dig = self._add_manifest(_compact(body), tag)
        if subject is not None:
            self.referrers.setdefault(subject["digest"], []).append(
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "artifactType": artifact_type or config["mediaType"],
                    "digest": dig,
                    "size": len(self.manifests[dig]),
                    "annotations": annotations or {},
                }
            )
        return dig

    def index(self, entries: list[dict[str, Any]], *, tag: str | None = None) -> str:
        """genIndex: an index of the given manifest descriptors (with their platforms)."""
        body = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries}
        return self._add_manifest(_compact(body), tag)

    def _add_manifest(self, raw: bytes, tag: str | None) -> str:
        dig = digest(raw, self.algorithm)
        self.manifests[dig] = raw
        self.order.append(dig)
        if tag:
            self.tags[tag] = dig
        return dig

    def descriptor_of(self, dig: str, platform: dict[str, str] | None = None) -> dict[str, Any]:
        raw = self.manifests[dig]
        return _descriptor(json.loads(raw)["mediaType"], dig, len(raw), platform)

    def manifest_full(
        self, platform: dict[str, str] = PLATFORMS[0], tag: str | None = None, layers: int = 2
    ) -> str:
        """genManifestFull: an image with `layers` layers and its config."""
        made = [self.layer(n) for n in range(layers)]
        config = self.config(platform, [diff_id for _, diff_id in made])
        return self.manifest(config, [layer for layer, _ in made], tag=tag)

    def index_full(self, tag: str | None = None) -> str:
        """genIndexFull: an image per platform and an index of them. As in Go, `tag` is given
        to every manifest generated, so it ends on the index."""
        images = [self.manifest_full(platform, tag) for platform in PLATFORMS]
        entries = [self.descriptor_of(d, p) for d, p in zip(images, PLATFORMS, strict=True)]
        return self.index(entries, tag=tag)

    def artifact_with_subject(
        self, subject: str, artifact_type: str, layer_type: str, tag: str
    ) -> str:
        """An artifact manifest (empty JSON config, one layer) naming `subject`, as in the
        `artifacts-with-subject` data set."""
        config = self.add_blob(b"{}", EMPTY_JSON)
        layer = self.add_blob(secrets.token_bytes(2048), layer_type)
        annotations = {
            "org.opencontainers.conformance": "hello conformance test",
            f"org.example.{secrets.token_hex(8)}": secrets.token_hex(8),
        }
        return self.manifest(
            config,
            [layer],
            tag=tag,
            artifact_type=artifact_type,
            subject=self.descriptor_of(subject),
            annotations=annotations,
        )

    def tags_of(self, dig: str) -> list[str]:
        return [tag for tag, d in self.tags.items() if d == dig]


# --- the data sets of GenerateData (run.go) ---------------------------------------------------


def sha512_data() -> DataSet:
    """`sha512`: an index of two images, every digest sha512, pushed by digest only."""
    data = DataSet("sha512", "sha512")
    data.index_full()
    return data


def tag_param_data(algorithm: str) -> DataSet:
    """`tag-param-<algorithm>`: an index of two images, each manifest pushed by digest with
    its tags as parameters (`tag-param-<alg>-<i>` for the i-th pushed, and the index also
    `tag-param-<alg>`)."""
    name = f"tag-param-{algorithm}"
    data = DataSet(name, algorithm, tag_parameters=True)
    data.index_full(tag=name)
    for i, dig in enumerate(data.order):
        data.tags[f"{name}-{i}"] = dig
    return data


def subject_sha512_data() -> DataSet:
    """Not in the upstream program: its `artifacts-with-subject` data set with sha512 digests
    and tag parameters, so that the referrers API is checked with a sha512 subject and sha512
    referrers too."""
    data = DataSet("artifacts-with-subject-sha512", "sha512", tag_parameters=True)
    image = data.manifest_full(tag="image")
    data.artifact_with_subject(image, EXAMPLE_TYPE_1, EXAMPLE_TYPE_1, "tagged-artifact1")
    data.artifact_with_subject(image, EXAMPLE_TYPE_2, OCTET_STREAM, "tagged-artifact2")
    return data


# --- requests (api.go) ------------------------------------------------------------------------


def problems_with_manifest(
    resp: Response, data: DataSet, dig: str, *, body: bool = True
) -> list[str]:
    """ManifestGetExists / ManifestHeadExists: 200, the exact bytes (none for HEAD), the
    manifest's media type and length, and a Docker-Content-Digest, when sent, of `dig`."""
    raw = data.manifests[dig]
    found = []
    if resp.status != 200:
        return [f"expected 200: {resp.describe()}"]
    if resp.body != (raw if body else b""):
        found.append(f"body mismatch: {resp.describe()}")
    if resp.header("Content-Type") != json.loads(raw)["mediaType"]:
        found.append(f"Content-Type mismatch: {resp.describe()}")
    if resp.header("Content-Length") != str(len(raw)):
        found.append(f"Content-Length mismatch: {resp.describe()}")
    found += problems_with_digest_header(resp, dig)
    return found


def problems_with_digest_header(resp: Response, dig: str) -> list[str]:
    """api.go VerifyDigest: a Docker-Content-Digest header, when sent, must be `dig`."""
    sent = resp.header("Docker-Content-Digest")
    if sent and sent != dig:
        return [f"Docker-Content-Digest is {sent!r}, expected {dig!r}: {resp.describe()}"]
    return []


MANIFEST_ACCEPT = {"Accept": f"{INDEX_MEDIA_TYPE}, {MANIFEST_MEDIA_TYPE}"}


async def push_manifest(
    client: RegistryClient, data: DataSet, reference: str, dig: str, tags: Iterable[str] = ()
) -> tuple[Response, list[str]]:
    """api.go ManifestPut: PUT with the manifest's media type (and `tag` parameters): 201, a
    Location that serves the same bytes, a Docker-Content-Digest (when sent) of `dig`."""
    raw = data.manifests[dig]
    path = f"/v2/<name>/manifests/{reference}"
    query = "&".join(f"tag={tag}" for tag in tags)
    media_type = json.loads(raw)["mediaType"]
    resp = await client.do(
        "PUT", f"{path}?{query}" if query else path, headers={"Content-Type": media_type}, body=raw
    )
    if resp.status != 201:
        return resp, [f"expected 201: {resp.describe()}"]
    found = problems_with_digest_header(resp, dig)
    subject = json.loads(raw).get("subject")
    if subject is not None and resp.header("OCI-Subject") != subject["digest"]:
        found.append(f"OCI-Subject missing or wrong: {resp.describe()}")
    location = resp.relative_location()
    if not location:
        return resp, [*found, f"no Location: {resp.describe()}"]
    pulled = await client.do("GET", location, headers=MANIFEST_ACCEPT)
    found += problems_with_manifest(pulled, data, dig)
    return resp, found


def applied_tags(resp: Response) -> set[str]:
    """The tags the `OCI-Tag` headers of a push name (comma-separated, possibly repeated)."""
    values = resp.headers.getall("OCI-Tag", [])
    return {tag.strip() for value in values for tag in value.split(",")}


async def push_blob(client: RegistryClient, data: DataSet, dig: str, method: str) -> list[str]:
    """TestPushBlobAny with one of its APIs: `post-put`, `post-only`, `patch-stream` or
    `patch-chunked`; every one ends with a 201 whose Location serves the blob."""
    blob = data.blobs[dig]
    start = "/v2/<name>/blobs/uploads/"
    if method == "post-only":
        resp = await client.do(
            "POST", start, query={"digest": dig}, headers={"Content-Type": OCTET_STREAM}, body=blob
        )
    else:
        resp = await client.do("POST", start)
        if resp.status != 202 or not resp.header("Location"):
            return [f"{method}: expected 202 with a Location: {resp.describe()}"]
        if method == "patch-stream":
            resp = await client.do(
                "PATCH",
                resp.relative_location(),
                headers={"Content-Type": OCTET_STREAM},
                body=blob,
                stream=True,
            )
            blob_in_put = b""
        elif method == "patch-chunked":
            resp = await _chunks(client, resp, blob)
            blob_in_put = b""
        else:
            blob_in_put = blob
        if resp.status != 202:
            return [f"{method}: expected 202: {resp.describe()}"]
        resp = await client.do(
            "PUT",
            resp.relative_location(),
            query={"digest": dig},
            headers={"Content-Type": OCTET_STREAM},
            body=blob_in_put,
        )
    if resp.status != 201 or not resp.header("Location"):
        return [f"{method}: expected 201 with a Location: {resp.describe()}"]
    found = problems_with_digest_header(resp, dig)
    pulled = await client.do("GET", resp.relative_location())
    if pulled.status != 200 or pulled.body != blob:
        found.append(f"{method}: Location does not serve the blob: {pulled.describe()}")
    return found


async def _chunks(client: RegistryClient, started: Response, blob: bytes) -> Response:
    """BlobPatchChunked: three chunks (at least OCI-Chunk-Min-Length and 1 KiB each), each
    with its Content-Range; the last answer, whose Location the PUT goes to."""
    size = max(len(blob) // 3 + 1, int(started.header("OCI-Chunk-Min-Length") or 0), CHUNK_MIN)
    size = min(size, len(blob))
    resp, offset = started, 0
    while offset < len(blob):
        chunk = blob[offset : offset + size]
        resp = await client.do(
            "PATCH",
            resp.relative_location(),
            headers={
                "Content-Type": OCTET_STREAM,
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
            body=chunk,
        )
        if resp.status != 202:
            return resp
        offset += len(chunk)
    return resp
