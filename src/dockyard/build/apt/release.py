"""A suite's `InRelease`: fetched (bounded), its clearsigned signature verified with Sequoia
against the source's keyring, and only the signed text parsed (never the bytes around it).

Refused, with an error naming the source: no signature, a signature by no key of the keyring
or over other text (tampered), an expired or not-yet-valid key, a `Valid-Until` in the past, a
suite that is not the one asked for (a replayed file of another suite).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pysequoia
from debian.deb822 import Release as Deb822Release

from dockyard.build.apt.sources import AptSource, SourceError, keyring_files

INRELEASE_LIMIT = 16 * 1024 * 1024  # bookworm's is 150 KB; a bigger answer is not an InRelease


class SignatureInvalid(SourceError):
    """`InRelease` is unsigned, tampered with, or signed by no valid key of the keyring."""


class ReleaseExpired(SourceError):
    """`InRelease` is past its `Valid-Until`: a mirror is stale, or an old file is replayed."""


@dataclass(frozen=True)
class IndexFile:
    """One line of a Release file's SHA256 list: a path under `dists/SUITE/`."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The verified fields of a suite's `InRelease`."""

    source: AptSource
    suite: str
    codename: str
    date: datetime | None
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    files: dict[str, IndexFile]
    signers: tuple[str, ...]  # fingerprints of the certificates whose signatures verified
    sha256: str  # of the InRelease bytes as served: the lock records it
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def arch_all_separate(self) -> bool:
        """Whether `Architecture: all` packages have their own `binary-all` index (else they
        are listed in every architecture's, as Debian's `No-Support-for-Architecture-all`
        says)."""
        no_all = self.fields.get("No-Support-for-Architecture-all", "")
        return "all" in self.architectures and no_all.strip() != "Packages"


def load_certificates(source: AptSource) -> list[pysequoia.Cert]:
    """Every certificate in the source's keyring (binary or armored, one file or a folder)."""
    certs: list[pysequoia.Cert] = []
    for path in keyring_files(source.keyring):
        try:
            certs.extend(pysequoia.Cert.split_file(str(path)))
        except (OSError, RuntimeError, ValueError) as exc:
            raise SourceError(
                f"{source.name}: keyring {path} cannot be read: {_first_line(exc)}", source
            ) from exc
    if not certs:
        raise SourceError(f"{source.name}: keyring {source.keyring} holds no certificate", source)
    return certs


def verify_inrelease(
    data: bytes, source: AptSource, certs: list[pysequoia.Cert], now: datetime | None = None
) -> Release:
    """The Release that `data` (an InRelease file) carries, once its signature verified against
    `certs` and it is current at `now`; `SignatureInvalid` or `ReleaseExpired` otherwise."""
    if not data.lstrip().startswith(b"-----BEGIN PGP SIGNED MESSAGE-----"):
        raise SignatureInvalid(
            f"{source.name}: InRelease is not clearsigned (refusing an unsigned Release)", source
        )
    try:
        verified = pysequoia.verify(bytes=data, store=lambda _ids: certs)
    except (RuntimeError, ValueError) as exc:
        raise SignatureInvalid(
            f"{source.name}: InRelease has no valid signature by a key of {source.keyring} "
            f"({_first_line(exc)})",
            source,
        ) from exc
    signed = verified.bytes
    if signed is None or not verified.valid_sigs:
        raise SignatureInvalid(f"{source.name}: InRelease has no valid signature", source)
    now = now or datetime.now(UTC)
    signers = _current_signers(verified.valid_sigs, certs, source, now)
    release = parse_release(signed, source, signers, hashlib.sha256(data).hexdigest())
    _check_current(release, now)
    return release


def _current_signers(
    signatures: list[Any], certs: list[pysequoia.Cert], source: AptSource, now: datetime
) -> tuple[str, ...]:
    """The certificates of the good signatures that are neither expired nor revoked now.
    Sequoia accepts a signature made while its key was valid; apt (gpgv's EXPKEYSIG) does not:
    an archive signed only by an expired key is refused, as apt refuses it."""
    by_fingerprint = {cert.fingerprint.lower(): cert for cert in certs}
    current, stale = set(), []
    for signature in signatures:
        fingerprint = str(signature.certificate).lower()
        cert = by_fingerprint.get(fingerprint)
        if cert is None or cert.is_revoked:
            stale.append(f"{fingerprint} (revoked)")
        elif cert.expiration is not None and cert.expiration <= now:
            stale.append(f"{fingerprint} (expired {cert.expiration:%Y-%m-%d})")
        else:
            current.add(fingerprint)
    if not current:
        raise SignatureInvalid(
            f"{source.name}: InRelease is signed only by keys no longer valid: "
            f"{', '.join(stale)}; update the keyring {source.keyring}",
            source,
        )
    return tuple(sorted(current))


async def fetch_release(
    session: aiohttp.ClientSession, source: AptSource, now: datetime | None = None
) -> Release:
    """The source's verified Release: `InRelease` fetched (at most `INRELEASE_LIMIT` bytes) and
    checked by `verify_inrelease`."""
    url = source.dists_url("InRelease")
    try:
        async with session.get(url, allow_redirects=True) as response:
            if response.status != 200:
                raise SourceError(f"{source.name}: GET {url} answered {response.status}", source)
            data = await _read_bounded(response, INRELEASE_LIMIT, source)
    except aiohttp.ClientError as exc:
        raise SourceError(f"{source.name}: GET {url} failed: {exc}", source) from exc
    certs = await asyncio.to_thread(load_certificates, source)
    return await asyncio.to_thread(verify_inrelease, data, source, certs, now)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, source: AptSource) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise SourceError(
            f"{source.name}: InRelease is {response.content_length} bytes, more than {limit}",
            source,
        )
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise SourceError(f"{source.name}: InRelease is more than {limit} bytes", source)
    return bytes(body)


def parse_release(
    signed: bytes, source: AptSource, signers: tuple[str, ...] = (), sha256: str = ""
) -> Release:
    """The fields of a Release text (already verified by the caller)."""
    try:
        paragraph = Deb822Release(signed.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{source.name}: Release cannot be parsed: {exc}", source) from exc
    files = {}
    for entry in paragraph.get("SHA256", []):
        try:
            item = IndexFile(entry["name"], int(entry["size"]), entry["sha256"].lower())
        except (KeyError, ValueError) as exc:
            raise SourceError(
                f"{source.name}: bad SHA256 line in Release: {entry}", source
            ) from exc
        files[item.path] = item
    if not files:
        raise SourceError(f"{source.name}: Release lists no SHA256 checksums", source)
    plain = {key: value for key, value in paragraph.items() if isinstance(value, str)}
    return Release(
        source=source,
        suite=plain.get("Suite", ""),
        codename=plain.get("Codename", ""),
        date=_date(plain.get("Date"), source),
        valid_until=_date(plain.get("Valid-Until"), source),
        architectures=tuple(plain.get("Architectures", "").split()),
        components=tuple(plain.get("Components", "").split()),
        acquire_by_hash=plain.get("Acquire-By-Hash", "no").strip().lower() == "yes",
        files=files,
        signers=signers,
        sha256=sha256,
        fields=plain,
    )


def _check_current(release: Release, now: datetime) -> None:
    source = release.source
    # Debian's security suite is "bookworm-security" in Codename; "stable"-style names in Suite
    wanted = source.suite
    if wanted not in (release.suite, release.codename):
        raise SignatureInvalid(
            f"{source.name}: InRelease is for suite {release.suite!r} (codename "
            f"{release.codename!r}), not {wanted!r}: a file of another suite was served",
            source,
        )
    if release.valid_until is not None and release.valid_until < now:
        raise ReleaseExpired(
            f"{source.name}: InRelease expired at {release.valid_until:%Y-%m-%d %H:%M:%S} UTC "
            "(Valid-Until); the mirror is out of date or an old file is being replayed",
            source,
        )


def _date(value: str | None, source: AptSource) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{source.name}: Release date {value!r} cannot be read", source) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first_line(exc: BaseException) -> str:
    """Sequoia's messages carry a Rust backtrace when RUST_BACKTRACE is set: keep the cause."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def release_fields(release: Release) -> dict[str, Any]:
    """The fields a build's lock records about the suite it used."""
    return {
        "uri": release.source.uri,
        "suite": release.source.suite,
        "inrelease_sha256": release.sha256,
        "date": release.date.isoformat() if release.date else None,
        "signers": list(release.signers),
    }
