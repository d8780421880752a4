"""An image's filesystem as its layers stack up, read through a Target (an OCI layout here):
top-most entries win, whiteouts and opaque directories hide lower layers only, every layer
compression reads, symlinks are followed inside the root, and one pass collects what a build
needs to read."""

from __future__ import annotations

import pytest

from dockyard.build.entries import Kind
from dockyard.build.errors import ContentInvalid, Invalid
from dockyard.build.rootfs import RootFS, image_for_platform
from dockyard.oci.descriptor import Platform
from support.ocilayout import Layer, Member, digest_of, opaque, tar_layer, whiteout
from unit.build.images import Images

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'


async def test_later_layers_override_and_whiteouts_hide_only_lower_layers(images: Images) -> None:
    lower = tar_layer(
        [
            Member("etc", kind="dir"),
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            ("etc/keep", "k"),
            Member("var/cache", kind="dir"),
            ("var/cache/a", "a"),
            ("var/cache/sub/b", "b"),
            ("opt/old/x", "x"),
            ("tmp/f", "f"),
        ]
    )
    upper = tar_layer(
        [
            ("etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
            whiteout("etc/keep"),
            ("var/cache/-early", "before the marker in tar order"),
            opaque("var/cache"),
            ("var/cache/new", "n"),
            ("opt/old", "a file where a directory was"),
            # a whiteout hides lower layers only: this layer's own tmp/f stays, whatever the order
            whiteout("tmp/f"),
            ("tmp/f", "f2"),
        ]
    )
    rootfs = await images.rootfs("v1", [lower, upper])

    assert rootfs.collected("/etc/passwd") == b"root:x:0:0::/root:/bin/bash\n"
    assert rootfs.entry("etc/keep") is None
    assert rootfs.paths("var/cache") == ["var/cache/-early", "var/cache/new"]
    old = rootfs.entry("opt/old")
    assert old is not None
    assert old.kind == Kind.FILE
    assert rootfs.paths("opt/old") == []
    assert await rootfs.read("./tmp/f") == b"f2"
    assert rootfs.entry("tmp/f/") == rootfs.entry("/tmp/f")
    assert rootfs.paths() == [
        "etc", "etc/passwd", "opt/old", "tmp/f", "var/cache", "var/cache/-early", "var/cache/new",
    ]  # fmt: skip


async def test_a_whiteout_of_a_directory_hides_all_under_it_until_a_layer_brings_it_back(
    images: Images,
) -> None:
    layers = [
        tar_layer([("srv/app/a", "a"), ("srv/app/lib/b", "b")]),
        tar_layer([whiteout("srv/app")]),
        tar_layer([("srv/app/c", "c")]),
    ]
    rootfs = await images.rootfs("v1", layers)
    assert rootfs.paths("srv") == ["srv/app/c"]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none", "docker"])
async def test_every_layer_compression_reads(images: Images, compression: str) -> None:
    layers = [
        tar_layer([("etc/os-release", OS_RELEASE)], compression=compression),
        tar_layer([("etc/group", "root:x:0:\n")], compression="gzip"),
    ]
    rootfs = await images.rootfs("v1", layers)
    assert rootfs.collected("etc/os-release") == OS_RELEASE.encode()
    assert rootfs.collected("etc/group") == b"root:x:0:\n"


async def test_a_layer_that_is_not_a_tar_stream_is_refused_saying_which(images: Images) -> None:
    tar = b"this is not a tar header" * 50
    not_tar = Layer(tar, "application/vnd.oci.image.layer.v1.tar", diff_id=digest_of(tar))
    with pytest.raises(ContentInvalid, match="not a tar stream") as info:
        await images.rootfs("v1", [not_tar])
    assert not_tar.digest in info.value.message
    odd = Layer(b"{}", "application/vnd.example.config+json", diff_id=digest_of(b"{}"))
    with pytest.raises(ContentInvalid, match="not a tar layer"):
        await images.rootfs("v2", [odd])


async def test_a_symlinked_os_release_is_read_in_the_same_single_pass(images: Images) -> None:
    layers = [
        tar_layer([("usr/lib/os-release", OS_RELEASE), ("etc/passwd", "root:x:0:0:::\n")]),
        tar_layer([Member("etc/os-release", kind="symlink", link="../usr/lib/os-release")]),
        tar_layer([("etc/group", "root:x:0:\n")]),
    ]
    rootfs = await images.rootfs("v1", layers)
    link = rootfs.entry("etc/os-release", follow=False)
    assert link is not None
    assert link.kind == Kind.SYMLINK
    assert await rootfs.read("/etc/os-release") == OS_RELEASE.encode()
    assert await rootfs.read("etc/passwd") == b"root:x:0:0:::\n"
    assert rootfs.layers_streamed == 3  # each layer once, nothing read again


async def test_symlinks_are_followed_inside_the_root_and_never_out_of_it(images: Images) -> None:
    layers = [
        tar_layer(
            [
                ("usr/lib/os-release", OS_RELEASE),
                Member("lib", kind="symlink", link="usr/lib"),
                Member("etc/escape", kind="symlink", link="../../../../../usr/lib/os-release"),
                Member("etc/absolute", kind="symlink", link="/lib/os-release"),
                Member("loop/a", kind="symlink", link="b"),
                Member("loop/b", kind="symlink", link="./a"),
            ]
        )
    ]
    rootfs = await images.rootfs("v1", layers)
    assert rootfs.resolve("etc/escape") == "usr/lib/os-release"
    assert await rootfs.read("etc/absolute") == OS_RELEASE.encode()
    assert await rootfs.read("lib/os-release") == OS_RELEASE.encode()  # a symlinked directory
    assert rootfs.paths("lib") == []  # listing does not follow a link at the end
    with pytest.raises(ContentInvalid, match="too many symlinks"):
        rootfs.entry("loop/a")


async def test_one_pass_collects_every_file_a_build_reads(images: Images) -> None:
    layers = [
        tar_layer(
            [
                ("etc/os-release", OS_RELEASE),
                ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                ("etc/group", "root:x:0:\n"),
                ("var/lib/dpkg/status.d/base-files", "Package: base-files\n"),
                ("var/lib/dpkg/status.d/libc6", "Package: libc6\n"),
                ("usr/share/doc/readme", "not collected"),
            ]
        ),
    ]
    rootfs = await images.rootfs("v1", layers)
    for path in ("etc/os-release", "etc/passwd", "etc/group", "var/lib/dpkg/status.d/libc6"):
        assert rootfs.collected(path) is not None, path
    assert rootfs.collected("usr/share/doc/readme") is None
    assert rootfs.paths("var/lib/dpkg/status.d") == [
        "var/lib/dpkg/status.d/base-files",
        "var/lib/dpkg/status.d/libc6",
    ]
    assert rootfs.layers_streamed == 1


async def test_a_file_not_collected_is_read_from_its_one_layer(images: Images) -> None:
    layers = [
        tar_layer([("srv/data", "old")]),
        tar_layer([("srv/data", "hello"), ("srv/other", "o")], compression="zstd"),
        tar_layer(
            [("usr/bin/tool", "t"), Member("usr/bin/alias", kind="hardlink", link="usr/bin/tool")]
        ),
        tar_layer([("etc/motd", "m")]),
    ]
    rootfs = await images.rootfs("v1", layers)
    assert rootfs.layers_streamed == 4
    assert await rootfs.read("srv/data") == b"hello"
    assert rootfs.layers_streamed == 5  # the one layer that holds it, not all four again
    assert await rootfs.read("usr/bin/alias") == b"t"  # a hard link reads its file
    with pytest.raises(ContentInvalid, match="has no file /srv/missing"):
        await rootfs.read("srv/missing")
    with pytest.raises(ContentInvalid, match="at most 0 are read whole"):
        await rootfs.read("srv/other", limit=0)


async def test_a_file_larger_than_the_collect_limit_keeps_only_its_metadata(
    images: Images,
) -> None:
    rootfs = await images.rootfs("v1", [tar_layer([("etc/passwd", "x" * 100)])], max_file=10)
    entry = rootfs.entry("etc/passwd")
    assert entry is not None
    assert (entry.size, entry.data) == (100, None)
    assert rootfs.collected("etc/passwd") is None


async def test_the_platform_image_is_picked_from_an_index(images: Images) -> None:
    images.layout.add_multiplatform("multi", ["linux/amd64", "linux/arm64/v8"])
    ref = images.ref("multi")
    manifest = await image_for_platform(
        images.target, ref, Platform.parse("linux/arm64"), field="tag", what="base acme/x:1"
    )
    rootfs = await RootFS.scan(images.target, ref, manifest, collect=["etc/platform"])
    assert rootfs.collected("etc/platform") == b"linux/arm64/v8\n"
    with pytest.raises(Invalid, match="offers linux/amd64, linux/arm64/v8") as info:
        await image_for_platform(
            images.target, ref, Platform.parse("linux/s390x"), field="platforms", what="base x"
        )
    assert info.value.message.startswith("platforms: base x has no linux/s390x image")
    single = images.add("single", [tar_layer([("a", "a")])], platform="linux/amd64")
    with pytest.raises(Invalid, match="is a linux/amd64 image, not linux/arm64"):
        await image_for_platform(
            images.target, single, Platform.parse("linux/arm64"), field="f", what="artifact a"
        )
    with pytest.raises(ContentInvalid, match="is an index"):
        await RootFS.scan(images.target, ref, await images.manifest(ref))
