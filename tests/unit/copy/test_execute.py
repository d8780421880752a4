"""Executing a copy: bytes preserved, write order, skips, mounts, re-sent uploads, errors
that name the node, and bounded parallelism."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.copy import (
    CopyError,
    CopyOptions,
    Limits,
    SparseIndexRefused,
    copy_image,
    execute,
    plan_copy,
)
from dockyard.copy.events import BlobBytes, BlobDone, CopyFailed, CopyFinished, Event
from dockyard.oci.digest import Digest
from dockyard.oci.errors import BlobUnknown, Denied, ManifestBlobUnknown
from dockyard.oci.reference import Reference
from support.ocilayout import build_image, random_layer
from unit.copy.fakes import MemoryTarget, store
from unit.copy.scenes import (
    DST,
    SBOM,
    SIGNATURE,
    SRC,
    attach,
    digest_tag,
    manifest_of,
    multi_platform,
)


def same_content(
    source: MemoryTarget, src: Reference, target: MemoryTarget, dst: Reference
) -> None:
    """Every manifest and blob of `src`'s repository is in `dst`'s with the same bytes."""
    a, b = source.repos[src.name], target.repos[dst.name]
    for digest, manifest in a.manifests.items():
        assert b.manifests[digest].raw == manifest.raw
    assert b.blobs == a.blobs


def put_position(target: MemoryTarget, what: str | Digest) -> int:
    return target.calls.index(("manifest_put", str(what)))


async def test_an_index_is_copied_byte_for_byte_children_first() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    events: list[Event] = []
    result = await copy_image(source, SRC, target, DST, progress=events.append)

    same_content(source, SRC, target, DST)
    assert target.repos[DST.name].tags == {"v1": scene.digest}
    index_put = put_position(target, "v1")
    for child in scene.index.children:
        assert put_position(target, child.digest) < index_put
    for image in (scene.amd64, scene.arm64):
        manifest_put = put_position(target, image.digest)
        for blob in image.blobs():
            assert target.calls.index(("blob_put", blob.digest)) < manifest_put
    assert (result.manifests_copied, result.manifests_skipped) == (5, 0)
    assert result.blobs_copied == len(source.repos[SRC.name].blobs)
    assert result.bytes_copied == sum(len(b) for b in source.repos[SRC.name].blobs.values())
    assert result.digest == scene.digest
    assert result.previous is None
    assert isinstance(events[-1], CopyFinished)
    assert events[-1].result == result


async def test_the_subject_is_written_before_its_referrers() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    signature = attach(source, SRC, scene.index, SIGNATURE, b"sig")
    sbom = attach(source, SRC, manifest_of(scene.amd64), SBOM, b"{}")
    sbom_signature = attach(source, SRC, sbom, SIGNATURE, b"sig of sbom")
    result = await copy_image(source, SRC, target, DST, CopyOptions(referrers=True))

    same_content(source, SRC, target, DST)
    assert put_position(target, "v1") < put_position(target, signature.digest)
    assert put_position(target, scene.amd64.digest) < put_position(target, sbom.digest)
    assert put_position(target, sbom.digest) < put_position(target, sbom_signature.digest)
    assert result.referrers_copied == 3
    listed = await target.referrers(DST, scene.digest)
    assert [d.digest for d in listed] == [signature.digest]


async def test_referrers_go_to_a_separate_target_repository() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    att_repo = Reference.parse("src.test/library/app-att:x")
    out_repo = Reference.parse("dst.test/mirror/app-att:x")
    sbom = attach(source, att_repo, manifest_of(scene.arm64), SBOM, b"{}")
    await copy_image(
        source,
        SRC,
        target,
        DST,
        CopyOptions(referrers=True),
        referrers_source=(source, att_repo),
        referrers_target=(target, out_repo),
    )
    assert sbom.digest in target.repos[out_repo.name].manifests
    assert sbom.digest not in target.repos[DST.name].manifests
    arm64 = Digest.parse(scene.arm64.digest)
    assert [d.digest for d in await target.referrers(out_repo, arm64)] == [sbom.digest]


async def test_digest_tags_are_copied_as_tags() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    tag = digest_tag(scene.digest, "sig")
    signature = store(source, SRC, build_image({"sig": "cosign"}), tag)
    await copy_image(source, SRC, target, DST, CopyOptions(digest_tags=True))
    assert target.repos[DST.name].tags[tag] == signature.digest
    assert put_position(target, "v1") < put_position(target, tag)


async def test_a_second_copy_skips_everything() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    await copy_image(source, SRC, target, DST)
    target.calls.clear()
    result = await copy_image(source, SRC, target, DST)
    assert target.calls == [("manifest_head", "v1")]
    assert (result.manifests_copied, result.manifests_skipped, result.blobs_copied) == (0, 1, 0)
    assert not result.changed


async def test_force_recursive_repairs_a_target_that_lost_content() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    await copy_image(source, SRC, target, DST)
    lost = Digest.parse(scene.arm64.digest)
    del target.repos[DST.name].manifests[lost]
    lost_layer = Digest.parse(scene.arm64.layers[-1].digest)
    del target.repos[DST.name].blobs[lost_layer]

    assert not (await copy_image(source, SRC, target, DST)).changed  # trusts the tag
    result = await copy_image(source, SRC, target, DST, CopyOptions(force_recursive=True))
    same_content(source, SRC, target, DST)
    assert result.manifests_copied == 5
    assert result.blobs_copied == 1  # the others were there (HEAD)


async def test_blobs_are_mounted_within_one_registry() -> None:
    place = MemoryTarget()
    scene = multi_platform(place)
    other = SRC.with_repository("library/app-copy")
    result = await copy_image(place, SRC, place, other)
    same_content(place, SRC, place, other)
    assert result.blobs_mounted == len(place.repos[SRC.name].blobs)
    assert result.blobs_copied == 0
    assert place.ops("blob_get") == []
    assert place.repos[other.name].tags["v1"] == scene.digest


async def test_a_refused_mount_sends_the_bytes() -> None:
    place = MemoryTarget()
    image = build_image({"a": "mount refused"})
    store(place, SRC, image, "v1")
    for blob in image.blobs():
        place.fail("blob_mount", blob.digest, Denied("no pull on the source repository"))
    other = SRC.with_repository("library/elsewhere")
    result = await copy_image(place, SRC, place, other)
    assert result.blobs_copied == 2
    assert result.blobs_mounted == 0
    same_content(place, SRC, place, other)


async def test_an_upload_sent_again_reopens_the_source_stream() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    big = random_layer(100, seed="resend")
    image = build_image(layers=[big])
    store(source, SRC, image, "v1")
    target.interrupt_uploads.add(Digest.parse(big.digest))
    events: list[Event] = []
    await copy_image(source, SRC, target, DST, progress=events.append)
    same_content(source, SRC, target, DST)
    assert source.ops("blob_get").count(big.digest) == 2
    done = [e.done for e in events if isinstance(e, BlobBytes) and str(e.digest) == big.digest]
    assert done[0] == 0
    assert done[-1] == len(big.data)
    assert 0 in done[1:]


async def test_a_failed_blob_names_itself_and_no_manifest_naming_it_is_written() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    broken = scene.arm64.layers[-1].digest
    source.fail("blob_get", broken, BlobUnknown("blob vanished"))
    events: list[Event] = []
    with pytest.raises(CopyError) as caught:
        await copy_image(source, SRC, target, DST, progress=events.append)
    (failure,) = caught.value.failures
    assert failure.step == f"copy blob from {SRC.name}"
    assert failure.descriptor is not None
    assert str(failure.descriptor.digest) == broken
    assert failure.reference.name == DST.name
    assert isinstance(failure.error, BlobUnknown)
    assert broken in str(caught.value)
    assert scene.arm64.digest not in target.ops("manifest_put")
    assert "v1" not in target.ops("manifest_put")
    assert isinstance(events[-1], CopyFailed)


async def test_a_refused_index_after_platform_filtering_says_why() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    options = CopyOptions(platforms=("linux/amd64",))
    with pytest.raises(CopyError) as caught:
        await copy_image(source, SRC, target, DST, options)
    message = str(caught.value)
    assert "left out by the platform filter" in message
    (failure,) = caught.value.failures
    assert isinstance(failure.error, SparseIndexRefused)
    assert isinstance(failure.error.__cause__, ManifestBlobUnknown)  # what the target said
    assert f"dockyard admin repo set {DST.repository} --sparse-indexes on" in message
    assert "validation.manifests.indexes.platforms: none" in message
    assert "linux/arm64" in message  # the platforms left out
    lenient = MemoryTarget(validate=False)
    result = await copy_image(source, SRC, lenient, DST, options)
    assert result.manifests_copied == 4  # index, amd64, attestation, no-platform entry


async def test_blob_transfers_are_bounded() -> None:
    source, target = MemoryTarget(), MemoryTarget(delay=0.02)
    layers = [random_layer(64, seed=f"bound-{i}") for i in range(8)]
    store(source, SRC, build_image(layers=layers), "v1")
    await copy_image(source, SRC, target, DST, CopyOptions(concurrency=3))
    assert target.uploads.most == 3


async def test_manifest_pushes_across_images_are_bounded() -> None:
    source, target = MemoryTarget(), MemoryTarget(delay=0.02)
    multi_platform(source)
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(image_concurrency=2))
    target.requests.most = 0
    await execute(plan)
    assert target.requests.most == 2  # the four children go two at a time


async def test_copies_sharing_limits_move_a_shared_blob_once() -> None:
    source, target = MemoryTarget(), MemoryTarget(delay=0.01)
    first = multi_platform(source, SRC, seed="shared")
    other = SRC.with_tag("v2")
    store(source, SRC, build_image({"x": "other"}, layers=[first.amd64.layers[0]]), "v2")
    limits = Limits.of(CopyOptions())
    plans = await asyncio.gather(  # both plans see the base layer missing
        plan_copy(source, SRC, target, DST, limits=limits),
        plan_copy(source, other, target, DST.with_tag("v2"), limits=limits),
    )
    results = await asyncio.gather(*(execute(plan, limits=limits) for plan in plans))
    base = first.amd64.layers[0].digest
    assert target.ops("blob_put").count(base) == 1
    assert sorted(r.blobs_skipped for r in results) == [0, 1]
    same_content(source, SRC, target, DST)
    assert limits.blobs == {}  # nothing remembered once done: later copies ask the target


async def test_progress_counts_reach_the_totals() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    events: list[Event] = []
    await copy_image(source, SRC, target, DST, progress=events.append)
    done = [e for e in events if isinstance(e, BlobDone)]
    assert {e.how for e in done} == {"copied"}
    assert len(done) == len(source.repos[SRC.name].blobs)
