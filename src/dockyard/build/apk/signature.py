"""apk's signed archives: concatenated gzip streams, the first holding `.SIGN.*` files.

An APKINDEX.tar.gz and an .apk both begin with a gzip stream whose tar holds one file per
signature, `.SIGN.RSA.<key name>` (RSA PKCS#1 v1.5 over SHA1), `.SIGN.RSA256.<key name>`
(SHA256) or `.SIGN.RSA512.<key name>`, where the key name is a file of the trusted keys folder
(`/etc/apk/keys` style: `alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub`, a PEM public
key). As apk does, the first signature whose key is trusted is the one checked; it signs the
compressed bytes that follow the signature stream (an index's whole rest; a package's control
stream, whose `datahash` then binds the data stream).
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from dockyard.build.errors import InputRejected

SIGN_PREFIX = ".SIGN."
ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "RSA512": hashes.SHA512,
    "RSA256": hashes.SHA256,
    "RSA": hashes.SHA1,
}
MAX_SMALL_MEMBER = 16 * 1024 * 1024
"""The most a signature or control stream may hold once inflated (both are a few KiB)."""
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Member:
    """One gzip stream of a file: where its compressed bytes are, and what they inflate to."""

    offset: int
    length: int
    content: bytes


def read_members(handle: IO[bytes], count: int, where: str) -> list[Member]:
    """The first `count` gzip streams from the start of `handle` (each inflating to at most
    `MAX_SMALL_MEMBER` bytes), leaving the rest unread. Blocking."""
    members: list[Member] = []
    offset = 0
    pending = b""
    while len(members) < count:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out = bytearray()
        consumed = 0
        while not inflater.eof:
            chunk = pending or handle.read(_CHUNK)
            pending = b""
            if not chunk:
                raise InputRejected(f"{where}: ends inside gzip stream {len(members) + 1}")
            try:
                out += inflater.decompress(chunk, MAX_SMALL_MEMBER + 1 - len(out))
            except zlib.error as exc:
                raise InputRejected(f"{where}: gzip stream {len(members) + 1}: {exc}") from None
            if inflater.unconsumed_tail or len(out) > MAX_SMALL_MEMBER:
                raise InputRejected(f"{where}: stream {len(members) + 1} inflates past its limit")
            consumed += len(chunk) - len(inflater.unused_data)
            pending = inflater.unused_data
        members.append(Member(offset, consumed, bytes(out)))
        offset += consumed
    if pending:  # read past the last stream wanted: go back to its end
        handle.seek(offset)
    return members


def tar_files(content: bytes, where: str) -> list[tuple[str, bytes]]:
    """The regular files of a small tar (a signature or control stream, written without the
    end-of-archive blocks as abuild writes them), name and bytes, in order."""
    files = []
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    files.append((member.name, extracted.read() if extracted else b""))
    except tarfile.TarError as exc:
        raise InputRejected(f"{where}: not a tar stream: {exc}") from None
    return files


class Keys:
    """The trusted signing keys: RSA public keys (PEM), by file name."""

    def __init__(self, keys: dict[str, rsa.RSAPublicKey], folder: Path) -> None:
        self.keys = keys
        self.folder = folder

    @classmethod
    def load(cls, folder: Path) -> Keys:
        """Every RSA public key in `folder` (other files are skipped)."""
        keys: dict[str, rsa.RSAPublicKey] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except (ValueError, OSError):
                continue
            if isinstance(key, rsa.RSAPublicKey):
                keys[path.name] = key
        return cls(keys, folder)


@dataclass(frozen=True)
class Signature:
    """The signature to check: its algorithm, key (by name) and bytes."""

    algorithm: type[hashes.HashAlgorithm]
    key_name: str
    key: rsa.RSAPublicKey
    value: bytes

    def verify(self, digest: bytes, where: str) -> None:
        """`InputRejected` unless this signs `digest` (made with `algorithm`)."""
        try:
            self.key.verify(self.value, digest, padding.PKCS1v15(), Prehashed(self.algorithm()))
        except InvalidSignature:
            raise InputRejected(
                f"{where}: the signature by {self.key_name} does not match the content "
                "(tampered with, or a broken mirror)"
            ) from None


def choose_signature(files: Sequence[tuple[str, bytes]], keys: Keys, where: str) -> Signature:
    """The first signature made by a trusted key, as apk picks it; `InputRejected` when the
    archive is unsigned or signed only by keys not in the trusted folder."""
    seen = []
    for name, value in files:
        if not name.startswith(SIGN_PREFIX):
            continue
        kind, _, key_name = name.removeprefix(SIGN_PREFIX).partition(".")
        algorithm = ALGORITHMS.get(kind)
        if algorithm is None or "/" in key_name:
            continue
        seen.append(key_name)
        key = keys.keys.get(key_name)
        if key is not None:
            return Signature(algorithm, key_name, key, value)
    if not seen:
        raise InputRejected(f"{where}: is not signed (no .SIGN.RSA file): refused")
    raise InputRejected(
        f"{where}: signed by {', '.join(seen)}, not by a key trusted here ({keys.folder}: "
        f"{', '.join(sorted(keys.keys)) or 'no keys'}); an admin adds the key to that folder"
    )


def digest_of(
    handle: IO[bytes], offset: int, length: int | None, algorithm: type[hashes.HashAlgorithm]
) -> bytes:
    """The digest of `length` bytes at `offset` (to the end when None). Blocking."""
    hasher = hashes.Hash(algorithm())
    handle.seek(offset)
    remaining = length
    while remaining is None or remaining > 0:
        block = handle.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
        if not block:
            break
        hasher.update(block)
        if remaining is not None:
            remaining -= len(block)
    return hasher.finalize()


def verify_index(data: bytes, keys: Keys, where: str) -> bytes:
    """The APKINDEX text of a signed `APKINDEX.tar.gz`, once its signature is checked over
    the compressed bytes after the signature stream. `InputRejected` otherwise."""
    handle = io.BytesIO(data)
    (signature_member,) = read_members(handle, 1, where)
    signature = choose_signature(tar_files(signature_member.content, where), keys, where)
    signed = memoryview(data)[signature_member.length :]
    hasher = hashes.Hash(signature.algorithm())
    hasher.update(signed)
    signature.verify(hasher.finalize(), where)
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(signed)), mode="r:gz") as tar:
            member = tar.getmember("APKINDEX")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise KeyError("APKINDEX")
            return extracted.read()
    except (KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise InputRejected(f"{where}: no APKINDEX in the signed archive ({exc})") from None
