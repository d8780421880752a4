"""Dockyard against CNCF distribution on this machine: blob push/pull, manifest req/s, memory.

`make bench` runs this. Both registries run side by side on 127.0.0.1 in one temporary folder
that is removed at the end (also on Ctrl-C); every server and tool is stopped by its own PID.
See bench/README.md for what each number means and how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import aiohttp
import load
import profiles
import report
import servers
from load import MiB, Payload
from report import Options, Outcome, Result
from servers import Server, sampling

from dockyard.config import default_workers

FULL_SIZES = (1, 64, 512)
PULL_SECONDS = 2.0  # each pull round repeats whole passes over the pushed blobs this long
QUICK_SIZES = (1, 8, 64)


# --- ceilings -------------------------------------------------------------------------------


def sha256_rate(size: int) -> float:
    """MB/s of hashlib.sha256 over `size` bytes on one core."""
    data = os.urandom(size)
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return size / (time.perf_counter() - start) / 1e6


def fsync_write_rate(folder: Path, size: int) -> float:
    """MB/s of writing `size` bytes in 4 MiB pieces and fsyncing them (the disk's ceiling)."""
    piece = os.urandom(4 * MiB)
    path = folder / "fsync-probe"
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(max(1, size // len(piece))):
            os.write(fd, piece)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    path.unlink()
    return max(1, size // len(piece)) * len(piece) / seconds / 1e6


async def count_fsyncs(server: Server, http: aiohttp.ClientSession, base: Path) -> int | None:
    """fsync/fdatasync calls the server's processes make for one 1 MiB POST+PUT (strace)."""
    if shutil.which("strace") is None:
        return None
    output = base / f"strace-{server.name}.txt"
    argv = ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(output)]
    for pid in server.pids():
        argv += ["-p", str(pid)]
    tracer = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(1.0)  # attaching to every thread takes a moment
        payload = Payload(MiB)
        await load.push(http, payload, payload.blob(), "post-put")
        await asyncio.sleep(0.5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            tracer.send_signal(signal.SIGINT)  # detaches; the server runs on
        try:
            await asyncio.wait_for(tracer.wait(), 10)
        except TimeoutError:
            tracer.kill()
            await asyncio.wait_for(tracer.wait(), 10)
    if not output.exists():
        return None
    lines = output.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if ("fsync(" in line) and "resumed>" not in line)


# --- phases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _maybe_profile(options: Options, server: Server, name: str) -> Iterator[None]:
    if options.profile is None or server.name != "dockyard":
        yield
        return
    options.profile.mkdir(parents=True, exist_ok=True)
    with profiles.recording(server.pid, options.profile / f"{name}.txt"):
        yield


async def _settle(options: Options) -> None:
    """Start a phase on a quiet machine: flush dirty pages, wait (bounded) for other load."""
    await asyncio.to_thread(os.sync)  # the previous phase's writeback is not this phase's cost
    if options.quiet_wait > 0:
        await asyncio.to_thread(servers.wait_for_quiet, options.quiet_wait)


def _per_client(options: Options, size: int, clients: int) -> int:
    """Blobs per client: enough for `phase_bytes` in all, at least one each."""
    return max(1, -(-options.phase_bytes // (size * clients)))


async def blob_phases(
    options: Options,
    regs: list[Server],
    sessions: dict[str, aiohttp.ClientSession],
    single_post: dict[str, bool],
) -> list[Result]:
    results: list[Result] = []
    for size_mib in options.sizes:
        size = size_mib * MiB
        payload = Payload(size)
        for clients in options.clients:
            per_client = _per_client(options, size, clients)
            label = f"{size_mib} MiB x{clients}"
            pushed: dict[str, list[list[load.Blob]]] = {}
            methods: tuple[tuple[load.Method, str], ...] = (
                ("post-put", "push"),
                ("post", "push-post"),
            )
            for method, metric in methods:
                for server in regs:
                    if metric == "push-post" and not single_post[server.name]:
                        continue
                    await _settle(options)
                    name = f"{metric}-{size_mib}MiB-x{clients}"
                    with _maybe_profile(options, server, name), sampling(server) as usage:
                        transfer = await load.push_phase(
                            sessions[server.name], payload, clients, per_client, method
                        )
                    print(
                        f"  {metric:9s} {label:14s} {server.name:12s} "
                        f"{transfer.mb_per_s:8.0f} MB/s  peak RSS {usage.peak_rss / MiB:.0f} MiB",
                        flush=True,
                    )
                    results.append(_blob_result(metric, server, transfer, usage, size, clients))
                    if metric == "push":
                        pushed[server.name] = transfer.blobs
            results += await _pull_rounds(options, regs, pushed, size, clients)
        del payload
    return results


async def _pull_rounds(
    options: Options,
    regs: list[Server],
    pushed: dict[str, list[list[load.Blob]]],
    size: int,
    clients: int,
) -> list[Result]:
    """Pull what each server was pushed `pull_rounds` times, the servers' order alternating
    from round to round (a pull phase lasts well under a second: one run is mostly noise);
    each server's median round is its result."""
    label = f"{size // MiB} MiB x{clients}"
    rounds: dict[str, list[tuple[load.Transfer, servers.Usage]]] = {s.name: [] for s in regs}
    for round_number in range(options.pull_rounds):
        for server in regs if round_number % 2 == 0 else regs[::-1]:
            await _settle(options)
            name = f"pull-{size // MiB}MiB-x{clients}-{round_number + 1}"
            with _maybe_profile(options, server, name), sampling(server) as usage:
                transfer = await load.pull_phase(server, pushed[server.name], PULL_SECONDS)
            print(
                f"  {'pull':9s} {label:14s} {server.name:12s} "
                f"{transfer.mb_per_s:8.0f} MB/s  peak RSS {usage.peak_rss / MiB:.0f} MiB"
                f"  (round {round_number + 1})",
                flush=True,
            )
            rounds[server.name].append((transfer, usage))
    results = []
    for server in regs:
        ranked = sorted(rounds[server.name], key=lambda run: run[0].mb_per_s)
        transfer, usage = ranked[len(ranked) // 2]
        results.append(_blob_result("pull", server, transfer, usage, size, clients))
    return results


def _blob_result(
    metric: str,
    server: Server,
    transfer: load.Transfer,
    usage: servers.Usage,
    size: int,
    clients: int,
) -> Result:
    return Result(
        metric,
        server.name,
        transfer.mb_per_s,
        "MB/s",
        transfer.seconds,
        usage.cpu,
        transfer.client_cpu,
        usage.peak_rss,
        max(0.0, usage.machine_busy - usage.cpu - transfer.client_cpu),
        size,
        clients,
        start_rss=usage.start_rss,
    )


async def manifest_phases(
    options: Options, regs: list[Server], sessions: dict[str, aiohttp.ClientSession]
) -> list[Result]:
    results: list[Result] = []
    paths = {server.name: await load.push_image(sessions[server.name]) for server in regs}
    seconds, connections = options.wrk_seconds, options.connections
    threads = max(1, min(os.cpu_count() or 1, connections))
    runs = (
        ("manifest GET (wrk)", "wrk", False),
        ("manifest GET (ab)", "ab", False),
        ("manifest HEAD (ab)", "ab", True),
        # no database behind it: the cost of HTTP, routing and (for Dockyard) Basic auth alone
        ("GET /v2/ (wrk)", "wrk", False),
    )
    for metric, tool, head in runs:
        for server in regs:
            path = "/v2/" if metric.startswith("GET /v2/") else paths[server.name]
            # one request first: the Basic credential cache is warm when the clock starts
            await load.warm_up(sessions[server.name], path)
            await _settle(options)
            name = "-".join("".join(c if c.isalnum() else " " for c in metric).split())
            cpu_before = load.client_cpu()
            with _maybe_profile(options, server, name), sampling(server) as usage:
                if tool == "wrk":
                    rate = await load.wrk(server, path, seconds, connections, threads)
                else:
                    rate = await load.ab(server, path, seconds, connections, head)
            client = load.client_cpu() - cpu_before
            print(
                f"  {metric:20s} {server.name:12s} {rate.per_second:8.0f} req/s  "
                f"errors {rate.errors}  peak RSS {usage.peak_rss / MiB:.0f} MiB",
                flush=True,
            )
            results.append(
                Result(
                    metric,
                    server.name,
                    rate.per_second,
                    "req/s",
                    rate.seconds,
                    usage.cpu,
                    client,
                    usage.peak_rss,
                    max(0.0, usage.machine_busy - usage.cpu - client),
                    clients=connections,
                    errors=rate.errors,
                    latency_p50_ms=rate.latency_p50_ms,
                    latency_p99_ms=rate.latency_p99_ms,
                )
            )
    return results


async def run_all(options: Options, regs: list[Server], base: Path) -> Outcome:
    connections = max([*options.clients, 1])
    sessions = {server.name: load.session(server, connections) for server in regs}
    try:
        fsyncs: dict[str, int | None] = {}
        single_post: dict[str, bool] = {}
        idle_rss = {server.name: servers.rss_bytes(server.pids()) for server in regs}
        idle_pss = {server.name: servers.pss_bytes(server.pids()) for server in regs}
        for server in regs:
            fsyncs[server.name] = await count_fsyncs(server, sessions[server.name], base)
            single_post[server.name] = await load.supports_single_post(sessions[server.name])
        print(f"fsync calls per 1 MiB push (strace): {fsyncs}", flush=True)
        print(f"single-request POST ?digest= supported: {single_post}", flush=True)
        results = await blob_phases(options, regs, sessions, single_post)
        results += await manifest_phases(options, regs, sessions)
    finally:
        for http in sessions.values():
            await http.close()
    return Outcome(fsyncs, single_post, idle_rss, idle_pss, results)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, short manifest runs")
    parser.add_argument("--sizes", help="blob sizes in MiB, comma-separated (default 1,64,512)")
    parser.add_argument("--clients", default="1,8", help="concurrent clients (default 1,8)")
    parser.add_argument("--seconds", type=float, help="each manifest run (default 10, quick 3)")
    parser.add_argument("--connections", type=int, default=32, help="manifest connections")
    parser.add_argument("--dockyard-workers", type=int, help="dockyard serve --workers")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument(
        "--pull-rounds", type=int, default=3, help="pull phases per server (median reported)"
    )
    parser.add_argument(
        "--no-blob-sender",
        action="store_true",
        help="Dockyard without blob_listen: big blobs sent by granian itself (pathsend)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy profiles of Dockyard per phase")
    parser.add_argument("--tmpdir", type=Path, help="where the servers' data goes (a real disk)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each phase wait up to this many seconds for other load to stop (0: off)",
    )
    parser.add_argument(
        "--dockyard-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for dockyard serve (e.g. DOCKYARD_BASIC_CACHE_SECONDS=3600)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    options = Options(
        sizes=sizes or list(QUICK_SIZES if args.quick else FULL_SIZES),
        clients=[int(c) for c in args.clients.split(",")],
        phase_bytes=(128 if args.quick else 512) * MiB,
        wrk_seconds=args.seconds or (3.0 if args.quick else 10.0),
        connections=args.connections,
        workers=args.dockyard_workers,
        profile=args.profile,
        tmpdir=args.tmpdir,
        quiet_wait=args.quiet_wait,
        dockyard_env=dict(item.split("=", 1) for item in args.dockyard_env),
        pull_rounds=max(1, args.pull_rounds),
        blob_sender=not args.no_blob_sender,
    )
    if any(size < 1 for size in options.sizes) or any(c < 1 for c in options.clients):
        parser.error("sizes and clients must be positive integers")
    if any("=" not in item for item in args.dockyard_env):
        parser.error("--dockyard-env takes KEY=VALUE")
    return options, args.json


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind through every cleanup, as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_args(argv)
    for tool in ("wrk", "ab", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: run scripts/test-deps.sh", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    with contextlib.ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=options.tmpdir))
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        hashed = (64 if options.phase_bytes < 512 * MiB else 256) * MiB
        if options.quiet_wait > 0:
            servers.wait_for_quiet(options.quiet_wait)
        ceilings = {"sha256": sha256_rate(hashed), "fsync_write": fsync_write_rate(base, hashed)}
        print(
            f"sha256 {ceilings['sha256']:.0f} MB/s on one core; disk write+fsync "
            f"{ceilings['fsync_write']:.0f} MB/s ({base})",
            flush=True,
        )
        regs: list[Server] = []
        env = dict(options.dockyard_env)
        if options.blob_sender:
            env.setdefault("DOCKYARD_BLOB_LISTEN", f"{servers.HOST}:{servers.free_port()}")
        dockyard = servers.start_dockyard(base / "dockyard", options.workers, env)
        stack.callback(dockyard.stop)
        regs.append(dockyard)
        distribution = servers.start_distribution(base / "distribution")
        stack.callback(distribution.stop)
        regs.append(distribution)
        print("servers: " + ", ".join(f"{s.name} {s.url} pids {s.pids()}" for s in regs))
        workers = options.workers or default_workers()
        print(
            f"dockyard serve --workers {workers} ({'given' if options.workers else 'its default'}"
            f"); distribution runs on all {os.cpu_count()} cores"
        )
        try:
            outcome = asyncio.run(run_all(options, regs, base))
        except Exception:
            for server in regs:  # the folder with the logs goes away with the servers
                print(f"--- {server.name} log (tail) ---\n{servers.log_tail(server.log, 60)}")
            raise
    results = outcome.results
    print()
    print(report.render(report.table(outcome, ceilings)))
    print()
    print(report.details(results))
    print()
    print(report.notes(outcome, options))
    if options.profile is not None:
        for path in sorted(options.profile.glob("*.txt")):
            print()
            print(profiles.summarize(path))
    if json_path is not None:
        document = {
            "machine": {"cpus": os.cpu_count(), **ceilings},
            "source": report.source_version(),
            "options": {k: str(v) for k, v in dataclasses.asdict(options).items()},
            "fsyncs_per_push": outcome.fsyncs_per_push,
            "single_post": outcome.single_post,
            "idle_rss": outcome.idle_rss,
            "idle_pss": outcome.idle_pss,
            "results": [dataclasses.asdict(r) for r in results],
        }
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {json_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary folder removed", file=sys.stderr)
        sys.exit(130)
