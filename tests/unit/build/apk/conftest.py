"""A signing key, a local Alpine repository of a few small packages, served over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.config import ApkSource
from support.apkrepo import ApkKey, ApkRepo, ApkSpec
from support.aptrepo import serve

SAMPLE = [
    ApkSpec(
        "hello",
        "2.12.1-r0",
        files={"usr/bin/hello": b"#!/bin/sh\necho hello\n"},
        modes={"usr/bin/hello": 0o755},
        depends=["so:libgreet.so.1", "greet-data>=1.0"],
        provides=["cmd:hello=2.12.1-r0"],
    ),
    ApkSpec(
        "libgreet",
        "1.4-r2",
        files={"usr/lib/libgreet.so.1.4": b"\x7fELF greet\n"},
        symlinks={"usr/lib/libgreet.so.1": "libgreet.so.1.4"},
        provides=["so:libgreet.so.1=1.4"],
    ),
    ApkSpec("greet-data", "0.9-r0", files={"usr/share/greet/0.9": b"old\n"}),
    ApkSpec("greet-data", "1.1-r0", files={"usr/share/greet/words": b"hi\n"}),
    ApkSpec(
        "hello-doc",
        "2.12.1-r0",
        files={"usr/share/doc/hello/README": b"docs\n"},
        install_if=["hello=2.12.1-r0", "docs"],
    ),
]


@pytest.fixture(scope="session")
def apk_key() -> ApkKey:
    return ApkKey()


@dataclass
class Served:
    repo: ApkRepo
    url: str

    def source(self, **changes: object) -> ApkSource:
        fields: dict[str, object] = {
            "url": f"{self.url}/v{{version}}",
            "repositories": ["main"],
            "keys": self.repo.keys,
        }
        fields.update(changes)
        return ApkSource(**fields)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path, apk_key: ApkKey) -> Iterator[Served]:
    repo = ApkRepo(tmp_path / "alpine", apk_key)
    repo.add(*SAMPLE)
    repo.publish()
    with serve(repo.root) as url:
        yield Served(repo, url)
