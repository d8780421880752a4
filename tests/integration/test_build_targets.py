"""The build's readers see images only through the Target protocol: the same base and
artifact, pushed to Dockyard's own store in process and to CNCF distribution over a real
socket, read back as the same filesystem, artifact files and accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from dockyard.build.accounts import Accounts, User, account_files
from dockyard.build.artifacts import ArtifactSource, Spool, artifact_files
from dockyard.build.rootfs import RootFS, image_for_platform
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import (
    Image,
    Member,
    build_image,
    index_bytes,
    opaque,
    tar_layer,
    whiteout,
)
from support.peers import DockerRegistry
from support.remote import bounded, remote

ARM64 = Platform.parse("linux/arm64")


@dataclass
class Place:
    kind: str
    target: Target
    registry: str

    def ref(self, text: str) -> Reference:
        return Reference.parse(f"{self.registry}/{text}")


@pytest_asyncio.fixture(params=["store", pytest.param("distribution", marks=pytest.mark.peers)])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Place]:
    if request.param == "store":
        async with running_app(tmp_path / "data") as app:
            admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
            assert admin is not None
            yield Place("store", StoreTarget(app.state.registry, admin), "dockyard.test")
    else:
        registry: DockerRegistry = request.getfixturevalue("docker_registry")
        async with remote(registry.host) as client:
            yield Place("distribution", client, registry.host)


async def _push_image(target: Target, ref: Reference, image: Image) -> Descriptor:
    for blob in image.blobs():
        await target.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
    return await target.manifest_put(ref, parse_manifest(image.manifest.data))


async def _push_index(target: Target, ref: Reference, images: list[Image]) -> None:
    for image in images:
        await _push_image(target, ref.with_digest(image.digest), image)
    raw = index_bytes([image.descriptor() for image in images])
    await target.manifest_put(ref, parse_manifest(raw, mt.OCI_INDEX))


@bounded
async def test_base_and_artifact_read_the_same_through_every_target(
    place: Place, tmp_path: Path
) -> None:
    base_layers = [
        tar_layer(
            [
                ("usr/lib/os-release", "ID=debian\n"),
                Member("etc/os-release", kind="symlink", link="../usr/lib/os-release"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("etc/group", "root:x:0:\n"),
                ("var/cache/apt/pkgcache.bin", "cache"),
                ("etc/motd", "hello"),
            ]
        ),
        tar_layer([opaque("var/cache/apt"), whiteout("etc/motd")], compression="zstd"),
    ]
    base_ref = place.ref("acme/dhi-base:1")
    await _push_index(
        place.target,
        base_ref,
        [
            build_image(layers=base_layers, platform="linux/arm64"),
            build_image({"etc/passwd": "root:x:0:0:::\n"}, platform="linux/amd64"),
        ],
    )
    manifest = await image_for_platform(place.target, base_ref, ARM64, field="tag", what="base")
    base = await RootFS.scan(place.target, base_ref, manifest)
    assert await base.read("etc/os-release") == b"ID=debian\n"
    assert base.entry("etc/motd") is None
    assert base.paths("var/cache/apt") == []
    assert base.layers_streamed == 2

    artifact_ref = place.ref("acme/rootca:1")
    artifact = build_image(
        layers=[tar_layer([("etc/ssl/certs/ca.pem", "CA")])], platform="linux/arm64"
    )
    await _push_index(place.target, artifact_ref, [artifact])
    with Spool(tmp_path) as spool:
        (files,) = await artifact_files(
            place.target, [ArtifactSource(artifact_ref, ("etc/ssl",))], ARM64, base, spool
        )
        (entry,) = [e for e in files.entries if e.path == "etc/ssl/certs/ca.pem"]
        assert b"".join([chunk async for chunk in entry.chunks()]) == b"CA"
    assert str(files.digest) == artifact.digest

    accounts = await account_files(Accounts(users=(User("app", 1000),), runs_as="app"), base)
    assert accounts.user == "app"
    assert [e.path for e in accounts.entries] == ["etc/group", "etc/passwd", "home", "home/app"]
