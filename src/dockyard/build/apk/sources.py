"""Alpine repositories for a base: the settings' `ApkSource` entries for its distribution, with
`{version}` filled in from its os-release (VERSION_ID 3.20.3 → 3.20), each repository
(`…/v3.20/main`) with the keys folder its indexes and packages must be signed by."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dockyard.config import ApkSource

# OCI platform → apk architecture (the folder under each repository)
ARCHITECTURES = {
    ("amd64", None): "x86_64",
    ("arm64", None): "aarch64",
    ("arm64", "v8"): "aarch64",
    ("arm", "v7"): "armv7",
    ("arm", "v6"): "armhf",
    ("386", None): "x86",
    ("ppc64le", None): "ppc64le",
    ("s390x", None): "s390x",
    ("riscv64", None): "riscv64",
    ("loong64", None): "loongarch64",
}
_RELEASE = re.compile(r"^(\d+)\.(\d+)")


@dataclass(frozen=True)
class ApkRepository:
    """One repository (`https://dl-cdn.alpinelinux.org/alpine/v3.20/main`) and its keys."""

    url: str
    keys: Path

    def index_url(self, architecture: str) -> str:
        return f"{self.url}/{architecture}/APKINDEX.tar.gz"

    def package_url(self, architecture: str, filename: str) -> str:
        if "/" in filename or filename.startswith("."):
            raise ValueError(f"{self.url}: package file name {filename!r} leaves the repository")
        return f"{self.url}/{architecture}/{filename}"


def release_of(version_id: str) -> str:
    """The release a VERSION_ID belongs to, as Alpine's folders name it: 3.20.3 → 3.20 (an
    unusual VERSION_ID is used as it is)."""
    match = _RELEASE.match(version_id)
    return f"{match[1]}.{match[2]}" if match else version_id


def repositories_for(
    settings: Iterable[ApkSource], distribution: str, version_id: str
) -> list[ApkRepository]:
    """The repositories the settings give for a base of `distribution` at `version_id`."""
    release = release_of(version_id)
    return [
        ApkRepository(f"{entry.url.replace('{version}', release)}/{name.strip('/')}", entry.keys)
        for entry in settings
        if entry.distribution == distribution
        for name in entry.repositories
    ]
