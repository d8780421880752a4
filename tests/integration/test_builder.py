"""The builder through the Target protocol (Dockyard's store in process, and CNCF distribution
over a socket): a customization adds its layers on top of the base's untouched ones, the same
inputs give the same digests, and a rebuild with nothing changed makes no layer again."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from dockyard.build.builder import Builder
from dockyard.build.errors import Invalid
from dockyard.build.model import parse_customization
from dockyard.build.rootfs import RootFS
from dockyard.client.target import Target
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import Image, Member, build_image, index_bytes, tar_layer
from support.peers import DockerRegistry
from support.remote import bounded, remote


@dataclass
class Place:
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
            yield Place(StoreTarget(app.state.registry, admin), "dockyard.test")
    else:
        registry: DockerRegistry = request.getfixturevalue("docker_registry")
        async with remote(registry.host) as client:
            yield Place(client, registry.host)


async def _push_index(target: Target, ref: Reference, images: list[Image]) -> None:
    for image in images:
        by_digest = Reference(
            ref.registry, ref.repository, None, ref.with_digest(image.digest).digest
        )
        for blob in image.blobs():
            await target.blob_put(by_digest, Descriptor.from_json(blob.descriptor()), blob.data)
        await target.manifest_put(by_digest, parse_manifest(image.manifest.data))
    raw = index_bytes([image.descriptor() for image in images])
    await target.manifest_put(ref, parse_manifest(raw, mt.OCI_INDEX))


BASE = build_image(
    layers=[
        tar_layer(
            [
                ("etc/os-release", "ID=debian\nVERSION_CODENAME=bookworm\n"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("etc/group", "root:x:0:\n"),
                ("bin/sh", "#!shell"),
                Member("opt", kind="dir"),
            ]
        )
    ],
    platform="linux/amd64",
)
ARTIFACT = build_image(
    layers=[tar_layer([("etc/ssl/certs/mine.pem", "MINE"), ("etc/ssl/certs/old.pem", "OLD")])],
    platform="linux/amd64",
)
CUSTOM = parse_customization(
    """
name: with ca
targets: [{destination: acme/dhi-base, tag: "1"}]
tag_suffix: custom
contents:
  artifacts:
    - {name: acme/rootca:1, includes: [etc/ssl/certs], excludes: [etc/ssl/certs/old.pem]}
paths:
  - {path: /opt/app/init.sh, contents: "#!/bin/sh\\necho ready\\n", mode: "0755"}
accounts:
  runs-as: app
  users: [{name: app, uid: 1000}]
environment: {APP_ENV: prod}
entrypoint: [--verbose]
platforms: [linux/amd64]
"""
)


async def _blob(place: Place, ref: Reference, desc: Descriptor) -> bytes:
    return b"".join([chunk async for chunk in place.target.blob_get(ref, desc)])


@bounded
async def test_a_customization_adds_its_layers_on_the_base(place: Place, tmp_path: Path) -> None:
    await _push_index(place.target, place.ref("acme/dhi-base:1"), [BASE])
    await _push_index(place.target, place.ref("acme/rootca:1"), [ARTIFACT])
    builder = Builder(place.target, tmp_path)
    logged: list[str] = []
    result = await builder.build(CUSTOM, CUSTOM.targets[0], place.registry, log=logged.append)

    assert result.tag == "1_custom"
    index = await place.target.manifest_get(place.ref("acme/dhi-base:1_custom"))
    assert index.digest == result.index.digest
    assert index.annotations["org.opencontainers.image.base.name"] == "acme/dhi-base:1"
    (child,) = index.children
    assert str(child.platform) == "linux/amd64"
    ref = place.ref("acme/dhi-base").with_digest(child.digest)
    manifest = await place.target.manifest_get(ref)
    layers = manifest.blobs[1:]
    assert [str(d.digest) for d in layers[:1]] == [BASE.layers[0].digest]  # the base's, as is
    assert len(layers) == 3  # artifacts, then files and accounts
    config = orjson.loads(await _blob(place, ref, manifest.blobs[0]))
    assert config["config"]["User"] == "app"
    assert "APP_ENV=prod" in config["config"]["Env"]
    assert config["config"]["Entrypoint"] == ["--verbose"]
    assert [h["created_by"] for h in config["history"]] == [
        "artifacts: acme/rootca:1",
        "files and accounts",
    ]

    built = await RootFS.scan(place.target, ref, manifest)
    assert await built.read("etc/ssl/certs/mine.pem") == b"MINE"
    assert built.entry("etc/ssl/certs/old.pem") is None
    script = built.entry("opt/app/init.sh")
    assert script is not None
    assert script.mode == 0o755
    assert b"app:x:1000:1000::/home/app:/bin/sh\n" in await built.read("etc/passwd")
    with tarfile.open(fileobj=io.BytesIO(await _blob(place, ref, layers[2]))) as files:
        names = files.getnames()
    assert "opt" not in names, "a directory the base has is left as the base has it"
    assert "opt/app" in names

    # base tag untouched; the same inputs give the same bytes; a rebuild reuses every layer
    base_again = await place.target.manifest_get(place.ref("acme/dhi-base:1"))
    assert base_again.media_type == mt.OCI_INDEX
    again = await Builder(place.target, tmp_path).build(CUSTOM, CUSTOM.targets[0], place.registry)
    assert again.index.digest == result.index.digest
    reused = await Builder(place.target, tmp_path).build(
        CUSTOM, CUSTOM.targets[0], place.registry, previous=result.outputs()
    )
    assert reused.index.digest == result.index.digest
    assert reused.lock == result.lock
    # a layer whose blob the repository no longer has is made again, not reused
    gone = result.outputs()
    gone["linux/amd64"]["layers"][0]["descriptor"]["digest"] = "sha256:" + "0" * 64
    remade = await Builder(place.target, tmp_path).build(
        CUSTOM, CUSTOM.targets[0], place.registry, previous=gone
    )
    assert remade.index.digest == result.index.digest
    assert any("pushed" in line for line in logged)


@bounded
async def test_a_platform_the_base_lacks_is_named(place: Place, tmp_path: Path) -> None:
    await _push_index(place.target, place.ref("acme/dhi-base:1"), [BASE])
    custom = CUSTOM.model_copy(
        update={
            "platforms": ["linux/arm64"],
            "contents": CUSTOM.contents.model_copy(update={"artifacts": []}),
        }
    )
    with pytest.raises(Invalid) as refused:
        await Builder(place.target, tmp_path).build(custom, custom.targets[0], place.registry)
    assert refused.value.field == "platforms"
    assert "offers linux/amd64" in refused.value.message
