"""`dockyard sync once` against `skopeo sync` mirroring the same repository, side by side.

The source is a CNCF distribution registry (`docker-registry`) holding a generated repository:
30 tags, each an index of 2 platforms whose images have 4 layers of 2 MiB (the first 2 are
base layers shared by every tag of a platform, the other 2 the tag's own), and 3 referrers per
tag (an SBOM and a signature of the index, a provenance of its amd64 image) kept in a separate
attestations repository, as the DHI docs keep them on registry.scout.docker.com. Both tools
write to a fresh `docker-registry` each, so only the tools differ:

- cold: an empty target; Dockyard also copies the 90 referrers (as fallback tags, since
  distribution has no referrers API), skopeo copies the images only;
- warm: the same target again, nothing changed; the whole process is timed, Python's start-up
  included. Dockyard costs a HEAD on each side per tag plus the referrer re-check; skopeo
  reads and re-pushes every manifest.

`.venv/bin/python bench/mirror.py [--tags 30] [--rounds 3] [--keep]`. Not part of `make test`.
Needs `docker-registry` and `skopeo` (`scripts/test-deps.sh`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support.ocilayout builds the images

import servers  # noqa: E402
from servers import Server  # noqa: E402

from dockyard.client.hosts import Client  # noqa: E402
from dockyard.client.registry import RegistryClient  # noqa: E402
from dockyard.client.settings import ClientConfig, RegistrySettings, TLSMode  # noqa: E402
from dockyard.oci.descriptor import Descriptor  # noqa: E402
from dockyard.oci.digest import Digest  # noqa: E402
from dockyard.oci.manifest import Manifest, parse_manifest  # noqa: E402
from dockyard.oci.reference import Reference  # noqa: E402
from support.ocilayout import (  # noqa: E402
    Image,
    build_artifact,
    build_image,
    index_bytes,
    random_layer,
)

MiB = 1024 * 1024
LAYER_SIZE = 2 * MiB
PLATFORMS = ("linux/amd64", "linux/arm64")
REPOSITORY = "library/app"
ATTESTATIONS = "attestations/app"
MIRROR = "mirror/app"
COLD_TARGET = 0.6
WARM_TARGET = 0.25
TOOL_TIMEOUT = 900.0


# --- the source ----------------------------------------------------------------------------------


@dataclass
class Source:
    tags: int
    referrers: int = 0
    blobs: int = 0
    bytes: int = 0
    digests: dict[str, Digest] = field(default_factory=dict)


def _client(*hosts: str) -> RegistryClient:
    config = ClientConfig()
    for host in hosts:
        config.set(RegistrySettings(name=host, tls=TLSMode.DISABLED))
    return RegistryClient(Client(config))


def _at(ref: Reference, digest: Digest | str) -> Reference:
    return Reference(ref.registry, ref.repository, None, Digest.parse(str(digest)))


class _Pusher:
    """Pushes images, each distinct blob once per repository (distribution 2.8 can fail two
    uploads of the same blob at once)."""

    def __init__(self, registry: RegistryClient, parallel: int = 8) -> None:
        self.registry = registry
        self.gate = asyncio.Semaphore(parallel)
        self.blobs: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def _blob(self, ref: Reference, data: bytes, desc: Descriptor) -> None:
        async with self.gate:
            if await self.registry.blob_head(ref, desc) is None:
                await self.registry.blob_put(ref, desc, data)

    async def push(self, ref: Reference, image: Image) -> Manifest:
        waits = []
        for blob in image.blobs():
            key = (ref.name, blob.digest)
            if key not in self.blobs:
                desc = Descriptor.from_json(blob.descriptor())
                self.blobs[key] = asyncio.create_task(self._blob(ref, blob.data, desc))
            waits.append(self.blobs[key])
        await asyncio.gather(*waits)
        manifest = parse_manifest(image.manifest.data)
        await self.registry.manifest_put(ref, manifest)
        return manifest


async def generate(host: str, tags: int) -> Source:
    """Push the repository and its attestations to the source registry."""
    source = Source(tags)
    registry = _client(host)
    pusher = _Pusher(registry)
    repo = Reference.parse(f"{host}/{REPOSITORY}")
    attestations = Reference.parse(f"{host}/{ATTESTATIONS}")
    base = {p: [random_layer(LAYER_SIZE, f"base-{p}-{i}") for i in range(2)] for p in PLATFORMS}
    seen: set[str] = set()

    async def one(number: int) -> None:
        tag = f"v{number}"
        images = [
            build_image(
                {"etc/release": f"app {tag} {p}\n"},
                platform=p,
                layers=[
                    *base[p],
                    *(random_layer(LAYER_SIZE - 4096, f"{tag}-{p}-{i}") for i in range(2)),
                ],
            )
            for p in PLATFORMS
        ]
        for image in images:
            await pusher.push(_at(repo, image.digest), image)
            for blob in image.blobs():
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    source.blobs += 1
                    source.bytes += blob.size
        index = parse_manifest(index_bytes([image.descriptor() for image in images]))
        await registry.manifest_put(repo.with_tag(tag), index)
        source.digests[tag] = index.digest
        amd64 = parse_manifest(images[0].manifest.data)
        for subject, kind, payload in (
            (index, "application/spdx+json", f"sbom of {tag}"),
            (index, "application/vnd.dev.cosign.artifact.sig.v1+json", f"signature of {tag}"),
            (amd64, "application/vnd.in-toto+json", f"provenance of {tag} amd64"),
        ):
            artifact = build_artifact(subject.descriptor().to_json(), kind, payload.encode())
            await pusher.push(_at(attestations, artifact.digest), artifact)
            source.referrers += 1

    try:
        await asyncio.gather(*(one(n) for n in range(1, tags + 1)))
    finally:
        await registry.close()
    return source


async def verify(source_host: str, target_host: str, source: Source, referrers: bool) -> str:
    """Compare every tag's digest on the target with the source's; count referrers."""
    registry = _client(source_host, target_host)
    repo = Reference.parse(f"{target_host}/{MIRROR}")
    wrong = 0
    found_referrers = 0
    try:
        for tag, digest in source.digests.items():
            head = await registry.manifest_head(repo.with_tag(tag))
            wrong += head is None or head.digest != digest
            if referrers:
                index = await registry.manifest_get(_at(repo, digest))
                for subject in (digest, index.children[0].digest):
                    found_referrers += len(await registry.referrers(_at(repo, subject), subject))
    finally:
        await registry.close()
    verdict = "all digests equal" if not wrong else f"{wrong} tags WRONG"
    if referrers:
        verdict += f", {found_referrers}/{source.referrers} referrers"
    return verdict


# --- the tools -----------------------------------------------------------------------------------


def dockyard_command() -> list[str]:
    """`dockyard sync` (the sub-app alone until cli/main.py wires it in)."""
    from dockyard.cli import main

    if any(group.name == "sync" for group in main.app.registered_groups):
        return [str(servers.VENV_BIN / "dockyard"), "sync"]
    return [sys.executable, "-m", "dockyard.cli.sync"]


@dataclass
class Tools:
    work: Path
    source: str
    parallel: int

    def __post_init__(self) -> None:
        for folder in ("dockyard-config", "docker-config", "home", "run"):
            (self.work / folder).mkdir(parents=True, exist_ok=True)
        (self.work / "run").chmod(0o700)
        self.policy = self.work / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        (self.work / "registries.conf").write_text("unqualified-search-registries = []\n")
        (self.work / "auth.json").write_text('{"auths": {}}\n')
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "REGISTRY_"))}
        self.dockyard_env = {
            **base,
            "DOCKYARD_CONFIG": str(self.work / "dockyard-config"),
            "DOCKER_CONFIG": str(self.work / "docker-config"),
        }
        self.skopeo_env = {
            **base,
            "HOME": str(self.work / "home"),
            "XDG_RUNTIME_DIR": str(self.work / "run"),
            "REGISTRY_AUTH_FILE": str(self.work / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(self.work / "registries.conf"),
        }

    def config(self, target: str) -> Path:
        path = self.work / f"sync-{target.replace(':', '-')}.yaml"
        path.write_text(
            "version: 1\n"
            "creds:\n"
            f"  - registry: {self.source}\n    tls: disabled\n"
            f"  - registry: {target}\n    tls: disabled\n"
            f"defaults:\n  parallel: {self.parallel}\n"
            "sync:\n"
            f"  - source: {self.source}/{REPOSITORY}\n"
            f"    target: {target}/{MIRROR}\n"
            "    type: repository\n"
            "    fastCopy: true\n"
            "    referrers: true\n"
            f"    referrerSource: {self.source}/{ATTESTATIONS}\n"
            f"    referrerTarget: {target}/{MIRROR}\n"
        )
        return path

    def dockyard(self, target: str) -> tuple[float, str]:
        argv = [*dockyard_command(), "once", "-c", str(self.config(target)), "--format", "json"]
        seconds, out = _timed(argv, self.dockyard_env)
        totals = json.loads(out)["totals"]
        return seconds, (
            f"{totals['add']} added, {totals['unchanged']} unchanged, "
            f"{totals['referrers_copied']} referrers, {totals['bytes_copied'] / MiB:.0f} MiB"
        )

    def skopeo(self, target: str) -> tuple[float, str]:
        argv = [
            "skopeo", "--policy", str(self.policy), "sync", "--all",
            "--src", "docker", "--dest", "docker",
            "--src-tls-verify=false", "--dest-tls-verify=false",
            f"{self.source}/{REPOSITORY}", f"{target}/{MIRROR.rsplit('/', 1)[0]}",
        ]  # fmt: skip
        seconds, _ = _timed(argv, self.skopeo_env)
        return seconds, "images only"


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return seconds, result.stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu(server: Server) -> float:
    return servers.cpu_seconds(server.pids())


def python_startup() -> float:
    """Seconds for the interpreter to import the sync CLI and exit: the floor of a warm run."""
    argv = [sys.executable, "-c", "import dockyard.cli.sync"]
    return min(_timed(argv, dict(os.environ))[0] for _ in range(3))


# --- the run -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="cold and warm runs per tool")
    parser.add_argument("--parallel", type=int, default=4, help="dockyard's defaults.parallel")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: run scripts/test-deps.sh", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="dockyard-mirror-", dir=args.tmpdir))
    started: list[Server] = []
    folders = itertools.count(1)

    def registry(name: str) -> tuple[Server, Path]:
        folder = work / f"{name}-{next(folders)}"
        server = servers.start_distribution(folder)
        started.append(server)
        return server, folder

    try:
        source, _ = registry("source")
        host = source.url.removeprefix("http://")
        t0 = time.perf_counter()
        content = asyncio.run(generate(host, args.tags))
        print(
            f"source: {args.tags} tags x {len(PLATFORMS)} platforms x 4 layers of 2 MiB "
            f"(2 base layers per platform shared by every tag), {content.referrers} referrers; "
            f"{content.blobs} blobs, {content.bytes / MiB:.0f} MiB, pushed in "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        tools = Tools(work, host, args.parallel)
        cold: dict[str, list[float]] = {"dockyard": [], "skopeo": []}
        warm: dict[str, list[float]] = {"dockyard": [], "skopeo": []}
        cpu: dict[str, list[tuple[float, float, float]]] = {}
        notes: dict[str, str] = {}

        def measured(tool: str, phase: str, target: Server, target_host: str) -> tuple[float, str]:
            """Run `tool`; CPU seconds of the tool, the source and the target registry."""
            before = (_children_cpu(), _cpu(source), _cpu(target))
            run = tools.dockyard if tool == "dockyard" else tools.skopeo
            seconds, said = run(target_host)
            after = (_children_cpu(), _cpu(source), _cpu(target))
            used = tuple(b - a for a, b in zip(before, after, strict=True))
            cpu.setdefault(f"{tool} {phase}", []).append((used[0], used[1], used[2]))
            return seconds, said

        for round_number in range(args.rounds):
            order = ("dockyard", "skopeo") if round_number % 2 == 0 else ("skopeo", "dockyard")
            for tool in order:
                target, folder = registry(f"{tool}-target")
                target_host = target.url.removeprefix("http://")
                seconds, said = measured(tool, "cold", target, target_host)
                cold[tool].append(seconds)
                check = asyncio.run(verify(host, target_host, content, tool == "dockyard"))
                notes[f"{tool} cold"] = f"{said}; {check}"
                seconds, said = measured(tool, "warm", target, target_host)
                warm[tool].append(seconds)
                notes[f"{tool} warm"] = said
                target.stop()
                started.remove(target)
                shutil.rmtree(folder, ignore_errors=True)
                print(
                    f"round {round_number + 1} {tool}: cold {cold[tool][-1]:.2f}s, "
                    f"warm {warm[tool][-1]:.2f}s",
                    flush=True,
                )
        report(args, cold, warm, cpu, notes, python_startup())
    finally:
        for server in reversed(started):
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    cold: dict[str, list[float]],
    warm: dict[str, list[float]],
    cpu: dict[str, list[tuple[float, float, float]]],
    notes: dict[str, str],
    startup: float,
) -> None:
    rows = []
    for name, runs, goal in (
        ("cold (empty target)", cold, COLD_TARGET),
        ("warm (no change)", warm, WARM_TARGET),
    ):
        mine, theirs = statistics.median(runs["dockyard"]), statistics.median(runs["skopeo"])
        ratio = mine / theirs
        verdict = "met" if ratio <= goal else "MISSED"
        rows.append(
            (name, f"{mine:.2f} s", f"{theirs:.2f} s", f"{ratio:.2f}x", f"<= {goal:.2f}x {verdict}")
        )
    header = ("", "dockyard sync once", "skopeo sync --all", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(f"median of {args.rounds} rounds; {args.tags} tags; dockyard parallel {args.parallel}")
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print()
    for key in ("dockyard cold", "skopeo cold", "dockyard warm", "skopeo warm"):
        print(f"{key}: {notes.get(key, '')}")
    print(f"python start-up (import dockyard.cli.sync): {startup:.2f} s")
    print("CPU seconds (median): tool / source registry / target registry")
    for key, used in cpu.items():
        tool, source, target = (statistics.median(u[i] for u in used) for i in range(3))
        print(f"  {key:<14} {tool:6.2f} / {source:6.2f} / {target:6.2f}")
    print(
        "runs: "
        + "; ".join(
            f"{tool} cold {' '.join(f'{s:.2f}' for s in cold[tool])}, "
            f"warm {' '.join(f'{s:.2f}' for s in warm[tool])}"
            for tool in ("dockyard", "skopeo")
        )
    )


if __name__ == "__main__":
    sys.exit(main())
