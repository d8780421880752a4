"""A folder of verified files keyed by their SHA256 (`.deb` files, compressed and decompressed
`Packages` indexes), and the download that fills it.

Nothing unverified becomes visible: bytes go to a temporary file in the same folder while their
size and SHA256 are checked, then fsync and rename put the file in place. A file found under
its digest is therefore trusted without hashing it again. Two processes filling the same entry
at once each write their own temporary file; the renames are atomic and the content is the
same, so either wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp

from dockyard.build.apt.sources import AptSource, SourceError

BUFFER_SIZE = 4 * 1024 * 1024  # hash and write in a worker thread per buffer, not per chunk
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DigestMismatch(SourceError):
    """Downloaded bytes are not the ones the signed index promised (size or SHA256)."""


class FetchFailed(SourceError):
    """The archive did not answer with the file (an HTTP status, or no connection)."""

    def __init__(self, message: str, source: AptSource | None, status: int | None) -> None:
        super().__init__(message, source)
        self.status = status


class VerifiedCache:
    """Files named by their SHA256 under `root/sha256/`; temporary files under `root/tmp/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "sha256"
        self.temp = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the file with this digest lives (whether or not it is there yet)."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA256 hex digest: {sha256!r}")
        return self.files / sha256

    def get(self, sha256: str) -> Path | None:
        """The cached file with this digest, or None."""
        path = self.path(sha256)
        return path if path.is_file() else None

    def write(self, sha256: str, size: int | None, chunks: Iterable[bytes], where: str) -> Path:
        """Store `chunks` as the file with digest `sha256` (and `size`, when given), or raise
        `DigestMismatch` naming `where` and leave nothing behind. Blocking: run it in a thread."""
        with self._temporary() as temp:
            hasher = hashlib.sha256()
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if size is not None and written > size:
                    raise DigestMismatch(f"{where}: more than the {size} bytes the index lists")
                hasher.update(chunk)
                temp.handle.write(chunk)
            _check(where, size, written, sha256, hasher.hexdigest())
            return self._publish(temp, sha256)

    async def download(
        self,
        session: aiohttp.ClientSession,
        url: str,
        size: int,
        sha256: str,
        where: str,
        source: AptSource | None = None,
    ) -> Path:
        """The file with `sha256`: from the cache, or downloaded from `url` while its size and
        digest are checked (a mismatch raises `DigestMismatch` and leaves nothing cached)."""
        cached = self.get(sha256)
        if cached is not None:
            return cached
        try:
            async with session.get(url, allow_redirects=True) as response:
                if response.status != 200:
                    raise FetchFailed(
                        f"{where}: GET {url} answered {response.status}", source, response.status
                    )
                if response.content_length is not None and response.content_length != size:
                    raise DigestMismatch(
                        f"{where}: {url} is {response.content_length} bytes, the index lists "
                        f"{size}",
                        source,
                    )
                return await self._stream(response, size, sha256, where, source)
        except aiohttp.ClientError as exc:
            raise FetchFailed(f"{where}: GET {url} failed: {exc}", source, None) from exc

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        size: int,
        sha256: str,
        where: str,
        source: AptSource | None,
    ) -> Path:
        with self._temporary() as temp:
            hasher = hashlib.sha256()
            buffer = bytearray()
            received = 0

            def flush(data: bytes) -> None:
                hasher.update(data)
                temp.handle.write(data)

            async for chunk in response.content.iter_chunked(1024 * 1024):
                received += len(chunk)
                if received > size:
                    raise DigestMismatch(
                        f"{where}: more than the {size} bytes the index lists", source
                    )
                buffer += chunk
                if len(buffer) >= BUFFER_SIZE:
                    await asyncio.to_thread(flush, bytes(buffer))
                    buffer.clear()
            await asyncio.to_thread(flush, bytes(buffer))
            try:
                _check(where, size, received, sha256, hasher.hexdigest())
            except DigestMismatch as exc:
                exc.source = source
                raise
            return await asyncio.to_thread(self._publish, temp, sha256)

    @contextlib.contextmanager
    def _temporary(self) -> Iterator[_Temporary]:
        self.temp.mkdir(parents=True, exist_ok=True)
        self.files.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.temp, prefix="part-")
        temp = _Temporary(os.fdopen(fd, "wb"), Path(name))
        try:
            yield temp
        finally:
            temp.handle.close()
            if not temp.published:
                temp.path.unlink(missing_ok=True)

    def _publish(self, temp: _Temporary, sha256: str) -> Path:
        temp.handle.flush()
        os.fsync(temp.handle.fileno())
        target = self.path(sha256)
        os.chmod(temp.path, 0o644)
        os.replace(temp.path, target)
        temp.published = True
        _fsync_dir(self.files)
        return target


@dataclass
class _Temporary:
    handle: IO[bytes]
    path: Path
    published: bool = False


def _check(where: str, size: int | None, received: int, expected: str, actual: str) -> None:
    if size is not None and received != size:
        raise DigestMismatch(f"{where}: {received} bytes arrived, the index lists {size}")
    if actual != expected:
        raise DigestMismatch(
            f"{where}: SHA256 is {actual}, the signed index lists {expected} (tampered with "
            "or a broken mirror)"
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in blocks. Blocking."""
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while block := handle.read(BUFFER_SIZE):
            hasher.update(block)
    return hasher.hexdigest()


async def fetch_deb(
    session: aiohttp.ClientSession,
    cache: VerifiedCache,
    source: AptSource,
    filename: str,
    size: int,
    sha256: str,
) -> Path:
    """A package's `.deb` by its index entry (`Filename`, `Size`, `SHA256`): from the cache, or
    from the source's pool, verified on the way in."""
    where = f"{source.name} {filename}"
    return await cache.download(session, source.pool_url(filename), size, sha256, where, source)
