"""Packages added to a customized image: resolved against the base's dpkg database, unpacked
through the base's symlinks, recorded so dpkg itself lists them, from a signed archive only."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from dockyard.build.apt.install import AptPackages
from dockyard.build.builder import Builder
from dockyard.build.errors import InputRejected, Invalid
from dockyard.build.model import parse_customization
from dockyard.config import PackageSource
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.aptrepo import DebSpec, Served
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import Member, build_image, tar_layer

BASE_STATUS = b"""Package: base-files
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 10
Maintainer: Nobody <nobody@example.org>
Architecture: amd64
Version: 12.4
Description: the base
 of the tests

"""
BASE = build_image(
    layers=[
        tar_layer(
            [
                ("etc/os-release", 'ID=debian\nVERSION_CODENAME="testing"\n'),
                ("var/lib/dpkg/status", BASE_STATUS),
                Member("var/lib/dpkg/info", kind="dir"),
                Member("usr/bin", kind="dir"),
                Member("bin", kind="symlink", link="usr/bin"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("etc/group", "root:x:0:\n"),
            ]
        )
    ],
    platform="linux/amd64",
)
CUSTOM = parse_customization(
    """
name: with hello
targets: [{destination: acme/dhi-base, tag: "1"}]
tag_suffix: custom
contents: {packages: [hello-xz, merged]}
platforms: [linux/amd64]
"""
)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StoreTarget]:
    async with running_app(tmp_path / "data") as app:
        admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
        assert admin is not None
        target = StoreTarget(app.state.registry, admin)
        ref = Reference.parse("dockyard.test/acme/dhi-base:1")
        for blob in BASE.blobs():
            await target.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
        await target.manifest_put(ref, parse_manifest(BASE.manifest.data))
        yield target


def _packages(served: Served, tmp_path: Path) -> AptPackages:
    source = PackageSource(
        distribution="debian", uri=served.url, suites=["{codename}"], keyring=served.keyring
    )
    return AptPackages([source], tmp_path / "cache")


async def _rootfs(store: StoreTarget, tag: str, out: Path) -> Path:
    """The built image's files: every layer extracted in order into `out` (as a runtime)."""
    ref = Reference.parse(f"dockyard.test/acme/dhi-base:{tag}")
    index = await store.manifest_get(ref)
    manifest = await store.manifest_get(ref.with_digest(index.children[0].digest))
    layers = [b"".join([c async for c in store.blob_get(ref, d)]) for d in manifest.blobs[1:]]
    _extract(layers, out)
    return out


def _extract(layers: list[bytes], out: Path) -> None:
    out.mkdir()
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(out, filter="tar")


def _dpkg_query(root: Path) -> list[str]:
    """What dpkg itself lists in the image's database."""
    show = "${Package} ${Version} ${db:Status-Abbrev}\n"
    argv = ["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", show]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


async def test_packages_are_installed_and_recorded_as_dpkg_would(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    served.repo.add(DebSpec("merged", files={"bin/merged-tool": b"tool\n"}, compression="gzip"))
    served.repo.publish()
    builder = Builder(store, tmp_path / "work", packages=_packages(served, tmp_path))
    logged: list[str] = []
    result = await builder.build(CUSTOM, CUSTOM.targets[0], "dockyard.test", log=logged.append)
    lock = result.lock["platforms"]["linux/amd64"]["packages"]
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [
        ("hello-xz", "2.0-1"),  # the requests first, as apt marks them
        ("merged", "1.0"),
        ("hello-gz", "1.0"),
    ]
    assert all(p["url"].startswith(served.url + "/pool/main/") for p in lock["packages"])
    assert any("Depends of hello-xz: hello-gz (>= 1.0)" in line for line in logged)

    root = await _rootfs(store, "1_custom", tmp_path / "rootfs")
    assert (root / "usr/bin/hello-gz").read_bytes() == b"#!/bin/sh\necho gz\n"
    assert (root / "usr/bin/merged-tool").read_bytes() == b"tool\n"  # through /bin → usr/bin
    assert (root / "bin").is_symlink(), "the base's /bin symlink is left as it is"
    assert sorted(_dpkg_query(root)) == [
        "base-files 12.4 ii ",
        "hello-gz 1.0 ii ",
        "hello-xz 2.0-1 ii ",
        "merged 1.0 ii ",
    ]
    assert "/bin/merged-tool" in (root / "var/lib/dpkg/info/merged.list").read_text()

    # the same inputs: the same image; a rebuild reuses the package layer
    again = await Builder(store, tmp_path / "work", packages=_packages(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test", previous=result.outputs()
    )
    assert again.index.digest == result.index.digest


async def test_a_tampered_package_is_refused_and_nothing_is_pushed(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    served.repo.add(DebSpec("merged", files={"bin/merged-tool": b"tool\n"}))
    served.repo.publish()
    deb = served.repo.pool / "hello-gz_1.0_all.deb"
    data = bytearray(deb.read_bytes())
    data[-20] ^= 0xFF
    deb.write_bytes(bytes(data))
    builder = Builder(store, tmp_path / "work", packages=_packages(served, tmp_path))
    with pytest.raises(InputRejected, match="hello-gz"):
        await builder.build(CUSTOM, CUSTOM.targets[0], "dockyard.test")
    assert (
        await store.manifest_head(Reference.parse("dockyard.test/acme/dhi-base:1_custom")) is None
    )


async def test_an_unknown_package_is_named_with_the_closest_names(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    custom = CUSTOM.model_copy(
        update={"contents": CUSTOM.contents.model_copy(update={"packages": ["hello-gzz"]})}
    )
    builder = Builder(store, tmp_path / "work", packages=_packages(served, tmp_path))
    with pytest.raises(Invalid) as refused:
        await builder.build(custom, custom.targets[0], "dockyard.test")
    assert refused.value.field == "contents.packages[0]"
    assert "hello-gz" in refused.value.message


async def test_a_rebuild_with_nothing_moved_reads_no_base_index_or_package(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    served.repo.add(DebSpec("merged", files={"bin/merged-tool": b"tool\n"}))
    served.repo.publish()
    first = await Builder(store, tmp_path / "work", packages=_packages(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test"
    )
    # what a full rebuild would need again: the archive's .deb files, the verified cache
    for deb in served.repo.pool.glob("*.deb"):
        deb.unlink()
    shutil.rmtree(tmp_path / "cache" / "sha256")
    logged: list[str] = []
    again = await Builder(store, tmp_path / "work", packages=_packages(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test", previous=first.outputs(), log=logged.append
    )
    assert again.index.digest == first.index.digest
    assert again.lock == first.lock
    assert not any("read the base" in line for line in logged), logged
    assert any("3 packages as the last build had them" in line for line in logged), logged


async def test_a_moved_index_resolves_again_despite_the_remembered_plan(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    served.repo.add(DebSpec("merged", files={"bin/merged-tool": b"tool\n"}))
    served.repo.publish()
    first = await Builder(store, tmp_path / "work", packages=_packages(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test"
    )
    served.repo.add(DebSpec("merged", version="1.1", files={"bin/merged-tool": b"tool 1.1\n"}))
    served.repo.publish()  # a security update: a new InRelease
    again = await Builder(store, tmp_path / "work", packages=_packages(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test", previous=first.outputs()
    )
    lock = again.lock["platforms"]["linux/amd64"]["packages"]["packages"]
    assert ("merged", "1.1") in [(p["name"], p["version"]) for p in lock]
    assert again.index.digest != first.index.digest
    root = await _rootfs(store, "1_custom", tmp_path / "rootfs")
    assert (root / "usr/bin/merged-tool").read_bytes() == b"tool 1.1\n"
