"""A component's `Packages` index for one architecture, fetched by what the verified Release
lists: the smallest form offered (`.xz`, then `.gz`, then plain), by hash when the archive says
`Acquire-By-Hash`, its size and SHA256 checked while it streams into the cache, decompressed in
process (bounded: never more than the Release says the plain file is), and kept under the
digest of its decompressed text, so a warm run fetches only `InRelease`.
"""

from __future__ import annotations

import asyncio
import hashlib
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from dockyard.build.apt.cache import FetchFailed, VerifiedCache
from dockyard.build.apt.release import IndexFile, Release
from dockyard.build.apt.sources import SourceError

FORMS = ((".xz", "xz"), (".gz", "gz"), ("", "plain"))
DECOMPRESSED_LIMIT = 1024 * 1024 * 1024  # when the Release does not list the plain size
READ_SIZE = 1024 * 1024


class IndexMissing(SourceError):
    """The Release lists no Packages index for the component and architecture asked for."""


@dataclass(frozen=True)
class PackagesIndex:
    """A verified, decompressed `Packages` file and where it came from."""

    release: Release
    component: str
    architecture: str
    path: Path  # the decompressed text, in the cache, named by its SHA256
    sha256: str

    @property
    def source(self) -> str:
        """How errors and the lock name this index: `URI SUITE COMPONENT/binary-ARCH`."""
        return f"{self.release.source.name} {self.component}/binary-{self.architecture}"


def index_targets(release: Release, architecture: str) -> list[tuple[str, str]]:
    """The (component, architecture) indexes to read for `architecture`: each component of
    the source that the Release offers, plus `binary-all` where the archive keeps
    `Architecture: all` packages apart."""
    source = release.source
    components = [c for c in source.components if not release.components or c in release.components]
    missing = set(source.components) - set(components)
    if missing:
        raise IndexMissing(
            f"{source.name}: the Release offers no component {', '.join(sorted(missing))} "
            f"(it has {', '.join(release.components)})",
            source,
        )
    arches = [architecture]
    if release.arch_all_separate and architecture != "all":
        arches.append("all")
    return [(component, arch) for component in components for arch in arches]


async def fetch_packages(
    session: aiohttp.ClientSession,
    release: Release,
    component: str,
    architecture: str,
    cache: VerifiedCache,
) -> PackagesIndex:
    """The verified `Packages` text of `component`/`architecture`, from the cache when its
    digest (as the Release lists it) is there, else downloaded, checked and decompressed."""
    base = f"{component}/binary-{architecture}/Packages"
    plain = release.files.get(base)
    if plain is not None and (hit := cache.get(plain.sha256)) is not None:
        return PackagesIndex(release, component, architecture, hit, plain.sha256)
    offered = [
        (release.files[base + suffix], kind)
        for suffix, kind in FORMS
        if base + suffix in release.files
    ]
    if not offered:
        raise IndexMissing(
            f"{release.source.name}: the Release lists no {base} index (is {architecture} "
            f"offered? the archive has {', '.join(release.architectures) or 'no list'})",
            release.source,
        )
    compressed, kind = offered[0]
    where = f"{release.source.name} {compressed.path}"
    fetched = await _download(session, release, compressed, cache, where)
    if kind == "plain":
        return PackagesIndex(release, component, architecture, fetched, compressed.sha256)
    path, digest = await asyncio.to_thread(_decompress, fetched, kind, plain, cache, where)
    if plain is not None:  # the warm path looks the plain digest up: the compressed is spent
        fetched.unlink(missing_ok=True)
    return PackagesIndex(release, component, architecture, path, digest)


async def _download(
    session: aiohttp.ClientSession,
    release: Release,
    item: IndexFile,
    cache: VerifiedCache,
    where: str,
) -> Path:
    source = release.source
    if release.acquire_by_hash:
        folder = item.path.rsplit("/", 1)[0]
        url = source.dists_url(f"{folder}/by-hash/SHA256/{item.sha256}")
        try:
            return await cache.download(session, url, item.size, item.sha256, where, source)
        except FetchFailed as exc:
            # apt falls back to the plain name when a mirror lacks the by-hash file; a file
            # that arrived but did not match is never retried
            if exc.status != 404:
                raise
    url = source.dists_url(item.path)
    return await cache.download(session, url, item.size, item.sha256, where, source)


def _decompress(
    compressed: Path, kind: str, plain: IndexFile | None, cache: VerifiedCache, where: str
) -> tuple[Path, str]:
    """Decompress a verified index into the cache, checked against the plain file's size and
    digest when the Release lists them, else bounded by `DECOMPRESSED_LIMIT`. Blocking."""
    limit = plain.size if plain is not None else DECOMPRESSED_LIMIT
    if plain is not None:
        chunks = _inflate(compressed, kind, limit, where)
        return cache.write(plain.sha256, plain.size, chunks, where), plain.sha256
    # not listed (some archives list only compressed forms): hash it first, then store it
    hasher = hashlib.sha256()
    for chunk in _inflate(compressed, kind, limit, where):
        hasher.update(chunk)
    digest = hasher.hexdigest()
    return cache.write(digest, None, _inflate(compressed, kind, limit, where), where), digest


def _inflate(compressed: Path, kind: str, limit: int, where: str) -> Iterator[bytes]:
    produced = 0
    with compressed.open("rb") as handle:
        chunks = _inflate_xz(handle, where) if kind == "xz" else _inflate_gz(handle, where)
        for chunk in chunks:
            produced += len(chunk)
            if produced > limit:
                raise SourceError(f"{where}: decompresses to more than {limit} bytes")
            if chunk:
                yield chunk


# Each call may produce at most READ_SIZE bytes (max_length): a small bomb cannot fill memory.
def _inflate_xz(handle: BinaryIO, where: str) -> Iterator[bytes]:
    decompressor = lzma.LZMADecompressor()
    while not decompressor.eof:
        data = b""
        if decompressor.needs_input:
            data = handle.read(READ_SIZE)
            if not data:
                raise SourceError(f"{where}: the compressed index is truncated")
        yield decompressor.decompress(data, READ_SIZE)


def _inflate_gz(handle: BinaryIO, where: str) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending = b""
    while not decompressor.eof:
        if not pending:
            pending = handle.read(READ_SIZE)
            if not pending:  # what zlib still holds, then the stream must have ended
                yield decompressor.flush()
                _require_end(decompressor, where)
                return
        yield decompressor.decompress(pending, READ_SIZE)
        pending = decompressor.unconsumed_tail


def _require_end(decompressor: zlib._Decompress, where: str) -> None:
    if not decompressor.eof:
        raise SourceError(f"{where}: the compressed index is truncated")
