"""The pull-through cache over real sockets: `dockyard serve` as a registry mirror in front of
CNCF distribution, pulled through by podman and skopeo.

Upstream is reached through a small counting reverse proxy in this process, so the tests see
exactly what Dockyard asked upstream for. Blocking commands (podman, skopeo, starting and
stopping servers) run in threads so that the proxy keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from support.ocilayout import Image, Layout, build_image, digest_of, random_layer
from support.peers import (
    HOST,
    CommandError,
    DockerRegistry,
    DockerRegistryFactory,
    DockyardServer,
    DockyardServerFactory,
    PodmanFactory,
    Skopeo,
)

pytestmark = pytest.mark.peers
T = TypeVar("T")
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def blocking(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call in a thread: the counting proxy lives on this event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


@dataclass
class CountingProxy:
    """A reverse proxy on 127.0.0.1 to a registry, recording `(method, path, status)`."""

    upstream: str
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        data = await request.read()
        try:
            async with (
                aiohttp.ClientSession(auto_decompress=False) as session,
                session.request(
                    request.method,
                    self.upstream + request.path_qs,
                    headers=headers,
                    data=data or None,
                    allow_redirects=False,
                ) as answer,
            ):
                body = await answer.read()
                status, out = answer.status, dict(answer.headers)
        except aiohttp.ClientConnectionError:
            self.seen.append((request.method, request.path, 502))
            return web.Response(status=502, text="upstream registry is down")
        self.seen.append((request.method, request.path, status))
        for hop in ("Transfer-Encoding", "Connection", "Content-Length"):
            out.pop(hop, None)
        response = web.StreamResponse(status=status, headers=out)
        response.content_length = int(answer.headers.get("Content-Length", len(body)))
        await response.prepare(request)
        if request.method != "HEAD":
            await response.write(body)
        await response.write_eof()
        return response

    def count(self, method: str, part: str) -> int:
        return sum(1 for m, path, _ in self.seen if m == method and part in path)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def start_proxy(upstream: str) -> CountingProxy:
    proxy = CountingProxy(upstream)
    app = web.Application(client_max_size=256 << 20)
    app.router.add_route("*", "/{path:.*}", proxy.handle)
    proxy.runner = web.AppRunner(app, handle_signals=False)
    await proxy.runner.setup()
    site = web.TCPSite(proxy.runner, HOST, 0)
    await site.start()
    proxy.url = f"http://{HOST}:{proxy.runner.addresses[0][1]}"
    return proxy


@pytest_asyncio.fixture
async def counted(docker_registry: DockerRegistry) -> AsyncIterator[CountingProxy]:
    """The counting proxy in front of a docker-registry without auth."""
    proxy = await start_proxy(docker_registry.url)
    try:
        yield proxy
    finally:
        await proxy.stop()


def image(seed: str) -> Image:
    """A small image with a 256 KiB random layer and a file naming `seed`."""
    return build_image({"etc/seed": seed + "\n"}, layers=[random_layer(256 * 1024, seed)])


def push_upstream(
    skopeo: Skopeo, tmp: Path, registry: DockerRegistry, ref: str, img: Image
) -> None:
    """Put `img` at `registry`/`ref` (`repo:tag`), from an OCI layout."""
    layout = Layout(tmp / f"layout-{img.digest[7:19]}")
    layout.put_image(img, "t")
    skopeo.copy(layout.ref("t"), f"docker://{registry.host}/{ref}", dest_creds=registry.creds)


def mirror_config(tmp: Path, **proxy: Any) -> list[str]:
    """`dockyard serve` arguments for a config file with one proxy."""
    path = tmp / "dockyard.yaml"
    path.write_text(json.dumps({"proxies": [proxy], "run_workers": False}))  # JSON is YAML
    return ["--config", str(path)]


def http(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with _no_proxy.open(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def digest_via(skopeo: Skopeo, ref: str, creds: str | None = None) -> str:
    return digest_of(skopeo.inspect_raw(f"docker://{ref}", creds=creds))


# --- tests -----------------------------------------------------------------------------------


async def test_podman_pulls_through_a_mirror_that_outlives_its_upstream(
    tmp_path: Path,
    docker_registry: DockerRegistry,
    counted: CountingProxy,
    dockyard_server_factory: DockyardServerFactory,
    podman_factory: PodmanFactory,
    skopeo: Skopeo,
) -> None:
    img = image("demo v1")
    await blocking(push_upstream, skopeo, tmp_path, docker_registry, "library/demo:v1", img)
    args = mirror_config(tmp_path, url=counted.url, ttl_seconds=1)
    server: DockyardServer = await blocking(dockyard_server_factory, args=args)
    ref = f"{server.host}/library/demo:v1"

    # anonymous pulls, as a Docker daemon with "registry-mirrors" makes them
    first = podman_factory()
    await blocking(first.pull, ref)
    assert await blocking(first.image_id, ref) == img.config.digest.removeprefix("sha256:")
    assert await blocking(digest_via, skopeo, ref) == img.digest
    second = podman_factory()
    await asyncio.sleep(1.2)  # past the TTL: the tag is checked (HEAD), nothing is fetched again
    await blocking(second.pull, ref)
    for blob in img.blobs():
        assert counted.count("GET", f"/blobs/{blob.digest}") == 1, blob.digest
    assert counted.count("GET", "/v2/library/demo/manifests/") == 1
    assert counted.count("HEAD", "/v2/library/demo/manifests/v1") >= 1

    # pushes: refused into the cache, a new local repository is fine
    pusher = podman_factory()
    await blocking(pusher.login, server.host, "admin", server.admin_password)
    await blocking(pusher.pull, ref)
    await blocking(pusher.tag, ref, f"{server.host}/library/demo:mine", f"{server.host}/team/app:1")
    with pytest.raises(CommandError) as refused:
        await blocking(pusher.push, f"{server.host}/library/demo:mine")
    assert "read-only cache" in refused.value.stderr
    await blocking(pusher.push, f"{server.host}/team/app:1")

    # upstream goes away: what is cached is still served, the rest is 503
    await blocking(docker_registry.stop)
    await counted.stop()
    await asyncio.sleep(1.2)  # the tag is stale again, and upstream cannot be asked
    third = podman_factory()
    await blocking(third.pull, ref)
    assert await blocking(third.image_id, ref) == img.config.digest.removeprefix("sha256:")
    status, body = await blocking(http, f"{server.url}/v2/library/other/manifests/v1")
    assert status == 503
    assert json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    assert "serving the cached library/demo:v1" in server.log.read_text()


async def test_a_moved_tag_is_seen_after_the_ttl_and_not_before(
    tmp_path: Path,
    docker_registry: DockerRegistry,
    counted: CountingProxy,
    dockyard_server_factory: DockyardServerFactory,
    skopeo: Skopeo,
) -> None:
    ttl = 8.0
    old, new = image("moving v1"), image("moving v2")
    await blocking(push_upstream, skopeo, tmp_path, docker_registry, "library/moving:v1", old)
    args = mirror_config(tmp_path, url=counted.url, ttl_seconds=ttl)
    server: DockyardServer = await blocking(dockyard_server_factory, args=args)
    ref = f"{server.host}/library/moving:v1"
    fetched = time.monotonic()
    assert await blocking(digest_via, skopeo, ref) == old.digest
    await blocking(push_upstream, skopeo, tmp_path, docker_registry, "library/moving:v1", new)
    assert await blocking(digest_via, skopeo, f"{docker_registry.host}/library/moving:v1") == (
        new.digest
    )
    seen = await blocking(digest_via, skopeo, ref)
    assert time.monotonic() - fetched < ttl, "too slow to observe the TTL; the check is void"
    assert seen == old.digest
    await asyncio.sleep(max(0.0, fetched + ttl + 0.5 - time.monotonic()))
    assert await blocking(digest_via, skopeo, ref) == new.digest
    # the old image is still there by digest
    assert await blocking(digest_via, skopeo, f"{server.host}/library/moving@{old.digest}") == (
        old.digest
    )


async def test_a_namespace_pulls_through_an_upstream_with_credentials(
    tmp_path: Path,
    docker_registry_factory: DockerRegistryFactory,
    dockyard_server_factory: DockyardServerFactory,
    skopeo: Skopeo,
) -> None:
    registry: DockerRegistry = await blocking(docker_registry_factory, users={"bot": "bot-pw"})
    img = image("private v1")
    await blocking(push_upstream, skopeo, tmp_path, registry, "library/private:v1", img)
    args = mirror_config(
        tmp_path,
        namespace="dist",
        url=registry.url,
        username="bot",
        password="bot-pw",
        visibility="private",
    )
    server: DockyardServer = await blocking(dockyard_server_factory, args=args)
    ref = f"{server.host}/dist/library/private:v1"
    admin = f"admin:{server.admin_password}"
    with pytest.raises(CommandError):  # private: anonymous pulls follow the policy
        await blocking(skopeo.inspect_raw, f"docker://{ref}")
    assert await blocking(digest_via, skopeo, ref, admin) == img.digest
    layout = tmp_path / "pulled"
    await blocking(skopeo.copy, f"docker://{ref}", f"oci:{layout}:v1", src_creds=admin)
    for blob in img.blobs():
        hex_digest = blob.digest.removeprefix("sha256:")
        assert (layout / "blobs" / "sha256" / hex_digest).read_bytes() == blob.data
