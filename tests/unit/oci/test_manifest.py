"""Manifests and indexes: parsed from, and kept as, the exact bytes received."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestInvalid, PayloadTooLarge
from dockyard.oci.manifest import MAX_MANIFEST_SIZE, parse_manifest

EMPTY_CONFIG = {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2}
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """The JSON descriptor of `data`."""
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def encode(body: dict[str, Any], **dumps: Any) -> bytes:
    return json.dumps(body, **dumps).encode()


def image(media_type: str | None = mt.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    config_type = mt.DOCKER_CONFIG if media_type == mt.DOCKER_MANIFEST else mt.OCI_CONFIG
    layer_type = mt.DOCKER_LAYER_GZIP if media_type == mt.DOCKER_MANIFEST else mt.OCI_LAYER_GZIP
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "config": desc(config_type, b'{"architecture":"amd64","os":"linux"}'),
        "layers": [desc(layer_type, b"layer one"), desc(layer_type, b"layer two")],
        **extra,
    }
    if media_type is not None:
        body["mediaType"] = media_type
    return body


def index(media_type: str | None = mt.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    child = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_MANIFEST_LIST else mt.OCI_MANIFEST
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            desc(child, b"amd64", platform={"os": "linux", "architecture": "amd64"}),
            desc(
                child,
                b"arm64",
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ],
        **extra,
    }
    if media_type is not None:
        body["mediaType"] = media_type
    return body


# --- well-formed manifests -------------------------------------------------------------------


def test_oci_image_manifest() -> None:
    body = image(annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
    raw = encode(body)
    manifest = parse_manifest(raw, mt.OCI_MANIFEST)
    assert manifest.raw is raw
    assert manifest.digest == Digest("sha256", hashlib.sha256(raw).hexdigest())
    assert manifest.media_type == mt.OCI_MANIFEST
    assert not manifest.is_index
    assert [str(b.digest) for b in manifest.blobs] == [
        body["config"]["digest"],
        *(layer["digest"] for layer in body["layers"]),
    ]
    assert manifest.blobs[0].media_type == mt.OCI_CONFIG
    assert manifest.blobs[1].size == len(b"layer one")
    assert manifest.children == ()
    assert manifest.subject is None
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


def test_oci_image_manifest_artifact_type_falls_back_to_the_config_media_type() -> None:
    assert parse_manifest(encode(image())).artifact_type == mt.OCI_CONFIG


def test_oci_index() -> None:
    raw = encode(index(annotations={"a": "b"}))
    manifest = parse_manifest(raw, mt.OCI_INDEX)
    assert manifest.is_index
    assert manifest.media_type == mt.OCI_INDEX
    assert manifest.blobs == ()
    assert [c.platform for c in manifest.children] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64", "v8"),
    ]
    assert [c.media_type for c in manifest.children] == [mt.OCI_MANIFEST] * 2
    assert manifest.artifact_type is None
    assert manifest.annotations == {"a": "b"}


def test_docker_schema2_manifest() -> None:
    raw = encode(image(mt.DOCKER_MANIFEST))
    manifest = parse_manifest(raw, mt.DOCKER_MANIFEST)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert [b.media_type for b in manifest.blobs] == [mt.DOCKER_CONFIG, *[mt.DOCKER_LAYER_GZIP] * 2]
    assert manifest.artifact_type is None  # the fallback is an OCI rule


def test_docker_manifest_list() -> None:
    manifest = parse_manifest(encode(index(mt.DOCKER_MANIFEST_LIST)), mt.DOCKER_MANIFEST_LIST)
    assert manifest.is_index
    assert manifest.media_type == mt.DOCKER_MANIFEST_LIST
    assert [c.media_type for c in manifest.children] == [mt.DOCKER_MANIFEST] * 2


def test_artifact_manifest_with_empty_config_and_subject() -> None:
    subject_raw = encode(image())
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": EMPTY_CONFIG,
        "layers": [desc("application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}')],
        "subject": desc(mt.OCI_MANIFEST, subject_raw),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    manifest = parse_manifest(encode(body), mt.OCI_MANIFEST)
    assert manifest.artifact_type == "application/vnd.example.sbom.v1+json"
    config = manifest.blobs[0]
    assert (config.media_type, str(config.digest), config.size) == (
        mt.OCI_EMPTY,
        mt.EMPTY_DIGEST,
        2,
    )
    assert Digest.of(mt.EMPTY_JSON) == config.digest
    assert manifest.subject is not None
    assert manifest.subject.digest == Digest.of(subject_raw)
    assert manifest.subject.size == len(subject_raw)
    assert manifest.subject.media_type == mt.OCI_MANIFEST


def test_artifact_without_artifact_type_reports_the_config_media_type() -> None:
    body = image(config=desc("application/vnd.cncf.helm.config.v1+json", b"{}"))
    assert parse_manifest(encode(body)).artifact_type == "application/vnd.cncf.helm.config.v1+json"


def test_index_with_artifact_type_and_subject() -> None:
    subject = desc(mt.OCI_MANIFEST, b"subject")
    manifest = parse_manifest(encode(index(artifactType="application/x.sig", subject=subject)))
    assert manifest.artifact_type == "application/x.sig"
    assert manifest.subject is not None
    assert str(manifest.subject.digest) == subject["digest"]


def test_descriptor_fields_are_read() -> None:
    layer = desc(
        mt.OCI_LAYER_ZSTD,
        b"zstd",
        artifactType="application/x.layer",
        annotations={"org.opencontainers.image.title": "a.txt"},
    )
    manifest = parse_manifest(encode(image(layers=[layer])))
    read = manifest.blobs[1]
    assert read.artifact_type == "application/x.layer"
    assert read.annotations == {"org.opencontainers.image.title": "a.txt"}
    assert read.to_json() == layer


def test_platform_os_version_is_read() -> None:
    platform = {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}
    body = {"schemaVersion": 2, "manifests": [desc(mt.OCI_MANIFEST, b"w", platform=platform)]}
    child = parse_manifest(encode(body)).children[0]
    assert child.platform == Platform("windows", "amd64", None, "10.0.17763.1")
    assert child.to_json()["platform"] == platform


def test_descriptor_of_the_manifest_itself() -> None:
    raw = encode(image(artifactType="application/x.a", annotations={"k": "v"}))
    manifest = parse_manifest(raw)
    own = manifest.descriptor()
    assert (own.media_type, own.digest, own.size) == (mt.OCI_MANIFEST, Digest.of(raw), len(raw))
    assert own.artifact_type == "application/x.a"
    assert own.annotations == {"k": "v"}


# --- media type: body, Content-Type, inference --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (image(None), None, mt.OCI_MANIFEST),
        (index(None), None, mt.OCI_INDEX),
        (image(None), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (index(None), mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        (image(), "application/json", mt.OCI_MANIFEST),
        (image(), f"{mt.OCI_MANIFEST}; charset=utf-8", mt.OCI_MANIFEST),
        (image(), mt.OCI_MANIFEST.upper(), mt.OCI_MANIFEST),
        (image(mt.DOCKER_MANIFEST), None, mt.DOCKER_MANIFEST),
        (image(None), "application/octet-stream", mt.OCI_MANIFEST),
        (image(None), "", mt.OCI_MANIFEST),
    ],
)
def test_media_type_from_body_content_type_or_shape(
    body: dict[str, Any], content_type: str | None, expected: str
) -> None:
    assert parse_manifest(encode(body), content_type).media_type == expected


@pytest.mark.parametrize(
    ("declared", "content_type"),
    [
        (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST),
        (mt.DOCKER_MANIFEST, mt.OCI_MANIFEST),
        (mt.OCI_MANIFEST, mt.OCI_INDEX),
    ],
)
def test_content_type_must_agree_with_the_body(declared: str, content_type: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(encode(image(declared)), content_type)
    assert f"mediaType {declared!r} does not match Content-Type {content_type!r}" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("declared", "content_type"),
    [(SCHEMA1, None), (SCHEMA1_SIGNED, None), (None, SCHEMA1_SIGNED), (None, SCHEMA1)],
)
def test_schema1_is_refused(declared: str | None, content_type: str | None) -> None:
    body = image(declared)
    with pytest.raises(ManifestInvalid, match="schema1 manifests are not supported"):
        parse_manifest(encode(body), content_type)


def test_schema_version_1_is_refused() -> None:
    body = {"schemaVersion": 1, "name": "library/nginx", "tag": "latest", "fsLayers": []}
    with pytest.raises(ManifestInvalid, match="schemaVersion must be 2"):
        parse_manifest(encode(body))


@pytest.mark.parametrize("media_type", [mt.OCI_CONFIG, mt.OCI_LAYER_GZIP, "text/plain"])
def test_non_manifest_media_type_is_refused(media_type: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(encode(image(media_type)))
    assert f"unsupported manifest media type {media_type!r}: expected one of" in str(caught.value)


# --- size and encoding ------------------------------------------------------------------------


def test_size_limit_is_4_mib() -> None:
    raw = encode(image())
    padded = raw + b" " * (MAX_MANIFEST_SIZE - len(raw))
    assert len(padded) == MAX_MANIFEST_SIZE == 4 * 1024 * 1024
    assert parse_manifest(padded).raw == padded
    with pytest.raises(PayloadTooLarge) as caught:
        parse_manifest(padded + b" ")
    assert caught.value.status == 413
    assert "4194305 bytes" in caught.value.message
    assert "4 MiB" in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe\x00",
        b"not json",
        b'{"schemaVersion": 2,}',
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's stack
        b'{"schemaVersion": 2, "x": ' + b"1" * 5000 + b"}",  # past int's digit limit
    ],
)
def test_invalid_json_is_manifest_invalid(raw: bytes) -> None:
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        parse_manifest(raw)


@pytest.mark.parametrize("raw", [b"[]", b'"manifest"', b"2", b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(ManifestInvalid, match="must be a JSON object"):
        parse_manifest(raw)


@pytest.mark.parametrize("version", [None, 1, 3, "2", [2]])
def test_schema_version_must_be_2(version: Any) -> None:
    body = image()
    body["schemaVersion"] = version
    if version is None:
        del body["schemaVersion"]
    with pytest.raises(ManifestInvalid, match="schemaVersion must be 2"):
        parse_manifest(encode(body))


# --- bytes are the truth ----------------------------------------------------------------------


def test_raw_bytes_are_kept_and_the_digest_is_of_those_bytes() -> None:
    body = image()
    compact = encode(body, separators=(",", ":"))
    pretty = encode(body, indent=3, sort_keys=True) + b"\n"
    a, b = parse_manifest(compact), parse_manifest(pretty)
    assert (a.raw, b.raw) == (compact, pretty)
    assert a.digest == Digest.of(compact) != b.digest == Digest.of(pretty)
    assert a.blobs == b.blobs  # same meaning, different bytes, different digests


def test_sha512_digest_of_the_exact_bytes() -> None:
    raw = encode(image())
    manifest = parse_manifest(raw, algorithm="sha512")
    assert manifest.digest == Digest("sha512", hashlib.sha512(raw).hexdigest())


# --- malformed structure ----------------------------------------------------------------------


def _with(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the item at `path` set to `value` (removed if ...)."""
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copy


DIGEST = str(Digest.of(b"x"))
BAD_DESCRIPTORS = [
    (("config",), ..., "config must be a JSON object"),
    (("config",), [], "config must be a JSON object"),
    (("config", "mediaType"), ..., "config.mediaType must be a non-empty string"),
    (("config", "mediaType"), "", "config.mediaType must be a non-empty string"),
    (("config", "mediaType"), 7, "config.mediaType must be a non-empty string"),
    (("config", "size"), ..., "config.size must be a non-negative integer"),
    (("config", "size"), -1, "config.size must be a non-negative integer"),
    (("config", "size"), 1.5, "config.size must be a non-negative integer"),
    (("config", "size"), True, "config.size must be a non-negative integer"),
    (("config", "size"), "2", "config.size must be a non-negative integer"),
    (("config", "digest"), ..., "config.digest must be a string"),
    (("config", "digest"), 12, "config.digest must be a string"),
    (("config", "digest"), "sha256:abc", "config.digest: invalid sha256 digest 'sha256:abc'"),
    (("config", "digest"), "md5:" + "a" * 32, "config.digest: unsupported digest algorithm"),
    (("config", "annotations"), {"k": 1}, "config.annotations must map strings to strings"),
    (("layers", 1, "size"), -5, "layers[1].size must be a non-negative integer"),
    (("layers", 0, "digest"), DIGEST.upper(), "layers[0].digest: invalid digest"),
    (("layers", 0), "sha256:abc", "layers[0] must be a JSON object"),
    (("layers",), ..., "image manifest must have a layers array"),
    (("layers",), {}, "image manifest must have a layers array"),
    (("subject",), {"mediaType": mt.OCI_MANIFEST}, "subject.size must be"),
    (("subject",), "sha256:abc", "subject must be a JSON object"),
    (("annotations",), {"k": ["v"]}, "annotations must map strings to strings"),
    (("annotations",), ["k"], "annotations must map strings to strings"),
    (("artifactType",), 3, "artifactType must be a string"),
    (("mediaType",), 2, "mediaType must be a string"),
]


@pytest.mark.parametrize(("path", "value", "says"), BAD_DESCRIPTORS)
def test_bad_image_manifest_says_where(path: tuple[Any, ...], value: Any, says: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(encode(_with(image(), path, value)))
    assert says in caught.value.message
    assert caught.value.code == "MANIFEST_INVALID"


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        (("manifests",), ..., "index must have a manifests array"),
        (("manifests",), {"a": 1}, "index must have a manifests array"),
        (("manifests", 1, "digest"), "sha256:zz", "manifests[1].digest: invalid sha256"),
        (("manifests", 0, "platform"), "linux/amd64", "platform must be an object"),
        (("manifests", 0, "platform", "os"), 1, "platform must be an object with string os"),
        (("manifests", 1, "platform", "architecture"), ..., "platform must be an object"),
    ],
)
def test_bad_index_says_where(path: tuple[Any, ...], value: Any, says: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(encode(_with(index(), path, value)))
    assert says in caught.value.message


def test_empty_index_and_empty_layers_are_accepted() -> None:
    assert parse_manifest(encode(index(manifests=[]))).children == ()
    assert len(parse_manifest(encode(image(layers=[]))).blobs) == 1


# --- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
manifest_keys = st.sampled_from(
    ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations",
     "artifactType", "mediaType", "digest", "size", "platform"]
)  # fmt: skip


@given(st.binary(max_size=512), st.sampled_from([None, mt.OCI_MANIFEST, mt.OCI_INDEX, "x/y"]))
def test_arbitrary_bytes_raise_only_manifest_invalid(raw: bytes, content_type: str | None) -> None:
    try:
        manifest = parse_manifest(raw, content_type)
    except ManifestInvalid:
        return
    assert manifest.raw == raw


@given(st.dictionaries(manifest_keys, json_values, max_size=8), st.booleans())
def test_arbitrary_json_shapes_raise_only_manifest_invalid(body: dict[str, Any], v2: bool) -> None:
    if v2:
        body["schemaVersion"] = 2
    raw = encode(body)
    try:
        manifest = parse_manifest(raw)
    except ManifestInvalid:
        return
    assert manifest.digest == Digest.of(raw)


blob_bytes = st.binary(max_size=64)
annotations = st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)


@given(st.lists(blob_bytes, max_size=6), annotations, st.integers(0, 4), st.booleans())
def test_generated_image_manifests_describe_their_blobs(
    layers: list[bytes], notes: dict[str, str], indent: int, docker: bool
) -> None:
    media_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    layer_type = mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP
    body = image(media_type, layers=[desc(layer_type, b) for b in layers], annotations=notes)
    raw = encode(body, indent=indent or None)
    manifest = parse_manifest(raw, media_type)
    assert manifest.raw == raw
    assert manifest.digest == Digest.of(raw)
    assert [d.to_json() for d in manifest.blobs] == [body["config"], *body["layers"]]
    assert manifest.annotations == notes
    assert isinstance(manifest.descriptor(), Descriptor)


# --- duplicate keys ----------------------------------------------------------------------------


def _duplicated(key: str, first: str, raw: bytes) -> bytes:
    """`raw` with `"key": <first>` added before the first occurrence of `"key":`."""
    marker = f'"{key}": '.encode()
    at = raw.index(marker)
    return raw[:at] + marker + first.encode() + b", " + raw[at:]


@pytest.mark.parametrize(
    ("key", "first", "body"),
    [
        ("config", json.dumps(EMPTY_CONFIG), image()),  # a different config wins, per parser
        ("mediaType", json.dumps(mt.OCI_INDEX), image()),  # top level
        ("digest", json.dumps(mt.EMPTY_DIGEST), image()),  # inside the config descriptor
        ("org.example", '"a"', image(annotations={"org.example": "b"})),
        ("architecture", '"s390x"', index()),  # inside an index entry's platform
    ],
)
def test_a_key_twice_in_one_object_is_refused_naming_it(
    key: str, first: str, body: dict[str, Any]
) -> None:
    raw = _duplicated(key, first, encode(body))
    assert raw.count(f'"{key}": '.encode()) >= 2
    with pytest.raises(ManifestInvalid, match=f"key '{key}' twice") as caught:
        parse_manifest(raw)
    assert caught.value.detail == {"key": key}


def test_the_same_key_in_different_objects_is_fine() -> None:
    body = image(annotations={"digest": "x", "size": "y", "mediaType": "z"})
    assert parse_manifest(encode(body)).annotations["digest"] == "x"
