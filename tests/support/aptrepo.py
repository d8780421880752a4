"""A local APT repository made with Debian's own tools: `.deb` files built by `dpkg-deb --build`
(gzip, xz, zstd or no compression), indexed by `apt-ftparchive packages` and `release`, the
`InRelease` clearsigned by `gpg` with a key generated for the test, served over loopback HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dockyard.build.apt.cache import VerifiedCache
from dockyard.build.apt.sources import AptSource


@dataclass
class DebSpec:
    """A package to build: its control fields, files, links and control-member extras."""

    name: str
    version: str = "1.0"
    architecture: str = "all"
    files: dict[str, bytes] = field(default_factory=dict)  # path (no leading /) → content
    modes: dict[str, int] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # path → target
    hardlinks: dict[str, str] = field(default_factory=dict)  # path → a path of `files`
    conffiles: list[str] = field(default_factory=list)  # absolute paths
    md5sums: bool = True
    scripts: dict[str, str] = field(default_factory=dict)  # postinst… → body
    fields: dict[str, str] = field(default_factory=dict)  # Depends, Multi-Arch, …
    compression: str = "xz"  # gzip, xz, zstd, none

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}.deb"


def build_deb(spec: DebSpec, out: Path, work: Path) -> Path:
    """Build `spec` with `dpkg-deb --build` into folder `out`; returns the .deb's path."""
    root = work / f"{spec.name}-{spec.version}-{spec.architecture}"
    if root.exists():
        shutil.rmtree(root)
    (root / "DEBIAN").mkdir(parents=True)
    for path, content in spec.files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(spec.modes.get(path, 0o644))
    for path, existing in spec.hardlinks.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).hardlink_to(root / existing)
    for path, link in spec.symlinks.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(link)
    fields = {
        "Package": spec.name,
        "Version": spec.version,
        "Architecture": spec.architecture,
        "Maintainer": "Dockyard Tests <tests@example.test>",
        "Installed-Size": str(max(1, sum(len(c) for c in spec.files.values()) // 1024)),
        **spec.fields,
    }
    fields.setdefault("Description", f"test package {spec.name}\n test package for Dockyard")
    control = "".join(f"{key}: {value}\n" for key, value in fields.items())
    (root / "DEBIAN" / "control").write_text(control)
    if spec.conffiles:
        (root / "DEBIAN" / "conffiles").write_text("".join(f"{p}\n" for p in spec.conffiles))
    for name, body in spec.scripts.items():
        script = root / "DEBIAN" / name
        script.write_text(body)
        script.chmod(0o755)
    if spec.md5sums:
        conf = {p.lstrip("/") for p in spec.conffiles}
        lines = [
            f"{hashlib.md5(content).hexdigest()}  {path}\n"
            for path, content in sorted(spec.files.items())
            if path not in conf
        ]
        (root / "DEBIAN" / "md5sums").write_text("".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    deb = out / spec.filename
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{spec.compression}", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


class SigningKey:
    """An OpenPGP key made by `gpg --quick-gen-key` in its own GNUPGHOME."""

    def __init__(
        self,
        home: Path,
        name: str = "Dockyard Test Archive",
        expire: str = "never",
        faked_time: str | None = None,  # gpg's --faked-system-time, e.g. 20200101T000000
    ) -> None:
        self.home = home
        self.faked = [f"--faked-system-time={faked_time}!"] if faked_time else []
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.gpg(
            *self.faked, "--passphrase", "", "--quick-gen-key",
            f"{name} <archive@example.test>", "ed25519", "sign", expire,
        )  # fmt: skip
        listing = self.gpg("--with-colons", "--list-keys").stdout.decode()
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )

    def gpg(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        return subprocess.run(
            ["gpg", "--batch", "--pinentry-mode", "loopback", *args],
            check=True,
            capture_output=True,
            env=env,
            **kwargs,
        )

    def export(self, path: Path, armor: bool = False) -> Path:
        """Write the public key to `path` (binary like /usr/share/keyrings, or armored)."""
        data = self.gpg(*(["--armor"] if armor else []), "--export", self.fingerprint).stdout
        path.write_bytes(data)
        return path

    def clearsign(self, text: bytes, at: str | None = None) -> bytes:
        """`text` clearsigned (at the faked time `at`, like 20200101T120000, when given)."""
        faked = [f"--faked-system-time={at}!"] if at else self.faked
        return self.gpg(
            *faked, "--local-user", self.fingerprint, "--digest-algo", "SHA256",
            "--clearsign",
            input=text,
        ).stdout  # fmt: skip

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(self.home)},
            check=False,
            capture_output=True,
        )


class AptRepo:
    """An archive folder: `pool/main/*.deb` and `dists/SUITE/` made by apt-ftparchive."""

    def __init__(self, root: Path, key: SigningKey, suite: str = "testing") -> None:
        self.root = root
        self.key = key
        self.suite = suite
        self.pool = root / "pool" / "main"
        self.work = root.parent / f"{root.name}-build"

    def add(self, *specs: DebSpec) -> list[Path]:
        return [build_deb(spec, self.pool, self.work) for spec in specs]

    @property
    def dists(self) -> Path:
        return self.root / "dists" / self.suite

    def publish(
        self,
        architectures: tuple[str, ...] = ("amd64",),
        valid_until: str | None = None,
        by_hash: bool = False,
        forms: tuple[str, ...] = ("xz", "gz"),
    ) -> bytes:
        """Index the pool for each architecture, write Release and the clearsigned InRelease."""
        if self.dists.exists():
            shutil.rmtree(self.dists)
        for arch in architectures:
            folder = self.dists / "main" / f"binary-{arch}"
            folder.mkdir(parents=True)
            packages = subprocess.run(
                ["apt-ftparchive", "--arch", arch, "packages", "pool"],
                cwd=self.root, check=True, capture_output=True,
            ).stdout  # fmt: skip
            (folder / "Packages").write_bytes(packages)
            for form in forms:
                tool = {"xz": ["xz", "-9", "-k"], "gz": ["gzip", "-9", "-k", "-n"]}[form]
                subprocess.run([*tool, str(folder / "Packages")], check=True)
            if by_hash:
                _by_hash(folder)
        options = {
            "Origin": "Dockyard",
            "Label": "Dockyard tests",
            "Suite": self.suite,
            "Codename": self.suite,
            "Architectures": " ".join(architectures),
            "Components": "main",
            "Acquire-By-Hash": "yes" if by_hash else "no",
        }
        args = [f"-oAPT::FTPArchive::Release::{key}={value}" for key, value in options.items()]
        release = subprocess.run(
            ["apt-ftparchive", *args, "release", "."],
            cwd=self.dists, check=True, capture_output=True,
        ).stdout  # fmt: skip
        if valid_until:  # apt-ftparchive only offers a ValidTime relative to now
            release = release.replace(
                b"\nDate: ", f"\nValid-Until: {valid_until}\nDate: ".encode(), 1
            )
        (self.dists / "Release").write_bytes(release)
        signed = self.key.clearsign(release)
        (self.dists / "InRelease").write_bytes(signed)
        return signed


def _by_hash(folder: Path) -> None:
    target = folder / "by-hash" / "SHA256"
    target.mkdir(parents=True)
    for path in folder.iterdir():
        if path.is_file():
            shutil.copy(path, target / hashlib.sha256(path.read_bytes()).hexdigest())


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve folder `root` on 127.0.0.1 (a thread); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- fixtures: a signing key, and a local archive of a few small packages, served -----------

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
