"""An image's filesystem as its layers stack up, read through a Target.

`RootFS.scan` streams every layer of one platform's image once, in order, and keeps the
metadata of every path (a `Tree`) plus the bytes of the few small files a build needs to read
(`COLLECT`: os-release, passwd, group, shadow, the dpkg and apk databases), so one pass answers
them all. A later `read` of a file that was not collected streams only the one layer its
top-most entry comes from, up to that entry. Lookups follow symlinks inside the root
(`/etc/os-release` → `../usr/lib/os-release`), bounded, never out of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from dockyard.build.entries import Entry, Kind, clean_path, is_within
from dockyard.build.errors import ContentInvalid, Invalid
from dockyard.build.tarstream import DataSink, read_layer
from dockyard.build.tree import Tree
from dockyard.client.target import Target
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.manifest import Manifest
from dockyard.oci.reference import Reference

COLLECT = (
    "etc/os-release",
    "usr/lib/os-release",
    "etc/debian_version",
    "etc/alpine-release",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/",
    "lib/apk/db/installed",
    "etc/apk/world",
)
"""What a build reads from its base; a trailing `/` collects every file under a directory."""
MAX_FILE = 32 * 1024 * 1024
"""The largest file read whole (a big dpkg status file is a few MiB)."""
MAX_CONFIG = 4 * 1024 * 1024
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7", "amd64": None}


@dataclass
class _Wanted:
    """Which paths to collect: exact paths and whole directories."""

    paths: frozenset[str]
    dirs: tuple[str, ...]

    @classmethod
    def of(cls, spec: Iterable[str]) -> _Wanted:
        spec = list(spec)
        return cls(
            frozenset(clean_path(item) for item in spec if not item.endswith("/")),
            tuple(clean_path(item) for item in spec if item.endswith("/")),
        )

    def __contains__(self, path: str) -> bool:
        return path in self.paths or any(is_within(path, top) for top in self.dirs)


@dataclass
class _Capture:
    """Collects one file's bytes, then stores them in the tree's entry."""

    tree: Tree
    entry: Entry
    layer: int
    chunks: bytearray = field(default_factory=bytearray)

    def write(self, data: memoryview) -> None:
        self.chunks += data

    def close(self) -> None:
        node = self.tree.node(self.entry.path)
        if node is not None and node.entry is self.entry:  # not replaced in the meantime
            node.entry = replace(self.entry, data=bytes(self.chunks))


class RootFS:
    """The final filesystem of one image: every path's top-most entry, some with bytes."""

    def __init__(self, target: Target, ref: Reference, layers: tuple[Descriptor, ...]) -> None:
        self.target = target
        self.ref = ref
        self.layers = layers
        self.tree = Tree()
        self.layers_streamed = 0
        """How many layer blobs were streamed so far (a scan streams each once)."""

    @classmethod
    async def scan(
        cls,
        target: Target,
        ref: Reference,
        manifest: Manifest,
        *,
        collect: Iterable[str] = COLLECT,
        max_file: int = MAX_FILE,
    ) -> RootFS:
        """Stream every layer of `manifest` (one platform's image manifest, in `ref`'s
        repository) once, bottom up, keeping the bytes of the files `collect` names (each at
        most `max_file` bytes: larger ones keep only their metadata)."""
        if manifest.is_index:
            raise ContentInvalid(
                f"{ref} is an index: scan the image manifest of one platform "
                "(image_for_platform picks it)"
            )
        rootfs = cls(target, ref, manifest.blobs[1:])
        wanted = _Wanted.of(collect)
        for layer, desc in enumerate(rootfs.layers):
            await rootfs._stream(layer, desc, wanted, max_file)
        return rootfs

    async def _stream(self, layer: int, desc: Descriptor, wanted: _Wanted, max_file: int) -> None:
        def handle(entry: Entry) -> DataSink | None:
            if not self.tree.apply(entry, layer):
                return None
            if entry.kind == Kind.FILE and entry.size <= max_file and entry.path in wanted:
                return _Capture(self.tree, entry, layer)
            return None

        self.layers_streamed += 1
        await read_layer(self.target, self.ref, desc, handle)

    def entry(self, path: str, *, follow: bool = True) -> Entry | None:
        """The top-most entry at `path` (any spelling), symlinks followed inside the root (the
        last one too, unless `follow` is False); None when no layer has it."""
        node = self.tree.node(self.tree.resolve(clean_path(path), follow=follow))
        return node.entry if node is not None else None

    def resolve(self, path: str) -> str:
        """The clean path `path` names once every symlink on the way is followed."""
        return self.tree.resolve(clean_path(path))

    def paths(self, prefix: str = "") -> list[str]:
        """Every path under the directory `prefix` (not following a symlink at its end), sorted."""
        return list(self.tree.under(self.tree.resolve(clean_path(prefix), follow=False)))

    def os_release(self) -> dict[str, str] | None:
        """The fields of the image's os-release (/etc, else /usr/lib), None when it has none."""
        text = self.collected("etc/os-release") or self.collected("usr/lib/os-release")
        return None if text is None else os_release_fields(text.decode("utf-8", "replace"))

    def collected(self, path: str) -> bytes | None:
        """The bytes of the file `path` names if the scan collected them, else None."""
        entry = self._file(path)
        return entry.data if entry is not None and isinstance(entry.data, bytes) else None

    async def read(self, path: str, *, limit: int = MAX_FILE) -> bytes:
        """The bytes of the file `path` names (links followed); collected ones at once, others
        by streaming the one layer that holds them. `ContentInvalid` when there is no such
        file or it is larger than `limit`."""
        entry = self._file(path)
        if entry is None:
            raise ContentInvalid(f"{self.ref} has no file /{clean_path(path)}")
        if isinstance(entry.data, bytes):
            return entry.data
        if entry.size > limit:
            raise ContentInvalid(
                f"/{entry.path} in {self.ref} is {entry.size} bytes; at most {limit} are read whole"
            )
        node = self.tree.node(entry.path)
        assert node is not None

        def handle(member: Entry) -> DataSink | None:
            # the same metadata as the top-most entry: its last occurrence in that layer
            return _Capture(self.tree, entry, node.layer) if member == entry else None

        self.layers_streamed += 1
        await read_layer(self.target, self.ref, self.layers[node.layer], handle)
        data = self.collected(entry.path)
        if data is None:
            raise ContentInvalid(f"/{entry.path} was not found again in its layer of {self.ref}")
        return data

    def _file(self, path: str) -> Entry | None:
        entry = self.entry(path)
        if entry is not None and entry.kind == Kind.HARDLINK:
            entry = self.entry(entry.link, follow=False)
        return entry if entry is not None and entry.kind == Kind.FILE else None


def os_release_fields(text: str) -> dict[str, str]:
    """`KEY=value` lines of an os-release file, quotes taken off the values."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


async def image_for_platform(
    target: Target, ref: Reference, platform: Platform, *, field: str, what: str
) -> Manifest:
    """The image manifest `ref` names for `platform`: the matching entry of an index, or the
    manifest itself when its config's platform matches. `Invalid` naming `field` and `what`
    (e.g. "artifact acme/rootca:1") when there is none, listing what is offered."""
    manifest = await target.manifest_get(ref)
    if manifest.is_index:
        offered = [child for child in manifest.children if child.platform is not None]
        for child in offered:
            assert child.platform is not None
            if _same_platform(child.platform, platform):
                return await target.manifest_get(ref.with_digest(child.digest))
        names = sorted(
            {str(c.platform) for c in offered if c.platform and c.platform.os != "unknown"}
        )
        raise Invalid(
            field,
            f"{what} has no {platform} image; it offers {', '.join(names) or 'no platforms'}",
            platform=str(platform),
            offered=names,
        )
    config = manifest.blobs[0]
    if config.size <= MAX_CONFIG:
        own = await _config_platform(target, ref, config)
        if own is not None and not _same_platform(own, platform):
            raise Invalid(field, f"{what} is a {own} image, not {platform}", platform=str(platform))
    return manifest


async def _config_platform(target: Target, ref: Reference, config: Descriptor) -> Platform | None:
    raw = b"".join([chunk async for chunk in target.blob_get(ref, config)])
    try:
        body = json.loads(raw)
        return Platform(body["os"], body["architecture"], body.get("variant"))
    except (ValueError, KeyError, TypeError):
        return None  # not an image config (an artifact's): no platform to hold it to


def _same_platform(a: Platform, b: Platform) -> bool:
    def variant(p: Platform) -> str | None:
        return p.variant or _DEFAULT_VARIANTS.get(p.architecture)

    return (a.os, a.architecture, variant(a)) == (b.os, b.architecture, variant(b))
