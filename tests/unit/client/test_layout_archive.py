"""`export_archive` / `import_archive`: an OCI layout as a tar, round trip and hostile input."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from dockyard.client.archive import ArchiveInvalid, export_archive, import_archive
from dockyard.client.layout import LayoutTarget
from dockyard.client.layoutfs import LayoutInvalid
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.errors import DigestInvalid, SizeInvalid
from dockyard.oci.manifest import parse_manifest
from dockyard.oci.reference import Reference
from support.ocilayout import build_artifact, build_image, random_layer


def _layout_ref(tag: str | None = None, digest: Digest | None = None) -> Reference:
    """A reference into a layout: `LayoutTarget` reads only its tag and digest."""
    return Reference.layout("layout", tag, digest)


async def make_layout(root: Path) -> LayoutTarget:
    """A layout with a tagged image (a 5 MiB layer) and a referrer of it."""
    layout = LayoutTarget(root)
    image = build_image({"a": "b"}, layers=[random_layer(5 << 20, seed="archive")])
    artifact = build_artifact(image.descriptor(), "application/vnd.example.sig", b"sig")
    for built, ref in (
        (image, _layout_ref("v1")),
        (artifact, _layout_ref(digest=Digest.parse(artifact.digest))),
    ):
        for blob in built.blobs():
            await layout.blob_put(ref, Descriptor.from_json(blob.descriptor()), blob.data)
        await layout.manifest_put(ref, parse_manifest(built.manifest.data))
    return layout


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def hostile_tar(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A tar with a valid layout's two files plus `member`."""
    with tarfile.open(path, "w") as tar:
        for name, content in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", b'{"schemaVersion":2,"manifests":[]}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


async def test_an_archive_round_trip_keeps_every_byte(tmp_path: Path) -> None:
    source = await make_layout(tmp_path / "source")
    tar = tmp_path / "out.tar"
    await export_archive(source.root, tar)
    again = tmp_path / "again.tar"
    await export_archive(source.root, again)
    assert tar.read_bytes() == again.read_bytes()  # reproducible: fixed owners, modes, mtimes
    with tarfile.open(tar) as opened:
        members = opened.getnames()
    assert members[:3] == ["oci-layout", "index.json", "blobs"]

    await import_archive(tar, tmp_path / "imported")
    assert files(tmp_path / "imported") == files(source.root)
    imported = LayoutTarget(tmp_path / "imported")
    assert await imported.tag_list(_layout_ref()) == await source.tag_list(_layout_ref())
    assert len(await imported.referrers(_layout_ref("v1"))) == 1


async def test_a_compressed_archive_imports_into_an_empty_folder(tmp_path: Path) -> None:
    source = await make_layout(tmp_path / "source")
    tar = tmp_path / "out.tar"
    await export_archive(source.root, tar)
    compressed = tmp_path / "out.tar.gz"
    compressed.write_bytes(gzip.compress(tar.read_bytes(), compresslevel=1))
    (tmp_path / "empty").mkdir()
    await import_archive(compressed, tmp_path / "empty")
    assert files(tmp_path / "empty") == files(source.root)


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../x"),
        tarfile.TarInfo("blobs/../../x"),
        tarfile.TarInfo("/tmp/x"),
        tarfile.TarInfo("nested/file"),
    ],
    ids=["dotdot", "dotdot-inside", "absolute", "unexpected"],
)
async def test_members_outside_the_layout_refuse_the_archive(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    tar = hostile_tar(tmp_path / "evil.tar", member, b"pwned")
    target = tmp_path / "deep" / "imported"
    with pytest.raises(ArchiveInvalid):
        await import_archive(tar, target)
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "deep" / "x").exists()
    assert not target.exists()
    assert names_in(tmp_path / "deep") == []  # no staging folder left


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
async def test_links_and_devices_refuse_the_archive(tmp_path: Path, kind: bytes) -> None:
    member = tarfile.TarInfo("blobs/sha256/" + "a" * 64)
    member.type = kind
    member.linkname = "/etc/passwd"
    tar = hostile_tar(tmp_path / "evil.tar", member)
    with pytest.raises(ArchiveInvalid, match="link or special file"):
        await import_archive(tar, tmp_path / "imported")
    assert not (tmp_path / "imported").exists()


async def test_a_blob_with_wrong_bytes_refuses_the_archive(tmp_path: Path) -> None:
    member = tarfile.TarInfo("blobs/sha256/" + Digest.of(b"the real bytes").encoded)
    tar = hostile_tar(tmp_path / "rotten.tar", member, b"the fake bytes")
    with pytest.raises(DigestInvalid):
        await import_archive(tar, tmp_path / "imported")
    assert names_in(tmp_path) == ["rotten.tar"]
    bad_name = tarfile.TarInfo("blobs/sha256/not-a-digest")
    with pytest.raises(ArchiveInvalid, match="not a blob path"):
        await import_archive(hostile_tar(tmp_path / "b.tar", bad_name, b"x"), tmp_path / "i")


async def test_an_archive_missing_what_index_json_names_is_refused(tmp_path: Path) -> None:
    source = await make_layout(tmp_path / "source")
    tar = tmp_path / "out.tar"
    await export_archive(source.root, tar)
    pruned = tmp_path / "pruned.tar"
    with tarfile.open(tar) as full, tarfile.open(pruned, "w") as out:
        for member in full.getmembers():
            index_blob = member.name.startswith("blobs/") and member.size < 1000
            if not (member.isfile() and index_blob and b'"manifests"' not in _read(full, member)):
                out.addfile(member, full.extractfile(member) if member.isfile() else None)
    with pytest.raises(ArchiveInvalid, match="does not hold"):
        await import_archive(pruned, tmp_path / "imported")


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


async def test_import_refuses_a_folder_with_content_and_a_tar_without_a_layout(
    tmp_path: Path,
) -> None:
    source = await make_layout(tmp_path / "source")
    tar = tmp_path / "out.tar"
    await export_archive(source.root, tar)
    with pytest.raises(FileExistsError):
        await import_archive(tar, source.root)
    not_layout = tmp_path / "plain.tar"
    with tarfile.open(not_layout, "w") as plain:
        info = tarfile.TarInfo("index.json")
        plain.addfile(info, io.BytesIO())
    with pytest.raises(ArchiveInvalid, match="oci-layout"):
        await import_archive(not_layout, tmp_path / "imported")


async def test_export_refuses_a_corrupted_layout_and_leaves_no_tar(tmp_path: Path) -> None:
    source = await make_layout(tmp_path / "source")
    layer = max((source.root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 1
    layer.write_bytes(bytes(data))
    with pytest.raises(DigestInvalid):
        await export_archive(source.root, tmp_path / "out.tar")
    assert names_in(tmp_path) == ["source"]
    layer.write_bytes(bytes(data[:-1]))
    with pytest.raises((SizeInvalid, DigestInvalid)):
        await export_archive(source.root, tmp_path / "out.tar")
    with pytest.raises(LayoutInvalid):
        await export_archive(tmp_path / "nothing", tmp_path / "out.tar")
