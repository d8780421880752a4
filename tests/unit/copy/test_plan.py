"""Planning a copy: the descriptor graph, platform filtering, referrers (recursive, from and
to separate places, filtered), digest tags, write order, and what the target already has."""

from __future__ import annotations

import pytest

from dockyard.copy import CopyError, CopyOptions, CopyPlan, ReferrerFilter, Role, plan_copy
from dockyard.copy.graph import Side
from dockyard.oci.digest import Digest
from dockyard.oci.errors import ManifestUnknown, Unauthorized
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from support.ocilayout import build_image
from unit.copy.fakes import MemoryTarget, store
from unit.copy.scenes import (
    DST,
    PROVENANCE,
    SBOM,
    SIGNATURE,
    SRC,
    attach,
    digest_tag,
    manifest_of,
    multi_platform,
)


def digests(plan: CopyPlan, role: Role | None = None) -> set[Digest]:
    return {n.digest for n in plan.nodes if role is None or n.role is role}


def assert_write_order(plan: CopyPlan) -> None:
    """Every node after its children and its subject."""
    for index, node in enumerate(plan.nodes):
        assert all(dep < index for dep in node.dependencies), node


async def test_an_index_plans_its_manifests_and_blobs() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    plan = await plan_copy(source, SRC, target, DST)

    root = plan.nodes[plan.root]
    assert root.role is Role.ROOT
    assert root.digest == scene.digest
    assert root.target == DST
    assert root.manifest is not None
    assert root.manifest.raw == scene.index.raw
    children = {plan.nodes[c].digest for c in root.children}
    assert children == {
        Digest.parse(i.digest) for i in (scene.amd64, scene.arm64, scene.attestation, scene.plain)
    }
    for child in (plan.nodes[c] for c in root.children):
        assert child.target.tag is None
        assert child.target.digest == child.digest
        assert child.target.name == DST.name
    # the shared base layer is planned once
    layer_digests = [b.descriptor.digest for b in plan.blobs]
    assert len(layer_digests) == len(set(layer_digests))
    assert plan.status == "add"
    assert plan.previous is None
    assert plan.bytes_to_transfer == sum(b.descriptor.size for b in plan.blobs)
    assert plan.manifests_to_write == 5
    assert_write_order(plan)
    assert plan.nodes[-1].role is Role.ROOT


async def test_the_platform_filter_keeps_attestations_and_entries_without_a_platform() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    options = CopyOptions(platforms=("linux/amd64",))
    plan = await plan_copy(source, SRC, target, DST, options)

    kept = digests(plan, Role.CHILD)
    assert kept == {Digest.parse(i.digest) for i in (scene.amd64, scene.attestation, scene.plain)}
    root = plan.nodes[plan.root]
    assert [d.digest for d in root.left_out] == [Digest.parse(scene.arm64.digest)]
    arm64_only = {Digest.parse(b.digest) for b in scene.arm64.layers[-1:]}
    assert not arm64_only & {b.descriptor.digest for b in plan.blobs}


async def test_arm64_selects_its_variant_and_nothing_else() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(platforms=("linux/arm64/v8",)))
    assert Digest.parse(scene.arm64.digest) in digests(plan, Role.CHILD)
    assert Digest.parse(scene.amd64.digest) not in digests(plan)


async def test_referrers_are_recursive_and_come_after_their_subject() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    signature = attach(source, SRC, scene.index, SIGNATURE, b"index signature")
    sbom = attach(source, SRC, manifest_of(scene.amd64), SBOM, b'{"spdx": 1}')
    sbom_signature = attach(source, SRC, sbom, SIGNATURE, b"sbom signature")
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(referrers=True))

    assert digests(plan, Role.REFERRER) == {
        signature.digest,
        sbom.digest,
        sbom_signature.digest,
    }
    by_digest = {n.digest: i for i, n in enumerate(plan.nodes)}
    subject_of = {plan.nodes[i].digest: plan.nodes[i].subject for i in by_digest.values()}
    assert subject_of[sbom_signature.digest] == by_digest[sbom.digest]
    assert subject_of[sbom.digest] == by_digest[Digest.parse(scene.amd64.digest)]
    assert subject_of[signature.digest] == by_digest[scene.digest]
    assert plan.referrers_to_copy == 3
    assert_write_order(plan)
    # the referrers' own blobs are planned too
    planned = {b.descriptor.digest for b in plan.blobs}
    assert all(b.digest in planned for b in sbom.blobs)


async def test_referrers_from_a_separate_source_go_to_a_separate_target() -> None:
    source, attestations = MemoryTarget(), MemoryTarget()
    target, referrer_store = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    att_repo = Reference.parse("scout.test/org/app:unused")
    out_repo = Reference.parse("dst.test/mirror/app-attestations:unused")
    provenance = attach(attestations, att_repo, manifest_of(scene.amd64), PROVENANCE, b"slsa")
    attach(source, SRC, scene.index, SIGNATURE, b"in the image repository: not read")

    plan = await plan_copy(
        source,
        SRC,
        target,
        DST,
        CopyOptions(referrers=True),
        referrers_source=(attestations, att_repo),
        referrers_target=(referrer_store, out_repo),
    )
    (referrer,) = [n for n in plan.nodes if n.role is Role.REFERRER]
    assert referrer.digest == provenance.digest
    assert referrer.source.name == att_repo.name
    assert referrer.reads is Side.REFERRERS_SOURCE
    assert referrer.target.name == out_repo.name
    assert referrer.writes is Side.REFERRERS_TARGET
    assert referrer.target.tag is None
    assert plan.endpoints.get(referrer.writes) is referrer_store
    assert all(b.target.name == out_repo.name for b in (plan.blobs[i] for i in referrer.blobs))


async def test_referrer_filters_select_by_artifact_type_and_annotation() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    signature = attach(source, SRC, scene.index, SIGNATURE, b"sig")
    attach(source, SRC, scene.index, SBOM, b"{}")
    vex = attach(source, SRC, scene.index, PROVENANCE, b"vex", {"kind": "vex", "x": "1"})
    attach(source, SRC, scene.index, PROVENANCE, b"other", {"kind": "other"})
    options = CopyOptions(
        referrers=True,
        referrer_filters=(
            ReferrerFilter(artifact_type=SIGNATURE),
            ReferrerFilter(annotations={"kind": "vex", "x": ""}),
        ),
    )
    plan = await plan_copy(source, SRC, target, DST, options)
    assert digests(plan, Role.REFERRER) == {signature.digest, vex.digest}


async def test_digest_tags_of_every_manifest_are_planned() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    sig = store(source, SRC, build_image({"sig": "cosign"}), digest_tag(scene.digest, "sig"))
    amd64 = Digest.parse(scene.amd64.digest)
    att = store(source, SRC, build_image({"att": "cosign"}), digest_tag(amd64, "att"))
    store(source, SRC, build_image({"other": "tag"}), "sha256-not-a-match.sig")
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(digest_tags=True))

    tagged = {n.target.tag: n for n in plan.nodes if n.role is Role.DIGEST_TAG}
    assert set(tagged) == {digest_tag(scene.digest, "sig"), digest_tag(amd64, "att")}
    assert tagged[digest_tag(scene.digest, "sig")].digest == sig.digest
    assert tagged[digest_tag(amd64, "att")].digest == att.digest
    by_digest = {n.digest: i for i, n in enumerate(plan.nodes) if n.role is not Role.DIGEST_TAG}
    assert tagged[digest_tag(amd64, "att")].subject == by_digest[amd64]
    assert source.ops("tag_list") == [SRC.name]  # listed once
    assert_write_order(plan)


async def test_the_fallback_tag_is_left_to_referrers() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    fallback = f"sha256-{scene.digest.encoded}"
    store(source, SRC, build_image({"fallback": "index"}), fallback)
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(referrers=True, digest_tags=True))
    assert not [n for n in plan.nodes if n.role is Role.DIGEST_TAG]
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(digest_tags=True))
    assert [n.target.tag for n in plan.nodes if n.role is Role.DIGEST_TAG] == [fallback]


async def test_what_the_target_has_is_present() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    store(target, DST, scene.amd64)  # one platform and the shared base layer are there
    plan = await plan_copy(source, SRC, target, DST)

    present = {n.digest for n in plan.nodes if n.present}
    assert present == {Digest.parse(scene.amd64.digest)}
    amd64 = next(n for n in plan.nodes if n.present)
    assert amd64.manifest is None
    assert amd64.blobs == ()
    base = Digest.parse(scene.amd64.layers[0].digest)
    assert next(b for b in plan.blobs if b.descriptor.digest == base).present


async def test_an_unchanged_tag_costs_two_heads() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    multi_platform(target, DST)
    plan = await plan_copy(source, SRC, target, DST)
    assert plan.status == "unchanged"
    assert plan.manifests_to_write == 0
    assert source.calls == [("manifest_head", "v1")]
    assert target.calls == [("manifest_head", "v1")]


async def test_an_unchanged_tag_still_checks_referrers_of_every_manifest() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    multi_platform(target, DST)
    late = attach(source, SRC, manifest_of(scene.arm64), SBOM, b"added after publishing")
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(referrers=True))
    assert [n.digest for n in plan.nodes if not n.present] == [late.digest]
    assert len(target.ops("manifest_head")) == 5  # the tag and each child


async def test_fast_check_trusts_what_is_below_a_manifest_the_target_has() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    multi_platform(target, DST)
    late = attach(source, SRC, manifest_of(scene.arm64), SBOM, b"added after publishing")
    options = CopyOptions(referrers=True, fast_check=True)
    plan = await plan_copy(source, SRC, target, DST, options)
    assert [n.digest for n in plan.nodes if not n.present] == [late.digest]
    assert target.ops("manifest_head") == ["v1"]  # no HEAD for the children
    assert set(target.ops("blob_head")) == {str(b.digest) for b in late.blobs}


async def test_force_recursive_rewrites_every_manifest_and_checks_every_blob() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    multi_platform(target, DST)
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(force_recursive=True))
    assert plan.status == "unchanged"
    assert plan.manifests_to_write == 5
    assert all(b.present for b in plan.blobs)
    assert len(target.ops("blob_head")) == len(plan.blobs)
    fast = CopyOptions(force_recursive=True, fast_check=True)
    assert (await plan_copy(source, SRC, target, DST, fast)).manifests_to_write == 0


async def test_a_retag_in_the_same_repository_reads_no_blobs() -> None:
    place = MemoryTarget()
    scene = multi_platform(place)
    plan = await plan_copy(place, SRC, place, SRC.with_tag("v2"))
    assert plan.manifests_to_write == 1
    assert plan.blobs_to_copy == 0
    assert plan.nodes[plan.root].digest == scene.digest
    assert place.ops("blob_head") == []


async def test_external_layers_are_not_planned() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    image = build_image({"a": "b"})
    manifest = store(source, SRC, image, "v1")
    raw = manifest.raw.replace(b'"layers":[{', b'"layers":[{"urls":["https://example.test/l"],')
    foreign = parse_manifest(raw)
    source.repos[SRC.name].manifests[foreign.digest] = foreign
    source.repos[SRC.name].tags["v1"] = foreign.digest
    plan = await plan_copy(source, SRC, target, DST)
    assert {b.descriptor.digest for b in plan.blobs} == {Digest.parse(image.config.digest)}
    plan = await plan_copy(source, SRC, target, DST, CopyOptions(include_external=True))
    assert len(plan.blobs) == 2


async def test_a_missing_source_is_a_copy_error() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    with pytest.raises(CopyError) as caught:
        await plan_copy(source, SRC, target, DST)
    (failure,) = caught.value.failures
    assert isinstance(failure.error, ManifestUnknown)
    assert failure.reference == SRC
    assert str(SRC) in str(caught.value)


async def test_a_failing_referrers_listing_names_its_subject() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    scene = multi_platform(source)
    source.fail("referrers", scene.arm64.digest, Unauthorized("no pull on referrers"))
    with pytest.raises(CopyError) as caught:
        await plan_copy(source, SRC, target, DST, CopyOptions(referrers=True))
    (failure,) = caught.value.failures
    assert failure.step == "list referrers"
    assert failure.descriptor is not None
    assert str(failure.descriptor.digest) == scene.arm64.digest
    assert isinstance(failure.error, Unauthorized)


async def test_planning_respects_the_request_bound() -> None:
    source, target = MemoryTarget(delay=0.01), MemoryTarget(delay=0.01)
    target.requests = source.requests  # one gauge over both places
    multi_platform(source)
    await plan_copy(source, SRC, target, DST, CopyOptions(image_concurrency=2, referrers=True))
    assert source.requests.most == 2


async def test_a_target_digest_that_is_not_the_source_is_refused() -> None:
    source, target = MemoryTarget(), MemoryTarget()
    multi_platform(source)
    wrong = Reference(DST.registry, DST.repository, None, Digest.of(b"something else"))
    with pytest.raises(CopyError, match="not the sha256:"):
        await plan_copy(source, SRC, target, wrong)
