"""`dockyard sync` against real registries over loopback, as the console script users run.

The seed's regsync.yaml (DHI mirroring docs) with its hosts changed: images in a CNCF
distribution registry (the seed's docker.io), their attestations in another (the seed's
registry.scout.docker.com, no referrers API: fallback tags), mirrored to Dockyard (referrers
API) with one entry's attestations going to a separate distribution registry. Checked: `check`
writes nothing; `once` makes the targets equal to the sources (digests, `skopeo inspect --raw`,
referrers recursively); a second run is all unchanged; an attestation added upstream to an
unchanged image is picked up; a sync killed half-way (SIGKILL) and run again converges;
`server` stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dockyard.client.hosts import Client
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import ClientConfig, Credential, RegistrySettings, TLSMode
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import OciError
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.oci.reference import Reference
from dockyard.sync.expand import registry_catalog
from support import peers
from support.ocilayout import (
    Image,
    build_artifact,
    build_image,
    digest_of,
    index_bytes,
    layer,
    random_layer,
)
from support.peers import DockerRegistry, DockerRegistryFactory, DockyardServer, Skopeo, run
from unit.sync.test_sync_config import SEED_YAML

pytestmark = pytest.mark.peers

TEST_TIMEOUT = 240.0
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
PROVENANCE = "application/vnd.in-toto+json"
NODE_TAGS = ("24.1", "24.2", "24.2-alpine3.21", "24-debian12", "22.1")
PYTHON_TAGS = ("3.12.1", "3.12.2", "3.12.2-alpine3.21", "3.13.0")
NODE_SELECTED = ("24.1", "24.2")
PYTHON_SELECTED = ("3.12.1", "3.12.2")


def sync_command() -> list[str]:
    """`dockyard sync` as users run it; until `cli/main.py` wires the sub-app, the sub-app
    itself under the same interpreter."""
    from dockyard.cli import main

    if any(group.name == "sync" for group in main.app.registered_groups):
        return [str(peers.DOCKYARD_BIN), "sync"]
    return [sys.executable, "-m", "dockyard.cli.sync"]


# --- peers ---------------------------------------------------------------------------------------


@dataclass
class Place:
    host: str
    registry: RegistryClient
    user: str | None = None
    password: str | None = None

    def ref(self, text: str) -> Reference:
        return Reference.parse(f"{self.host}/{text}")

    @property
    def creds(self) -> str | None:
        return f"{self.user}:{self.password}" if self.user else None


@pytest_asyncio.fixture
async def places() -> AsyncIterator[Callable[..., Place]]:
    made: list[RegistryClient] = []

    def make(host: str, user: str | None = None, password: str | None = None) -> Place:
        credential = Credential(username=user, password=password) if user and password else None
        config = ClientConfig()
        config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED, credential=credential))
        registry = RegistryClient(Client(config, retry=RetryPolicy(attempts=4, base=0.05, cap=0.5)))
        made.append(registry)
        return Place(host, registry, user, password)

    yield make
    for registry in made:
        await registry.close()


@dataclass
class World:
    source: Place
    scout: Place
    dockyard: Place
    attestations: Place  # the separate referrer target of the dhi-python entry
    server: DockyardServer
    config: Path
    env: dict[str, str]

    def sync(
        self, *args: str, check: bool = True, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        return run([*sync_command(), *args], env=self.env, timeout=timeout, check=check)

    def sync_json(self, command: str, *args: str) -> dict[str, Any]:
        result = self.sync(command, "-c", str(self.config), "--format", "json", *args)
        report: dict[str, Any] = json.loads(result.stdout)
        return report


def client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: its own empty client settings and Docker config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    (tmp_path / "dockyard-config").mkdir(exist_ok=True)
    (tmp_path / "docker-config").mkdir(exist_ok=True)
    env["DOCKYARD_CONFIG"] = str(tmp_path / "dockyard-config")
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    env.update(extra)
    return env


def seed_config(
    path: Path, source: str, scout: str, target: str, attestations: str, password_file: Path
) -> Path:
    """The seed's regsync.yaml with its hosts changed (and the dhi-python attestations sent
    to a separate registry), plus `creds` as its comment suggests, with templates."""
    body = (
        SEED_YAML.replace(
            "referrerTarget: registry.example.com/mirror/dhi-python",
            f"referrerTarget: {attestations}/mirror/dhi-python",
        )
        .replace("registry.scout.docker.com", scout)
        .replace("registry.example.com", target)
        .replace("docker.io", source)
        .replace("<your-org>", "acme")
    )
    creds = (
        "creds:\n"
        f"  - registry: {source}\n    tls: disabled\n"
        f"  - registry: {scout}\n    tls: disabled\n"
        f"  - registry: {attestations}\n    tls: disabled\n"
        f"  - registry: {target}\n    tls: disabled\n"
        '    user: "{{env \\"SYNC_TEST_USER\\"}}"\n'
        f'    pass: "{{{{file \\"{password_file}\\"}}}}"\n'
    )
    path.write_text(body.replace("version: 1\n", "version: 1\n" + creds, 1))
    return path


@pytest_asyncio.fixture
async def world(
    docker_registry_factory: DockerRegistryFactory,
    dockyard_server: DockyardServer,
    places: Callable[..., Place],
    tmp_path: Path,
) -> World:
    source, scout, attestations = (docker_registry_factory() for _ in range(3))
    password_file = tmp_path / "dest_token"
    password_file.write_text(dockyard_server.admin_password + "\n")
    config = seed_config(
        tmp_path / "regsync.yaml",
        source.host,
        scout.host,
        dockyard_server.host,
        attestations.host,
        password_file,
    )
    return World(
        places(source.host),
        places(scout.host),
        places(dockyard_server.host, "admin", dockyard_server.admin_password),
        places(attestations.host),
        dockyard_server,
        config,
        client_env(tmp_path, SYNC_TEST_USER="admin"),
    )


# --- content -------------------------------------------------------------------------------------


def at(ref: Reference, digest: Digest | str) -> Reference:
    """`ref`'s repository at `digest`, no tag (a push by digest moves no tag)."""
    return Reference(ref.registry, ref.repository, None, Digest.parse(str(digest)))


async def push(place: Place, ref: Reference, image: Image) -> Manifest:
    for blob in image.blobs():
        desc = Descriptor.from_json(blob.descriptor())
        if await place.registry.blob_head(ref, desc) is None:
            await place.registry.blob_put(ref, desc, blob.data)
    manifest = parse_manifest(image.manifest.data)
    await place.registry.manifest_put(ref, manifest)
    return manifest


async def push_index(place: Place, ref: Reference, images: list[Image]) -> Manifest:
    for image in images:
        await push(place, at(ref, image.digest), image)
    index = parse_manifest(index_bytes([image.descriptor() for image in images]))
    await place.registry.manifest_put(ref, index)
    return index


async def attest(
    place: Place, repo: Reference, subject: Manifest, artifact_type: str, payload: bytes
) -> Manifest:
    artifact = build_artifact(subject.descriptor().to_json(), artifact_type, payload)
    return await push(place, at(repo, artifact.digest), artifact)


async def publish(
    source: Place, scout: Place, repo: str, tags: tuple[str, ...], size: int = 0
) -> dict[str, Manifest]:
    """An index per tag (amd64 and arm64 on a shared base layer) in `source`, and in the
    same repository of `scout`: an SBOM of the index, a signature of its amd64 image and a
    signature of that SBOM (a referrer of a referrer)."""
    base = layer({"etc/os-release": f"{repo} base\n"})
    found = {}
    for tag in tags:
        images = []
        for platform in ("linux/amd64", "linux/arm64"):
            extra = [random_layer(size, f"{repo}-{tag}-{platform}")] if size else []
            images.append(
                build_image(
                    {"bin/app": f"{repo} {tag} {platform}"},
                    platform=platform,
                    layers=[base, *extra],
                )
            )
        ref = source.ref(f"{repo}:{tag}")
        index = await push_index(source, ref, images)
        attestations = scout.ref(repo)
        sbom = await attest(scout, attestations, index, SBOM, f"sbom {tag}".encode())
        amd64 = parse_manifest(images[0].manifest.data)
        await attest(scout, attestations, amd64, SIGNATURE, f"signed {tag}".encode())
        await attest(scout, attestations, sbom, SIGNATURE, f"signed sbom {tag}".encode())
        found[tag] = index
    return found


# --- comparing -----------------------------------------------------------------------------------


async def tags_of(place: Place, repo: str) -> list[str]:
    try:
        return sorted(await place.registry.tag_list(place.ref(repo)))
    except OciError as err:
        if err.status == 404:
            return []
        raise


async def referrer_tree(place: Place, repo: Reference, subject: Digest) -> set[tuple[str, str]]:
    """(subject, referrer) pairs below `subject`, recursively."""
    pairs: set[tuple[str, str]] = set()
    pending = [subject]
    while pending:
        digest = pending.pop()
        for desc in await place.registry.referrers(at(repo, digest), digest):
            pairs.add((str(digest), str(desc.digest)))
            pending.append(desc.digest)
    return pairs


async def assert_mirrored(
    source: Place,
    scout: Place,
    target: Place,
    referrer_target: Place,
    repo: str,
    mirror: str,
    tags: tuple[str, ...],
) -> None:
    """Every tag has the source's digest on the target, and every manifest of it the same
    referrers (recursively) at the referrer target as at the referrer source."""
    assert await tags_of(target, mirror) == sorted(tags)
    for tag in tags:
        src = source.ref(f"{repo}:{tag}")
        index = await source.registry.manifest_get(src)
        there = await target.registry.manifest_head(target.ref(f"{mirror}:{tag}"))
        assert there is not None
        assert there.digest == index.digest
        for digest in [index.digest, *(child.digest for child in index.children)]:
            copied = await target.registry.manifest_get(at(target.ref(mirror), digest))
            assert copied.digest == digest
            upstream = await referrer_tree(scout, scout.ref(repo), digest)
            mirrored = await referrer_tree(referrer_target, referrer_target.ref(mirror), digest)
            assert mirrored == upstream, f"referrers of {digest} in {mirror}"
        assert index.children


async def assert_all_mirrored(world: World) -> None:
    await assert_mirrored(
        world.source, world.scout, world.dockyard, world.dockyard, "acme/dhi-node",
        "mirror/dhi-node", NODE_SELECTED,
    )  # fmt: skip
    await assert_mirrored(
        world.source, world.scout, world.dockyard, world.attestations, "acme/dhi-python",
        "mirror/dhi-python", PYTHON_SELECTED,
    )  # fmt: skip


def statuses(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        repo["source"].split("/", 1)[1]: {t["tag"]: t["status"] for t in repo["tags"]}
        for repo in report["repositories"]
    }


def all_status(status: str) -> dict[str, dict[str, str]]:
    return {
        "acme/dhi-node": dict.fromkeys(NODE_SELECTED, status),
        "acme/dhi-python": dict.fromkeys(PYTHON_SELECTED, status),
    }


# --- tests ---------------------------------------------------------------------------------------


async def test_the_seed_config_checks_syncs_and_keeps_in_sync(world: World, skopeo: Skopeo) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        await publish(world.source, world.scout, "acme/dhi-node", NODE_TAGS)
        await publish(world.source, world.scout, "acme/dhi-python", PYTHON_TAGS)

        # check: the plan, and nothing written
        plan = await asyncio.to_thread(world.sync_json, "check")
        assert statuses(plan) == all_status("add")
        assert plan["dry_run"] is True
        assert plan["totals"]["referrers_to_copy"] == 4 * 3  # 3 per tag
        assert plan["totals"]["bytes_to_transfer"] > 0
        text = (await asyncio.to_thread(world.sync, "check", "-c", str(world.config))).stdout
        assert "add" in text
        assert "nothing was written" in text
        assert await tags_of(world.dockyard, "mirror/dhi-node") == []
        assert await tags_of(world.dockyard, "mirror/dhi-python") == []
        assert await registry_catalog(world.attestations.registry, world.attestations.host) == []

        # once: the targets equal the sources
        report = await asyncio.to_thread(world.sync_json, "once", "--progress", "plain")
        assert report["failed"] is False
        assert statuses(report) == all_status("add")
        assert report["totals"]["referrers_copied"] == 12
        await assert_all_mirrored(world)
        tag = world.dockyard.ref("mirror/dhi-node:24.1")
        raw = skopeo.inspect_raw(f"docker://{tag}", creds=world.dockyard.creds)
        upstream = await world.source.registry.manifest_get(world.source.ref("acme/dhi-node:24.1"))
        assert digest_of(raw) == str(upstream.digest)

        # again: all unchanged, nothing copied
        again = await asyncio.to_thread(world.sync_json, "once")
        assert statuses(again) == all_status("unchanged")
        assert again["totals"]["referrers_copied"] == 0
        assert again["totals"]["bytes_copied"] == 0

        # an attestation published later for an unchanged image is picked up
        index = await world.source.registry.manifest_get(world.source.ref("acme/dhi-node:24.2"))
        arm64 = await world.source.registry.manifest_get(
            at(world.source.ref("acme/dhi-node"), index.children[1].digest)
        )
        late = await attest(
            world.scout, world.scout.ref("acme/dhi-node"), arm64, PROVENANCE, b"late provenance"
        )
        planned = await asyncio.to_thread(world.sync_json, "check")
        assert statuses(planned) == all_status("unchanged")
        assert planned["totals"]["referrers_to_copy"] == 1
        picked = await asyncio.to_thread(world.sync_json, "once")
        assert statuses(picked) == all_status("unchanged")
        assert picked["totals"]["referrers_copied"] == 1
        mirrored = world.dockyard.ref("mirror/dhi-node")
        found = await world.dockyard.registry.referrers(mirrored, arm64.digest)
        assert late.digest in {d.digest for d in found}
        await assert_all_mirrored(world)

        # the summary table, and text output
        table = (await asyncio.to_thread(world.sync, "once", "-c", str(world.config))).stdout
        assert "unchanged" in table
        assert "ok: 0 added, 0 updated, 4 unchanged" in table


async def test_a_config_error_names_the_line(world: World) -> None:
    bad = world.config.with_name("bad.yaml")
    bad.write_text(world.config.read_text().replace("fastCopy: true", "fastCopyy: true", 1))
    result = await asyncio.to_thread(world.sync, "check", "-c", str(bad), check=False)
    assert result.returncode == 2
    line = 1 + bad.read_text().splitlines().index("    fastCopyy: true")
    assert f"{bad}, line {line}: unknown key 'fastCopyy' in sync[0]" in result.stderr
    assert "did you mean 'fastCopy'?" in result.stderr


@dataclass
class Big:
    config: Path
    env: dict[str, str]
    source: Place
    target: Place
    tags: tuple[str, ...]


@pytest_asyncio.fixture
async def big(
    docker_registry: DockerRegistry,
    dockyard_server: DockyardServer,
    places: Callable[..., Place],
    tmp_path: Path,
) -> Big:
    """Ten tags of two platforms with 4 MiB layers of their own, referrers in the same
    repository (so the source has fallback tags), to Dockyard one image at a time."""
    source = places(docker_registry.host)
    target = places(dockyard_server.host, "admin", dockyard_server.admin_password)
    tags = tuple(f"1.{i}" for i in range(10))
    await publish(source, source, "acme/big", tags, size=4 * 1024 * 1024)
    config = tmp_path / "big.yaml"
    config.write_text(
        "defaults:\n  parallel: 1\n"
        "creds:\n"
        f"  - {{registry: '{docker_registry.host}', tls: disabled}}\n"
        f"  - {{registry: '{dockyard_server.host}', tls: disabled, user: admin,"
        f" pass: '{dockyard_server.admin_password}'}}\n"
        "sync:\n"
        f"  - source: {docker_registry.host}/acme/big\n"
        f"    target: {dockyard_server.host}/mirror/big\n"
        "    type: repository\n    referrers: true\n"
    )
    return Big(config, client_env(tmp_path), source, target, tags)


async def test_a_sync_killed_half_way_completes_when_run_again(big: Big) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        argv = [*sync_command(), "once", "-c", str(big.config), "--progress", "json"]
        finished = await asyncio.to_thread(_run_until_copies_finish, argv, big.env, 3)
        assert finished >= 3
        partial = await tags_of(big.target, "mirror/big")
        assert 3 <= len(partial) < len(big.tags), "the sync finished before it was killed"

        report = json.loads(
            (
                await asyncio.to_thread(
                    run,
                    [*sync_command(), "once", "-c", str(big.config), "--format", "json"],
                    env=big.env,
                    timeout=180,
                )
            ).stdout
        )
        assert report["failed"] is False
        assert await tags_of(big.target, "mirror/big") == sorted(big.tags)
        await assert_mirrored(
            big.source, big.source, big.target, big.target, "acme/big", "mirror/big", big.tags
        )
        final = json.loads(
            (
                await asyncio.to_thread(
                    run,
                    [*sync_command(), "check", "-c", str(big.config), "--format", "json"],
                    env=big.env,
                )
            ).stdout
        )
        assert {t["status"] for t in final["repositories"][0]["tags"]} == {"unchanged"}
        assert final["totals"]["referrers_to_copy"] == 0


def _run_until_copies_finish(argv: list[str], env: dict[str, str], copies: int) -> int:
    """Start `argv`, SIGKILL it once its JSON progress reports `copies` finished copies;
    how many it had reported."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    finished = 0
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 120
        for line in process.stderr:
            if '"event":"copy-finished"' in line:
                finished += 1
                if finished >= copies:
                    process.send_signal(signal.SIGKILL)
                    break
            if time.monotonic() > deadline:
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=30)
    return finished


async def test_the_server_stops_cleanly_on_sigterm(
    docker_registry: DockerRegistry,
    dockyard_server: DockyardServer,
    places: Callable[..., Place],
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        source = places(docker_registry.host)
        target = places(dockyard_server.host, "admin", dockyard_server.admin_password)
        await publish(source, source, "acme/app", ("1",))
        config = tmp_path / "server.yaml"
        config.write_text(
            "creds:\n"
            f"  - {{registry: '{docker_registry.host}', tls: disabled}}\n"
            f"  - {{registry: '{dockyard_server.host}', tls: disabled, user: admin,"
            f" pass: '{dockyard_server.admin_password}'}}\n"
            "sync:\n"
            f"  - source: {docker_registry.host}/acme/app\n"
            f"    target: {dockyard_server.host}/mirror/app\n"
            "    type: repository\n    referrers: true\n    interval: 1s\n"
        )
        log = tmp_path / "server.out"
        with _server(config, client_env(tmp_path), log) as process:
            await asyncio.to_thread(_wait_for, lambda: log.read_text().count("ok:") >= 2, process)
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 15)
        output = log.read_text()
        assert code == 0, output
        assert "SIGTERM: stopping" in output
        assert "sync server stopped" in output
        assert await tags_of(target, "mirror/app") == ["1"]


@contextlib.contextmanager
def _server(config: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*sync_command(), "server", "-c", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sync server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("the sync server did not finish two runs within 60 s")
        time.sleep(0.1)


async def test_a_registry_entry_mirrors_the_repositories_it_selects(
    docker_registry: DockerRegistry,
    dockyard_server: DockyardServer,
    places: Callable[..., Place],
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        source = places(docker_registry.host)
        target = places(dockyard_server.host, "admin", dockyard_server.admin_password)
        for repo in ("team/api", "team/web", "team/old", "other/tool"):
            await push(source, source.ref(f"{repo}:1"), build_image({"app": repo}))
        config = tmp_path / "registry.yaml"
        config.write_text(
            "creds:\n"
            f"  - {{registry: '{docker_registry.host}', tls: disabled}}\n"
            f"  - {{registry: '{dockyard_server.host}', tls: disabled, user: admin,"
            f" pass: '{dockyard_server.admin_password}'}}\n"
            "sync:\n"
            f"  - source: {docker_registry.host}\n"
            f"    target: {dockyard_server.host}/copy\n"
            "    type: registry\n"
            "    repos: {allow: ['team/.*'], deny: ['team/old']}\n"
        )
        env = client_env(tmp_path)
        argv = [*sync_command(), "once", "-c", str(config), "--format", "json"]
        report = json.loads((await asyncio.to_thread(run, argv, env=env)).stdout)
        assert [(r["source"], r["target"]) for r in report["repositories"]] == [
            (f"{docker_registry.host}/team/api", f"{dockyard_server.host}/copy/team/api"),
            (f"{docker_registry.host}/team/web", f"{dockyard_server.host}/copy/team/web"),
        ]
        assert report["totals"]["add"] == 2
        for repo in ("team/api", "team/web"):
            upstream = await source.registry.manifest_head(source.ref(f"{repo}:1"))
            mirrored = await target.registry.manifest_head(target.ref(f"copy/{repo}:1"))
            assert upstream is not None
            assert mirrored is not None
            assert mirrored.digest == upstream.digest
        assert await tags_of(target, "copy/team/old") == []
