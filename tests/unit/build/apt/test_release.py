"""InRelease: verified against the source's keyring with Sequoia; refused when unsigned,
tampered with, signed by another key, expired, or of another suite."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from dockyard.build.apt.release import (
    INRELEASE_LIMIT,
    ReleaseExpired,
    SignatureInvalid,
    fetch_release,
)
from dockyard.build.apt.sources import SourceError, read_apt_sources
from support.aptrepo import Served, SigningKey


async def test_a_signed_release_verifies(served: Served, session: aiohttp.ClientSession) -> None:
    release = await fetch_release(session, served.source())
    assert release.suite == "testing"
    assert release.signers == (served.repo.key.fingerprint.lower(),)
    packages = release.files["main/binary-amd64/Packages.xz"]
    assert packages.size == (served.repo.dists / "main/binary-amd64/Packages.xz").stat().st_size
    assert release.architectures == ("amd64",)
    assert not release.acquire_by_hash


async def test_an_armored_keyring_verifies(
    served: Served, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    armored = served.repo.key.export(tmp_path / "archive.asc", armor=True)
    release = await fetch_release(session, served.source(keyring=armored))
    assert release.signers == (served.repo.key.fingerprint.lower(),)


async def test_a_tampered_release_is_refused(
    served: Served, session: aiohttp.ClientSession
) -> None:
    inrelease = served.repo.dists / "InRelease"
    text = inrelease.read_bytes()
    # point the index at other bytes: what an attacker serving their own Packages would do
    line = next(x for x in text.splitlines() if x.endswith(b"main/binary-amd64/Packages.xz"))
    forged = line[:1] + (b"0" if line[1:2] != b"0" else b"1") + line[2:]
    inrelease.write_bytes(text.replace(line, forged))
    with pytest.raises(SignatureInvalid, match="no valid signature") as caught:
        await fetch_release(session, served.source())
    assert served.url in str(caught.value)
    assert "backtrace" not in str(caught.value).lower()


async def test_an_unsigned_release_is_refused(
    served: Served, session: aiohttp.ClientSession
) -> None:
    (served.repo.dists / "InRelease").write_bytes((served.repo.dists / "Release").read_bytes())
    with pytest.raises(SignatureInvalid, match="not clearsigned"):
        await fetch_release(session, served.source())


async def test_text_outside_the_signature_is_not_read(
    served: Served, session: aiohttp.ClientSession
) -> None:
    """Only the signed part counts: fields appended after the signature never arrive."""
    inrelease = served.repo.dists / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes() + b"Valid-Until: Thu, 01 Jan 1970 00:00:00 UTC\n")
    release = await fetch_release(session, served.source())
    assert release.valid_until is None


async def test_another_key_is_refused(
    served: Served, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    stranger = SigningKey(tmp_path / "stranger", name="Someone Else")
    try:
        keyring = stranger.export(tmp_path / "stranger.gpg")
    finally:
        stranger.close()
    with pytest.raises(SignatureInvalid, match=r"stranger\.gpg"):
        await fetch_release(session, served.source(keyring=keyring))


async def test_a_release_signed_by_an_expired_key_is_refused(
    served: Served, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Signed in 2020 while the key was valid, the key expired a day later: Sequoia calls the
    signature good, apt (EXPKEYSIG) does not, and neither does this."""
    old = SigningKey(tmp_path / "old", expire="1d", faked_time="20200101T000000")
    try:
        release = (served.repo.dists / "Release").read_bytes()
        signed = old.clearsign(release, at="20200101T120000")
        (served.repo.dists / "InRelease").write_bytes(signed)
        keyring = old.export(tmp_path / "old.gpg")
    finally:
        old.close()
    with pytest.raises(SignatureInvalid, match=r"keys no longer valid: .*expired 2020-01-02"):
        await fetch_release(session, served.source(keyring=keyring))


async def test_an_expired_release_is_refused(
    served: Served, session: aiohttp.ClientSession
) -> None:
    served.repo.publish(valid_until="Sat, 01 Jan 2000 00:00:00 UTC")
    with pytest.raises(ReleaseExpired, match="expired at 2000-01-01") as caught:
        await fetch_release(session, served.source())
    assert served.url in str(caught.value)


async def test_a_release_valid_until_later_is_accepted(
    served: Served, session: aiohttp.ClientSession
) -> None:
    later = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(time.time() + 86400))
    served.repo.publish(valid_until=later)
    release = await fetch_release(session, served.source())
    assert release.valid_until is not None


async def test_a_release_of_another_suite_is_refused(
    served: Served, session: aiohttp.ClientSession
) -> None:
    """A validly signed InRelease of another suite (a replay) is not this suite's."""
    other = served.repo.dists.parent / "stable"
    served.repo.dists.rename(other)
    served.repo.dists.mkdir()
    (served.repo.dists / "InRelease").write_bytes((other / "InRelease").read_bytes())
    with pytest.raises(SignatureInvalid, match="another suite"):
        await fetch_release(session, served.source(suite="stable"))


async def test_a_missing_release_names_the_source(
    served: Served, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(SourceError, match="answered 404") as caught:
        await fetch_release(session, served.source(suite="nowhere"))
    assert f"{served.url} nowhere" in str(caught.value)


@pytest.mark.peers
async def test_the_real_debian_release_verifies(session: aiohttp.ClientSession) -> None:
    """The InRelease of the Debian mirror this machine's apt uses, against Debian's keyring."""
    debian = [
        s
        for s in read_apt_sources()
        if s.keyring == Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    ]
    if not debian:
        pytest.skip("this machine's apt uses no Debian archive")
    release = await fetch_release(session, debian[0])
    assert release.codename == debian[0].suite or release.suite == debian[0].suite
    assert release.signers
    assert any(path.endswith("binary-amd64/Packages.xz") for path in release.files)


async def test_an_oversized_release_is_refused_unread(
    served: Served, session: aiohttp.ClientSession
) -> None:
    inrelease = served.repo.dists / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes() + b"#" * INRELEASE_LIMIT)
    with pytest.raises(SourceError, match=f"more than {INRELEASE_LIMIT}"):
        await fetch_release(session, served.source())
