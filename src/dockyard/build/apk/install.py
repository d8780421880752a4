"""Alpine packages added to a layer, as apko adds them: no apk, no script run.

For a base whose os-release names a distribution the settings have apk sources for: each
repository's `APKINDEX.tar.gz` is verified against the trusted keys, the closure resolved
against the base's own database (`lib/apk/db/installed`), every .apk fetched and held to its
index entry, signature and data hash, unpacked into the layer (folders the base already has
are left as the base has them), and `lib/apk/db/installed` and `etc/apk/world` written as apk
writes them, so `apk info` and scanners see every package.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import aiohttp

from dockyard.build.apk.apkfile import Control, HashingReader, data_entries
from dockyard.build.apk.fetch import MAX_INDEX, PackageCache, get_bytes
from dockyard.build.apk.index import ApkFormatError, ApkPackage, read_index
from dockyard.build.apk.installed import (
    INSTALLED,
    WORLD,
    Owned,
    Record,
    new_record,
    read_installed,
    write_installed,
    write_world,
)
from dockyard.build.apk.resolve import FIELD, Choice, Resolution, resolve
from dockyard.build.apk.signature import Keys, verify_index
from dockyard.build.apk.sources import ARCHITECTURES, ApkRepository, repositories_for
from dockyard.build.entries import Entry, Kind, clean_path
from dockyard.build.errors import InputRejected, Invalid
from dockyard.build.layers import LayerBuilder
from dockyard.build.placing import fetch_all, placed, put
from dockyard.build.rootfs import RootFS
from dockyard.config import ApkSource
from dockyard.oci.descriptor import Platform


@dataclass(frozen=True)
class Release:
    """What the base's os-release says: the distribution and its VERSION_ID."""

    id: str
    version_id: str


def os_release(base: RootFS) -> dict[str, str]:
    """The fields of the base's os-release (empty when it has none)."""
    return base.os_release() or {}


@dataclass
class Plan:
    """What installing the requests would do on one platform: the closure and where from."""

    release: Release
    architecture: str
    resolution: Resolution
    repositories: dict[str, ApkRepository]  # repository URL → repository
    indexes: dict[str, str]  # repository URL → its APKINDEX.tar.gz's SHA256
    base_installed: bytes
    base_world: bytes | None

    def key(self) -> str:
        """The layer's inputs: the base's database and world, the requests, the packages."""
        digest = hashlib.sha256(self.base_installed)
        digest.update(b"\0" + (self.base_world or b""))
        packages = sorted((c.package.name, c.package.version, c.package.checksum)
                          for c in self.resolution.choices)  # fmt: skip
        requests = [str(r) for r in self.resolution.requests]
        digest.update(repr((requests, packages)).encode())
        return digest.hexdigest()

    def lock(self, sha256: dict[str, str]) -> dict[str, Any]:
        """Every package with its version, identity (`C:`), SHA256 and URL; every index's digest."""
        return {
            "distribution": f"{self.release.id} {self.release.version_id}",
            "architecture": self.architecture,
            "indexes": dict(sorted(self.indexes.items())),
            "packages": [
                {
                    "name": c.package.name,
                    "version": c.package.version,
                    "architecture": c.package.architecture,
                    "checksum": c.package.checksum,
                    "sha256": sha256.get(c.package.name, ""),
                    "url": self.repositories[c.package.repository].package_url(
                        self.architecture, c.package.filename
                    ),
                }
                for c in self.resolution.choices
            ],
        }


class ApkPackages:
    """The package layer of builds on Alpine bases (`builder.PackageLayer`), from the
    configured repositories, with verified .apk files kept in `cache`."""

    def __init__(
        self,
        sources: Sequence[ApkSource],
        cache: Path,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.sources = list(sources)
        self.cache = PackageCache(cache)
        self._session = session

    def serves(self, distribution: str) -> bool:
        return any(source.distribution == distribution for source in self.sources)

    async def plan(self, base: RootFS, platform: Platform, requests: Sequence[str]) -> Plan:
        """Resolve `requests` on `base` without fetching any package."""
        fields = os_release(base)
        release = Release(fields.get("ID", ""), fields.get("VERSION_ID", ""))
        architecture = _architecture(platform)
        repositories = repositories_for(self.sources, release.id, release.version_id)
        if not repositories:
            raise Invalid(
                FIELD,
                f"this site has no apk sources for {release.id or 'the base'} "
                f"{release.version_id}: an admin adds them to the apk_sources setting",
            )
        async with self._client() as session:
            available, indexes = await self._indexes(session, repositories, architecture)
        installed_text = base.collected(INSTALLED) or b""
        base_records = _read_records(installed_text)
        resolution = resolve(list(requests), available, [r.package for r in base_records])
        return Plan(
            release,
            architecture,
            resolution,
            {r.url: r for r in repositories},
            indexes,
            installed_text,
            base.collected(WORLD),
        )

    async def add(
        self,
        base: RootFS,
        platform: Platform,
        requests: Sequence[str],
        layer: LayerBuilder,
        log: Any,
    ) -> tuple[str, dict[str, Any]]:
        plan = await self.plan(base, platform, requests)
        log(f"{platform}: {len(plan.resolution.choices)} packages to add for {', '.join(requests)}")
        fetched = await self.fetch(plan)
        base_records = _read_records(plan.base_installed)
        records: list[Record] = []
        added: set[str] = set()
        for choice, (path, _, control) in zip(plan.resolution.choices, fetched, strict=True):
            owned, others = await _unpack(path, control, base, layer)
            for entry in others:
                await put(layer, base, added, entry)
            await _whiteouts(choice, base_records, owned, base, layer)
            records.append(_record(choice, owned, control))
            log(
                f"  {choice.action} {choice.package.name} {choice.package.version}: {choice.reason}"
            )
        database = write_installed(base_records, records)
        await put(layer, base, added, Entry.file(placed(INSTALLED, base), database))
        world = write_world(plan.base_world, plan.resolution.requests)
        await put(layer, base, added, Entry.file(placed(WORLD, base), world))
        sha256 = {
            c.package.name: sha
            for c, (_, sha, _) in zip(plan.resolution.choices, fetched, strict=True)
        }
        return plan.key(), plan.lock(sha256)

    async def fetch(self, plan: Plan) -> list[tuple[Path, str, Control]]:
        """Every .apk of the plan's closure, verified, in the cache: path, SHA256, control."""
        async with self._client() as session:
            return await fetch_all(self._one(session, plan, c) for c in plan.resolution.choices)

    async def _one(
        self, session: aiohttp.ClientSession, plan: Plan, choice: Choice
    ) -> tuple[Path, str, Control]:
        repository = plan.repositories[choice.package.repository]
        keys = await asyncio.to_thread(Keys.load, repository.keys)
        return await self.cache.get(session, repository, plan.architecture, choice.package, keys)

    async def _indexes(
        self,
        session: aiohttp.ClientSession,
        repositories: Sequence[ApkRepository],
        architecture: str,
    ) -> tuple[list[ApkPackage], dict[str, str]]:
        available: list[ApkPackage] = []
        digests: dict[str, str] = {}
        for repository in repositories:
            where = f"{repository.url} ({architecture})"
            data = await get_bytes(session, repository.index_url(architecture), MAX_INDEX, where)
            keys = await asyncio.to_thread(Keys.load, repository.keys)
            text = await asyncio.to_thread(verify_index, data, keys, f"{where} APKINDEX")
            try:
                available += read_index(text.decode("utf-8"), repository.url)
            except (ApkFormatError, UnicodeDecodeError) as exc:
                raise InputRejected(f"{where} APKINDEX: {exc}") from None
            digests[repository.url] = hashlib.sha256(data).hexdigest()
        return available, digests

    def _client(self) -> _Session:
        return _Session(self._session)


class _Session:
    """The injected session, or one of our own for the duration of a call."""

    def __init__(self, given: aiohttp.ClientSession | None) -> None:
        self.given = given
        self.own: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> aiohttp.ClientSession:
        if self.given is not None:
            return self.given
        self.own = aiohttp.ClientSession()
        return self.own

    async def __aexit__(self, *exc: object) -> None:
        if self.own is not None:
            await self.own.close()


def _architecture(platform: Platform) -> str:
    found = ARCHITECTURES.get((platform.architecture, platform.variant)) or ARCHITECTURES.get(
        (platform.architecture, None)
    )
    if found is None:
        raise Invalid("platforms", f"no Alpine architecture for {platform}")
    return found


def _read_records(text: bytes) -> list[Record]:
    try:
        return read_installed(text.decode("utf-8", "replace"))
    except ApkFormatError as exc:
        raise InputRejected(f"the base's /{INSTALLED} cannot be read: {exc}") from None


def _record(choice: Choice, owned: Owned, control: Control) -> Record:
    replaces = [word for value in control.get("replaces") for word in value.split()]
    priority = int((control.get("replaces_priority") or ["0"])[0] or 0)
    return new_record(choice.package, choice.package.checksum, replaces, priority, owned)


async def _unpack(
    path: Path, control: Control, base: RootFS, layer: LayerBuilder
) -> tuple[Owned, list[Entry]]:
    """Stage a package's files into the layer (in a worker thread); its folders and links are
    returned to be placed against the base. What it owns is recorded as apk records it."""
    where = path.name

    def read() -> tuple[Owned, list[Entry]]:
        owned = Owned()
        others: list[Entry] = []
        sums: dict[str, bytes] = {}
        for item in data_entries(path, control, where):
            info = item.info
            try:
                name = clean_path(info.name)
            except ValueError as exc:
                raise InputRejected(f"{where}: {exc}") from None
            if not name:
                continue
            at, acl = placed(name, base), (info.uid, info.gid, info.mode & 0o7777)
            if info.isdir():
                owned.folder(name, acl)
                others.append(Entry.directory(at, acl[2], info.uid, info.gid))
            elif info.issym():
                sums[name] = hashlib.sha1(info.linkname.encode()).digest()
                owned.file(name, (info.uid, info.gid, 0o777), sums[name])
                others.append(Entry.symlink(at, info.linkname, info.uid, info.gid))
            elif info.islnk():
                target = clean_path(info.linkname)
                owned.file(name, acl, sums.get(target))
                link = placed(target, base)
                others.append(Entry(at, Kind.HARDLINK, acl[2], info.uid, info.gid, link=link))
            elif item.stream is not None:
                reader = HashingReader(item.stream)
                layer.add_file(
                    at, cast(IO[bytes], reader), acl[2], info.uid, info.gid, int(info.mtime)
                )
                sums[name] = reader.sha1.digest()
                owned.file(name, acl, sums[name])
            else:
                raise InputRejected(f"{where}: {name} is a device or FIFO")
        return owned, others

    return await asyncio.to_thread(read)


async def _whiteouts(
    choice: Choice, base_records: list[Record], owned: Owned, base: RootFS, layer: LayerBuilder
) -> None:
    """An upgrade removes what the old version had and the new one does not (whiteouts)."""
    if choice.installed is None:
        return
    keep = set(owned.paths())
    for record in base_records:
        if record.package.name != choice.installed.name:
            continue
        for path in record.files:
            if path not in keep and base.entry(path, follow=False) is not None:
                folder, _, name = placed(path, base).rpartition("/")
                layer.add_file(f"{folder}/.wh.{name}" if folder else f".wh.{name}", b"", 0o644)
