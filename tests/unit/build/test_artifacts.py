"""Files from artifact images: nothing by default, includes select, excludes remove, later
artifacts override earlier ones, each artifact's own whiteouts honoured, the platform chosen
from its index, and every base path it would overwrite reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from dockyard.build.artifacts import ArtifactSource, Spool, artifact_files, merge
from dockyard.build.entries import Entry, Kind
from dockyard.build.errors import Invalid
from dockyard.build.rootfs import RootFS
from dockyard.oci.descriptor import Platform
from support.ocilayout import Member, opaque, tar_layer, whiteout
from unit.build.images import Images

AMD64 = Platform.parse("linux/amd64")


@pytest_asyncio.fixture
async def base(images: Images) -> RootFS:
    layer = tar_layer(
        [
            Member("etc", kind="dir"),
            Member("etc/ssl", kind="dir", mode=0o700),
            Member("etc/ssl/certs", kind="dir"),
            ("etc/ssl/certs/base.pem", "base"),
            ("etc/hosts", "127.0.0.1 localhost\n"),
            Member("usr/lib", kind="dir"),
            Member("lib", kind="symlink", link="usr/lib"),
        ]
    )
    return await images.rootfs("base", [layer])


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path)


async def _bytes(entry: Entry) -> bytes:
    return b"".join([chunk async for chunk in entry.chunks()])


def _index(images: Images, tag: str, layers_by_platform: dict[str, list[object]]) -> None:
    children = [
        images.layout.add_image(None, layers=layers, platform=platform)  # type: ignore[arg-type]
        for platform, layers in layers_by_platform.items()
    ]
    images.layout.add_index(tag, children)


async def test_includes_select_excludes_remove_and_later_artifacts_override(
    images: Images, base: RootFS, spool: Spool
) -> None:
    rootca = [
        tar_layer(
            [
                Member("etc/ssl", kind="dir", mode=0o755),
                Member("etc/ssl/certs", kind="dir", mode=0o755),
                ("etc/ssl/certs/ca.pem", "CA from rootca"),
                ("etc/ssl/certs/gone.pem", "hidden by the next layer"),
                ("etc/ssl/certs/base.pem", "replaces the base's"),
                ("etc/ssl/certs/old/legacy.pem", "excluded"),
                Member("etc/ssl/certs/ca-link.pem", kind="symlink", link="ca.pem"),
                Member("opt", kind="dir", mode=0o711),
                Member("opt/tool", kind="dir", mode=0o750, uid=1000, gid=1000),
                Member("opt/tool/bin/t", data="#!/bin/sh\n", mode=0o4755, uid=1000, gid=1000),
                Member("opt/tool/bin/t2", kind="hardlink", link="opt/tool/bin/t"),
                ("opt/tool/share/doc", "not included"),
                ("srv/unrelated", "not included"),
            ]
        ),
        tar_layer([whiteout("etc/ssl/certs/gone.pem")], compression="zstd"),
    ]
    _index(images, "rootca", {"linux/amd64": rootca, "linux/arm64": [tar_layer([("x", "x")])]})
    images.add("override", [tar_layer([("etc/ssl/certs/ca.pem", "CA from override")])])
    sources = [
        ArtifactSource(
            images.ref("rootca"),
            includes=("/etc/ssl/certs", "opt/tool/bin/"),
            excludes=("./etc/ssl/certs/old",),
        ),
        ArtifactSource(
            images.ref("override"), ("etc/ssl/certs/ca.pem",), (), "contents.artifacts[1]"
        ),
    ]

    first, second = await artifact_files(images.target, sources, AMD64, base, spool)

    by_path = {entry.path: entry for entry in first.entries}
    assert sorted(by_path) == [
        "etc/ssl/certs",
        "etc/ssl/certs/base.pem",
        "etc/ssl/certs/ca-link.pem",
        "etc/ssl/certs/ca.pem",
        "opt",  # parents the base lacks come along, as the artifact has them
        "opt/tool",
        "opt/tool/bin/t",
        "opt/tool/bin/t2",
    ]  # etc and etc/ssl are the base's: their modes stay the base's
    tool = by_path["opt/tool/bin/t"]
    assert (tool.mode, tool.uid, tool.gid) == (0o4755, 1000, 1000)
    assert (by_path["opt"].mode, by_path["opt/tool"].mode, by_path["opt/tool"].uid) == (
        0o711, 0o750, 1000,
    )  # fmt: skip
    assert by_path["opt/tool/bin/t2"].kind == Kind.HARDLINK
    assert by_path["etc/ssl/certs/ca-link.pem"].link == "ca.pem"
    assert await _bytes(tool) == b"#!/bin/sh\n"
    assert (first.files, first.bytes) == (  # files, links: anything but a directory
        5,
        len("CA from rootca") + len("replaces the base's") + 10,
    )
    assert first.overwrites == ("/etc/ssl/certs/base.pem",)
    assert (second.files, second.overwrites) == (1, ())

    merged = {entry.path: entry for entry in merge([first, second])}
    assert await _bytes(merged["etc/ssl/certs/ca.pem"]) == b"CA from override"
    assert await _bytes(merged["etc/ssl/certs/base.pem"]) == b"replaces the base's"
    assert len(merged) == len(first.entries)


async def test_an_include_the_artifact_lacks_is_an_error_naming_artifact_and_path(
    images: Images, base: RootFS, spool: Spool
) -> None:
    images.add(
        "rootca", [tar_layer([("etc/ssl/certs/ca.pem", "ca")]), tar_layer([opaque("etc/ssl")])]
    )
    source = ArtifactSource(
        images.ref("rootca"), ("etc/ssl/certs", "/usr/share/ca"), field="contents.artifacts[2]"
    )
    with pytest.raises(Invalid) as info:
        await artifact_files(images.target, [source], AMD64, base, spool)
    # the opaque directory of its second layer hid what the first one had
    assert info.value.field == "contents.artifacts[2].includes[0]"
    assert f"artifact {source.reference} (linux/amd64) has no /etc/ssl/certs" in info.value.message
    with pytest.raises(Invalid, match="at least one path"):
        await artifact_files(
            images.target, [ArtifactSource(source.reference, ())], AMD64, base, spool
        )


async def test_an_artifact_without_the_build_platform_is_named(
    images: Images, base: RootFS, spool: Spool
) -> None:
    _index(images, "rootca", {"linux/amd64": [tar_layer([("a", "a")])]})
    source = ArtifactSource(images.ref("rootca"), ("a",), field="contents.artifacts[0]")
    with pytest.raises(Invalid) as info:
        await artifact_files(images.target, [source], Platform.parse("linux/arm64"), base, spool)
    assert info.value.field == "contents.artifacts[0]"
    assert f"artifact {source.reference} has no linux/arm64 image; it offers linux/amd64" in str(
        info.value
    )


async def test_links_that_would_dangle_and_devices_are_refused(
    images: Images, base: RootFS, spool: Spool
) -> None:
    images.add(
        "tools",
        [
            tar_layer(
                [
                    ("opt/a", "a"),
                    Member("opt/b", kind="hardlink", link="opt/a"),
                    Member("opt/fifo", kind="fifo"),
                ]
            )
        ],
    )
    ref = images.ref("tools")
    with pytest.raises(Invalid, match="hard link to /opt/a, which is not selected"):
        await artifact_files(images.target, [ArtifactSource(ref, ("opt/b",))], AMD64, base, spool)
    with pytest.raises(Invalid, match="device or FIFO at /opt/fifo"):
        await artifact_files(images.target, [ArtifactSource(ref, ("opt",))], AMD64, base, spool)
    with pytest.raises(Invalid, match=r"includes\[0\]: path '\.\./etc'"):
        await artifact_files(images.target, [ArtifactSource(ref, ("../etc",))], AMD64, base, spool)


async def test_a_directory_over_a_base_symlink_is_reported(
    images: Images, base: RootFS, spool: Spool
) -> None:
    images.add("libs", [tar_layer([("lib/libx.so", "x"), ("etc/hosts", "10.0.0.1 x\n")])])
    (files,) = await artifact_files(
        images.target,
        [ArtifactSource(images.ref("libs"), ("lib", "etc/hosts"))],
        AMD64,
        base,
        spool,
    )
    # /lib is a symlink in the base: an artifact directory there would hide /usr/lib
    assert files.overwrites == ("/etc/hosts", "/lib")


async def test_the_spool_is_removed_when_closed(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        assert spool.path.exists()
    assert not spool.path.exists()
