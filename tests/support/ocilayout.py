"""Build OCI images, indexes and artifacts in memory or as an OCI layout on disk, without Docker.

Everything is deterministic: tar entries have fixed owners, modes and mtimes, gzip streams carry
no timestamp, JSON is compact with a fixed key order. The same inputs give the same digests on
every machine, so tests can compare digests across real peers (skopeo, podman, distribution).

Two levels:
- values: `Blob`, `Layer`, `Image`, and `manifest_bytes` / `index_bytes` / `config_bytes` for
  tests that push with an HTTP client;
- `Layout(path)`: writes those values as an OCI image layout (`oci-layout`, `index.json` with
  `org.opencontainers.image.ref.name` annotations, `blobs/sha256/...`), so that
  `skopeo copy oci:DIR:TAG docker://...` and `podman pull oci:DIR:TAG` work.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

Descriptor = dict[str, Any]
"""A descriptor as plain JSON: `mediaType`, `digest`, `size` and optional fields."""

MEDIA_TYPE_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
MEDIA_TYPE_OCTET_STREAM = "application/octet-stream"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

EMPTY_JSON = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_DESCRIPTOR: Descriptor = {"mediaType": MEDIA_TYPE_EMPTY, "digest": EMPTY_DIGEST, "size": 2}

FIXED_MTIME = 0
"""mtime of every tar entry; gzip streams are written with mtime=0 (no timestamp) too."""

DEFAULT_PLATFORM = "linux/amd64"


def digest_of(data: bytes) -> str:
    """The `sha256:<hex>` digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(value: Any) -> bytes:
    """Compact JSON in the key order given: the exact bytes a manifest is pushed as."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def parse_platform(platform: str | Mapping[str, str]) -> dict[str, str]:
    """`"linux/arm64"` or `"linux/arm/v7"` (or a platform dict) as an OCI platform dict."""
    if not isinstance(platform, str):
        return dict(platform)
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform must be os/architecture[/variant], got {platform!r}")
    result = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


@dataclass(frozen=True)
class Blob:
    """Bytes with a media type; `descriptor()` describes them."""

    data: bytes
    media_type: str

    @cached_property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> Descriptor:
        """`{"mediaType", "digest", "size"}` plus `extra` fields (e.g. `platform=...`)."""
        desc: Descriptor = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        desc.update({key: value for key, value in extra.items() if value is not None})
        return desc


@dataclass(frozen=True)
class Layer(Blob):
    """A layer blob and the digest of its uncompressed tar (`rootfs.diff_ids`)."""

    diff_id: str = ""


@dataclass(frozen=True)
class Image:
    """An image (or artifact) manifest and every blob it names."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict[str, str] | None = None
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def descriptor(self, **extra: Any) -> Descriptor:
        """The manifest's descriptor, with `platform` and `artifactType` when known."""
        return self.manifest.descriptor(
            platform=self.platform, artifactType=self.artifact_type, **extra
        )

    def blobs(self) -> tuple[Blob, ...]:
        """Config and layers, unique, in push order (the manifest goes last, separately)."""
        unique: dict[str, Blob] = {}
        for blob in (*self.layers, self.config):
            unique.setdefault(blob.digest, blob)
        return tuple(unique.values())


def tar_bytes(files: Mapping[str, bytes | str]) -> bytes:
    """A deterministic tar stream: sorted paths, parent directories, root-owned, fixed mtime."""
    entries: dict[str, bytes | None] = {}
    for name, content in files.items():
        path = PurePosixPath(name.lstrip("/"))
        if not path.parts or ".." in path.parts:
            raise ValueError(f"bad path in layer: {name!r}")
        for parent in reversed(path.parents[:-1]):
            entries.setdefault(parent.as_posix(), None)
        entries[path.as_posix()] = content.encode() if isinstance(content, str) else content
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            data = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gzip_bytes(data: bytes, *, level: int = 6) -> bytes:
    """A gzip stream without timestamp or file name; `level=0` stores (fast for random data)."""
    if level == 0:
        # gzip.compress(level=0) still runs deflate's match search; raw stored blocks are 6x
        # faster and just as valid.
        compressor = zlib.compressobj(0, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()
    return gzip.compress(data, compresslevel=level, mtime=0)


def layer(files: Mapping[str, bytes | str], *, compressed: bool = True) -> Layer:
    """A layer holding `files` (path → content), gzip-compressed unless `compressed=False`."""
    tar = tar_bytes(files)
    if not compressed:
        return Layer(tar, MEDIA_TYPE_LAYER, diff_id=digest_of(tar))
    return Layer(gzip_bytes(tar), MEDIA_TYPE_LAYER_GZIP, diff_id=digest_of(tar))


@dataclass(frozen=True)
class Member:
    """One tar entry as a test writes it: `kind` is file, dir, symlink, hardlink or fifo;
    `link` is a link's target; `mode` defaults to 0644 (files) or 0755."""

    path: str
    data: bytes | str = b""
    kind: str = "file"
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    link: str = ""


_MEMBER_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def whiteout(path: str) -> Member:
    """The whiteout that hides `path` of lower layers (`DIR/.wh.NAME`)."""
    directory, _, name = path.strip("/").rpartition("/")
    return Member(f"{directory}/.wh.{name}" if directory else f".wh.{name}")


def opaque(directory: str) -> Member:
    """The marker that hides everything lower layers have under `directory`."""
    return Member(f"{directory.strip('/')}/.wh..wh..opq")


def members_tar(members: Sequence[Member | tuple[str, bytes | str]]) -> bytes:
    """A tar stream of `members` exactly in the order given (no implicit parents), PAX format,
    fixed mtime; a `(path, content)` pair is a plain file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in members:
            member = item if isinstance(item, Member) else Member(item[0], item[1])
            info = tarfile.TarInfo(member.path)
            info.type = _MEMBER_TYPES[member.kind]
            info.mtime = FIXED_MTIME
            info.uid, info.gid = member.uid, member.gid
            info.linkname = member.link
            default = (
                0o644 if member.kind == "file" else 0o777 if member.kind == "symlink" else 0o755
            )
            info.mode = default if member.mode is None else member.mode
            data = member.data.encode() if isinstance(member.data, str) else member.data
            if member.kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def tar_layer(
    members: Sequence[Member | tuple[str, bytes | str]], *, compression: str = "gzip"
) -> Layer:
    """A layer of `members` (see `members_tar`): `compression` is gzip, zstd, none or docker
    (gzip under Docker's media type)."""
    tar = members_tar(members)
    if compression == "none":
        return Layer(tar, MEDIA_TYPE_LAYER, diff_id=digest_of(tar))
    if compression == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor(level=3).compress(tar)
        return Layer(blob, MEDIA_TYPE_LAYER_ZSTD, diff_id=digest_of(tar))
    media_type = MEDIA_TYPE_DOCKER_LAYER if compression == "docker" else MEDIA_TYPE_LAYER_GZIP
    return Layer(gzip_bytes(tar), media_type, diff_id=digest_of(tar))


def random_bytes(size: int, seed: int | str) -> bytes:
    """`size` incompressible bytes, the same for the same seed on every machine and Python."""
    return hashlib.shake_256(f"dockyard-test-{seed}".encode()).digest(size)


def random_layer(size_bytes: int, seed: int | str, *, compressed: bool = True) -> Layer:
    """A layer with one file of `size_bytes` random bytes; the blob is a little larger.

    The gzip variant uses stored deflate blocks (random data does not compress anyway), so
    building a 256 MiB layer takes about a second.
    """
    tar = tar_bytes({f"random-{seed}.bin": random_bytes(size_bytes, seed)})
    if not compressed:
        return Layer(tar, MEDIA_TYPE_LAYER, diff_id=digest_of(tar))
    return Layer(gzip_bytes(tar, level=0), MEDIA_TYPE_LAYER_GZIP, diff_id=digest_of(tar))


def config_bytes(
    diff_ids: Sequence[str],
    platform: str | Mapping[str, str] = DEFAULT_PLATFORM,
    *,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: Mapping[str, str] | None = None,
) -> bytes:
    """An image config whose `rootfs.diff_ids` are `diff_ids`, for `platform`."""
    config: dict[str, Any] = {**parse_platform(platform)}
    image_config: dict[str, Any] = {"Env": list(env)}
    if labels:
        image_config["Labels"] = dict(labels)
    config["config"] = image_config
    config["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    return json_bytes(config)


def manifest_bytes(
    config: Descriptor,
    layers: Sequence[Descriptor],
    *,
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI image manifest (`mediaType` included) as the exact bytes to push."""
    manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_MANIFEST}
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    manifest["config"] = config
    manifest["layers"] = list(layers)
    if subject is not None:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json_bytes(manifest)


def index_bytes(
    manifests: Sequence[Descriptor],
    *,
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI image index (`mediaType` included) as the exact bytes to push."""
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_IMAGE_INDEX}
    if artifact_type is not None:
        index["artifactType"] = artifact_type
    index["manifests"] = list(manifests)
    if subject is not None:
        index["subject"] = subject
    if annotations:
        index["annotations"] = dict(annotations)
    return json_bytes(index)


def build_image(
    files: Mapping[str, bytes | str] | None = None,
    *,
    platform: str | Mapping[str, str] = DEFAULT_PLATFORM,
    layers: Sequence[Layer] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    subject: Descriptor | None = None,
) -> Image:
    """An image: one layer from `files` (if given) on top of `layers`, config for `platform`.

    Without files or layers, the image gets one layer with a file naming its platform, so
    images for different platforms always differ.
    """
    platform_dict = parse_platform(platform)
    all_layers = list(layers)
    if files is not None:
        all_layers.append(layer(files))
    if not all_layers:
        name = "/".join(platform_dict.values())
        all_layers.append(layer({"etc/platform": name + "\n"}))
    config = Blob(
        config_bytes([item.diff_id for item in all_layers], platform_dict, labels=labels),
        MEDIA_TYPE_IMAGE_CONFIG,
    )
    manifest = manifest_bytes(
        config.descriptor(),
        [item.descriptor() for item in all_layers],
        subject=subject,
        annotations=annotations,
    )
    return Image(
        manifest=Blob(manifest, MEDIA_TYPE_IMAGE_MANIFEST),
        config=config,
        layers=tuple(all_layers),
        platform=platform_dict,
    )


def build_artifact(
    subject: Descriptor,
    artifact_type: str,
    payload: bytes | None = None,
    *,
    payload_media_type: str = MEDIA_TYPE_OCTET_STREAM,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An artifact manifest (OCI 1.1: `artifactType`, empty config) that refers to `subject`.

    The payload is its one layer; without a payload the layer is the empty descriptor, as the
    image spec recommends.
    """
    config = Blob(EMPTY_JSON, MEDIA_TYPE_EMPTY)
    if payload is None:
        layer_blob = Blob(EMPTY_JSON, MEDIA_TYPE_EMPTY)
    else:
        layer_blob = Blob(payload, payload_media_type)
    subject_desc = {key: subject[key] for key in ("mediaType", "digest", "size")}
    manifest = manifest_bytes(
        config.descriptor(),
        [layer_blob.descriptor()],
        subject=subject_desc,
        artifact_type=artifact_type,
        annotations=annotations,
    )
    return Image(
        manifest=Blob(manifest, MEDIA_TYPE_IMAGE_MANIFEST),
        config=config,
        layers=(layer_blob,),
        artifact_type=artifact_type,
    )


class Layout:
    """An OCI image layout directory that grows as images are added.

    `index.json` is rewritten after every change; tagged entries carry the
    `org.opencontainers.image.ref.name` annotation that `oci:DIR:TAG` references look up.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._entries: list[Descriptor] = []
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_bytes(json_bytes({"imageLayoutVersion": "1.0.0"}))
        self._write_index()

    def ref(self, tag: str) -> str:
        """The `oci:DIR:TAG` reference skopeo and podman understand."""
        return f"oci:{self.path}:{tag}"

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.path / "blobs" / algorithm / hex_digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def put_file(self, path: Path, media_type: str) -> Descriptor:
        """Move the file at `path` into the layout as a blob, hashed a chunk at a time (for
        blobs too large to build in memory)."""
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
        size = path.stat().st_size
        path.replace(self.blob_path(digest))
        return {"mediaType": media_type, "digest": digest, "size": size}

    def blob(self, data: bytes, media_type: str, **extra: Any) -> Descriptor:
        """Store `data` and return its descriptor (with `extra` fields)."""
        return self.put(Blob(data, media_type), **extra)

    def put(self, blob: Blob, **extra: Any) -> Descriptor:
        """Store a blob (once: content-addressed) and return its descriptor."""
        path = self.blob_path(blob.digest)
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(blob.data)
            tmp.replace(path)
        return blob.descriptor(**extra)

    def put_image(self, image: Image, tag: str | None = None) -> Descriptor:
        """Store an image's blobs and manifest; tag it in `index.json` if `tag` is given."""
        for blob in image.blobs():
            self.put(blob)
        self.put(image.manifest)
        desc = image.descriptor()
        if tag is not None:
            self.tag(tag, desc)
        return desc

    def add_image(
        self,
        tag: str | None,
        files: Mapping[str, bytes | str] | None = None,
        *,
        platform: str | Mapping[str, str] = DEFAULT_PLATFORM,
        layers: Sequence[Layer] = (),
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Build and store an image (see `build_image`); the descriptor includes `platform`."""
        image = build_image(
            files, platform=platform, layers=layers, labels=labels, annotations=annotations
        )
        return self.put_image(image, tag)

    def add_index(
        self,
        tag: str | None,
        manifests: Sequence[Descriptor],
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store an index over `manifests` (descriptors from `add_image`, with platforms)."""
        desc = self.blob(index_bytes(manifests, annotations=annotations), MEDIA_TYPE_IMAGE_INDEX)
        if tag is not None:
            self.tag(tag, desc)
        return desc

    def add_multiplatform(
        self,
        tag: str,
        platforms: Sequence[str] = ("linux/amd64", "linux/arm64"),
        files: Mapping[str, bytes | str] | None = None,
    ) -> Descriptor:
        """An index with one image per platform; each image also holds `etc/platform`."""
        children = [
            self.add_image(None, {**(files or {}), "etc/platform": p + "\n"}, platform=p)
            for p in platforms
        ]
        return self.add_index(tag, children)

    def add_artifact(
        self,
        subject: Descriptor,
        artifact_type: str,
        payload: bytes | None = None,
        *,
        payload_media_type: str = MEDIA_TYPE_OCTET_STREAM,
        annotations: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> Descriptor:
        """Store an artifact referring to `subject`; it is listed in `index.json` (untagged
        unless `tag` is given) so the layout holds its referrers. The descriptor includes
        `artifactType`, as a referrers response would."""
        artifact = build_artifact(
            subject,
            artifact_type,
            payload,
            payload_media_type=payload_media_type,
            annotations=annotations,
        )
        desc = self.put_image(artifact)
        self._set_entry(desc, tag)
        return desc

    def tag(self, tag: str, desc: Descriptor) -> None:
        """Point `tag` at `desc` in `index.json` (moving it if it pointed elsewhere)."""
        self._set_entry(desc, tag)

    def tags(self) -> dict[str, str]:
        """tag → digest, from `index.json`."""
        return {
            entry["annotations"][ANNOTATION_REF_NAME]: entry["digest"]
            for entry in self._entries
            if ANNOTATION_REF_NAME in entry.get("annotations", {})
        }

    def entries(self) -> Iterator[Descriptor]:
        yield from self._entries

    def _set_entry(self, desc: Descriptor, tag: str | None) -> None:
        entry = {key: value for key, value in desc.items() if key != "annotations"}
        if tag is None:
            if entry not in self._entries:
                self._entries.append(entry)
        else:
            self._entries = [
                item
                for item in self._entries
                if item.get("annotations", {}).get(ANNOTATION_REF_NAME) != tag
            ]
            entry["annotations"] = {ANNOTATION_REF_NAME: tag}
            self._entries.append(entry)
        self._write_index()

    def _write_index(self) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_IMAGE_INDEX,
            "manifests": self._entries,
        }
        tmp = self.path / "index.json.tmp"
        tmp.write_bytes(json_bytes(index))
        tmp.replace(self.path / "index.json")
