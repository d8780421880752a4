"""A customization's build of one target: read the base, add a layer per kind of input, push.

For each platform: the base image is read at most once (`RootFS.scan`, when a layer needs its
files: a rebuild that reuses every layer may not), then up to three layers are added on top of
its own, each only when there is something to add — packages, artifacts, and
files with accounts — and the config and manifest are made from the base's. An index of the
platforms is pushed under the result tag. Layers are reproducible (`layers.py`), so the same
inputs give the same digests; a layer whose inputs (its `key`) match the previous build's is
not made again: its blob is already in the repository.

Everything is read and written through a `Target`, so a build runs against this store, a
remote registry or an OCI layout alike. The lock records every input digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from dockyard.build import image
from dockyard.build.accounts import Accounts, Group, User, account_files
from dockyard.build.artifacts import Spool, artifact_files, merge, sources_of
from dockyard.build.basecache import scanned
from dockyard.build.entries import Entry, clean_path, parent_of
from dockyard.build.errors import ContentInvalid, Invalid
from dockyard.build.layers import Compression, LayerBuilder
from dockyard.build.model import Customization
from dockyard.build.model import Target as BuildTarget
from dockyard.build.rootfs import MAX_CONFIG, RootFS, image_for_platform
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference

Log = Callable[[str], None]


@dataclass(frozen=True)
class AddedRecord:
    """A layer a build added, as the next build finds it: `key` hashes its inputs."""

    kind: str
    key: str
    layer: image.AddedLayer

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "descriptor": self.layer.descriptor.to_json(),
            "diff_id": str(self.layer.diff_id),
            "created_by": self.layer.created_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AddedRecord:
        layer = image.AddedLayer(
            Descriptor.from_json(data["descriptor"]),
            Digest.parse(data["diff_id"]),
            data["created_by"],
        )
        return cls(data["kind"], data["key"], layer)


@dataclass
class PlatformBuild:
    """What the build made for one platform, and from what."""

    platform: Platform
    base: Digest
    manifest: Descriptor | None = None
    layers: list[AddedRecord] = field(default_factory=list)
    lock: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    """The pushed index (under `tag`), the lock of every input, and each platform's layers."""

    index: Descriptor
    tag: str
    lock: dict[str, Any]
    platforms: list[PlatformBuild]

    def outputs(self) -> dict[str, Any]:
        """What the next build reuses, and what signing (later) names: per platform."""
        return {
            str(p.platform): {
                "manifest": p.manifest.to_json() if p.manifest else None,
                "layers": [record.to_json() for record in p.layers],
            }
            for p in self.platforms
        }


class PackageLayer(Protocol):
    """Adds a customization's OS packages to a layer (the package sources' part)."""

    async def reuse(
        self,
        base: Digest,
        platform: Platform,
        requests: Sequence[str],
        reusable: Container[str],
        log: Log,
    ) -> tuple[str, dict[str, Any]] | None:
        """The key and lock of a layer in `reusable` that these requests on the base image
        `base` would make again, known without reading the base (the package indexes checked
        unchanged); None when that is not known."""
        ...

    async def add(
        self,
        base: RootFS,
        platform: Platform,
        requests: Sequence[str],
        layer: LayerBuilder,
        log: Log,
        reusable: Container[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        """Fill `layer`, unless its key is in `reusable`; the layer's key and its part of the
        lock (each package with its version, SHA256 and source)."""
        ...


class _Base:
    """The base image's files, read the first time a layer needs them (from the scans kept in
    `cache` when an earlier build read this base)."""

    def __init__(
        self, target: Target, ref: Reference, manifest: Manifest, cache: Path, log: Log
    ) -> None:
        self.target, self.ref, self.manifest, self.log = target, ref, manifest, log
        self.cache = cache
        self._rootfs: RootFS | None = None

    async def __call__(self) -> RootFS:
        if self._rootfs is None:
            self._rootfs = await scanned(self.cache, self.target, self.ref, self.manifest)
            self.log(f"read the base's {len(self._rootfs.layers)} layers")
        return self._rootfs


class Builder:
    """Builds customizations through `target`, staging files under `workdir`."""

    def __init__(
        self, target: Target, workdir: Path, *, packages: PackageLayer | None = None
    ) -> None:
        self.target = target
        self.workdir = workdir
        self.packages = packages

    async def build(
        self,
        custom: Customization,
        which: BuildTarget,
        registry: str,
        previous: dict[str, Any] | None = None,
        log: Log = lambda _: None,
    ) -> BuildResult:
        """Build `which` of `custom` (its repository in `registry`) and push the result tag.

        `previous` is the last good build's outputs: layers with the same key are reused.
        """
        base_ref = Reference(registry, which.destination, which.base_tag)
        base_top = await self.target.manifest_get(base_ref)
        log(f"base {which.destination}:{which.base_tag} is {base_top.digest}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=self.workdir))
        try:
            platforms = []
            for name in custom.platforms:
                platform = Platform.parse(name)
                done = await self._platform(
                    custom, base_ref, base_top, platform, work, (previous or {}).get(name), log
                )
                platforms.append(done)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        annotations = {
            **custom.annotations,
            **image.base_annotations(which.destination, which.base_tag, base_top.digest),
        }
        entries = [(p.manifest, p.platform) for p in platforms if p.manifest is not None]
        raw = image.index(entries, annotations)
        tag = custom.result_tag(which)
        index = await self.target.manifest_put(
            base_ref.with_tag(tag), parse_manifest(raw, mt.OCI_INDEX)
        )
        log(f"pushed {which.destination}:{tag} as {index.digest}")
        lock = {
            "base": {
                "reference": f"{which.destination}:{which.base_tag}",
                "digest": str(base_top.digest),
            },
            "platforms": {str(p.platform): p.lock for p in platforms},
        }
        return BuildResult(index, tag, lock, platforms)

    async def _platform(
        self,
        custom: Customization,
        base_ref: Reference,
        base_top: Manifest,
        platform: Platform,
        work: Path,
        previous: dict[str, Any] | None,
        log: Log,
    ) -> PlatformBuild:
        what = f"the base {base_ref.repository}:{base_ref.tag}"
        base = await image_for_platform(
            self.target, base_ref, platform, field="platforms", what=what
        )
        base_ref = base_ref.with_digest(base.digest)
        config = await base_config(self.target, base_ref, base)
        epoch = _epoch(config)
        rootfs = _Base(
            self.target,
            base_ref,
            base,
            self.workdir / "bases",
            lambda line: log(f"{platform}: {line}"),
        )
        log(f"{platform}: base image {base.digest}, {len(base.blobs) - 1} layers")
        done = PlatformBuild(platform, base.digest)
        done.lock["base"] = str(base.digest)
        # a layer of the last build is reused only while the repository still has its blob
        reusable = {}
        for record in (AddedRecord.from_json(x) for x in (previous or {}).get("layers", [])):
            if await self.target.blob_head(base_ref, record.layer.descriptor) is not None:
                reusable[record.key] = record
        if custom.contents.packages:
            await self._packages(custom, rootfs, platform, work, epoch, reusable, done, log)
        if custom.contents.artifacts:
            await self._artifacts(custom, base_ref, rootfs, platform, work, epoch, reusable, done)
        user = await self._files(custom, rootfs, work, epoch, reusable, done)
        added = [record.layer for record in done.layers]
        for record in done.layers:
            await self._push_layer(base_ref, record, work)
        config_raw = image.config(config, custom, added, user)
        config_desc = Descriptor(mt.OCI_CONFIG, Digest.of(config_raw), len(config_raw))
        await self.target.blob_put(base_ref, config_desc, config_raw)
        annotations = {
            **custom.annotations,
            **image.base_annotations(base_ref.repository, str(base_ref.tag or ""), base.digest),
        }
        raw = image.manifest(orjson.loads(base.raw), config_desc, added, annotations)
        done.manifest = await self.target.manifest_put(
            _by_digest(base_ref, Digest.of(raw)), parse_manifest(raw, mt.OCI_MANIFEST)
        )
        log(f"{platform}: pushed {done.manifest.digest} ({len(added)} layers added)")
        return done

    async def _packages(
        self,
        custom: Customization,
        rootfs: _Base,
        platform: Platform,
        work: Path,
        epoch: int,
        reusable: dict[str, AddedRecord],
        done: PlatformBuild,
        log: Log,
    ) -> None:
        if self.packages is None:
            raise Invalid(
                "contents.packages",
                "this site has no package sources configured for the base's distribution",
            )
        layer = LayerBuilder(work / "packages", epoch)
        requests = custom.contents.packages
        known = await self.packages.reuse(done.base, platform, requests, reusable, log)
        if known is None:
            known = await self.packages.add(
                await rootfs(), platform, requests, layer, log, reusable=reusable
            )
        key, lock = known
        done.lock["packages"] = lock
        names = ", ".join(custom.contents.packages)
        await self._finish(layer, "packages", key, f"packages: {names}", custom, reusable, done)

    async def _artifacts(
        self,
        custom: Customization,
        base_ref: Reference,
        rootfs: _Base,
        platform: Platform,
        work: Path,
        epoch: int,
        reusable: dict[str, AddedRecord],
        done: PlatformBuild,
    ) -> None:
        sources = sources_of(custom.contents.artifacts, base_ref.registry)
        with Spool(work) as spool:
            found = await artifact_files(self.target, sources, platform, await rootfs(), spool)
            spool.flush()
            done.lock["artifacts"] = [
                {
                    "name": a.source.field,
                    "reference": str(a.source.reference),
                    "digest": str(a.digest),
                }
                for a in found
            ]
            key = _key(
                {
                    "base": str(done.base),
                    "artifacts": done.lock["artifacts"],
                    "selection": [custom.contents.model_dump()["artifacts"]],
                }
            )
            layer = LayerBuilder(work / "artifacts", epoch)
            if key not in reusable:
                for entry in merge(found):
                    await layer.add(entry)
            names = ", ".join(a.name for a in custom.contents.artifacts)
            await self._finish(
                layer, "artifacts", key, f"artifacts: {names}", custom, reusable, done
            )

    async def _files(
        self,
        custom: Customization,
        rootfs: _Base,
        work: Path,
        epoch: int,
        reusable: dict[str, AddedRecord],
        done: PlatformBuild,
    ) -> str | None:
        """The layer of `paths` and `accounts` (if any); the config's `User` for runs-as."""
        if not custom.paths and custom.accounts is None:
            return None
        key = _key(
            {
                "base": str(done.base),
                "paths": [p.model_dump() for p in custom.paths],
                "accounts": custom.accounts.model_dump() if custom.accounts else None,
            }
        )
        what = "files and accounts" if custom.accounts else "files"
        layer = LayerBuilder(work / "files", epoch)
        if key in reusable and custom.accounts is None:  # accounts need the base for `User`
            await self._finish(layer, "files", key, what, custom, reusable, done)
            return None
        entries: list[Entry] = []
        user = None
        if custom.accounts is not None:
            accounts = Accounts(
                tuple(User(u.name, u.uid, u.gid) for u in custom.accounts.users),
                tuple(Group(g.name, g.gid, tuple(g.members)) for g in custom.accounts.groups),
                custom.accounts.runs_as,
                custom.accounts.root,
            )
            found = await account_files(accounts, await rootfs(), epoch=epoch)
            entries += found.entries
            user = found.user
        for item in custom.paths:
            path = clean_path(item.path)
            entries += _parents(path, await rootfs(), {e.path for e in entries})
            entries.append(
                Entry.file(path, item.contents.encode(), item.permissions, item.uid, item.gid)
            )
        if not entries:
            return user
        if key not in reusable:
            for entry in entries:
                await layer.add(entry)
        await self._finish(layer, "files", key, what, custom, reusable, done)
        return user

    async def _finish(
        self,
        layer: LayerBuilder,
        kind: str,
        key: str,
        created_by: str,
        custom: Customization,
        reusable: dict[str, AddedRecord],
        done: PlatformBuild,
    ) -> None:
        """Write `layer`, unless the previous build made one from the same inputs."""
        previous = reusable.get(key)
        if previous is not None:
            done.layers.append(previous)
            return
        if not len(layer):
            return
        compression: Compression = custom.compression
        blob = layer.write(compression)
        added = image.AddedLayer(blob.descriptor, blob.diff_id, created_by)
        record = AddedRecord(kind, key, added)
        record_path = layer.workdir / "blob"
        blob.path.rename(record_path)
        done.layers.append(record)

    async def _push_layer(self, ref: Reference, record: AddedRecord, work: Path) -> None:
        """Push a layer's blob, unless the repository has it (a reused or unchanged layer)."""
        desc = record.layer.descriptor
        if await self.target.blob_head(ref, desc) is not None:
            return
        path = work / record.kind / "blob"
        if not path.exists():
            raise ContentInvalid(
                f"the {record.kind} layer {desc.digest} of the previous build is gone from "
                f"{ref.repository}: rebuild it (it is made again when its inputs change)"
            )
        await self.target.blob_put(ref, desc, _file_chunks(path))


def _parents(path: str, rootfs: RootFS, added: set[str]) -> list[Entry]:
    """Directories above `path` that neither the base nor the layer has yet (0755, root)."""
    missing = []
    parent = parent_of(path)
    while parent and parent not in added and rootfs.entry(parent) is None:
        missing.append(Entry.directory(parent))
        added.add(parent)
        parent = parent_of(parent)
    return list(reversed(missing))


async def base_config(target: Target, ref: Reference, manifest: Manifest) -> dict[str, Any]:
    desc = manifest.blobs[0]
    if desc.size > MAX_CONFIG:
        raise ContentInvalid(f"the config of {ref} is larger than {MAX_CONFIG} bytes")
    raw = b"".join([chunk async for chunk in target.blob_get(ref, desc)])
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContentInvalid(f"the config of {ref} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ContentInvalid(f"the config of {ref} is not a JSON object")
    return config


def _epoch(config: dict[str, Any]) -> int:
    """SOURCE_DATE_EPOCH: the base image's `created` (0 when it has none)."""
    created = config.get("created")
    if not isinstance(created, str):
        return 0
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _by_digest(ref: Reference, digest: Digest) -> Reference:
    """`ref`'s repository at `digest`, with no tag (a put must not move the base's tag)."""
    return Reference(ref.registry, ref.repository, None, digest)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, 1024 * 1024):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)
