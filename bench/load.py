"""The load: blob pushes with aiohttp, pulls with curl, manifest requests with wrk and ab.

Blobs are incompressible: one `os.urandom` buffer per size, shared by every blob of that size,
each blob made distinct by a random 32-byte tail. The digest of the shared part is computed
once; each blob's digest is a copy of that hash state plus its tail, so making a blob costs
nothing and the client spends its CPU on HTTP, not on hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import resource
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
from servers import Server
from yarl import URL

MiB = 1024 * 1024
TAIL = 32
CHUNK = 1 * MiB
REPOSITORY = "bench/blobs"
Method = Literal["post-put", "post"]


@dataclass
class Blob:
    digest: str
    size: int
    tail: bytes


class Payload:
    """`size` bytes of random data: a shared body and per-blob random tails."""

    def __init__(self, size: int) -> None:
        if size <= TAIL:
            raise ValueError(f"blobs must be larger than {TAIL} bytes")
        self.size = size
        self.body = memoryview(os.urandom(size - TAIL))
        self._hash = hashlib.sha256(self.body)

    def blob(self) -> Blob:
        tail = os.urandom(TAIL)
        hasher = self._hash.copy()
        hasher.update(tail)
        return Blob(f"sha256:{hasher.hexdigest()}", self.size, tail)

    async def stream(self, blob: Blob) -> AsyncIterator[bytes | memoryview]:
        for start in range(0, len(self.body), CHUNK):
            yield self.body[start : start + CHUNK]
        yield blob.tail


def session(server: Server, connections: int) -> aiohttp.ClientSession:
    """One session per server; no proxies, no decompression, big read buffers."""
    connector = aiohttp.TCPConnector(limit=max(connections, 1), force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=300)
    return aiohttp.ClientSession(
        server.url,
        connector=connector,
        timeout=timeout,
        headers=server.headers,
        auto_decompress=False,
        read_bufsize=4 * MiB,
        trust_env=False,
    )


class UnexpectedResponse(RuntimeError):
    pass


async def _expect(response: aiohttp.ClientResponse, *statuses: int) -> None:
    if response.status not in statuses:
        text = (await response.read())[:500].decode(errors="replace")
        raise UnexpectedResponse(
            f"{response.method} {response.url}: {response.status}, expected {statuses}: {text}"
        )


def _with_digest(location: str, digest: str) -> URL:
    """The upload `Location` (absolute, or relative to the session's base URL) + `digest=`."""
    # distribution's Location carries an opaque `_state` query: keep it byte for byte
    separator = "&" if "?" in location else "?"
    return URL(f"{location}{separator}digest={digest}", encoded=True)


async def push(http: aiohttp.ClientSession, payload: Payload, blob: Blob, method: Method) -> None:
    """Push one blob: POST then PUT with the body (`post-put`), or one POST (`post`)."""
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
    uploads = f"/v2/{REPOSITORY}/blobs/uploads/"
    if method == "post":
        async with http.post(
            uploads, params={"digest": blob.digest}, data=payload.stream(blob), headers=headers
        ) as response:
            await _expect(response, 201)
        return
    async with http.post(uploads, headers={"Content-Length": "0"}) as response:
        await _expect(response, 202)
        location = response.headers["Location"]
    async with http.put(
        _with_digest(location, blob.digest), data=payload.stream(blob), headers=headers
    ) as response:
        await _expect(response, 201)


CURL = "curl"


def _curl_config(server: Server, mine: Sequence[Blob]) -> bytes:
    """A curl `--config` that GETs each blob into /dev/null over one kept-alive connection."""
    lines = [
        "silent",
        "show-error",
        "fail",
        "location",
        'write-out = "%{http_code} %{size_download}\\n"',
    ]
    if server.authorization:
        lines.append(f'header = "Authorization: {server.authorization}"')
    for blob in mine:
        lines += [
            f'url = "{server.url}/v2/{REPOSITORY}/blobs/{blob.digest}"',
            'output = "/dev/null"',
        ]
    return ("\n".join(lines) + "\n").encode()


async def _curl_pass(server: Server, mine: Sequence[Blob]) -> int:
    """One curl process pulls `mine` in order; return the bytes received (each checked)."""
    process = await asyncio.create_subprocess_exec(
        CURL,
        "--config",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(_curl_config(server, mine))
    if process.returncode != 0:
        raise UnexpectedResponse(f"curl exited {process.returncode}: {err.decode()[:500]}")
    received = 0
    for blob, line in zip(mine, out.decode().splitlines(), strict=True):
        status, size = line.split()
        if status != "200" or int(size) != blob.size:
            raise UnexpectedResponse(f"pulled {blob.digest}: HTTP {status}, {size} bytes")
        received += int(size)
    return received


async def pull_phase(server: Server, blobs: list[list[Blob]], min_seconds: float) -> Transfer:
    """Every client pulls its blobs with curl; all pull them again, whole passes, until
    `min_seconds` have gone by (a single pass of big blobs from the page cache lasts a fraction
    of one). Each client is one curl process per pass, reading into /dev/null.

    Not aiohttp: one Python process reading for every client is itself the limit for big
    blobs. It uses a whole core at about 2.7 GB/s, and then the ratio says more about where the
    kernel charges loopback TCP work than about the server: a bare sendfile server measured
    0.90-1.15x distribution with it and 1.5-1.7x with curl. curl costs little per byte and its
    processes run side by side, as real pullers (docker, skopeo) do."""
    cpu, start = client_cpu(), time.perf_counter()
    received = 0
    while True:
        received += sum(await asyncio.gather(*(_curl_pass(server, mine) for mine in blobs)))
        if time.perf_counter() - start >= min_seconds:
            break
    seconds = time.perf_counter() - start
    return Transfer(received, seconds, client_cpu() - cpu, blobs)


async def supports_single_post(http: aiohttp.ClientSession) -> bool:
    """Whether `POST .../uploads/?digest=` with a body completes an upload (201)."""
    payload = Payload(4096)
    blob = payload.blob()
    try:
        await push(http, payload, blob, "post")
    except UnexpectedResponse:
        return False
    return True


@dataclass
class Transfer:
    """One timed phase: `clients` clients each moving `per_client` blobs of `size` bytes."""

    bytes: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    blobs: list[list[Blob]] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


def client_cpu() -> float:
    """CPU time of this process and of the load tools it ran (wrk, ab) so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    tools = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime


async def push_phase(
    http: aiohttp.ClientSession, payload: Payload, clients: int, per_client: int, method: Method
) -> Transfer:
    blobs = [[payload.blob() for _ in range(per_client)] for _ in range(clients)]

    async def client(mine: list[Blob]) -> None:
        for blob in mine:
            await push(http, payload, blob, method)

    cpu, start = client_cpu(), time.perf_counter()
    await asyncio.gather(*(client(mine) for mine in blobs))
    seconds = time.perf_counter() - start
    total = clients * per_client * payload.size
    return Transfer(total, seconds, client_cpu() - cpu, blobs)


# --- manifests ------------------------------------------------------------------------------

MANIFEST_REPOSITORY = "bench/app"
MANIFEST_TAG = "bench"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


async def push_image(http: aiohttp.ClientSession) -> str:
    """A small image (config + one layer + manifest) tagged `bench`; return its path."""
    blobs = []
    for data, media_type in (
        (
            b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
            "application/vnd.oci.image.config.v1+json",
        ),
        (os.urandom(4096), "application/vnd.oci.image.layer.v1.tar"),
    ):
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        async with http.post(f"/v2/{MANIFEST_REPOSITORY}/blobs/uploads/") as response:
            await _expect(response, 202)
            location = response.headers["Location"]
        async with http.put(
            _with_digest(location, digest),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        ) as response:
            await _expect(response, 201)
        blobs.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": blobs[0],
        "layers": blobs[1:],
    }
    path = f"/v2/{MANIFEST_REPOSITORY}/manifests/{MANIFEST_TAG}"
    async with http.put(
        path, data=json.dumps(manifest).encode(), headers={"Content-Type": OCI_MANIFEST}
    ) as response:
        await _expect(response, 201)
    async with http.get(path, headers={"Accept": OCI_MANIFEST}) as response:
        await _expect(response, 200)
    return path


async def warm_up(http: aiohttp.ClientSession, path: str) -> None:
    async with http.get(path, headers={"Accept": OCI_MANIFEST}) as response:
        await _expect(response, 200)
        await response.read()


@dataclass
class Rate:
    tool: str
    requests: int
    seconds: float
    errors: int
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _run_tool(argv: Sequence[str], limit: float) -> str:
    """Run a load tool; kill it (by its own pid) if it overruns or we are cancelled."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{text}")
    return text


WRK_SCRIPT = Path(__file__).with_name("manifest.lua")


async def wrk(server: Server, path: str, seconds: float, connections: int, threads: int) -> Rate:
    """`wrk` GET: `connections` keep-alive connections for `seconds`."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s"]
    argv += ["--timeout", "10s", "-s", str(WRK_SCRIPT), "-H", f"Accept: {OCI_MANIFEST}"]
    if server.authorization:
        argv += ["-H", f"Authorization: {server.authorization}"]
    text = await _run_tool([*argv, server.url + path], limit=seconds + 60)
    match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{text}")
    summary = json.loads(match.group(1))
    errors = sum(summary["errors"].values())
    return Rate(
        "wrk",
        summary["requests"],
        summary["duration_us"] / 1e6,
        errors,
        summary["p50_us"] / 1000,
        summary["p99_us"] / 1000,
    )


async def ab(server: Server, path: str, seconds: float, connections: int, head: bool) -> Rate:
    """ApacheBench with keep-alive; `-i` sends HEAD (wrk 4.1 cannot parse HEAD responses)."""
    limit = str(max(1, round(seconds)))  # ab takes whole seconds
    argv = ["ab", "-q", "-k", "-c", str(connections), "-t", limit, "-n", "100000000"]
    argv += ["-s", "30", "-H", f"Accept: {OCI_MANIFEST}"]
    if head:
        argv.append("-i")
    if server.authorization:
        argv += ["-H", f"Authorization: {server.authorization}"]
    text = await _run_tool([*argv, server.url + path], limit=seconds + 60)

    def number(label: str) -> float:
        found = re.search(rf"^{label}:\s+([\d.]+)", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    complete = int(number("Complete requests"))
    if complete == 0:
        raise RuntimeError(f"ab completed no requests:\n{text}")
    keep_alive = int(number("Keep-Alive requests"))
    errors = int(number("Failed requests") + number("Non-2xx responses"))
    if keep_alive < complete * 0.9:
        errors += complete - keep_alive  # a closed connection per request is not comparable
    return Rate("ab", complete, number("Time taken for tests"), errors)
