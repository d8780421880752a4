"""`dockyard manifest …`: regctl's `manifest head` (the digest) and `manifest get`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from dockyard.cli.common import (
    Places,
    PlatformOption,
    head_or_fail,
    place_argument,
    platform_argument,
    resolve_platform,
    run,
    stdout_bytes,
    usage,
)
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest

app = typer.Typer(help="Read manifests.", no_args_is_help=True)

RAW_FORMATS = ("raw", "raw-body", "body")
GET_FORMATS = ("json", *RAW_FORMATS)


@app.command("head")
def head(
    ref: Annotated[str, typer.Argument(help="host/repo:tag, host/repo@digest, ocidir://PATH:TAG")],
    platform: PlatformOption = None,
) -> None:
    """Print the digest REF names (with --platform: of that platform's manifest)."""
    place = place_argument(ref)
    wanted = platform_argument(platform)

    async def work(places: Places) -> Digest:
        target = places.target(place)
        if wanted is not None:
            return (await resolve_platform(target, place, wanted)).digest
        return (await head_or_fail(target, place)).digest

    typer.echo(str(run(work)))


@app.command("get")
def get(
    ref: Annotated[str, typer.Argument(help="host/repo:tag, host/repo@digest, ocidir://PATH:TAG")],
    platform: PlatformOption = None,
    output: Annotated[
        str,
        typer.Option(
            "--format", help="json (indented) or raw (the exact bytes; also raw-body, body)"
        ),
    ] = "json",
) -> None:
    """Print the manifest REF names (with --platform: that platform's manifest of an index)."""
    place = place_argument(ref)
    wanted = platform_argument(platform)
    if output not in GET_FORMATS:
        usage(f"--format must be one of {', '.join(GET_FORMATS)}, not {output!r}")

    async def work(places: Places) -> Manifest:
        target = places.target(place)
        if wanted is None:
            return await target.manifest_get(place.reference)
        entry = await resolve_platform(target, place, wanted)
        return await target.manifest_get(place.reference.with_digest(entry.digest))

    manifest = run(work)
    if output in RAW_FORMATS:
        stdout_bytes(manifest.raw)
    else:
        typer.echo(json.dumps(json.loads(manifest.raw), indent=2, ensure_ascii=False))
