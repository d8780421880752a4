"""Signed APKINDEX archives and .apk files are read only once their signature, identity and
data hash hold; anything else is refused with a message that names the archive."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from dockyard.build.apk.apkfile import data_entries, verify
from dockyard.build.apk.index import read_index
from dockyard.build.apk.signature import Keys, verify_index
from dockyard.build.errors import InputRejected
from support.apkrepo import ApkKey, ApkRepo, ApkSpec, build_apk

SPEC = ApkSpec(
    "tool", "1.0-r0", files={"usr/bin/tool": b"tool\n"}, depends=["so:libc.musl-x86_64.so.1"]
)


@pytest.fixture
def repo(tmp_path: Path, apk_key: ApkKey) -> ApkRepo:
    made = ApkRepo(tmp_path / "alpine", apk_key)
    made.add(SPEC)
    return made


def _index(repo: ApkRepo) -> bytes:
    return (repo.folder("main") / "APKINDEX.tar.gz").read_bytes()


@pytest.mark.parametrize("kind", ["RSA", "RSA256"])
def test_a_signed_index_is_read(repo: ApkRepo, kind: str) -> None:
    repo.publish(kind)
    text = verify_index(_index(repo), Keys.load(repo.keys), "main")
    (package,) = read_index(text.decode())
    assert (package.name, package.version, package.size) == ("tool", "1.0-r0", len(
        (repo.folder("main") / "tool-1.0-r0.apk").read_bytes()))  # fmt: skip
    assert [str(d) for d in package.depends] == ["so:libc.musl-x86_64.so.1"]


def test_a_tampered_index_is_refused(repo: ApkRepo) -> None:
    repo.publish()
    data = bytearray(_index(repo))
    data[-30] ^= 0xFF
    with pytest.raises(InputRejected, match=re.escape("main: the signature by test@example.org")):
        verify_index(bytes(data), Keys.load(repo.keys), "main")


def test_an_index_signed_by_an_unknown_key_is_refused(repo: ApkRepo) -> None:
    stranger = ApkKey("stranger@example.org-1.rsa.pub")
    repo.publish(key=stranger)
    with pytest.raises(
        InputRejected, match=re.escape("signed by stranger@example.org-1.rsa.pub, not by a key")
    ):
        verify_index(_index(repo), Keys.load(repo.keys), "main")


def test_an_index_signed_with_a_trusted_name_but_another_key_is_refused(repo: ApkRepo) -> None:
    impostor = ApkKey(repo.key.name)
    repo.publish(key=impostor)
    with pytest.raises(InputRejected, match="does not match"):
        verify_index(_index(repo), Keys.load(repo.keys), "main")


def test_an_unsigned_index_is_refused(repo: ApkRepo) -> None:
    repo.publish()
    data = _index(repo)
    unsigned = data[data.index(b"\x1f\x8b", 10) :]  # the index stream alone
    with pytest.raises(InputRejected, match="is not signed"):
        verify_index(unsigned, Keys.load(repo.keys), "main")


def _package(
    tmp_path: Path, key: ApkKey, spec: ApkSpec = SPEC, kind: str = "RSA"
) -> tuple[Path, bytes]:
    apk, identity_of = build_apk(spec, key, kind)
    path = tmp_path / spec.filename
    path.write_bytes(apk)
    return path, hashlib.sha1(identity_of).digest()


@pytest.mark.parametrize("kind", ["RSA", "RSA256"])
def test_a_package_is_verified_and_its_files_read(
    tmp_path: Path, apk_key: ApkKey, kind: str
) -> None:
    path, identity = _package(tmp_path, apk_key, kind=kind)
    control = verify(path, _keys(apk_key, tmp_path), identity, "tool")
    assert control.get("pkgname") == ["tool"]
    files = {e.info.name: e.stream.read() for e in data_entries(path, control, "tool") if e.stream}
    assert files == {"usr/bin/tool": b"tool\n"}


def _keys(key: ApkKey, folder: Path) -> Keys:
    return Keys({key.name: key.private.public_key()}, folder)


def test_a_package_whose_data_was_changed_is_refused(tmp_path: Path, apk_key: ApkKey) -> None:
    path, identity = _package(tmp_path, apk_key)
    data = bytearray(path.read_bytes())
    data[-12] ^= 0xFF  # in the data stream's deflate body or trailer
    path.write_bytes(bytes(data))
    with pytest.raises(InputRejected, match=re.escape("tool: its data stream's SHA256 is")):
        verify(path, _keys(apk_key, tmp_path), identity, "tool")


def test_a_package_that_is_not_the_one_the_index_names_is_refused(
    tmp_path: Path, apk_key: ApkKey
) -> None:
    path, _ = _package(tmp_path, apk_key)
    with pytest.raises(InputRejected, match=re.escape("not the C: of the signed index")):
        verify(path, _keys(apk_key, tmp_path), hashlib.sha1(b"another").digest(), "tool")


def test_a_package_signed_by_an_unknown_key_is_refused(tmp_path: Path, apk_key: ApkKey) -> None:
    path, identity = _package(tmp_path, ApkKey("other@example.org-2.rsa.pub"))
    with pytest.raises(InputRejected, match=re.escape("signed by other@example.org-2.rsa.pub")):
        verify(path, _keys(apk_key, tmp_path), identity, "tool")


def test_a_package_of_the_old_form_is_signed_over_control_and_data(
    tmp_path: Path, apk_key: ApkKey
) -> None:
    spec = ApkSpec("old", files={"usr/bin/old": b"old\n"}, datahash=False)
    path, identity = _package(tmp_path, apk_key, spec)
    verify(path, _keys(apk_key, tmp_path), identity, "old")
    data = bytearray(path.read_bytes())
    data[-12] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputRejected):
        verify(path, _keys(apk_key, tmp_path), identity, "old")
