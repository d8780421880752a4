"""Downloads from Alpine repositories: signed indexes, and .apk files kept in a cache once
verified.

A package is cached under its identity (the hex SHA1 of its control stream, which the signed
index names) only after `apkfile.verify` has held it to that identity, its signature and its
`datahash`: bytes go to a temporary file, are checked, then fsync and rename put them in
place. A cached file is checked again each time it is used (its control has to be read
anyway), so a file damaged on disk is refused, not installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import aiohttp

from dockyard.build.apk.apkfile import Control, verify
from dockyard.build.apk.index import ApkPackage
from dockyard.build.apk.signature import Keys
from dockyard.build.apk.sources import ApkRepository
from dockyard.build.errors import InputRejected, InputUnavailable

MAX_INDEX = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


async def get_bytes(session: aiohttp.ClientSession, url: str, limit: int, where: str) -> bytes:
    """The body at `url` (at most `limit` bytes); `InputUnavailable` when it does not come."""
    try:
        async with session.get(url, allow_redirects=True) as response:
            if response.status != 200:
                raise InputUnavailable(f"{where}: GET {url} answered {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise InputRejected(f"{where}: {url} is larger than {limit} bytes")
            return bytes(body)
    except aiohttp.ClientError as exc:
        raise InputUnavailable(f"{where}: GET {url} failed: {exc}") from exc


class PackageCache:
    """Verified .apk files under `root/apk/<identity hex>.apk`; temporary files in `root/tmp`."""

    def __init__(self, root: Path) -> None:
        self.files = root / "apk"
        self.temp = root / "tmp"

    def path(self, package: ApkPackage) -> Path:
        return self.files / f"{package.control_sha1().hex()}.apk"

    async def get(
        self,
        session: aiohttp.ClientSession,
        repository: ApkRepository,
        architecture: str,
        package: ApkPackage,
        keys: Keys,
    ) -> tuple[Path, str, Control]:
        """The package's verified file, its SHA256 and its control: from the cache, or
        downloaded from `repository` and checked on the way in (nothing is cached when a
        check fails)."""
        target = self.path(package)
        url = repository.package_url(architecture, package.filename)
        where = f"{repository.url} {package.filename}"
        if target.is_file():
            control = await asyncio.to_thread(verify, target, keys, package.control_sha1(), where)
            return target, await asyncio.to_thread(_sha256_file, target), control
        await asyncio.to_thread(self.temp.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self.files.mkdir, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.temp, prefix="part-")
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                sha256 = await _download(session, url, package.size, handle, where)
                await asyncio.to_thread(_sync, handle)
            control = await asyncio.to_thread(verify, temp, keys, package.control_sha1(), where)
            await asyncio.to_thread(os.replace, temp, target)
            return target, sha256, control
        finally:
            await asyncio.to_thread(temp.unlink, missing_ok=True)


async def _download(
    session: aiohttp.ClientSession, url: str, size: int, handle: object, where: str
) -> str:
    hasher = hashlib.sha256()
    received = 0
    try:
        async with session.get(url, allow_redirects=True) as response:
            if response.status != 200:
                raise InputUnavailable(f"{where}: GET {url} answered {response.status}")
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += len(chunk)
                if size and received > size:
                    raise InputRejected(f"{where}: more than the {size} bytes the index lists")
                hasher.update(chunk)
                await asyncio.to_thread(handle.write, chunk)  # type: ignore[attr-defined]
    except aiohttp.ClientError as exc:
        raise InputUnavailable(f"{where}: GET {url} failed: {exc}") from exc
    if size and received != size:
        raise InputRejected(f"{where}: {received} bytes arrived, the index lists {size}")
    return hasher.hexdigest()


def _sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * _CHUNK):
            hasher.update(block)
    return hasher.hexdigest()
