"""What the client verbs (`image`, `manifest`, `artifact`, `tag`, `registry`) share: references
as regctl writes them, the places they name, running async work, and exit codes.

A reference is `host/repo:tag`, `host/repo@digest` (Docker Hub when there is no host), or an
OCI image layout folder: `ocidir://PATH[:TAG|@DIGEST]` (regctl) or `oci:PATH[:TAG|@DIGEST]`
(skopeo). Exit codes: 0 done, 1 failed (one line on stderr naming what failed), 2 usage.
"""

from __future__ import annotations

import ssl
import sys
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import aiohttp
import typer

from dockyard.cli import loop
from dockyard.client.hosts import Client
from dockyard.client.layout import LayoutTarget, parse_layout_reference
from dockyard.client.registry import RegistryClient
from dockyard.client.target import Target
from dockyard.config import ConfigError
from dockyard.copy import CopyError
from dockyard.copy.platforms import select
from dockyard.oci.descriptor import Descriptor, Platform
from dockyard.oci.errors import ManifestUnknown, OciError
from dockyard.oci.reference import Reference

EXIT_FAILED = 1
EXIT_USAGE = 2
OCIDIR_SCHEME = "ocidir://"
OCI_SCHEME = "oci:"
# what OpenSSL says when the answer to a ClientHello is plain HTTP (the reason varies by version)
_PLAIN_HTTP_SIGNS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def is_plain_http(reason: str) -> bool:
    """Whether a TLS failure's text says the other end answered in plain HTTP."""
    return any(sign in reason for sign in _PLAIN_HTTP_SIGNS)


T = TypeVar("T")

PlatformOption = Annotated[
    str | None,
    typer.Option("--platform", "-p", help="os/arch or os/arch/variant: the index entry to use"),
]


def failed(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print `error: message` (one line) on stderr; the exit with `code` to raise."""
    text = " ".join(str(message).split()) or "unknown error"
    typer.echo(f"error: {text}", err=True)
    return typer.Exit(code)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `error: message` (one line) on stderr and exit with `code`."""
    raise failed(message, code)


def usage(message: str) -> NoReturn:
    """A usage error: the command line itself is wrong (exit 2)."""
    fail(message, EXIT_USAGE)


# --- references --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Place:
    """What a reference on the command line names: `reference` in a registry, or (with
    `layout` set) in the OCI image layout folder `layout`, shown to people as `label`
    (default `ocidir://LAYOUT`) followed by the tag or digest."""

    text: str
    reference: Reference
    layout: Path | None = None
    label: str | None = None

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    def at(self, reference: Reference) -> Place:
        """The same place (registry or layout) with another reference."""
        return Place(self.text, reference, self.layout, self.label)

    @property
    def shown_prefix(self) -> str:
        return self.label or f"{OCIDIR_SCHEME}{self.layout}"

    def __str__(self) -> str:
        if self.layout is not None:
            ref = self.reference
            which = f"@{ref.digest}" if ref.digest is not None else f":{ref.tag}"
            return f"{self.shown_prefix}{which}"
        return str(self.reference)


def layout_place(
    text: str, folder: Path, tag: str | None = None, label: str | None = None
) -> Place:
    """A place at `tag` in the layout `folder`, shown as `label` (e.g. `oci-archive:FILE` for a
    temporary folder) instead of `ocidir://FOLDER` when given."""
    return Place(text, Reference.layout(str(folder), tag), folder, label)


def parse_place(text: str) -> Place:
    """Parse a reference as regctl (and skopeo, for layouts) writes it.

    Raises `ValueError` (layouts, digests) or `OciError` (names, tags) saying what is wrong.
    """
    if text.startswith((OCIDIR_SCHEME, OCI_SCHEME)):
        path, ref = parse_layout_reference(text)
        # the path as `Path` spells it (`out`, not `./out`), in messages as in `str(place)`
        return Place(text, replace(ref, path=str(path)), path)
    return Place(text, Reference.parse(text))


def place_argument(text: str, what: str = "reference") -> Place:
    """`parse_place`, with a wrong reference a usage error (exit 2)."""
    try:
        return parse_place(text)
    except (ValueError, OciError) as exc:
        message = _message(exc)
        usage(f"{what}: {message}" if repr(text) in message else f"{what} {text!r}: {message}")


def platform_argument(text: str | None) -> Platform | None:
    """A `--platform` value parsed, a wrong one a usage error."""
    if text is None:
        return None
    try:
        return Platform.parse(text)
    except ValueError as exc:
        usage(str(exc))


# --- places and running ------------------------------------------------------------------------


class Places:
    """The targets a command talks to: one `RegistryClient` (one session per registry host,
    with the user's settings and credentials) and one `LayoutTarget` per layout folder."""

    def __init__(self, client: Client) -> None:
        self.registry = RegistryClient(client)
        self._layouts: dict[Path, LayoutTarget] = {}
        self._labels: dict[str, str] = {}

    @classmethod
    def from_user_config(cls) -> Places:
        """Settings and credentials from `$DOCKYARD_CONFIG/registries.json`, with Docker's
        `config.json` credentials as a fallback."""
        return cls(Client.from_user_config())

    def target(self, place: Place) -> Target:
        if place.layout is None:
            return self.registry
        if place.label is not None:
            self._labels[place.reference.name] = place.label
        key = place.layout.resolve()
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = LayoutTarget(place.layout)
        return found

    def shown(self, text: str) -> str:
        """`text` (a message of the copy engine) with each labelled layout's `ocidir://FOLDER`
        replaced by its label: `oci-archive:FILE:1`, not the temporary folder."""
        for folder, label in self._labels.items():
            text = text.replace(folder, label)
        return text

    async def close(self) -> None:
        for layout in self._layouts.values():
            await layout.close()
        await self.registry.close()


def run(work: Callable[[Places], Awaitable[T]], context: str | None = None) -> T:
    """Run `work` with the user's places; turn every failure into one line and exit 1."""

    made: list[Places] = []

    async def main() -> T:
        places = Places.from_user_config()
        made.append(places)
        try:
            return await work(places)
        finally:
            await places.close()

    return run_async(main, context, lambda text: made[0].shown(text) if made else text)


def run_async(
    main: Callable[[], Awaitable[T]],
    context: str | None = None,
    shown: Callable[[str], str] = str,
) -> T:
    """`asyncio.run(main())` (on uvloop); a failure is one `error: [context: ]…` line (exit 1),
    passed through `shown`."""

    async def guarded() -> T:
        return await main()

    try:
        return loop.run(guarded())
    except (typer.Exit, BrokenPipeError):
        raise  # a closed stdout (`| head`): Typer exits quietly
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except (
        CopyError,
        OciError,
        ConfigError,
        aiohttp.ClientError,
        TimeoutError,
        OSError,
        ValueError,
        EOFError,
        tarfile.TarError,
    ) as exc:
        fail(shown(f"{context}: {_message(exc)}" if context else _message(exc)))


def _message(exc: BaseException) -> str:
    hint = _tls_hint(exc)
    return f"{_describe(exc)}; {hint}" if hint else _describe(exc)


def _tls_hint(exc: BaseException) -> str | None:
    """What to run when a TLS handshake (anywhere in `exc`'s chain, or a copy's failures)
    got a plain-HTTP answer: the host's TLS mode is wrong in the user's settings."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        cause = pending.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, CopyError):
            pending += [failure.error for failure in cause.failures]
        if isinstance(cause, aiohttp.ClientConnectorError) and isinstance(cause, ssl.SSLError):
            reason = str(cause).upper()
            if is_plain_http(reason):
                host = cause.host if cause.port in (443, None) else f"{cause.host}:{cause.port}"
                return (
                    f"{host} answers in plain HTTP, not HTTPS: run "
                    f"`dockyard registry set {host} --tls disabled` (or use an http:// address)"
                )
        pending += [c for c in (cause.__cause__, cause.__context__) if c is not None]
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CopyError | ConfigError):
        return str(exc)
    if isinstance(exc, tarfile.TarError | EOFError):
        return f"not a readable tar archive: {exc}"
    if isinstance(exc, aiohttp.ClientError | TimeoutError) and not isinstance(exc, ConnectionError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, OciError):
        return f"{exc.message} ({exc.code})" if exc.code != "UNKNOWN" else exc.message
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


# --- resolving ---------------------------------------------------------------------------------


async def resolve_platform(target: Target, place: Place, platform: Platform) -> Descriptor:
    """The descriptor of the manifest for `platform` that `place` names: the index entry
    (regctl's `--platform`), or the manifest itself when it is not an index."""
    manifest = await target.manifest_get(place.reference)
    if not manifest.is_index:
        return manifest.descriptor()
    return select(manifest, platform)


async def head_or_fail(target: Target, place: Place) -> Descriptor:
    """The descriptor of the manifest `place` names; `ManifestUnknown` when there is none."""
    found = await target.manifest_head(place.reference)
    if found is None:
        raise ManifestUnknown(f"manifest {place} not found")
    return found


def stdout_bytes(data: bytes) -> None:
    """Write `data` to stdout exactly as it is."""
    stream = typer.get_binary_stream("stdout")
    stream.write(data)
    stream.flush()


def read_stdin_secret() -> str:
    """A password or token from standard input: everything, without the final newline."""
    text = sys.stdin.read()
    return text.rstrip("\r\n")
