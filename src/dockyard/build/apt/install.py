"""Debian and Ubuntu packages added to a layer, as apko and chisel add them: no apt, no dpkg,
no maintainer script run.

For a base whose os-release names a distribution the settings have sources for: each suite's
`InRelease` is verified, its `Packages` indexes read by digest, the closure resolved against
the base's own dpkg database, every `.deb` fetched by its SHA256, unpacked into the layer
(folders the base already has are left as the base has them, as dpkg leaves them), and the
dpkg database extended in the base's form, so `dpkg -l` and scanners see every package. What
the skipped scripts would have done that matters in practice is done natively: the CA bundle
is made again when certificates were added.

A rebuild is cheap when nothing moved: the layer's key and lock are remembered (under the
cache's `plans/`) by the base image's digest, the requests and the sources; when every suite's
verified `InRelease` is still the one they were resolved from, the same packages would be
chosen again, and a layer the previous build made from them is reused without reading the
base, the `Packages` indexes or a `.deb`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from dockyard.build.apt.cache import FetchFailed, VerifiedCache, fetch_deb
from dockyard.build.apt.candidates import PackageIndex
from dockyard.build.apt.deb import Deb
from dockyard.build.apt.dpkgdb import (
    STATUS,
    STATUS_D,
    DatabaseForm,
    InstalledPackage,
    Recorder,
    database_files,
    detect_form,
)
from dockyard.build.apt.index import fetch_packages
from dockyard.build.apt.packages import (
    Installed,
    Package,
    read_packages,
    stanzas,
)
from dockyard.build.apt.release import fetch_release
from dockyard.build.apt.resolution import Resolution
from dockyard.build.apt.resolve import resolve
from dockyard.build.apt.sources import AptSource, SourceError, sources_for
from dockyard.build.entries import Entry, Kind, clean_path
from dockyard.build.errors import InputRejected, InputUnavailable, Invalid
from dockyard.build.layers import LayerBuilder
from dockyard.build.placing import fetch_all, placed, put
from dockyard.build.rootfs import RootFS
from dockyard.config import PackageSource
from dockyard.oci.descriptor import Platform
from dockyard.oci.digest import Digest

FIELD = "contents.packages"
# OCI platform → Debian architecture
ARCHITECTURES = {
    ("amd64", None): "amd64",
    ("arm64", None): "arm64",
    ("arm64", "v8"): "arm64",
    ("arm", "v7"): "armhf",
    ("arm", "v6"): "armel",
    ("arm", "v5"): "armel",
    ("386", None): "i386",
    ("ppc64le", None): "ppc64el",
    ("s390x", None): "s390x",
    ("riscv64", None): "riscv64",
}
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
CERTIFICATES = "usr/share/ca-certificates/"
LOCAL_CERTIFICATES = "usr/local/share/ca-certificates"
PLANS_VERSION = 1  # bumped when the resolver may choose differently from the same inputs


@dataclass(frozen=True)
class Distribution:
    """What the base's os-release says it is."""

    id: str
    codename: str


@dataclass
class Plan:
    """What installing the requests would do on one platform: the closure and where from."""

    distribution: Distribution
    architecture: str
    resolution: Resolution
    sources: dict[str, AptSource]  # index origin → its source
    releases: dict[str, str]  # source name → its InRelease's SHA256
    base_status: bytes

    def lock(self) -> dict[str, Any]:
        """Every package with its version, SHA256 and source URL; every InRelease's digest."""
        return {
            "distribution": f"{self.distribution.id} {self.distribution.codename}",
            "architecture": self.architecture,
            "releases": dict(sorted(self.releases.items())),
            "packages": [
                {
                    "name": c.package.name,
                    "version": c.package.version,
                    "architecture": c.package.architecture,
                    "sha256": c.package.sha256,
                    "url": self.sources[c.package.origin].pool_url(c.package.filename),
                }
                for c in self.resolution.choices
            ],
        }

    def key(self) -> str:
        """The layer's inputs: the base's package database and the exact packages."""
        packages = sorted(
            (c.package.name, c.package.version, c.package.sha256) for c in self.resolution.choices
        )
        digest = hashlib.sha256(self.base_status)
        digest.update(repr(packages).encode())
        return digest.hexdigest()


class AptPackages:
    """The package layer of builds (`builder.PackageLayer`), from the configured sources,
    with verified indexes and `.deb` files kept in `cache`."""

    def __init__(
        self,
        sources: Sequence[PackageSource],
        cache: Path,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.sources = list(sources)
        self.cache = VerifiedCache(cache)
        self.plans = cache / "plans"
        self._session = session

    async def plan(self, base: RootFS, platform: Platform, requests: Sequence[str]) -> Plan:
        """Resolve `requests` on `base` without fetching any package."""
        distribution = _distribution(base)
        architecture = _architecture(platform)
        sources = sources_for(self.sources, distribution.id, distribution.codename)
        if not sources:
            raise Invalid(
                FIELD,
                f"this site has no package sources for {distribution.id} "
                f"{distribution.codename or '(no codename)'}: an admin adds them to the "
                "package_sources setting",
            )
        async with self._connected() as session:
            files, by_origin, releases = await self._indexes(session, sources, architecture)
        index = await asyncio.to_thread(PackageIndex.from_files, files, architecture)
        status, packages = _installed(base)
        resolution = resolve(list(requests), index, Installed(packages, architecture))
        return Plan(distribution, architecture, resolution, by_origin, releases, status)

    async def reuse(
        self,
        base: Digest,
        platform: Platform,
        requests: Sequence[str],
        reusable: Container[str],
        log: Callable[[str], None],
    ) -> tuple[str, dict[str, Any]] | None:
        """The remembered key and lock of these requests on the base image `base`, when that
        key is `reusable` and every suite's `InRelease` is the one they were resolved from."""
        memo = await asyncio.to_thread(self._recalled, self._plan_name(base, platform, requests))
        if memo is None or memo["key"] not in reusable:
            return None
        distribution = memo["distribution"]
        sources = sources_for(self.sources, distribution["id"], distribution["codename"])
        session = self._session or aiohttp.ClientSession()
        try:
            releases = {}
            for source in sources:
                try:
                    releases[source.name] = (await fetch_release(session, source)).sha256
                except SourceError as exc:
                    raise _refusal(exc) from exc
        finally:
            if self._session is None:
                await session.close()
        if releases != memo["lock"]["releases"]:
            return None
        count = len(memo["lock"]["packages"])
        log(f"{platform}: {count} packages as the last build had them (no index moved)")
        return str(memo["key"]), dict(memo["lock"])

    async def add(
        self,
        base: RootFS,
        platform: Platform,
        requests: Sequence[str],
        layer: LayerBuilder,
        log: Any,
        reusable: Container[str] = (),
    ) -> tuple[str, dict[str, Any]]:
        plan = await self.plan(base, platform, requests)
        log(f"{platform}: {len(plan.resolution.choices)} packages to add for {', '.join(requests)}")
        key, lock = plan.key(), plan.lock()
        if base.ref.digest is not None:
            memo = {"key": key, "lock": lock, "distribution": vars(plan.distribution)}
            name = self._plan_name(base.ref.digest, platform, requests)
            await asyncio.to_thread(self._remember, name, memo)
        if key in reusable:
            return key, lock  # the previous build's layer: nothing to fetch or unpack
        paths = await self.fetch(plan)
        installed: list[InstalledPackage] = []
        certificates: dict[str, bytes] = {}
        added: set[str] = set()
        for choice, path in zip(plan.resolution.choices, paths, strict=True):
            unpacked = await _unpack(path, base, layer)
            for entry in unpacked.others:
                await put(layer, base, added, entry)
            installed.append(unpacked.package)
            certificates.update(unpacked.certificates)
            log(
                f"  {choice.action} {choice.package.name} {choice.package.version}: {choice.reason}"
            )
        form = detect_form(base.paths("var/lib/dpkg"))
        status = plan.base_status if form is DatabaseForm.STATUS else None
        for name, data in database_files(form, status, installed).items():
            await put(layer, base, added, Entry.file(name, data))
        await _ca_bundle(base, certificates, layer)
        return key, lock

    def _plan_name(self, base: Digest, platform: Platform, requests: Sequence[str]) -> str:
        inputs = {
            "version": PLANS_VERSION,
            "base": str(base),
            "platform": str(platform),
            "requests": list(requests),
            "sources": [source.model_dump(mode="json") for source in self.sources],
        }
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def _recalled(self, name: str) -> dict[str, Any] | None:
        try:
            memo = json.loads((self.plans / name).read_text())
        except (OSError, ValueError):
            return None  # none yet, or cut short: resolved again
        return memo if isinstance(memo, dict) else None

    def _remember(self, name: str, memo: dict[str, Any]) -> None:
        self.plans.mkdir(parents=True, exist_ok=True)
        temporary = self.plans / f".{name}.{os.getpid()}"
        temporary.write_text(json.dumps(memo, sort_keys=True))
        temporary.replace(self.plans / name)

    async def search(
        self, base: RootFS, platform: Platform, query: str, limit: int = 50
    ) -> list[dict[str, str]]:
        """Packages of the base's distribution whose names contain `query` (names that start
        with it first), with their candidate version and summary: the packages drop-down."""
        distribution = _distribution(base)
        architecture = _architecture(platform)
        sources = sources_for(self.sources, distribution.id, distribution.codename)
        if not sources:
            return []
        async with self._connected() as session:
            files, _, _ = await self._indexes(session, sources, architecture)
        return await asyncio.to_thread(_matching, files, architecture, query.lower(), limit)

    async def releases_moved(self, lock: dict[str, Any]) -> bool:
        """Whether any suite a build's package lock came from has a new `InRelease` (a cheap
        first look: a few small signed files, no index, no base read)."""
        distribution, _, codename = str(lock.get("distribution", "")).partition(" ")
        before = lock.get("releases") or {}
        async with self._connected() as session:
            for source in sources_for(self.sources, distribution, codename):
                try:
                    release = await fetch_release(session, source)
                except SourceError as exc:
                    raise _refusal(exc) from exc
                if before.get(source.name) != release.sha256:
                    return True
        return False

    async def fetch(self, plan: Plan) -> list[Path]:
        """Every `.deb` of the plan's closure, verified, in the cache; their paths in order."""
        async with self._connected() as session:
            choices = plan.resolution.choices
            return await fetch_all(self._deb(session, plan, c.package) for c in choices)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The session given at construction, or one for this call (closed after it)."""
        if self._session is not None:
            yield self._session
            return
        async with aiohttp.ClientSession() as session:
            yield session

    async def _indexes(
        self, session: aiohttp.ClientSession, sources: Sequence[AptSource], architecture: str
    ) -> tuple[list[tuple[str, Path]], dict[str, AptSource], dict[str, str]]:
        """Every suite's verified `Packages` files as `(origin, path)`, in the sources' order."""
        files: list[tuple[str, Path]] = []
        by_origin: dict[str, AptSource] = {}
        releases: dict[str, str] = {}
        for source in sources:
            try:
                release = await fetch_release(session, source)
                releases[source.name] = release.sha256
                for component in source.components:
                    index = await fetch_packages(
                        session, release, component, architecture, self.cache
                    )
                    files.append((index.source, index.path))
                    by_origin[index.source] = source
            except SourceError as exc:
                raise _refusal(exc) from exc
        return files, by_origin, releases

    async def _deb(self, session: aiohttp.ClientSession, plan: Plan, package: Package) -> Path:
        source = plan.sources[package.origin]
        try:
            return await fetch_deb(
                session, self.cache, source, package.filename, package.size, package.sha256
            )
        except SourceError as exc:
            raise _refusal(exc) from exc


def _matching(
    files: Sequence[tuple[str, Path]], architecture: str, query: str, limit: int
) -> list[dict[str, str]]:
    """Names containing `query`, each with its highest version, prefix matches first."""
    index = PackageIndex.from_files(files, architecture)
    names = sorted(
        (name for name in index.names() if query in name),
        key=lambda name: (not name.startswith(query), name),
    )
    found = [index.candidate(name) for name in names[:limit]]
    return [{"name": p.name, "version": p.version, "section": p.section} for p in found if p]


def _refusal(exc: SourceError) -> InputUnavailable | InputRejected:
    """An archive that did not answer may answer later; anything else failed a check."""
    if isinstance(exc, FetchFailed):
        return InputUnavailable(exc.message)
    return InputRejected(exc.message)


def _distribution(base: RootFS) -> Distribution:
    fields = base.os_release()
    if fields is None:
        raise Invalid(FIELD, "the base has no /etc/os-release: its distribution is unknown")
    return Distribution(fields.get("ID", ""), fields.get("VERSION_CODENAME", ""))


def _architecture(platform: Platform) -> str:
    found = ARCHITECTURES.get((platform.architecture, platform.variant)) or ARCHITECTURES.get(
        (platform.architecture, None)
    )
    if found is None:
        raise Invalid("platforms", f"no Debian architecture for {platform}")
    return found


def _installed(base: RootFS) -> tuple[bytes, list[Package]]:
    """The base's dpkg database as bytes (for the layer's key) and its packages."""
    status = base.collected(STATUS)
    if status is not None:
        return status, read_packages(status.decode("utf-8"), STATUS)
    packages = []
    joined = b""
    for path in base.paths(STATUS_D):
        data = base.collected(path)
        if data is None or path.endswith(".md5sums"):
            continue
        joined += data
        for fields in stanzas(data.decode("utf-8")):
            fields.setdefault("status", "install ok installed")  # distroless writes none
            packages.append(Package.from_fields(fields, path))
    return joined, packages


@dataclass
class _Unpacked:
    """What a `.deb` put into the layer, and what is left to place (folders and links)."""

    package: InstalledPackage
    others: list[Entry]
    certificates: dict[str, bytes]


async def _unpack(path: Path, base: RootFS, layer: LayerBuilder) -> _Unpacked:
    """Stage a `.deb`'s files into the layer (in a worker thread: reading blocks); its folders
    and links are returned to be placed against the base."""

    def read() -> _Unpacked:
        others: list[Entry] = []
        certificates: dict[str, bytes] = {}
        with Deb(path) as deb:
            recorder = Recorder(deb.control)
            for entry in deb.entries():
                tracked = recorder.track(entry)
                info, where = tracked.info, placed(tracked.path, base)
                mode = info.mode & 0o7777
                if info.isdir():
                    others.append(Entry.directory(where, mode, info.uid, info.gid))
                elif info.issym():
                    others.append(Entry.symlink(where, info.linkname, info.uid, info.gid))
                elif info.islnk():
                    target = placed(clean_path(info.linkname), base)
                    others.append(
                        Entry(where, Kind.HARDLINK, mode, info.uid, info.gid, link=target)
                    )
                elif tracked.stream is not None:
                    stream = tracked.stream
                    if where.startswith(CERTIFICATES) and where.endswith(".crt"):
                        data = stream.read()
                        certificates[where] = data
                        layer.add_file(where, data, mode, info.uid, info.gid, int(info.mtime))
                    else:
                        layer.add_file(where, stream, mode, info.uid, info.gid, int(info.mtime))
                else:
                    raise Invalid(
                        FIELD, f"{deb.control.package}: {tracked.path} is a device or FIFO"
                    )
            return _Unpacked(recorder.finish(), others, certificates)

    return await asyncio.to_thread(read)


async def _ca_bundle(base: RootFS, certificates: dict[str, bytes], layer: LayerBuilder) -> None:
    """What update-ca-certificates (a skipped postinst) makes: every shipped certificate
    enabled in /etc/ca-certificates.conf, and the bundle of them, with the base's local ones
    (/usr/local/share/ca-certificates) after."""
    if not certificates:
        return
    names = sorted(certificates)
    conf = "".join(f"{name.removeprefix(CERTIFICATES)}\n" for name in names)
    layer.add_file("etc/ca-certificates.conf", conf.encode(), 0o644)
    pieces = [certificates[name] for name in names]
    for path in base.paths(LOCAL_CERTIFICATES):
        if path.endswith(".crt"):
            pieces.append(await base.read(path))
    bundle = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pieces)
    layer.add_file(CA_BUNDLE, bundle, 0o644)
