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
  included. Dockyard costs a tag listing and a HEAD on each side per tag plus the referrer
  re-check; skopeo reads and re-pushes every manifest;
- server cycle (Dockyard only): what `sync server` (or a hub mirror) pays per cycle when
  nothing changed: one syncer in this process, warmed by a first run, runs the config again
  `--cycles` times over the warm target; wall time and this process's CPU per cycle.

With `--crane PATH`, `crane copy --all-tags` (go-containerregistry) runs too, images only
like skopeo (crane is not packaged here: bring a binary). Rounds alternate the order of the
tools. Goals (issue 11): cold wall <= 0.45x skopeo, Dockyard's own CPU on a cold run <= 1.5 s,
warm one-shot <= 0.4x skopeo's, a server cycle <= 0.25x skopeo's warm one-shot.

`.venv/bin/python bench/mirror.py [--tags 30] [--rounds 3] [--cycles 5] [--crane PATH]
[--keep]`. Not part of `make test`. Needs `docker-registry` and `skopeo`
(`scripts/test-deps.sh`).
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
sys.path.insert(0, str(HERE))

import servers  # noqa: E402
from mirror_source import (  # noqa: E402
    ATTESTATIONS,
    MIRROR,
    PLATFORMS,
    REPOSITORY,
    MiB,
    generate,
    verify,
)
from servers import Server  # noqa: E402

from dockyard.client.registry import RegistryClient  # noqa: E402

COLD_GOAL = 0.45  # x skopeo's wall
WARM_GOAL = 0.40  # x skopeo's warm one-shot
CYCLE_GOAL = 0.25  # x skopeo's warm one-shot
CPU_GOAL = 1.5  # seconds of Dockyard's own CPU on a cold run
TOOL_TIMEOUT = 900.0
TOOLS = ("dockyard", "skopeo", "crane")


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
    crane_binary: str | None = None

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

    def crane(self, target: str) -> tuple[float, str]:
        assert self.crane_binary is not None
        argv = [
            self.crane_binary, "copy", "--all-tags", "--insecure",
            f"{self.source}/{REPOSITORY}", f"{target}/{MIRROR}",
        ]  # fmt: skip
        seconds, _ = _timed(argv, {**self.skopeo_env, "DOCKER_CONFIG": str(self.work / "home")})
        return seconds, "images only"

    def run(self, tool: str, target: str) -> tuple[float, str]:
        """Run `tool` once against `target`: its wall time and what it said it did."""
        runner = {"dockyard": self.dockyard, "skopeo": self.skopeo, "crane": self.crane}[tool]
        return runner(target)

    def server_cycles(self, target: str, cycles: int) -> tuple[list[float], list[float], str]:
        """`sync server`'s cost per cycle when nothing changed: one syncer in this process (a
        warm process with warm connections) runs the config once to warm up, then `cycles`
        times; the wall time and this process's CPU of each."""
        from dockyard.cli import loop
        from dockyard.client.settings import ClientConfig
        from dockyard.sync.client import sync_client
        from dockyard.sync.config import load_sync_config
        from dockyard.sync.engine import Syncer

        config = load_sync_config(self.config(target))
        walls: list[float] = []
        cpus: list[float] = []

        async def cycle() -> str:
            client = sync_client(config, ClientConfig(), docker={})
            syncer = Syncer(config, RegistryClient(client))
            try:
                said, rss = "", 0
                for number in range(cycles + 1):
                    if number == 1:
                        rss = servers.rss_bytes([os.getpid()])
                    wall, cpu = time.perf_counter(), _self_cpu()
                    report = await syncer.run()
                    if number:
                        walls.append(time.perf_counter() - wall)
                        cpus.append(_self_cpu() - cpu)
                    totals = report.totals()
                    if report.failed or any(totals[k] for k in ("add", "update")):
                        raise RuntimeError(f"a server cycle changed something: {report.dumps()}")
                    said = f"{totals['unchanged']} unchanged"
                grown = (servers.rss_bytes([os.getpid()]) - rss) / MiB
                return f"{said}; this process's RSS grew {grown:+.1f} MiB over the cycles"
            finally:
                await syncer.close()

        return walls, cpus, loop.run(cycle())


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


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    parser.add_argument("--cycles", type=int, default=5, help="timed server cycles per round")
    parser.add_argument("--parallel", type=int, default=4, help="dockyard's defaults.parallel")
    parser.add_argument("--crane", default=None, help="a crane binary: run it too")
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    for tool in ("docker-registry", "skopeo", *([args.crane] if args.crane else [])):
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
        tools = Tools(work, host, args.parallel, args.crane)
        names = [t for t in TOOLS if t != "crane" or args.crane]
        results = Results(names)

        def measured(tool: str, phase: str, target: Server, target_host: str) -> float:
            """Run `tool`; CPU seconds of the tool, the source and the target registry."""
            os.sync()  # the previous phase's writes are not flushed during this one
            before = (_children_cpu(), _cpu(source), _cpu(target))
            seconds, said = tools.run(tool, target_host)
            after = (_children_cpu(), _cpu(source), _cpu(target))
            used = tuple(b - a for a, b in zip(before, after, strict=True))
            results.cpu.setdefault(f"{tool} {phase}", []).append((used[0], used[1], used[2]))
            results.notes[f"{tool} {phase}"] = said
            results.wall[phase][tool].append(seconds)
            return seconds

        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for tool in names[shift:] + names[:shift]:
                target, folder = registry(f"{tool}-target")
                target_host = target.url.removeprefix("http://")
                cold = measured(tool, "cold", target, target_host)
                check = asyncio.run(verify(host, target_host, content, tool == "dockyard"))
                results.notes[f"{tool} cold"] += f"; {check}"
                warm = measured(tool, "warm", target, target_host)
                line = f"round {round_number + 1} {tool}: cold {cold:.2f}s, warm {warm:.2f}s"
                if tool == "dockyard":
                    os.sync()
                    before = (_cpu(source), _cpu(target))
                    walls, cpus, said = tools.server_cycles(target_host, args.cycles)
                    after = (_cpu(source), _cpu(target))
                    results.cycles += walls
                    results.cycle_cpu += cpus
                    results.cpu.setdefault("dockyard cycle", []).append(
                        (
                            statistics.median(cpus),
                            (after[0] - before[0]) / (args.cycles + 1),
                            (after[1] - before[1]) / (args.cycles + 1),
                        )
                    )
                    results.notes["dockyard cycle"] = said
                    line += f", server cycle {statistics.median(walls) * 1000:.0f} ms"
                target.stop()
                started.remove(target)
                shutil.rmtree(folder, ignore_errors=True)
                print(line, flush=True)
        results.report(args, python_startup())
    finally:
        for server in reversed(started):
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


@dataclass
class Results:
    """Wall times by phase and tool, CPU by `tool phase`, what each tool said."""

    tools: list[str]
    wall: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    cycles: list[float] = field(default_factory=list)
    cycle_cpu: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.wall = {phase: {t: [] for t in self.tools} for phase in ("cold", "warm")}

    def report(self, args: argparse.Namespace, startup: float) -> None:
        median = statistics.median
        skopeo_cold, skopeo_warm = (
            median(self.wall["cold"]["skopeo"]),
            median(self.wall["warm"]["skopeo"]),
        )
        print()
        print(
            f"median of {args.rounds} rounds ({args.cycles} server cycles each); {args.tags} "
            f"tags; dockyard parallel {args.parallel}"
        )
        header = ("", *(f"{t} s" for t in self.tools), "dockyard / skopeo", "goal")
        rows = [header]
        for phase, goal in (("cold", COLD_GOAL), ("warm", WARM_GOAL)):
            walls = [median(self.wall[phase][t]) for t in self.tools]
            ratio = walls[0] / (skopeo_cold if phase == "cold" else skopeo_warm)
            rows.append(
                (
                    f"{phase} one-shot",
                    *(f"{w:.2f}" for w in walls),
                    f"{ratio:.2f}x",
                    f"<= {goal:.2f}x {'met' if ratio <= goal else 'MISSED'}",
                )
            )
        cycle = median(self.cycles)
        ratio = cycle / skopeo_warm
        rows.append(
            (
                "server cycle (warm)",
                f"{cycle:.3f}",
                *("" for _ in self.tools[1:]),
                f"{ratio:.2f}x of warm",
                f"<= {CYCLE_GOAL:.2f}x {'met' if ratio <= CYCLE_GOAL else 'MISSED'}",
            )
        )
        tool_cpu = median(u[0] for u in self.cpu["dockyard cold"])
        rows.append(
            (
                "dockyard CPU, cold",
                f"{tool_cpu:.2f}",
                *("" for _ in self.tools[1:]),
                "",
                f"<= {CPU_GOAL:.1f} s {'met' if tool_cpu <= CPU_GOAL else 'MISSED'}",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for row in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        print()
        for key, said in self.notes.items():
            print(f"{key}: {said}")
        print(f"python start-up (import dockyard.cli.sync): {startup:.2f} s")
        print(
            f"server cycle: {cycle * 1000:.0f} ms wall, "
            f"{median(self.cycle_cpu) * 1000:.0f} ms of this process's CPU (medians)"
        )
        print("CPU seconds (median): tool / source registry / target registry")
        for key, used in sorted(self.cpu.items()):
            tool, source, target = (median(u[i] for u in used) for i in range(3))
            print(f"  {key:<15} {tool:6.2f} / {source:6.2f} / {target:6.2f}")
        for phase, by_tool in self.wall.items():
            runs = "; ".join(f"{t} {' '.join(f'{s:.2f}' for s in w)}" for t, w in by_tool.items())
            print(f"runs, {phase}: {runs}")
        print(f"server cycles: {' '.join(f'{s * 1000:.0f}' for s in self.cycles)} ms")


if __name__ == "__main__":
    sys.exit(main())
