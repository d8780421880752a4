"""A base read once is read from disk afterwards: the same files, no layer streamed."""

from __future__ import annotations

from pathlib import Path

from dockyard.build.basecache import scanned
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import Member, build_image, tar_layer

BASE = build_image(
    layers=[
        tar_layer(
            [
                ("etc/os-release", "ID=debian\n"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("usr/bin/tool", "binary"),
                Member("bin", kind="symlink", link="usr/bin"),
            ]
        ),
        tar_layer([("etc/motd", "hello")]),
    ]
)


async def test_a_base_scanned_once_is_read_from_disk(tmp_path: Path) -> None:
    async with running_app(tmp_path / "data") as app:
        admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
        assert admin is not None
        target = StoreTarget(app.state.registry, admin)
        ref = Reference.parse("dockyard.test/acme/base:1")
        for blob in BASE.blobs():
            await target.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
        manifest = parse_manifest(BASE.manifest.data)
        await target.manifest_put(ref, manifest)
        cache = tmp_path / "bases"

        first = await scanned(cache, target, ref, manifest)
        assert first.layers_streamed == 2
        again = await scanned(cache, target, ref, manifest)
        assert again.layers_streamed == 0, "read from the kept scan"
        assert again.paths() == first.paths()
        assert again.collected("etc/passwd") == b"root:x:0:0:root:/root:/bin/sh\n"
        assert again.resolve("bin/tool") == "usr/bin/tool"
        assert await again.read("etc/motd") == b"hello"  # not collected: its layer is read

        # a kept scan cut short is scanned again (and replaced)
        (kept,) = cache.glob("*.jsonl")
        kept.write_bytes(kept.read_bytes()[:40])
        rescanned = await scanned(cache, target, ref, manifest)
        assert rescanned.layers_streamed == 2
        assert (await scanned(cache, target, ref, manifest)).layers_streamed == 0
