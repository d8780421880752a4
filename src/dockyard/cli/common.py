"""What the client verbs (`image`, `manifest`, `artifact`, `tag`, `registry`) share: references
as regctl writes them, the places they name, running async work, and exit codes.

A reference is `host/repo:tag`, `host/repo@digest` (Docker Hub when there is no host), or an
OCI image layout folder: `ocidir://PATH[:TAG|@DIGEST]` (regctl) or `oci:PATH[:TAG|@DIGEST]`
(skopeo). Exit codes: 0 done, 1 failed (one line on stderr naming what failed), 2 usage.
"""

from __future__ import annotations

import sys
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
    `layout` set) in the OCI image layout folder `layout`."""

    text: str
    reference: Reference
    layout: Path | None = None

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    def at(self, reference: Reference) -> Place:
        """The same place (registry or layout) with another reference."""
        return Place(self.text, reference, self.layout)

    def __str__(self) -> str:
        if self.layout is not None:
            ref = self.reference
            which = f"@{ref.digest}" if ref.digest is not None else f":{ref.tag}"
            return f"{OCIDIR_SCHEME}{self.layout}{which}"
        return str(self.reference)


def parse_place(text: str) -> Place:
    """Parse a reference as regctl (and skopeo, for layouts) writes it.

    Raises `ValueError` (layouts, digests) or `OciError` (names, tags) saying what is wrong.
    """
    if text.startswith(OCIDIR_SCHEME):
        path, ref = parse_layout_reference(OCI_SCHEME + text[len(OCIDIR_SCHEME) :])
        return Place(text, ref, path)
    if text.startswith(OCI_SCHEME):
        path, ref = parse_layout_reference(text)
        return Place(text, ref, path)
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

    @classmethod
    def from_user_config(cls) -> Places:
        """Settings and credentials from `$DOCKYARD_CONFIG/registries.json`, with Docker's
        `config.json` credentials as a fallback."""
        return cls(Client.from_user_config())

    def target(self, place: Place) -> Target:
        if place.layout is None:
            return self.registry
        key = place.layout.resolve()
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = LayoutTarget(place.layout)
        return found

    async def close(self) -> None:
        for layout in self._layouts.values():
            await layout.close()
        await self.registry.close()


def run(work: Callable[[Places], Awaitable[T]], context: str | None = None) -> T:
    """Run `work` with the user's places; turn every failure into one line and exit 1."""

    async def main() -> T:
        places = Places.from_user_config()
        try:
            return await work(places)
        finally:
            await places.close()

    return run_async(main, context)


def run_async(main: Callable[[], Awaitable[T]], context: str | None = None) -> T:
    """`asyncio.run(main())` (on uvloop); a failure is one `error: [context: ]…` line (exit 1)."""

    async def guarded() -> T:
        return await main()

    try:
        return loop.run(guarded())
    except typer.Exit:
        raise
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
        fail(f"{context}: {_message(exc)}" if context else _message(exc))


def _message(exc: BaseException) -> str:
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
