"""The seed's regctl workflow typed as `dockyard` commands (the real console script, as a
subprocess, with its settings in a temporary `$DOCKYARD_CONFIG`) against real registries over
loopback: CNCF distribution (no referrers API) as the source and as the separate attestation
registry (the seed's registry.scout.docker.com), Dockyard as the target.

The source is a multi-platform index with an attestation manifest; its referrers (a signature
of the index, an SBOM of linux/amd64 and a signature of that SBOM) live in the other registry.
They are pushed with the Python client; everything after that goes through the CLI, and digests
are checked against what was pushed (and with `skopeo inspect --raw`).
"""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, RegistrySettings, TLSMode
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.oci.referrers import fallback_tag
from support.cli import Cli
from support.ocilayout import Image, build_artifact, build_image, digest_of, index_bytes, layer
from support.peers import (
    DOCKYARD_BIN,
    DockerRegistry,
    DockerRegistryFactory,
    DockyardServer,
    Skopeo,
    run,
)

pytestmark = pytest.mark.peers

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"


# --- the source, pushed with the client --------------------------------------------------------


@dataclass
class Source:
    index: Manifest
    amd64: Manifest
    arm64: Manifest
    attestation: Manifest
    signature: Manifest
    sbom: Manifest
    sbom_signature: Manifest


async def _push(registry: RegistryClient, ref: Reference, image: Image) -> Manifest:
    for blob in image.blobs():
        desc = Descriptor.from_json(blob.descriptor())
        if await registry.blob_head(ref, desc) is None:
            await registry.blob_put(ref, desc, blob.data)
    manifest = parse_manifest(image.manifest.data)
    await registry.manifest_put(ref, manifest)
    return manifest


def _pinned(ref: Reference, digest: Digest) -> Reference:
    return Reference(ref.registry, ref.repository, None, digest)


def publish(image_ref: Reference, attestations: Reference) -> Source:
    """Push the index to `image_ref` and its referrers to the `attestations` repository
    (both plain-HTTP distribution registries)."""

    async def main() -> Source:
        config = ClientConfig()
        for host in {image_ref.registry, attestations.registry}:
            config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED))
        retry = RetryPolicy(attempts=4, base=0.05, cap=0.5)
        async with RegistryClient(Client(config, retry=retry)) as registry:
            base = layer({"etc/os-release": "hardened base\n"})
            images = {
                p: build_image({"bin/python": p}, platform=p, layers=[base])
                for p in ("linux/amd64", "linux/arm64")
            }
            manifests = {
                p: await _push(registry, _pinned(image_ref, Digest.parse(i.digest)), i)
                for p, i in images.items()
            }
            provenance = build_image(
                {"provenance.json": "{}"}, platform={"architecture": "unknown", "os": "unknown"}
            )
            attested = await _push(
                registry, _pinned(image_ref, Digest.parse(provenance.digest)), provenance
            )
            entries = [i.descriptor() for i in images.values()] + [
                provenance.descriptor(
                    annotations={
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": images["linux/amd64"].digest,
                    }
                )
            ]
            index = parse_manifest(index_bytes(entries))
            await registry.manifest_put(image_ref, index)

            async def attach(subject: Manifest, kind: str, payload: bytes) -> Manifest:
                artifact = build_artifact(subject.descriptor().to_json(), kind, payload)
                where = _pinned(attestations, Digest.parse(artifact.digest))
                return await _push(registry, where, artifact)

            signature = await attach(index, SIGNATURE, b"index signature")
            sbom = await attach(manifests["linux/amd64"], SBOM, b'{"spdxVersion":"SPDX-2.3"}')
            sbom_signature = await attach(sbom, SIGNATURE, b"sbom signature")
        return Source(
            index,
            manifests["linux/amd64"],
            manifests["linux/arm64"],
            attested,
            signature,
            sbom,
            sbom_signature,
        )

    return asyncio.run(main())


# --- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def scout(docker_registry_factory: DockerRegistryFactory) -> DockerRegistry:
    """A second distribution registry: where the attestations live."""
    return docker_registry_factory()


def _digests(*manifests: Manifest) -> list[str]:
    return sorted(str(m.digest) for m in manifests)


# --- tests -------------------------------------------------------------------------------------


def test_the_seed_workflow_from_distribution_to_dockyard(
    cli: Cli,
    docker_registry: DockerRegistry,
    scout: DockerRegistry,
    dockyard_server: DockyardServer,
    skopeo: Skopeo,
) -> None:
    src_repo = f"{docker_registry.host}/dhi/python"
    att_repo = f"{scout.host}/org/dhi-python"
    dest_repo = f"{dockyard_server.host}/mirror/dhi-python"
    source = publish(Reference.parse(f"{src_repo}:3.13"), Reference.parse(att_repo))

    # step 2: settings and logins (plain HTTP on loopback)
    for host in (docker_registry.host, scout.host, dockyard_server.host):
        cli("registry", "set", host, "--tls", "disabled")
    refused = cli(
        "registry", "login", "-u", "admin", "--pass-stdin", dockyard_server.host,
        input="wrong-password\n", code=1,
    )  # fmt: skip
    assert refused.startswith("error: login to")
    assert "UNAUTHORIZED" in refused
    assert refused.count("\n") == 1
    denied = cli("manifest", "head", f"{dest_repo}:3.13", code=1)
    assert "UNAUTHORIZED" in denied
    cli(
        "registry", "login", "-u", "admin", "--pass-stdin", dockyard_server.host,
        input=dockyard_server.admin_password + "\n",
    )  # fmt: skip
    stored = cli.config / "registries.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert dockyard_server.admin_password not in cli("registry", "config")

    # step 3: the copy, referrers from and to their own repositories
    cli(
        "image", "copy", f"{src_repo}:3.13", f"{dest_repo}:3.13",
        "--referrers", "--referrers-src", att_repo, "--referrers-tgt", dest_repo,
        "--force-recursive",
    )  # fmt: skip

    # step 4: the platform digest, then its attached artifacts
    digest = cli("manifest", "head", f"{dest_repo}:3.13", "--platform", "linux/amd64").strip()
    assert digest == str(source.amd64.digest)
    assert cli("manifest", "head", f"{dest_repo}:3.13").strip() == str(source.index.digest)
    assert cli.referrers(f"{dest_repo}@{digest}") == _digests(source.sbom)
    table = cli("artifact", "list", f"{dest_repo}@{digest}")
    assert str(source.sbom.digest) in table
    assert SBOM in table
    assert cli.referrers(f"{dest_repo}:3.13") == _digests(source.signature)
    assert cli.referrers(f"{dest_repo}@{source.sbom.digest}") == _digests(source.sbom_signature)
    assert cli.referrers(f"{dest_repo}:3.13", "--filter-artifact-type", SBOM) == []

    # byte for byte: the CLI, skopeo and the pushed bytes agree
    raw = run(
        [DOCKYARD_BIN, "manifest", "get", f"{dest_repo}:3.13", "--format", "raw"],
        env=cli.env,
    ).stdout
    assert digest_of(raw.encode()) == str(source.index.digest)
    creds = f"admin:{dockyard_server.admin_password}"
    assert skopeo.inspect_raw(f"docker://{dest_repo}:3.13", creds=creds) == source.index.raw
    pinned = f"docker://{dest_repo}@{source.attestation.digest}"
    assert skopeo.inspect_raw(pinned, creds=creds) == source.attestation.raw
    assert cli("tag", "ls", dest_repo).splitlines() == ["3.13"]  # referrers API: no fallback tags

    # again: nothing left to copy
    again = cli(
        "image", "copy", f"{src_repo}:3.13", f"{dest_repo}:3.13", "--referrers",
        "--referrers-src", att_repo, "--format", "json",
    )  # fmt: skip
    finished = json.loads(again.splitlines()[-1])
    assert finished["event"] == "copy-finished"
    assert finished["result"]["manifests_copied"] == 0

    missing = cli("image", "copy", f"{src_repo}:9.99", f"{dest_repo}:9.99", code=1)
    assert [line for line in missing.splitlines() if line.startswith("error: ")] == [
        missing.strip().splitlines()[-1]
    ]
    assert "9.99" in missing


def test_export_import_round_trip_between_registries(
    cli: Cli,
    tmp_path: Path,
    docker_registry: DockerRegistry,
    scout: DockerRegistry,
    dockyard_server: DockyardServer,
) -> None:
    src_repo = f"{docker_registry.host}/dhi/node"
    att_repo = f"{scout.host}/org/dhi-node"
    source = publish(Reference.parse(f"{src_repo}:24"), Reference.parse(att_repo))
    for host in (docker_registry.host, scout.host, dockyard_server.host):
        cli("registry", "set", host, "--tls", "disabled")
    cli(
        "registry", "login", dockyard_server.host, "-u", "admin", "--pass-stdin",
        input=dockyard_server.admin_password,
    )  # fmt: skip

    archive = tmp_path / "node-24.tar"
    cli("image", "export", f"{src_repo}:24", archive, "--referrers-src", att_repo)
    assert archive.stat().st_size > 0

    # into Dockyard (referrers API) and into distribution (fallback tags)
    for dest_repo in (f"{dockyard_server.host}/airgap/node", f"{docker_registry.host}/airgap/node"):
        cli("image", "import", archive, f"{dest_repo}:24")
        assert cli("manifest", "head", f"{dest_repo}:24").strip() == str(source.index.digest)
        for platform, image in (("linux/amd64", source.amd64), ("linux/arm64", source.arm64)):
            head = cli("manifest", "head", f"{dest_repo}:24", "-p", platform).strip()
            assert head == str(image.digest)
        assert cli.referrers(f"{dest_repo}:24") == _digests(source.signature)
        assert cli.referrers(f"{dest_repo}@{source.amd64.digest}") == _digests(source.sbom)
        sbom_ref = f"{dest_repo}@{source.sbom.digest}"
        assert cli.referrers(sbom_ref) == _digests(source.sbom_signature)
        raw = run(
            [DOCKYARD_BIN, "manifest", "get", sbom_ref, "--format", "raw"], env=cli.env
        ).stdout
        assert raw.encode() == source.sbom.raw

    tags = cli("tag", "ls", f"{docker_registry.host}/airgap/node").splitlines()
    assert "24" in tags
    assert fallback_tag(source.amd64.digest) in tags  # distribution keeps referrers by tag
    assert cli("tag", "ls", f"{dockyard_server.host}/airgap/node").splitlines() == ["24"]

    # an OCI layout folder as a target, as regctl's ocidir://
    layout = tmp_path / "layout"
    cli("image", "copy", f"{dockyard_server.host}/airgap/node:24", f"ocidir://{layout}:24",
        "--referrers")  # fmt: skip
    assert cli("manifest", "head", f"ocidir://{layout}:24").strip() == str(source.index.digest)
    assert cli.referrers(f"oci:{layout}@{source.amd64.digest}") == _digests(source.sbom)
