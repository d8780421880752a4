"""Packages indexes and .deb files: fetched by the digests the signed Release and index list,
verified while they stream, cached by SHA256; a tampered file is refused and nothing of it is
cached; a warm run fetches only InRelease."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import lzma
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
from debian.deb822 import Packages

from dockyard.build.apt.cache import DigestMismatch, fetch_deb, hash_file
from dockyard.build.apt.index import IndexMissing, fetch_packages, index_targets
from dockyard.build.apt.release import fetch_release
from support.aptrepo import Served


def _stanzas(path: Path) -> dict[str, Packages]:
    with path.open() as handle:
        return {p["Package"]: p for p in Packages.iter_paragraphs(handle, use_apt_pkg=False)}


async def test_packages_arrive_verified_and_decompressed(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    assert index_targets(release, "amd64") == [("main", "amd64")]
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    plain = (served.repo.dists / "main/binary-amd64/Packages").read_bytes()
    assert index.path.read_bytes() == plain
    assert index.sha256 == hashlib.sha256(plain).hexdigest()
    assert set(_stanzas(index.path)) == {"hello-gz", "hello-xz", "hello-zst"}
    # the compressed form is not kept once its plain text is cached under the listed digest
    assert served.cached() == [f"sha256/{index.sha256}"]


@pytest.mark.parametrize("forms", [("gz",), ()])
async def test_gzip_and_plain_indexes_are_read(
    served: Served, session: aiohttp.ClientSession, forms: tuple[str, ...]
) -> None:
    served.repo.publish(forms=forms)
    folder = served.repo.dists / "main/binary-amd64"
    if not forms:  # only the plain file is listed and served
        assert not (folder / "Packages.xz").exists()
    release = await fetch_release(session, served.source())
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    assert index.path.read_bytes() == (folder / "Packages").read_bytes()


async def test_by_hash_urls_are_used(served: Served, session: aiohttp.ClientSession) -> None:
    served.repo.publish(by_hash=True)
    folder = served.repo.dists / "main/binary-amd64"
    (folder / "Packages.xz").unlink()  # only the by-hash copy is there to be fetched
    release = await fetch_release(session, served.source())
    assert release.acquire_by_hash
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    assert index.path.read_bytes() == (folder / "Packages").read_bytes()


async def test_a_warm_run_fetches_only_the_release(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    first = await fetch_packages(session, release, "main", "amd64", served.cache)
    # the archive's index files are gone: only the cache can answer
    for path in (served.repo.dists / "main/binary-amd64").iterdir():
        path.unlink()
    release = await fetch_release(session, served.source())
    again = await fetch_packages(session, release, "main", "amd64", served.cache)
    assert again.path == first.path


async def test_a_tampered_index_is_refused_and_not_cached(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    folder = served.repo.dists / "main/binary-amd64"
    text = (folder / "Packages").read_bytes().replace(b"hello-gz", b"hello-GZ")
    (folder / "Packages.xz").write_bytes(lzma.compress(text))
    with pytest.raises(DigestMismatch, match=r"Packages\.xz") as caught:
        await fetch_packages(session, release, "main", "amd64", served.cache)
    assert served.url in str(caught.value)
    assert served.cached() == []


async def test_an_index_that_inflates_to_other_text_is_refused(
    served: Served, session: aiohttp.ClientSession
) -> None:
    """The compressed file matches its listed digest, the plain text it gives does not: the
    Release's plain digest still decides (a broken or hostile archive)."""
    folder = served.repo.dists / "main/binary-amd64"
    text = (folder / "Packages").read_bytes()
    (folder / "Packages.gz").write_bytes(gzip.compress(text + b"\n", mtime=0))
    (folder / "Packages.xz").unlink()
    served.repo.publish(forms=())  # re-list: Packages and the stale Packages.gz
    (folder / "Packages.gz").write_bytes(gzip.compress(text.replace(b"1.0", b"9.9"), mtime=0))
    served.repo.dists.joinpath("InRelease").write_bytes(
        served.repo.key.clearsign(_relist(served.repo.dists))
    )
    release = await fetch_release(session, served.source())
    with pytest.raises(DigestMismatch, match=r"Packages\.gz: SHA256"):
        await fetch_packages(session, release, "main", "amd64", served.cache)
    # what is cached is only the compressed file, which matched its own listed digest
    listed = release.files["main/binary-amd64/Packages.gz"].sha256
    assert served.cached() == [f"sha256/{listed}"]


def _relist(dists: Path) -> bytes:
    """A Release text that lists the current files (the plain digest kept from before)."""
    import subprocess

    return subprocess.run(
        ["apt-ftparchive", "-oAPT::FTPArchive::Release::Suite=testing", "release", "."],
        cwd=dists,
        check=True,
        capture_output=True,
    ).stdout


async def test_a_missing_architecture_is_named(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    with pytest.raises(IndexMissing, match="no main/binary-arm64/Packages index"):
        await fetch_packages(session, release, "main", "arm64", served.cache)


async def test_debs_are_verified_into_the_cache(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    for stanza in _stanzas(index.path).values():
        path = await fetch_deb(
            session, served.cache, served.source(), stanza["Filename"],
            int(stanza["Size"]), stanza["SHA256"],
        )  # fmt: skip
        assert path.read_bytes() == (served.repo.root / stanza["Filename"]).read_bytes()
        assert path.name == stanza["SHA256"]


async def test_a_tampered_deb_is_refused_and_not_cached(
    served: Served, session: aiohttp.ClientSession
) -> None:
    release = await fetch_release(session, served.source())
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    stanza = _stanzas(index.path)["hello-gz"]
    deb = served.repo.root / stanza["Filename"]
    data = bytearray(deb.read_bytes())
    data[-10] ^= 0xFF  # same size, other bytes
    deb.write_bytes(bytes(data))
    before = served.cached()
    with pytest.raises(DigestMismatch, match=r"hello-gz_1\.0_all\.deb: SHA256") as caught:
        await fetch_deb(
            session, served.cache, served.source(), stanza["Filename"],
            int(stanza["Size"]), stanza["SHA256"],
        )  # fmt: skip
    assert served.url in str(caught.value)
    assert served.cached() == before
    deb.write_bytes(bytes(data) + b"more")  # longer than listed: refused as it arrives
    with pytest.raises(DigestMismatch, match="bytes"):
        await fetch_deb(
            session, served.cache, served.source(), stanza["Filename"],
            int(stanza["Size"]), stanza["SHA256"],
        )  # fmt: skip
    assert served.cached() == before


FILL = """
import asyncio, sys
from pathlib import Path
import aiohttp
from dockyard.build.apt.cache import VerifiedCache

async def main():
    root, url, size, sha256 = sys.argv[1:]
    async with aiohttp.ClientSession() as session:
        print(await VerifiedCache(Path(root)).download(session, url, int(size), sha256, "race"))

asyncio.run(main())
"""


async def test_two_processes_fill_one_entry(served: Served, session: aiohttp.ClientSession) -> None:
    """Both succeed and one verified file stands: temporary files are per process, the rename
    is atomic."""
    release = await fetch_release(session, served.source())
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    stanza = _stanzas(index.path)["hello-xz"]
    url = served.source().pool_url(stanza["Filename"])
    args = (str(served.cache.root), url, stanza["Size"], stanza["SHA256"])
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", FILL, *args, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [await run.communicate() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    paths = [out.decode().strip() for out, _ in outputs]
    assert paths[0] == paths[1]
    assert await asyncio.to_thread(hash_file, Path(paths[0])) == stanza["SHA256"]
    assert not any(served.cache.temp.iterdir())


async def test_a_mirror_without_by_hash_files_is_read_by_name(
    served: Served, session: aiohttp.ClientSession
) -> None:
    """As apt does: a by-hash 404 falls back to the file's name (still checked by digest)."""
    served.repo.publish(by_hash=True)
    folder = served.repo.dists / "main/binary-amd64"
    shutil.rmtree(folder / "by-hash")
    release = await fetch_release(session, served.source())
    index = await fetch_packages(session, release, "main", "amd64", served.cache)
    assert index.path.read_bytes() == (folder / "Packages").read_bytes()
