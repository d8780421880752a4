"""Real clients against a real `dockyard serve`: skopeo, podman and CNCF distribution.

Images come from OCI layouts the tests build (`support.ocilayout`), so every digest is known in
advance; at every hop (layout → Dockyard → layout / docker-registry → Dockyard → ...) the
manifest bytes are compared with what went in. Referrer content is judged by raw bytes fetched
over HTTP, never by skopeo (1.9 rewrites the fallback-tag indexes it copies).
"""

from __future__ import annotations

import base64
import http.client as http_client
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest

from support.ocilayout import (
    EMPTY_DIGEST,
    MEDIA_TYPE_IMAGE_INDEX,
    MEDIA_TYPE_IMAGE_MANIFEST,
    Layout,
    build_artifact,
    digest_of,
    index_bytes,
)
from support.peers import (
    CommandError,
    DockerRegistry,
    DockyardServer,
    DockyardServerFactory,
    PodmanFactory,
    Skopeo,
    free_port,
)

pytestmark = pytest.mark.peers

ACCEPT_MANIFESTS = ", ".join(
    [
        MEDIA_TYPE_IMAGE_MANIFEST,
        MEDIA_TYPE_IMAGE_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- helpers ---------------------------------------------------------------------------------


def creds(server: DockyardServer) -> str:
    return f"admin:{server.admin_password}"


def http(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    user: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request without proxies (header names lowercased); `user` is `name:password`."""
    all_headers = dict(headers or {})
    if user is not None:
        all_headers["Authorization"] = "Basic " + base64.b64encode(user.encode()).decode()
    request = urllib.request.Request(base_url + path, data=body, method=method, headers=all_headers)
    try:
        with _no_proxy.open(request, timeout=30) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), error.read()


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {key.lower(): value for key, value in items}


def raw_manifest(base_url: str, repo: str, reference: str, user: str | None = None) -> bytes:
    """A manifest's bytes exactly as the registry serves them (every manifest type accepted)."""
    status, headers, body = http(
        base_url, "GET", f"/v2/{repo}/manifests/{reference}",
        headers={"Accept": ACCEPT_MANIFESTS}, user=user,
    )  # fmt: skip
    assert status == 200, (base_url, repo, reference, status, body[:300])
    assert headers["docker-content-digest"] == digest_of(body)
    return body


def raw_blob(base_url: str, repo: str, digest: str, user: str | None = None) -> bytes:
    status, _, body = http(base_url, "GET", f"/v2/{repo}/blobs/{digest}", user=user)
    assert status == 200, (base_url, repo, digest, status)
    assert digest_of(body) == digest
    return body


def push_blob(base_url: str, repo: str, data: bytes, user: str | None = None) -> None:
    """A monolithic POST+PUT upload, as the simplest client does it."""
    status, headers, body = http(base_url, "POST", f"/v2/{repo}/blobs/uploads/", user=user)
    assert status == 202, body
    location = headers["location"]
    if location.startswith("/"):
        location = base_url + location
    separator = "&" if "?" in location else "?"
    status, _, body = http(
        "", "PUT", f"{location}{separator}digest={digest_of(data)}", body=data,
        headers={"Content-Type": "application/octet-stream"}, user=user,
    )  # fmt: skip
    assert status == 201, body


def put_manifest(
    base_url: str, repo: str, reference: str, data: bytes, media_type: str, user: str | None = None
) -> dict[str, str]:
    status, headers, body = http(
        base_url, "PUT", f"/v2/{repo}/manifests/{reference}", body=data,
        headers={"Content-Type": media_type}, user=user,
    )  # fmt: skip
    assert status == 201, body
    return headers


def blobs_of(manifest: bytes) -> list[str]:
    parsed = json.loads(manifest)
    return [parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])]


def layout_index(path: Path) -> dict[str, str]:
    """tag → digest from an OCI layout skopeo wrote."""
    index = json.loads((path / "index.json").read_text())
    return {
        entry["annotations"]["org.opencontainers.image.ref.name"]: entry["digest"]
        for entry in index["manifests"]
    }


def read_layout_blob(path: Path, digest: str) -> bytes:
    data = (path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert digest_of(data) == digest
    return data


def assert_same_image(source: Layout, target: Path, manifest_digest: str) -> None:
    """Every blob of the image (config, layers) is byte-identical in both layouts."""
    manifest = read_layout_blob(target, manifest_digest)
    assert manifest == source.read_blob(manifest_digest)
    for digest in blobs_of(manifest):
        assert read_layout_blob(target, digest) == source.read_blob(digest)


# --- skopeo ----------------------------------------------------------------------------------


def test_skopeo_pushes_a_single_platform_image_and_copies_it_out(
    tmp_path: Path, dockyard_server: DockyardServer, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    server, user = dockyard_server, creds(dockyard_server)
    layout = Layout(tmp_path / "source")
    desc = layout.add_image(
        "v1", {"etc/hello.txt": "hello from a layout\n", "usr/bin/tool": b"\x7fELF\x02\x01"}
    )
    layout.tag("latest", desc)
    original = layout.read_blob(desc["digest"])
    dockyard = f"docker://{server.host}/team/app"

    skopeo.copy(layout.ref("v1"), f"{dockyard}:v1", dest_creds=user)
    skopeo.copy(layout.ref("latest"), f"{dockyard}:latest", dest_creds=user)

    assert skopeo.inspect_raw(f"{dockyard}:v1", creds=user) == original
    assert skopeo.inspect_raw(f"{dockyard}@{desc['digest']}", creds=user) == original
    config = skopeo.inspect_raw(f"{dockyard}:v1", creds=user, config=True)
    assert config == layout.read_blob(json.loads(original)["config"]["digest"])
    assert skopeo.inspect(f"{dockyard}:latest", creds=user)["Digest"] == desc["digest"]
    assert sorted(skopeo.list_tags(dockyard, creds=user)) == ["latest", "v1"]
    assert raw_manifest(server.url, "team/app", "v1", user) == original
    for digest in blobs_of(original):
        assert raw_blob(server.url, "team/app", digest, user) == layout.read_blob(digest)
    # the repository is private: no credentials, no image
    with pytest.raises(CommandError, match=r"(?i)unauthorized|authentication required"):
        skopeo.inspect_raw(f"{dockyard}:v1")

    # out again, into a new layout
    out = tmp_path / "out"
    skopeo.copy(f"{dockyard}:v1", f"oci:{out}:v1", src_creds=user)
    assert layout_index(out) == {"v1": desc["digest"]}
    assert_same_image(layout, out, desc["digest"])

    # and on to docker-registry
    registry = f"docker://{docker_registry.host}/mirror/app"
    skopeo.copy(f"{dockyard}:v1", f"{registry}:v1", src_creds=user)
    assert skopeo.inspect_raw(f"{registry}:v1") == original
    assert raw_manifest(docker_registry.url, "mirror/app", "v1") == original
    assert skopeo.list_tags(registry) == ["v1"]


def test_skopeo_pushes_a_multiplatform_index_with_all(
    tmp_path: Path, dockyard_server: DockyardServer, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    server, user = dockyard_server, creds(dockyard_server)
    layout = Layout(tmp_path / "source")
    index = layout.add_multiplatform(
        "multi", ("linux/amd64", "linux/arm64", "linux/arm/v7"), {"etc/os-release": "ID=test\n"}
    )
    original = layout.read_blob(index["digest"])
    children = json.loads(original)["manifests"]
    dockyard = f"docker://{server.host}/team/multi"

    skopeo.copy(layout.ref("multi"), f"{dockyard}:1", all=True, dest_creds=user)

    assert skopeo.inspect_raw(f"{dockyard}:1", creds=user) == original
    for child in children:
        raw = skopeo.inspect_raw(f"{dockyard}@{child['digest']}", creds=user)
        assert raw == layout.read_blob(child["digest"])
        for digest in blobs_of(raw):
            assert raw_blob(server.url, "team/multi", digest, user) == layout.read_blob(digest)
    assert skopeo.list_tags(dockyard, creds=user) == ["1"]
    # a client that does not take indexes is served the linux/amd64 image by tag
    status, headers, body = http(
        server.url, "GET", "/v2/team/multi/manifests/1",
        headers={"Accept": MEDIA_TYPE_IMAGE_MANIFEST}, user=user,
    )  # fmt: skip
    assert status == 200
    amd64 = next(c for c in children if c["platform"]["architecture"] == "amd64")
    assert headers["docker-content-digest"] == amd64["digest"]
    assert body == layout.read_blob(amd64["digest"])

    out = tmp_path / "out"
    skopeo.copy(f"{dockyard}:1", f"oci:{out}:1", all=True, src_creds=user)
    assert layout_index(out) == {"1": index["digest"]}
    assert read_layout_blob(out, index["digest"]) == original
    for child in children:
        assert_same_image(layout, out, child["digest"])

    registry = f"docker://{docker_registry.host}/mirror/multi"
    skopeo.copy(f"{dockyard}:1", f"{registry}:1", all=True, src_creds=user)
    assert skopeo.inspect_raw(f"{registry}:1") == original
    assert raw_manifest(docker_registry.url, "mirror/multi", "1") == original
    for child in children:
        assert raw_manifest(docker_registry.url, "mirror/multi", child["digest"]) == (
            layout.read_blob(child["digest"])
        )


def test_round_trip_through_docker_registry_keeps_digests(
    tmp_path: Path, dockyard_server: DockyardServer, docker_registry: DockerRegistry, skopeo: Skopeo
) -> None:
    """docker-registry → Dockyard → docker-registry with `skopeo copy docker:// docker://`: a
    multi-platform index and an artifact whose `subject` is one of its images."""
    server, user = dockyard_server, creds(dockyard_server)
    reg = docker_registry
    layout = Layout(tmp_path / "source")
    index = layout.add_multiplatform("multi", files={"etc/motd": "round trip\n"})
    children = json.loads(layout.read_blob(index["digest"]))["manifests"]
    skopeo.copy(layout.ref("multi"), f"docker://{reg.host}/src/app:multi", all=True)

    # an artifact about the arm64 image, pushed the way an OCI 1.1 client pushes to a registry
    # without the referrers API: by digest, plus the fallback tag index listing it
    subject = next(c for c in children if c["platform"]["architecture"] == "arm64")
    artifact = build_artifact(
        {k: subject[k] for k in ("mediaType", "digest", "size")},
        "application/vnd.example.sbom.v1+json",
        b'{"packages":["busybox"]}',
        annotations={"org.example.kind": "sbom"},
    )
    for blob in artifact.blobs():
        push_blob(reg.url, "src/app", blob.data)
    manifest = artifact.manifest.data
    put_manifest(reg.url, "src/app", artifact.digest, manifest, MEDIA_TYPE_IMAGE_MANIFEST)
    fallback = index_bytes(
        [{**artifact.descriptor(), "artifactType": "application/vnd.example.sbom.v1+json"}]
    )
    fallback_tag = subject["digest"].replace(":", "-")
    put_manifest(reg.url, "src/app", fallback_tag, fallback, MEDIA_TYPE_IMAGE_INDEX)

    dockyard = f"docker://{server.host}/mirror/app"
    source = f"docker://{reg.host}/src/app"
    skopeo.copy(f"{source}:multi", f"{dockyard}:multi", all=True, dest_creds=user)
    skopeo.copy(
        f"{source}@{artifact.digest}",
        f"{dockyard}@{artifact.digest}",
        dest_creds=user,
    )

    # in Dockyard: the same bytes, and the artifact is a referrer of its subject
    assert raw_manifest(server.url, "mirror/app", "multi", user) == layout.read_blob(
        index["digest"]
    )
    for child in children:
        assert raw_manifest(server.url, "mirror/app", child["digest"], user) == (
            layout.read_blob(child["digest"])
        )
    assert raw_manifest(server.url, "mirror/app", artifact.digest, user) == artifact.manifest.data
    assert raw_blob(server.url, "mirror/app", EMPTY_DIGEST, user) == b"{}"
    assert raw_blob(server.url, "mirror/app", artifact.layers[0].digest, user) == (
        b'{"packages":["busybox"]}'
    )
    status, _, body = http(
        server.url, "GET", f"/v2/mirror/app/referrers/{subject['digest']}", user=user
    )
    assert status == 200
    referrers = json.loads(body)["manifests"]
    assert [(r["digest"], r["artifactType"]) for r in referrers] == [
        (artifact.digest, "application/vnd.example.sbom.v1+json")
    ]
    # the fallback tag index, carried over byte for byte (not by skopeo, which rewrites it),
    # names the same referrer: it is listed once
    fallback_raw = raw_manifest(reg.url, "src/app", fallback_tag)
    assert fallback_raw == fallback
    put_manifest(server.url, "mirror/app", fallback_tag, fallback_raw, MEDIA_TYPE_IMAGE_INDEX, user)
    assert raw_manifest(server.url, "mirror/app", fallback_tag, user) == fallback
    status, _, body = http(
        server.url, "GET", f"/v2/mirror/app/referrers/{subject['digest']}", user=user
    )
    assert [r["digest"] for r in json.loads(body)["manifests"]] == [artifact.digest]

    # and back into a fresh repository of docker-registry
    back = f"docker://{reg.host}/back/app"
    skopeo.copy(f"{dockyard}:multi", f"{back}:multi", all=True, src_creds=user)
    skopeo.copy(f"{dockyard}@{artifact.digest}", f"{back}@{artifact.digest}", src_creds=user)
    assert raw_manifest(reg.url, "back/app", "multi") == layout.read_blob(index["digest"])
    for child in children:
        assert raw_manifest(reg.url, "back/app", child["digest"]) == layout.read_blob(
            child["digest"]
        )
    assert raw_manifest(reg.url, "back/app", artifact.digest) == artifact.manifest.data
    assert (
        json.loads(raw_manifest(reg.url, "back/app", artifact.digest))["subject"]["digest"]
        == subject["digest"]
    )
    for blob in artifact.blobs():
        assert raw_blob(reg.url, "back/app", blob.digest) == blob.data


# --- podman (the Docker CLI's login / pull / tag / push / logout) ----------------------------


def test_podman_login_pull_tag_push_logout(
    tmp_path: Path,
    dockyard_server: DockyardServer,
    docker_registry: DockerRegistry,
    podman_factory: PodmanFactory,
    skopeo: Skopeo,
) -> None:
    server, user = dockyard_server, creds(dockyard_server)
    layout = Layout(tmp_path / "source")
    desc = layout.add_image("v1", {"etc/motd": "through podman\n", "bin/app": b"\x7fELF"})
    config_digest = json.loads(layout.read_blob(desc["digest"]))["config"]["digest"]
    image_id = config_digest.removeprefix("sha256:")
    upstream = f"{docker_registry.host}/library/app:v1"
    skopeo.copy(layout.ref("v1"), f"docker://{upstream}")

    podman = podman_factory()
    podman.login(server.host, "admin", server.admin_password)
    auths = json.loads(podman.auth_file.read_text())["auths"]
    assert server.host in auths

    podman.pull(upstream)
    assert podman.image_id(upstream) == image_id
    name = f"{server.host}/team/podman:v1"
    podman.tag(upstream, name)
    digest_file = tmp_path / "pushed-digest"
    podman.push(name, None, "--digestfile", str(digest_file))
    pushed = digest_file.read_text().strip()

    served = skopeo.inspect_raw(f"docker://{name}", creds=user)
    assert digest_of(served) == pushed
    assert json.loads(served)["config"]["digest"] == config_digest
    served_config = skopeo.inspect_raw(f"docker://{name}", creds=user, config=True)
    assert served_config == layout.read_blob(config_digest)
    assert skopeo.list_tags(f"docker://{server.host}/team/podman", creds=user) == ["v1"]

    podman.run("rmi", "--force", name, upstream)
    assert podman.run("image", "exists", name, check=False).returncode != 0
    podman.pull(name)
    assert podman.image_id(name) == image_id
    assert podman.run("image", "inspect", "--format", "{{.Digest}}", name).stdout.strip() == pushed

    podman.logout(server.host)
    assert server.host not in json.loads(podman.auth_file.read_text()).get("auths", {})
    podman.run("rmi", "--force", name)
    with pytest.raises(CommandError, match=r"(?i)unauthorized|authentication required|denied"):
        podman.pull(name)
    # a second machine that never logged in cannot pull it either
    with pytest.raises(CommandError, match=r"(?i)unauthorized|authentication required|denied"):
        podman_factory().pull(name)


# --- Dockyard on PostgreSQL ------------------------------------------------------------------


def test_dockyard_on_postgresql_takes_a_skopeo_push(
    tmp_path: Path,
    dockyard_server_factory: DockyardServerFactory,
    postgres_database_url: str,
    skopeo: Skopeo,
) -> None:
    server = dockyard_server_factory(env={"DOCKYARD_DATABASE_URL": postgres_database_url})
    user = creds(server)
    assert not (server.data / "dockyard.db").exists(), "the server must not use SQLite"
    layout = Layout(tmp_path / "source")
    index = layout.add_multiplatform("multi")
    single = layout.add_image("single", {"a.txt": "on postgres\n"})
    dockyard = f"docker://{server.host}/pg/app"

    skopeo.copy(layout.ref("multi"), f"{dockyard}:multi", all=True, dest_creds=user)
    skopeo.copy(layout.ref("single"), f"{dockyard}:single", dest_creds=user)

    assert sorted(skopeo.list_tags(dockyard, creds=user)) == ["multi", "single"]
    assert skopeo.inspect_raw(f"{dockyard}:multi", creds=user) == layout.read_blob(index["digest"])
    assert skopeo.inspect_raw(f"{dockyard}:single", creds=user) == layout.read_blob(
        single["digest"]
    )
    out = tmp_path / "out"
    skopeo.copy(f"{dockyard}:multi", f"oci:{out}:multi", all=True, src_creds=user)
    skopeo.copy(f"{dockyard}:single", f"oci:{out}:single", src_creds=user)
    assert layout_index(out) == {"multi": index["digest"], "single": single["digest"]}
    assert_same_image(layout, out, single["digest"])
    for child in json.loads(layout.read_blob(index["digest"]))["manifests"]:
        assert_same_image(layout, out, child["digest"])

    # the metadata lives in PostgreSQL: a second server on the same database and data folder
    # (another node) serves the same content
    other = dockyard_server_factory(
        env={
            "DOCKYARD_DATABASE_URL": postgres_database_url,
            "DOCKYARD_ADMIN_PASSWORD": server.admin_password,
        },
        data=server.data,
    )
    assert raw_manifest(other.url, "pg/app", "multi", user) == layout.read_blob(index["digest"])


def test_skopeo_pulls_through_the_sendfile_listener(
    tmp_path: Path, dockyard_server_factory: DockyardServerFactory, skopeo: Skopeo
) -> None:
    """With blob_listen, blob GETs answer 307 with a signed link; skopeo (Go's HTTP client)
    follows it, leaves the credentials behind, and gets every byte."""
    server = dockyard_server_factory(
        args=["--blob-listen", f"127.0.0.1:{free_port()}"],
        env={"DOCKYARD_BLOB_REDIRECT_MIN_BYTES": "1"},  # every blob goes through it
    )
    user = creds(server)
    layout = Layout(tmp_path / "source")
    desc = layout.add_image("v1", {"opt/data.bin": bytes(range(256)) * 4096})
    dockyard = f"docker://{server.host}/team/big"
    skopeo.copy(layout.ref("v1"), f"{dockyard}:v1", dest_creds=user)

    manifest = layout.read_blob(desc["digest"])
    layer = blobs_of(manifest)[-1]
    host, port = server.host.split(":")
    connection = http_client.HTTPConnection(host, int(port), timeout=30)
    token = base64.b64encode(user.encode()).decode()
    connection.request(
        "GET", f"/v2/team/big/blobs/{layer}", headers={"Authorization": f"Basic {token}"}
    )
    response = connection.getresponse()
    assert response.status == 307
    assert "/blobs/" + layer in response.headers["Location"]
    connection.close()

    out = tmp_path / "out"
    skopeo.copy(f"{dockyard}:v1", f"oci:{out}:v1", src_creds=user)
    assert layout_index(out) == {"v1": desc["digest"]}
    assert_same_image(layout, out, desc["digest"])
