"""A signing key, a local APT repository of a few small packages, served over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from dockyard.build.apt.cache import VerifiedCache
from dockyard.build.apt.sources import AptSource
from support.aptrepo import AptRepo, DebSpec, SigningKey, serve

SAMPLE = [
    DebSpec(
        "hello-gz",
        files={"usr/bin/hello-gz": b"#!/bin/sh\necho gz\n", "etc/hello/gz.conf": b"a=1\n"},
        modes={"usr/bin/hello-gz": 0o755},
        conffiles=["/etc/hello/gz.conf"],
        compression="gzip",
    ),
    DebSpec(
        "hello-xz",
        version="2.0-1",
        files={"usr/share/doc/hello-xz/README": b"xz\n" * 1000},
        symlinks={"usr/bin/hello-xz": "../share/doc/hello-xz/README"},
        fields={"Depends": "hello-gz (>= 1.0)"},
        compression="xz",
    ),
    DebSpec(
        "hello-zst",
        version="3.1",
        files={"usr/lib/hello/zst.txt": b"zstd\n"},
        compression="zstd",
        md5sums=False,
    ),
]


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    key = SigningKey(tmp_path_factory.mktemp("gnupg") / "home")
    yield key
    key.close()


@dataclass
class Served:
    repo: AptRepo
    url: str
    keyring: Path
    cache: VerifiedCache

    def source(self, **changes: object) -> AptSource:
        fields: dict[str, object] = {
            "uri": self.url,
            "suite": self.repo.suite,
            "components": ("main",),
            "architectures": ("amd64",),
            "keyring": self.keyring,
        }
        fields.update(changes)
        return AptSource(**fields)  # type: ignore[arg-type]

    def cached(self) -> list[str]:
        """Everything in the cache folder (files and leftovers), relative names."""
        if not self.cache.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.cache.root)) for p in self.cache.root.rglob("*") if p.is_file()
        )


@pytest.fixture
def served(tmp_path: Path, signing_key: SigningKey) -> Iterator[Served]:
    repo = AptRepo(tmp_path / "archive", signing_key)
    repo.add(*SAMPLE)
    repo.publish()
    keyring = signing_key.export(tmp_path / "archive-keyring.gpg")
    with serve(repo.root) as url:
        yield Served(repo, url, keyring, VerifiedCache(tmp_path / "cache"))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
