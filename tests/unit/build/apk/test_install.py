"""Packages added to a customized Alpine image: resolved against the base's apk database,
fetched from signed repositories only, unpacked in process, and recorded in
`lib/apk/db/installed` and `etc/apk/world` as apk records them."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from dockyard.build.apk.install import ApkPackages
from dockyard.build.builder import Builder
from dockyard.build.errors import InputRejected, Invalid
from dockyard.build.model import Customization, parse_customization
from dockyard.build.packages import PackageLayers
from dockyard.build.plan import plan
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from dockyard.registry.target import StoreTarget
from support.apkrepo import ApkKey
from support.inprocess import ADMIN_PASSWORD, running_app
from support.ocilayout import Member, build_image, tar_layer

from .conftest import Served

BASE_INSTALLED = """C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=
P:musl
V:1.2.5-r0
A:x86_64
S:411323
I:662528
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1711000000
c:0000000000000000000000000000000000000000
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1BBBBBBBBBBBBBBBBBBBBBBBBBBB=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q1CCCCCCCCCCCCCCCCCCCCCCCCCCC=

C:Q1DDDDDDDDDDDDDDDDDDDDDDDDDDD=
P:busybox
V:1.36.1-r29
A:x86_64
S:500000
I:900000
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1
p:cmd:sh=1.36.1-r29
F:bin
R:busybox
a:0:0:755
Z:Q1EEEEEEEEEEEEEEEEEEEEEEEEEEE=

"""
BASE = build_image(
    layers=[
        tar_layer(
            [
                ("etc/os-release", 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n'),
                ("etc/alpine-release", "3.20.3\n"),
                Member("lib", kind="dir"),
                ("lib/ld-musl-x86_64.so.1", b"\x7fELF musl\n"),
                Member("lib/apk/db", kind="dir"),
                ("lib/apk/db/installed", BASE_INSTALLED),
                ("etc/apk/world", "busybox\nmusl\n"),
                Member("usr/lib", kind="dir", mode=0o755),
                ("bin/busybox", b"\x7fELF busybox\n"),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("etc/group", "root:x:0:\n"),
            ]
        )
    ],
    platform="linux/amd64",
)
CUSTOM = parse_customization(
    """
name: with hello
targets: [{destination: acme/alpine, tag: "3.20"}]
tag_suffix: custom
contents: {packages: [hello]}
platforms: [linux/amd64]
"""
)
RESULT = Reference.parse("dockyard.test/acme/alpine:3.20_custom")


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StoreTarget]:
    async with running_app(tmp_path / "data") as app:
        admin = await app.state.accounts.authenticate("admin", ADMIN_PASSWORD)
        assert admin is not None
        target = StoreTarget(app.state.registry, admin)
        ref = Reference.parse("dockyard.test/acme/alpine:3.20")
        for blob in BASE.blobs():
            await target.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
        await target.manifest_put(ref, parse_manifest(BASE.manifest.data))
        yield target


def _layers(served: Served, tmp_path: Path) -> PackageLayers:
    """Both package systems as a site has them; only apk has sources here."""
    return PackageLayers(None, ApkPackages([served.source()], tmp_path / "cache"))


def _with(packages: list[str]) -> Customization:
    return CUSTOM.model_copy(
        update={"contents": CUSTOM.contents.model_copy(update={"packages": packages})}
    )


async def _rootfs(store: StoreTarget, out: Path) -> Path:
    """The built image's files: every layer extracted in order into `out` (as a runtime)."""
    index = await store.manifest_get(RESULT)
    manifest = await store.manifest_get(RESULT.with_digest(index.children[0].digest))
    layers = [b"".join([c async for c in store.blob_get(RESULT, d)]) for d in manifest.blobs[1:]]
    _extract(layers, out)
    return out


def _extract(layers: list[bytes], out: Path) -> None:
    """Layers applied as a runtime applies them: a `.wh.NAME` file removes NAME below it."""
    out.mkdir()
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = tar.getmembers()
            for member in members:
                folder, _, name = member.name.rpartition("/")
                if name.startswith(".wh."):
                    (out / folder / name.removeprefix(".wh.")).unlink(missing_ok=True)
            kept = [m for m in members if not m.name.rpartition("/")[2].startswith(".wh.")]
            tar.extractall(out, members=kept, filter="tar")


def _records(text: str) -> dict[str, list[str]]:
    return {block.split("\nP:", 1)[1].split("\n", 1)[0]: block.splitlines()
            for block in text.strip("\n").split("\n\n")}  # fmt: skip


async def test_packages_and_their_dependencies_are_installed_and_recorded_as_apk_would(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    builder = Builder(store, tmp_path / "work", packages=_layers(served, tmp_path))
    logged: list[str] = []
    result = await builder.build(CUSTOM, CUSTOM.targets[0], "dockyard.test", log=logged.append)
    lock = result.lock["platforms"]["linux/amd64"]["packages"]
    assert lock["distribution"] == "alpine 3.20.3"
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [
        ("hello", "2.12.1-r0"),
        ("libgreet", "1.4-r2"),  # by its so: provide
        ("greet-data", "1.1-r0"),  # the newest that meets >=1.0
    ]
    for package in lock["packages"]:
        apk = served.repo.folder("main") / f"{package['name']}-{package['version']}.apk"
        assert package["url"] == f"{served.url}/v3.20/main/x86_64/{apk.name}"
        assert package["sha256"] == hashlib.sha256(apk.read_bytes()).hexdigest()
    assert any("D: of hello: so:libgreet.so.1" in line for line in logged)

    root = await _rootfs(store, tmp_path / "rootfs")
    assert (root / "usr/bin/hello").read_bytes() == b"#!/bin/sh\necho hello\n"
    assert (root / "usr/bin/hello").stat().st_mode & 0o777 == 0o755
    assert (root / "usr/lib/libgreet.so.1").readlink() == Path("libgreet.so.1.4")
    assert not (root / "usr/share/doc/hello").exists(), "install_if needs docs too"
    assert (root / "etc/apk/world").read_text() == "busybox\nhello\nmusl\n"

    installed = (root / "lib/apk/db/installed").read_text()
    assert installed.startswith(BASE_INSTALLED.split("\n\n")[1])  # busybox sorts first, as is
    assert installed.endswith("\n\n")
    records = _records(installed)
    assert list(records) == ["busybox", "greet-data", "hello", "libgreet", "musl"]
    assert "\n".join(records["musl"]) + "\n" == BASE_INSTALLED.split("\n\n")[0] + "\n"
    script = b"#!/bin/sh\necho hello\n"
    identity = served.repo.packages["main"][0][2]  # hello's control stream
    assert records["hello"] == [
        f"C:Q1{base64.b64encode(hashlib.sha1(identity).digest()).decode()}",
        "P:hello",
        "V:2.12.1-r0",
        "A:x86_64",
        f"S:{(served.repo.folder('main') / 'hello-2.12.1-r0.apk').stat().st_size}",
        f"I:{len(script)}",
        "T:hello for the tests",
        "U:https://example.org",
        "L:MIT",
        "o:hello",
        "m:Test <test@example.org>",
        "t:1700000000",
        "D:so:libgreet.so.1 greet-data>=1.0",
        "p:cmd:hello=2.12.1-r0",
        "F:usr",
        "F:usr/bin",
        "R:hello",
        "a:0:0:755",
        f"Z:Q1{base64.b64encode(hashlib.sha1(script).digest()).decode()}",
    ]
    link = base64.b64encode(hashlib.sha1(b"libgreet.so.1.4").digest()).decode()
    library = base64.b64encode(hashlib.sha1(b"\x7fELF greet\n").digest()).decode()
    assert records["libgreet"][-7:] == [
        "F:usr",
        "F:usr/lib",
        "R:libgreet.so.1",
        "a:0:0:777",
        f"Z:Q1{link}",
        "R:libgreet.so.1.4",
        f"Z:Q1{library}",
    ]

    # the same inputs: the same image
    again = await Builder(store, tmp_path / "work", packages=_layers(served, tmp_path)).build(
        CUSTOM, CUSTOM.targets[0], "dockyard.test", previous=result.outputs()
    )
    assert again.index.digest == result.index.digest


async def _refused(store: StoreTarget, served: Served, tmp_path: Path, match: str) -> None:
    builder = Builder(store, tmp_path / "work", packages=_layers(served, tmp_path))
    with pytest.raises(InputRejected, match=match):
        await builder.build(CUSTOM, CUSTOM.targets[0], "dockyard.test")
    assert await store.manifest_head(RESULT) is None


async def test_a_tampered_index_is_refused_and_nothing_is_pushed(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    index = served.repo.folder("main") / "APKINDEX.tar.gz"
    data = bytearray(index.read_bytes())
    data[-40] ^= 0xFF
    index.write_bytes(bytes(data))
    await _refused(
        store, served, tmp_path, rf"{re.escape(served.url)}/v3\.20/main .*does not match"
    )


async def test_a_tampered_package_is_refused_and_nothing_is_pushed(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    apk = served.repo.folder("main") / "libgreet-1.4-r2.apk"
    data = bytearray(apk.read_bytes())
    data[-20] ^= 0xFF
    apk.write_bytes(bytes(data))
    await _refused(
        store, served, tmp_path, re.escape("libgreet-1.4-r2.apk: its data stream's SHA256")
    )
    libgreet = hashlib.sha1(served.repo.packages["main"][1][2]).hexdigest()
    assert not (tmp_path / "cache" / "apk" / f"{libgreet}.apk").exists(), "nothing unverified"
    assert not list((tmp_path / "cache" / "tmp").iterdir()), "no partial file left behind"


async def test_an_index_signed_by_an_unknown_key_is_refused_and_nothing_is_pushed(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    served.repo.publish(key=ApkKey("mallory@example.org-1.rsa.pub"))
    await _refused(
        store, served, tmp_path, re.escape("signed by mallory@example.org-1.rsa.pub, not by a key")
    )


async def test_an_unknown_package_is_named_with_the_closest_names(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    custom = _with(["hello", "libgret"])
    builder = Builder(store, tmp_path / "work", packages=_layers(served, tmp_path))
    with pytest.raises(Invalid) as refused:
        await builder.build(custom, custom.targets[0], "dockyard.test")
    assert refused.value.field == "contents.packages[1]"
    assert "libgreet" in refused.value.message


async def test_a_debian_base_is_not_handed_to_apk(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    debian = build_image({"etc/os-release": "ID=debian\nVERSION_CODENAME=bookworm\n"})
    ref = Reference.parse("dockyard.test/acme/alpine:deb")
    for blob in debian.blobs():
        await store.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
    await store.manifest_put(ref, parse_manifest(debian.manifest.data))
    custom = parse_customization(
        """
name: debian
targets: [{destination: acme/alpine, tag: deb}]
tag_suffix: custom
contents: {packages: [hello]}
platforms: [linux/amd64]
"""
    )
    builder = Builder(store, tmp_path / "work", packages=_layers(served, tmp_path))
    with pytest.raises(Invalid, match=r"no package sources for debian.*package_sources"):
        await builder.build(custom, custom.targets[0], "dockyard.test")


GREET_09 = """C:Q1FFFFFFFFFFFFFFFFFFFFFFFFFFF=
P:greet-data
V:0.9-r0
A:x86_64
S:100
I:4
T:greet-data for the tests
U:https://example.org
L:MIT
F:usr
F:usr/share
F:usr/share/greet
R:0.9
Z:Q1GGGGGGGGGGGGGGGGGGGGGGGGGGG=

"""


async def _push_base(store: StoreTarget, tag: str, installed: str) -> None:
    image = build_image(
        layers=[
            tar_layer(
                [
                    ("etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\n"),
                    ("lib/apk/db/installed", installed),
                    ("etc/apk/world", "greet-data\n"),
                    ("usr/share/greet/0.9", b"old\n"),
                ]
            )
        ],
        platform="linux/amd64",
    )
    ref = Reference.parse(f"dockyard.test/acme/alpine:{tag}")
    for blob in image.blobs():
        await store.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
    await store.manifest_put(ref, parse_manifest(image.manifest.data))


async def test_an_upgrade_replaces_the_record_and_hides_the_old_files(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    await _push_base(store, "old", GREET_09)
    custom = parse_customization(
        """
name: newer words
targets: [{destination: acme/alpine, tag: old}]
tag_suffix: custom
contents: {packages: [greet-data=1.1-r0]}
platforms: [linux/amd64]
"""
    )
    builder = Builder(store, tmp_path / "work", packages=_layers(served, tmp_path))
    result = await builder.build(custom, custom.targets[0], "dockyard.test")
    ref = Reference.parse(f"dockyard.test/acme/alpine:{result.tag}")
    index = await store.manifest_get(ref)
    manifest = await store.manifest_get(ref.with_digest(index.children[0].digest))
    layers = [b"".join([c async for c in store.blob_get(ref, d)]) for d in manifest.blobs[1:]]
    _extract(layers, tmp_path / "rootfs")
    root = tmp_path / "rootfs"
    assert not (root / "usr/share/greet/0.9").exists(), "the old version's file is whited out"
    assert (root / "usr/share/greet/words").read_bytes() == b"hi\n"
    records = _records((root / "lib/apk/db/installed").read_text())
    assert [line for line in records["greet-data"] if line.startswith("V:")] == ["V:1.1-r0"]
    assert (root / "etc/apk/world").read_text() == "greet-data=1.1-r0\n"


async def test_the_review_step_shows_the_alpine_closure(
    store: StoreTarget, served: Served, tmp_path: Path
) -> None:
    planned = await plan(store, CUSTOM, "dockyard.test", _layers(served, tmp_path), tmp_path)
    packages = planned[0]["platforms"][0]["packages"]
    assert packages["distribution"] == "alpine 3.20.3"
    assert packages["architecture"] == "x86_64"
    assert [(p["name"], p["action"], p["why"]) for p in packages["install"]] == [
        ("hello", "install", "requested"),
        ("libgreet", "install", "D: of hello: so:libgreet.so.1"),
        ("greet-data", "install", "D: of hello: greet-data>=1.0"),
    ]
    assert packages["base_has"] == []
    assert await store.manifest_head(RESULT) is None, "a review writes nothing"
