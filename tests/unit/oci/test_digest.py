"""Digests: the grammar, the registered algorithms, and hashing exact bytes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci.digest import Digest, is_digest
from dockyard.oci.errors import DigestInvalid, OciError
from dockyard.oci.referrers import is_digest_tag, is_fallback_tag

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512_EMPTY = (
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
HEX = "0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [
        (SHA256_EMPTY, "sha256"),
        (SHA512_EMPTY, "sha512"),
        ("sha256:" + "0" * 64, "sha256"),
        ("sha512:" + "f" * 128, "sha512"),
    ],
)
def test_parse_accepts_registered_algorithms(text: str, algorithm: str) -> None:
    digest = Digest.parse(text)
    assert digest.algorithm == algorithm
    assert digest.encoded == text.split(":", 1)[1]
    assert str(digest) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected algorithm:hex"),
        ("sha256", "expected algorithm:hex"),
        ("sha256:", "expected algorithm:hex"),
        (":" + "a" * 64, "expected algorithm:hex"),
        ("SHA256:" + "a" * 64, "expected algorithm:hex"),
        ("sha256:" + "a" * 63, "expected 64 lowercase hex"),
        ("sha256:" + "a" * 65, "expected 64 lowercase hex"),
        ("sha256:" + "A" * 64, "expected 64 lowercase hex"),
        ("sha256:" + "g" * 64, "expected 64 lowercase hex"),
        ("sha512:" + "a" * 64, "expected 128 lowercase hex"),
        ("sha384:" + "a" * 96, "unsupported digest algorithm 'sha384'"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm 'md5'"),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "unsupported"),
        ("sha256:" + "a" * 64 + "\n", "expected algorithm:hex"),
        (" sha256:" + "a" * 64, "expected algorithm:hex"),
        ("sha256:" + "a" * 32 + ":" + "a" * 31, "expected algorithm:hex"),
        ("sha256:" + "a" * 64 + "@", "expected algorithm:hex"),
    ],
)
def test_parse_refuses_with_a_message_that_quotes_the_input(text: str, says: str) -> None:
    with pytest.raises(DigestInvalid) as caught:
        Digest.parse(text)
    assert says in caught.value.message
    assert repr(text) in caught.value.message
    assert caught.value.code == "DIGEST_INVALID"
    assert caught.value.status == 400


@pytest.mark.parametrize("data", [b"", b"{}", b"hello\n", bytes(range(256))])
def test_of_hashes_the_exact_bytes(data: bytes) -> None:
    assert Digest.of(data) == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert Digest.of(data, "sha512") == Digest("sha512", hashlib.sha512(data).hexdigest())


def test_of_empty_input_is_the_well_known_digest() -> None:
    assert str(Digest.of(b"")) == SHA256_EMPTY
    assert str(Digest.of(b"", "sha512")) == SHA512_EMPTY


def test_hasher_is_fresh_and_of_the_digest_algorithm() -> None:
    for text in (SHA256_EMPTY, SHA512_EMPTY):
        digest = Digest.parse(text)
        hasher = digest.hasher()
        assert hasher.name == digest.algorithm
        assert f"{digest.algorithm}:{hasher.hexdigest()}" == text  # nothing fed yet


def test_digest_is_a_frozen_hashable_value() -> None:
    a, b = Digest.parse(SHA256_EMPTY), Digest.parse(SHA256_EMPTY)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, Digest.parse(SHA512_EMPTY)}) == 2
    with pytest.raises(AttributeError):
        a.encoded = "x" * 64  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHA256_EMPTY, True),
        ("sha384:" + "a" * 96, True),  # grammar only: any algorithm
        ("latest", False),
        ("v1.0", False),
        ("sha256-" + "a" * 64, False),  # the referrers fallback tag is a tag
        ("", False),
        ("sha256:", False),
    ],
)
def test_is_digest_tells_digests_from_tags(text: str, expected: bool) -> None:
    assert is_digest(text) is expected


@given(st.binary(max_size=4096), st.sampled_from(["sha256", "sha512"]))
def test_of_round_trips_through_parse(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert Digest.parse(str(digest)) == digest
    hasher = digest.hasher()
    hasher.update(data)
    assert hasher.hexdigest() == digest.encoded


@given(st.sampled_from(["sha256", "sha512"]), st.data())
def test_every_well_formed_hex_parses(algorithm: str, data: st.DataObject) -> None:
    size = 64 if algorithm == "sha256" else 128
    encoded = data.draw(st.text(HEX, min_size=size, max_size=size))
    assert Digest.parse(f"{algorithm}:{encoded}") == Digest(algorithm, encoded)


@given(st.text())
def test_parse_raises_only_digest_invalid(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except DigestInvalid:
        return
    except OciError as exc:  # pragma: no cover - a failure report, not a path
        pytest.fail(f"Digest.parse({text!r}) raised {type(exc).__name__}, not DigestInvalid")
    assert str(digest) == text


def test_fallback_and_digest_tags_are_told_from_image_tags() -> None:
    hexes = "a" * 64
    assert is_fallback_tag(f"sha256-{hexes}")
    assert is_fallback_tag(f"sha512-{hexes}")  # the spec cuts a sha512 subject to 64
    assert not is_fallback_tag(f"sha256-{hexes}.sig")
    assert not is_fallback_tag("3.13")
    assert is_digest_tag(f"sha256-{hexes}.sig")
    assert is_digest_tag(f"sha256-{hexes}.att")
    assert not is_digest_tag(f"sha256-{hexes}")
    assert not is_digest_tag("sha256-abc.sig")
