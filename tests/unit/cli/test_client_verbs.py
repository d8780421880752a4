"""The regctl-shaped verbs (`image`, `manifest`, `artifact`, `tag`, `registry`) with a config
folder in tmp_path, on OCI image layouts (no network); registries are in
tests/integration/test_cli_verbs.py."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from dockyard.cli.common import parse_place
from dockyard.cli.main import app
from dockyard.client import hosts
from dockyard.client.registry import RegistryClient
from dockyard.client.retry import RetryPolicy
from dockyard.client.settings import CONFIG_FILE, ClientConfig, TLSMode
from dockyard.oci.digest import Digest
from dockyard.oci.errors import OciError, Unauthorized
from dockyard.oci.reference import Reference
from support.ocilayout import Descriptor, Layout, digest_of
from support.peers import DOCKYARD_BIN

runner = CliRunner()
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
HEX = "a" * 64


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Client settings in tmp_path; Docker's config never read from the real home."""
    folder = tmp_path / "config"
    monkeypatch.setenv("DOCKYARD_CONFIG", str(folder))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.chdir(tmp_path)
    return folder


def dockyard(*args: str, stdin: str | None = None, code: int = 0) -> Result:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, f"{args}: {result.output}"
    return result


@dataclass
class Source:
    layout: Layout
    index: Descriptor
    amd64: Descriptor
    arm64: Descriptor
    signature: Descriptor
    sbom: Descriptor

    @property
    def ref(self) -> str:
        return f"ocidir://{self.layout.path}:1.0"


@pytest.fixture
def source(tmp_path: Path) -> Source:
    """A layout tagged 1.0: an index over amd64 and arm64, a signature of the index, an SBOM
    of amd64, and a cosign-style digest tag."""
    layout = Layout(tmp_path / "src")
    index = layout.add_multiplatform("1.0")
    entries = json.loads(layout.read_blob(index["digest"]))["manifests"]
    amd64, arm64 = entries
    signature = layout.add_artifact(
        index, SIGNATURE, b"signature", annotations={"org.example.signer": "ci"}
    )
    sbom = layout.add_artifact(amd64, SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    layout.add_image(f"sha256-{index['digest'].split(':')[1]}.sig", {"cosign": "sig"})
    return Source(layout, index, amd64, arm64, signature, sbom)


# --- references ----------------------------------------------------------------------------------


def test_registry_references_parse_as_regctl_writes_them() -> None:
    place = parse_place("127.0.0.1:5000/mirror/python:3.13")
    assert place.layout is None
    assert place.reference == Reference("127.0.0.1:5000", "mirror/python", "3.13")
    pinned = parse_place(f"registry.example.com/mirror/dhi-python@sha256:{HEX}")
    assert pinned.reference.digest == Digest.parse(f"sha256:{HEX}")
    assert pinned.reference.tag is None
    assert str(parse_place("python").reference) == "docker.io/library/python:latest"
    assert parse_place("index.docker.io/org/dhi-node:24").reference.registry == "docker.io"


def test_layout_references_with_both_schemes(tmp_path: Path) -> None:
    for text in (f"ocidir://{tmp_path}/out:v1", f"oci:{tmp_path}/out:v1"):
        place = parse_place(text)
        assert place.layout == tmp_path / "out"
        assert place.reference.tag == "v1"
        assert place.reference == Reference.layout(f"{tmp_path}/out", "v1")
        assert str(place.reference) == f"ocidir://{tmp_path}/out:v1"
    relative = parse_place("ocidir://layouts/app")
    assert relative.layout == Path("layouts/app")
    assert relative.reference.tag == "latest"
    pinned = parse_place(f"ocidir://app@sha256:{HEX}")
    assert pinned.reference.digest == Digest.parse(f"sha256:{HEX}")
    assert str(pinned) == f"ocidir://app@sha256:{HEX}"
    assert str(parse_place("ocidir://./app:1").reference) == "ocidir://app:1"


@pytest.mark.parametrize("text", ["ocidir://", "oci:", "ocidir://dir:", "oci:dir@sha256:short"])
def test_bad_layout_references_are_refused(text: str) -> None:
    with pytest.raises((ValueError, OciError)):
        parse_place(text)


@pytest.mark.parametrize(
    "args",
    [
        ["manifest", "head", "Bad//Name:tag"],
        ["manifest", "head", "ocidir://"],
        ["manifest", "head", "ocidir://x:1", "--platform", "linux"],
        ["manifest", "get", "ocidir://x:1", "--format", "yaml"],
        ["artifact", "list", "ocidir://x:1", "--format", "xml"],
        ["image", "copy", "ocidir://x:1", "ocidir://y:1", "--format", "fancy"],
        ["image", "copy", "ocidir://x:1", "ocidir://y:1", "--platforms", "linux"],
        ["tag", "ls", "ocidir://x", "--include", "("],
        ["manifest", "head"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = dockyard(*args, code=2)
    assert "error" in result.output.lower()


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_head_prints_the_digest_or_the_platforms(source: Source) -> None:
    assert dockyard("manifest", "head", source.ref).stdout == source.index["digest"] + "\n"
    amd64 = dockyard("manifest", "head", source.ref, "--platform", "linux/amd64")
    assert amd64.stdout.strip() == source.amd64["digest"]
    arm64 = dockyard("manifest", "head", f"oci:{source.layout.path}:1.0", "-p", "linux/arm64/v8")
    assert arm64.stdout.strip() == source.arm64["digest"]


def test_a_missing_platform_or_manifest_fails_with_one_line(source: Source) -> None:
    result = dockyard("manifest", "head", source.ref, "--platform", "linux/s390x", code=1)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "linux/s390x" in result.stderr
    assert "linux/amd64" in result.stderr  # what the index has
    missing = dockyard("manifest", "head", f"ocidir://{source.layout.path}:2.0", code=1)
    assert missing.stderr.startswith("error: ")
    assert "MANIFEST_UNKNOWN" in missing.stderr


def test_manifest_get_raw_keeps_the_bytes_and_json_indents(source: Source) -> None:
    raw = dockyard("manifest", "get", source.ref, "--format", "raw").stdout_bytes
    assert raw == source.layout.read_blob(source.index["digest"])
    assert digest_of(raw) == source.index["digest"]
    pretty = dockyard("manifest", "get", source.ref).stdout
    assert json.loads(pretty) == json.loads(raw)
    assert pretty.startswith("{\n  ")
    platform = dockyard(
        "manifest", "get", source.ref, "--platform", "linux/arm64", "--format", "raw-body"
    )
    assert digest_of(platform.stdout_bytes) == source.arm64["digest"]


# --- artifact list -------------------------------------------------------------------------------


def test_artifact_list_as_a_table_and_as_json(source: Source) -> None:
    table = dockyard("artifact", "list", source.ref).stdout.splitlines()
    assert table[0].split()[:2] == ["DIGEST", "ARTIFACT"]
    assert len(table) == 2
    assert table[1].split() == [
        source.signature["digest"],
        SIGNATURE,
        str(source.signature["size"]),
        "org.example.signer=ci",
    ]
    by_digest = f"ocidir://{source.layout.path}@{source.amd64['digest']}"
    listed = json.loads(dockyard("artifact", "list", by_digest, "--format", "json").stdout)
    assert listed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in listed["manifests"]] == [source.sbom["digest"]]
    assert listed["manifests"][0]["artifactType"] == SBOM
    platform = dockyard(
        "artifact", "list", source.ref, "--platform", "linux/amd64", "--format", "raw-body"
    )
    assert json.loads(platform.stdout) == listed


def test_artifact_list_filters(source: Source) -> None:
    def listed(*flags: str) -> list[str]:
        out = dockyard("artifact", "list", source.ref, "--format", "json", *flags).stdout
        return [m["digest"] for m in json.loads(out)["manifests"]]

    assert listed("--filter-artifact-type", SIGNATURE) == [source.signature["digest"]]
    assert listed("--filter-artifact-type", SBOM) == []
    assert listed("--filter-annotation", "org.example.signer") == [source.signature["digest"]]
    assert listed("--filter-annotation", "org.example.signer=ci") == [source.signature["digest"]]
    assert listed("--filter-annotation", "org.example.signer=someone") == []
    empty = dockyard("artifact", "list", source.ref, "--filter-artifact-type", SBOM)
    assert empty.stdout == ""
    assert "no referrers" in empty.stderr


# --- tag ls --------------------------------------------------------------------------------------


def test_tag_ls_one_per_line_with_filters(source: Source) -> None:
    repo = f"ocidir://{source.layout.path}"
    tags = dockyard("tag", "ls", repo).stdout.splitlines()
    cosign = f"sha256-{source.index['digest'].split(':')[1]}.sig"
    assert sorted(tags) == sorted(["1.0", cosign])
    assert dockyard("tag", "ls", repo, "--exclude", "sha256-.*").stdout == "1.0\n"
    assert dockyard("tag", "list", repo, "--include", r"1\..*").stdout == "1.0\n"
    assert "no OCI image layout" in dockyard("tag", "ls", "ocidir://nowhere", code=1).stderr


# --- image copy ----------------------------------------------------------------------------------


def test_image_copy_between_layouts_with_referrers_and_digest_tags(
    source: Source, tmp_path: Path
) -> None:
    dst = f"ocidir://{tmp_path}/dst:2.0"
    result = dockyard(
        "image", "copy", source.ref, dst, "--referrers", "--digest-tags", "--force-recursive"
    )
    assert result.stdout == ""  # progress goes to stderr unless --format json
    assert "done" in result.stderr
    assert dockyard("manifest", "head", dst).stdout.strip() == source.index["digest"]
    copied = tmp_path / "dst" / "blobs" / "sha256"
    for desc in (source.index, source.amd64, source.arm64, source.signature, source.sbom):
        assert (copied / desc["digest"].split(":")[1]).read_bytes() == source.layout.read_blob(
            desc["digest"]
        )
    cosign = f"sha256-{source.index['digest'].split(':')[1]}.sig"
    assert cosign in dockyard("tag", "ls", f"ocidir://{tmp_path}/dst").stdout.splitlines()
    by_digest = f"ocidir://{tmp_path}/dst@{source.amd64['digest']}"
    assert source.sbom["digest"] in dockyard("artifact", "list", by_digest).stdout

    again = dockyard("image", "copy", source.ref, dst, "--referrers", "--format", "json")
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert events[-1]["event"] == "copy-finished"
    assert events[-1]["result"]["manifests_copied"] == 0


def test_image_copy_without_referrers_leaves_them(source: Source, tmp_path: Path) -> None:
    dst = f"ocidir://{tmp_path}/plain:1.0"
    dockyard("image", "copy", source.ref, dst, "--format", "plain")
    assert dockyard("artifact", "list", dst).stdout == ""
    assert dockyard("tag", "ls", f"ocidir://{tmp_path}/plain").stdout == "1.0\n"


def test_image_copy_of_one_platform_copies_that_manifest(source: Source, tmp_path: Path) -> None:
    dst = f"ocidir://{tmp_path}/amd64:1.0"
    dockyard("image", "copy", source.ref, dst, "--platform", "linux/amd64", "--referrers")
    assert dockyard("manifest", "head", dst).stdout.strip() == source.amd64["digest"]
    listed = json.loads(dockyard("artifact", "list", dst, "--format", "json").stdout)
    assert [m["digest"] for m in listed["manifests"]] == [source.sbom["digest"]]
    assert not (tmp_path / "amd64" / "blobs" / "sha256" / source.arm64["digest"][7:]).exists()


def test_image_copy_of_a_missing_image_fails_with_one_line(tmp_path: Path) -> None:
    Layout(tmp_path / "empty")
    result = dockyard(
        "image", "copy", f"ocidir://{tmp_path}/empty:1", f"ocidir://{tmp_path}/out:1", code=1
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "copy of" in errors[0]
    assert "ManifestUnknown" in errors[0]


def test_referrers_from_and_to_separate_layouts(source: Source, tmp_path: Path) -> None:
    dst = f"ocidir://{tmp_path}/image:1.0"
    attestations = f"ocidir://{tmp_path}/attestations"
    dockyard("image", "copy", source.ref, dst, "--referrers-tgt", attestations)
    assert dockyard("artifact", "list", dst).stdout == ""
    listed = dockyard(
        "artifact", "list", dst, "--external", attestations, "--format", "json"
    ).stdout
    assert [m["digest"] for m in json.loads(listed)["manifests"]] == [source.signature["digest"]]


# --- export / import -----------------------------------------------------------------------------


def test_export_import_round_trip_keeps_digests_and_referrers(
    source: Source, tmp_path: Path
) -> None:
    archive = tmp_path / "python.tar"
    dockyard("image", "export", source.ref, str(archive), "--digest-tags")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "index.json" in names
    assert f"blobs/sha256/{source.sbom['digest'][7:]}" in names
    assert not list(tmp_path.glob(".dockyard-export-*"))  # the staging layout is gone

    dst = f"ocidir://{tmp_path}/imported:3.13"
    dockyard("image", "import", str(archive), dst)
    assert dockyard("manifest", "head", dst).stdout.strip() == source.index["digest"]
    amd64 = dockyard("manifest", "head", dst, "--platform", "linux/amd64").stdout.strip()
    assert amd64 == source.amd64["digest"]
    assert source.sbom["digest"] in dockyard("artifact", "list", f"{dst[:-5]}@{amd64}").stdout
    assert source.signature["digest"] in dockyard("artifact", "list", dst).stdout
    cosign = f"sha256-{source.index['digest'][7:]}.sig"
    assert cosign in dockyard("tag", "ls", f"ocidir://{tmp_path}/imported").stdout

    regctl_order = f"ocidir://{tmp_path}/again:1.0"
    dockyard("image", "import", regctl_order, str(archive))
    assert dockyard("manifest", "head", regctl_order).stdout.strip() == source.index["digest"]


def test_export_without_referrers_and_import_failures(source: Source, tmp_path: Path) -> None:
    archive = tmp_path / "bare.tar"
    dockyard("image", "export", source.ref, str(archive), "--no-referrers")
    with tarfile.open(archive) as tar:
        assert f"blobs/sha256/{source.sbom['digest'][7:]}" not in tar.getnames()
    arm64 = tmp_path / "arm64.tar"
    dockyard("image", "export", source.ref, str(arm64), "--platform", "linux/arm64")
    dockyard("image", "import", str(arm64), f"ocidir://{tmp_path}/arm64:1.0")
    head = dockyard("manifest", "head", f"ocidir://{tmp_path}/arm64:1.0").stdout.strip()
    assert head == source.arm64["digest"]
    missing = dockyard("image", "import", str(tmp_path / "nope.tar"), "ocidir://x:1", code=1)
    assert "no such archive" in missing.stderr
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    broken = dockyard("image", "import", str(junk), f"ocidir://{tmp_path}/x:1", code=1)
    assert broken.stderr.startswith("error: ")


# --- registry ------------------------------------------------------------------------------------


def stored(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "registries.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_registry_set_and_config(config_dir: Path, tmp_path: Path) -> None:
    dockyard(
        "registry", "set", "127.0.0.1:5000", "--tls", "disabled", "--req-per-sec", "50",
        "--req-concurrent", "8",
    )  # fmt: skip
    settings = ClientConfig.load().get("127.0.0.1:5000")
    assert (settings.tls, settings.req_per_sec, settings.req_concurrent) == (
        TLSMode.DISABLED,
        50.0,
        8,
    )
    dockyard("registry", "set", "127.0.0.1:5000", "--req-per-sec", "0")
    settings = ClientConfig.load().get("127.0.0.1:5000")
    assert (settings.tls, settings.req_per_sec) == (TLSMode.DISABLED, 0.0)  # tls kept

    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    dockyard("registry", "set", "registry.example.com", "--tls", "insecure", "--cacert", pem)
    assert ClientConfig.load().get("registry.example.com").ca_pem == pem
    ca = tmp_path / "ca.pem"
    ca.write_text(pem)
    dockyard("registry", "set", "registry.example.com", "--cacert", str(ca))
    assert ClientConfig.load().get("registry.example.com").ca_file == ca.resolve()
    dockyard("registry", "set", "registry.example.com", "--cacert", "/no/such/ca.pem", code=2)
    dockyard("registry", "set", "registry.example.com", "--tls", "sometimes", code=2)

    shown = json.loads(dockyard("registry", "config").stdout)
    assert shown["127.0.0.1:5000"]["tls"] == "disabled"
    one = json.loads(dockyard("registry", "config", "registry.example.com").stdout)
    assert one["tls"] == "insecure"
    assert stored(config_dir)["registries"]["127.0.0.1:5000"]["tls"] == "disabled"


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Fake `RegistryClient.ping`: records (registry, user); refuses the password 'wrong'."""
    seen: list[tuple[str, str]] = []

    async def ping(self: RegistryClient, registry: str) -> None:
        credential = self.client.settings(registry).credential
        assert credential is not None
        seen.append((registry, credential.username))
        if credential.password == "wrong":
            raise Unauthorized("authentication required")

    monkeypatch.setattr(RegistryClient, "ping", ping)
    return seen


def test_login_checks_then_stores_0600_and_logout_forgets(
    config_dir: Path, pings: list[tuple[str, str]]
) -> None:
    result = dockyard(
        "registry", "login", "-u", "alice", "--pass-stdin", "index.docker.io", stdin="s3cret\n"
    )
    assert "logged in to docker.io as alice" in result.stderr
    assert pings == [("docker.io", "alice")]
    credential = stored(config_dir)["registries"]["docker.io"]["credential"]
    assert credential == {"username": "alice", "password": "s3cret"}
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    shown = dockyard("registry", "config", "docker.io").stdout
    assert "s3cret" not in shown
    assert json.loads(shown)["user"] == "alice"

    dockyard("registry", "login", "127.0.0.1:5000", "-u", "bob", "-p", "pw")
    dockyard("registry", "login", "ghcr.io", "-u", "<token>", "--pass-stdin", stdin="tok")
    token = stored(config_dir)["registries"]["ghcr.io"]["credential"]
    assert token == {"identity_token": "tok"}

    assert "logged out of docker.io" in dockyard("registry", "logout", "docker.io").stderr
    assert "credential" not in stored(config_dir)["registries"]["docker.io"]
    assert "not logged in" in dockyard("registry", "logout", "docker.io").stderr
    assert stored(config_dir)["registries"]["127.0.0.1:5000"]["credential"]["username"] == "bob"


def test_a_refused_login_stores_nothing(config_dir: Path, pings: list[tuple[str, str]]) -> None:
    dockyard("registry", "set", "127.0.0.1:5000", "--tls", "disabled")
    result = dockyard(
        "registry", "login", "127.0.0.1:5000", "-u", "alice", "--pass-stdin", stdin="wrong\n",
        code=1,
    )  # fmt: skip
    assert result.stderr.count("\n") == 1
    assert "login to 127.0.0.1:5000 failed" in result.stderr
    assert "UNAUTHORIZED" in result.stderr
    assert "credential" not in stored(config_dir)["registries"]["127.0.0.1:5000"]
    skipped = ["registry", "login", "127.0.0.1:5000", "-u", "alice", "--skip-check"]
    dockyard(*skipped, "--pass-stdin", stdin="wrong\n")
    assert pings == [("127.0.0.1:5000", "alice")]  # the skipped check did not ping


def test_login_usage_errors(pings: list[tuple[str, str]]) -> None:
    dockyard("registry", "login", "--pass-stdin", "example.com", stdin="pw", code=2)
    dockyard("registry", "login", "-u", "a", "example.com", stdin="", code=2)
    dockyard("registry", "login", "-u", "a", "--pass-stdin", "example.com", stdin="\n", code=2)
    dockyard("registry", "login", "-u", "a", "-p", "x", "--pass-stdin", "example.com", code=2)
    assert pings == []


def test_an_unreachable_registry_fails_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts, "RetryPolicy", lambda: RetryPolicy(attempts=1))
    dockyard("registry", "set", "127.0.0.1:9", "--tls", "disabled")
    result = dockyard("manifest", "head", "127.0.0.1:9/app:1", code=1)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ")
    assert "127.0.0.1:9" in result.stderr


def test_a_broken_config_file_is_named(config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "registries.json").write_text('{"registries": {"x.io": {"tls": "maybe"}}}')
    result = dockyard("tag", "ls", "x.io/app", code=1)
    assert "registries.json" in result.stderr
    assert CONFIG_FILE in dockyard("registry", "config", code=1).stderr


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: the CLI's stderr is what the test reads."""


@pytest.fixture
def plain_http() -> Iterator[str]:
    """HOST:PORT of a plain-HTTP server on loopback (it answers 501 to everything)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_plain_http_registry_reached_over_tls_says_what_to_run(plain_http: str) -> None:
    hint = (
        f"{plain_http} answers in plain HTTP, not HTTPS: "
        f"run `dockyard registry set {plain_http} --tls disabled`"
    )
    for args in (
        ["tag", "ls", f"{plain_http}/acme/app"],
        ["image", "copy", f"{plain_http}/acme/app:1", "ocidir://copied:1"],
        ["registry", "login", "-u", "alice", "-p", "pw", plain_http],
        ["catalog", "list", "--server", f"https://{plain_http}"],
    ):
        result = dockyard(*args, code=1)
        assert result.stderr.count("\n") == 1, result.stderr
        assert hint in result.stderr, result.stderr
    dockyard("registry", "set", plain_http, "--tls", "disabled")
    result = dockyard("tag", "ls", f"{plain_http}/acme/app", code=1)
    assert "answers in plain HTTP" not in result.stderr
    assert f"http://{plain_http}/v2/" in result.stderr  # reached it, over HTTP


def test_layouts_are_named_by_their_path_and_a_failure_is_printed_once(
    source: Source, tmp_path: Path
) -> None:
    archive = tmp_path / "python.tar"
    exported = dockyard("image", "export", source.ref, str(archive), "--format", "plain")
    assert f"-> oci-archive:{archive}:1.0" in exported.stderr
    imported = dockyard(
        "image", "import", str(archive), f"ocidir://{tmp_path}/in:2", "--format", "plain"
    )
    assert f"copy oci-archive:{archive}:1.0 -> ocidir://{tmp_path}/in:2" in imported.stderr
    as_json = dockyard("image", "copy", source.ref, f"ocidir://{tmp_path}/j:1", "--format", "json")
    started = json.loads(as_json.stdout.splitlines()[0])
    assert (started["source"], started["target"]) == (source.ref, f"ocidir://{tmp_path}/j:1")
    Layout(tmp_path / "empty")
    failed = dockyard(
        "image", "copy", f"ocidir://{tmp_path}/empty:1", f"ocidir://{tmp_path}/out:1",
        "--format", "plain", code=1,
    )  # fmt: skip
    assert failed.stderr.count("ManifestUnknown") == 1
    assert f"copy of ocidir://{tmp_path}/empty:1 to ocidir://{tmp_path}/out:1 failed" in (
        failed.stderr
    )
    for result in (exported, imported, as_json, failed):
        assert "oci-layout.invalid" not in result.stdout + result.stderr


def test_json_output_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # `dockyard image copy … --format json | head -1`: more JSON lines than a pipe holds
    # (64 KiB), so writes after the reader is gone fail with EPIPE
    layout = Layout(tmp_path / "many")
    index = layout.add_multiplatform("1.0")
    for number in range(400):
        layout.add_artifact(index, SBOM, b"sbom %d" % number)
    env = {**os.environ, "DOCKYARD_CONFIG": str(tmp_path / "config")}
    command = [
        str(DOCKYARD_BIN), "image", "copy", f"ocidir://{layout.path}:1.0",
        f"ocidir://{tmp_path}/copy:1.0", "--referrers", "--format", "json",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert json.loads(process.stdout.readline())["event"] == "copy-started"
        process.stdout.close()
        errors = process.stderr.read().decode()
        code = process.wait(timeout=120)
    assert errors == ""
    assert code == 1  # as Typer exits on EPIPE
