"""The peer fixtures work against the real programs: distribution, skopeo, podman, PostgreSQL."""

from __future__ import annotations

import base64
import importlib.util
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.ocilayout import (
    EMPTY_DIGEST,
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
    Layout,
    build_artifact,
    build_image,
    digest_of,
    random_layer,
)
from support.peers import (
    CommandError,
    DockerRegistry,
    DockerRegistryFactory,
    DockyardServer,
    Podman,
    PodmanFactory,
    Skopeo,
    http_status,
)

pytestmark = pytest.mark.peers


def _request(
    registry: DockerRegistry,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the registry (basic auth if it has users), no proxies."""
    all_headers = dict(headers or {})
    if registry.creds:
        all_headers["Authorization"] = "Basic " + base64.b64encode(registry.creds.encode()).decode()
    url = path if path.startswith("http") else registry.url + path
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _push_blob(registry: DockerRegistry, repository: str, data: bytes) -> None:
    digest = digest_of(data)
    status, _, _ = _request(registry, "HEAD", f"/v2/{repository}/blobs/{digest}")
    if status == 200:
        return
    status, headers, body = _request(registry, "POST", f"/v2/{repository}/blobs/uploads/")
    assert status == 202, body
    location = headers["Location"]
    separator = "&" if "?" in location else "?"
    status, _, body = _request(
        registry,
        "PUT",
        f"{location}{separator}digest={digest}",
        data,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 201, body


def _put_manifest(
    registry: DockerRegistry, repository: str, reference: str, data: bytes, media_type: str
) -> dict[str, str]:
    status, headers, body = _request(
        registry,
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        data,
        {"Content-Type": media_type},
    )
    assert status == 201, body
    return headers


def test_docker_registry_answers_v2(docker_registry: DockerRegistry) -> None:
    assert docker_registry.host.startswith("127.0.0.1:")
    assert http_status(f"{docker_registry.url}/v2/") == 200


def test_skopeo_copies_a_layout_image_with_the_same_digest(
    tmp_path: Path, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    layout = Layout(tmp_path / "layout")
    desc = layout.add_image("v1", {"etc/hello.txt": "hello\n", "bin/tool": b"\x7fELF"})
    dest = f"docker://{docker_registry.host}/test/app:v1"

    skopeo.copy(layout.ref("v1"), dest)

    raw = skopeo.inspect_raw(dest)
    assert digest_of(raw) == desc["digest"]
    assert raw == layout.read_blob(desc["digest"])
    assert skopeo.list_tags(f"docker://{docker_registry.host}/test/app") == ["v1"]
    manifest = json.loads(raw)
    config = skopeo.inspect_raw(dest, config=True)
    assert digest_of(config) == manifest["config"]["digest"]


def test_skopeo_copies_a_multiplatform_index_with_all(
    tmp_path: Path, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    layout = Layout(tmp_path / "layout")
    index = layout.add_multiplatform("multi", files={"etc/os-release": "ID=test\n"})
    dest = f"docker://{docker_registry.host}/test/multi"

    skopeo.copy(layout.ref("multi"), f"{dest}:1", all=True)

    raw = skopeo.inspect_raw(f"{dest}:1")
    assert digest_of(raw) == index["digest"]
    children = json.loads(raw)["manifests"]
    assert json.loads(raw)["mediaType"] == MEDIA_TYPE_IMAGE_INDEX
    assert {(c["platform"]["os"], c["platform"]["architecture"]) for c in children} == {
        ("linux", "amd64"),
        ("linux", "arm64"),
    }
    for child in children:
        child_raw = skopeo.inspect_raw(f"{dest}@{child['digest']}")
        assert digest_of(child_raw) == child["digest"]


def test_skopeo_copy_respects_htpasswd_auth(
    tmp_path: Path, docker_registry_factory: DockerRegistryFactory, skopeo: Skopeo
) -> None:
    registry = docker_registry_factory(users={"alice": "s3cret"})
    layout = Layout(tmp_path / "layout")
    desc = layout.add_image("v1", {"a.txt": "a"})
    dest = f"docker://{registry.host}/private/app:v1"

    with pytest.raises(CommandError, match=r"unauthorized|authentication required"):
        skopeo.copy(layout.ref("v1"), dest)
    skopeo.copy(layout.ref("v1"), dest, dest_creds="alice:s3cret")

    assert digest_of(skopeo.inspect_raw(dest, creds=registry.creds)) == desc["digest"]


def test_big_random_layer_and_referrer_pushed_over_http(
    tmp_path: Path, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    """`manifest_bytes`-level values push with a plain HTTP client; distribution 2.8 keeps
    `subject`/`artifactType` bytes but has no referrers API (no OCI-Subject header)."""
    repository = "test/http"
    image = build_image(layers=[random_layer(8 << 20, seed=1)], platform="linux/arm64")
    for blob in image.blobs():
        _push_blob(docker_registry, repository, blob.data)
    _put_manifest(docker_registry, repository, "v1", image.manifest.data, MEDIA_TYPE_IMAGE_MANIFEST)

    artifact = build_artifact(
        image.descriptor(), "application/vnd.example.sbom.v1+json", b'{"sbom":true}'
    )
    assert artifact.config.digest == EMPTY_DIGEST
    for blob in artifact.blobs():
        _push_blob(docker_registry, repository, blob.data)
    headers = _put_manifest(
        docker_registry,
        repository,
        artifact.digest,
        artifact.manifest.data,
        MEDIA_TYPE_IMAGE_MANIFEST,
    )
    assert "OCI-Subject" not in headers

    raw = skopeo.inspect_raw(f"docker://{docker_registry.host}/{repository}@{artifact.digest}")
    assert raw == artifact.manifest.data
    assert json.loads(raw)["subject"]["digest"] == image.digest
    pulled = skopeo.inspect_raw(f"docker://{docker_registry.host}/{repository}:v1")
    assert digest_of(pulled) == image.digest


def test_layout_holds_artifacts_that_refer_to_a_subject(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "layout")
    subject = layout.add_image("v1", {"a": "a"})
    desc = layout.add_artifact(subject, "application/vnd.example.sig", b"signature")

    manifest = json.loads(layout.read_blob(desc["digest"]))
    assert desc["artifactType"] == manifest["artifactType"] == "application/vnd.example.sig"
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": EMPTY_DIGEST,
        "size": 2,
    }
    assert layout.read_blob(EMPTY_DIGEST) == b"{}"
    assert manifest["subject"] == {k: subject[k] for k in ("mediaType", "digest", "size")}
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [subject["digest"], desc["digest"]]
    assert layout.tags() == {"v1": subject["digest"]}
    again = Layout(tmp_path / "again").add_image("v1", {"a": "a"})
    assert again["digest"] == subject["digest"], "layouts are deterministic"


def test_podman_pushes_and_pulls_with_login(
    tmp_path: Path,
    docker_registry_factory: DockerRegistryFactory,
    podman_factory: PodmanFactory,
    skopeo: Skopeo,
) -> None:
    registry = docker_registry_factory(users={"bob": "pa55"})
    podman = podman_factory()
    layout = Layout(tmp_path / "layout")
    desc = layout.add_image("v1", {"etc/motd": "from a layout\n"})
    config_digest = json.loads(layout.read_blob(desc["digest"]))["config"]["digest"]
    name = f"{registry.host}/team/app:v1"

    # `podman pull` prints the image ID last; tag by ID, whatever name the oci: pull gave it.
    image_id = podman.pull(layout.ref("v1")).stdout.split()[-1]
    podman.tag(image_id, name)
    assert podman.image_id(name) == config_digest.removeprefix("sha256:")
    with pytest.raises(CommandError):
        podman.push(name)
    podman.login(registry.host, "bob", "pa55")
    podman.push(name)

    pushed_config = skopeo.inspect_raw(f"docker://{name}", creds=registry.creds, config=True)
    assert digest_of(pushed_config) == config_digest

    fresh = podman_factory()
    with pytest.raises(CommandError):
        fresh.pull(name)
    fresh.login(registry.host, "bob", "pa55")
    fresh.pull(name)
    assert fresh.image_id(name) == config_digest.removeprefix("sha256:")
    fresh.logout(registry.host)
    assert json.loads(fresh.auth_file.read_text()).get("auths", {}) == {}


def test_podman_pulls_what_skopeo_pushed(
    tmp_path: Path, docker_registry: DockerRegistry, skopeo: Skopeo, podman: Podman
) -> None:
    layout = Layout(tmp_path / "layout")
    layout.add_multiplatform("multi")
    name = f"{docker_registry.host}/test/multi:1"
    skopeo.copy(layout.ref("multi"), f"docker://{name}", all=True)

    podman.pull(name, "--platform", "linux/arm64")
    inspected = json.loads(podman.run("image", "inspect", name).stdout)[0]
    assert inspected["Architecture"] == "arm64"

    podman.tag(name, f"{docker_registry.host}/test/copy:1")
    podman.push(f"{docker_registry.host}/test/copy:1")
    assert skopeo.list_tags(f"docker://{docker_registry.host}/test/copy") == ["1"]


async def test_postgres_database_accepts_sqlalchemy(postgres_database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    assert postgres_database_url.startswith("postgresql+asyncpg://dockyard:dockyard@127.0.0.1:")
    engine = create_async_engine(postgres_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id int PRIMARY KEY, name text)"))
            await connection.execute(text("INSERT INTO t VALUES (1, 'one')"))
        async with engine.connect() as connection:
            database = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            name = (await connection.execute(text("SELECT name FROM t"))).scalar_one()
    finally:
        await engine.dispose()
    assert database == postgres_database_url.rsplit("/", 1)[1]
    assert name == "one"


async def test_postgres_session_database_accepts_asyncpg(postgres_url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await connection.fetchval("SELECT 1") == 1
        assert await connection.fetchval("SELECT current_user") == "dockyard"
    finally:
        await connection.close()


@pytest.mark.skipif(
    importlib.util.find_spec("dockyard.cli.main") is None,
    reason="the dockyard CLI (dockyard.cli.main) does not exist yet",
)
def test_dockyard_server_restarts_on_the_same_port_and_data(
    dockyard_server: DockyardServer,
) -> None:
    assert http_status(f"{dockyard_server.url}/v2/") in (200, 401)
    port = dockyard_server.port
    dockyard_server.kill()
    assert http_status(f"{dockyard_server.url}/v2/") is None
    dockyard_server.restart()
    assert dockyard_server.port == port
    assert http_status(f"{dockyard_server.url}/v2/") in (200, 401)
    assert dockyard_server.data.is_dir()
