"""`dockyard image …`: regctl's `image copy`, and `export`/`import` of an OCI layout archive
with referrers, for air-gapped transfer."""

from __future__ import annotations

import re
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, TextIO

import typer

from dockyard.cli.common import (
    Place,
    Places,
    PlatformOption,
    fail,
    failed,
    layout_place,
    place_argument,
    platform_argument,
    resolve_platform,
    run,
    usage,
)
from dockyard.client.archive import export_archive, import_archive
from dockyard.client.layout import LayoutTarget
from dockyard.client.target import Target
from dockyard.copy import CopyOptions, CopyResult, copy_image
from dockyard.copy.progress import Progress, progress_for
from dockyard.oci.descriptor import Platform
from dockyard.oci.reference import Reference

app = typer.Typer(help="Copy, export and import images.", no_args_is_help=True)

FORMATS = ("auto", "rich", "plain", "json")
_DIGEST_TAG = re.compile(r"[a-z0-9]+-[0-9a-f]{32,}(\..*)?")
"""Fallback tags (`sha256-<hex>`) and cosign digest tags (`sha256-<hex>.sig`)."""

ReferrersOption = Annotated[
    bool, typer.Option("--referrers", help="include referrers, recursively (signatures, SBOMs…)")
]
ReferrersSrcOption = Annotated[
    str | None,
    typer.Option(
        "--referrers-src",
        metavar="REPO",
        help="read referrers from this repository instead (implies --referrers)",
    ),
]
ReferrersTgtOption = Annotated[
    str | None,
    typer.Option(
        "--referrers-tgt",
        metavar="REPO",
        help="write referrers to this repository instead (implies --referrers)",
    ),
]
DigestTagsOption = Annotated[
    bool,
    typer.Option("--digest-tags", help='include digest tags ("sha256-<digest>.*", cosign)'),
]
FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="progress: auto (bars on a terminal, else plain lines), rich, plain, or json "
        "(JSON lines on stdout)",
    ),
]


@app.command("copy")
def copy(
    src: Annotated[str, typer.Argument(help="source reference (host/repo:tag, ocidir://PATH:TAG)")],
    dst: Annotated[str, typer.Argument(help="target reference")],
    referrers: ReferrersOption = False,
    referrers_src: ReferrersSrcOption = None,
    referrers_tgt: ReferrersTgtOption = None,
    force_recursive: Annotated[
        bool,
        typer.Option(
            "--force-recursive", help="push every manifest and check every blob again (repairs)"
        ),
    ] = False,
    digest_tags: DigestTagsOption = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="trust a manifest the target already has (no checks below it); wins over "
            "--force-recursive",
        ),
    ] = False,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            "-p",
            help="once: copy only that platform's manifest (as regctl); repeated: keep only "
            "those entries of the index (as --platforms)",
        ),
    ] = None,
    platforms: Annotated[
        list[str] | None,
        typer.Option(
            "--platforms",
            help="keep only these entries of the index (attestations are kept); the target "
            "must accept an index whose other entries are missing",
        ),
    ] = None,
    include_external: Annotated[
        bool, typer.Option("--include-external", help="also copy external (foreign) layers")
    ] = False,
    output: FormatOption = "auto",
) -> None:
    """Copy an image (an index with its manifests, or one manifest) byte for byte, skipping
    what the target has; with --referrers, its referrers too."""
    source = place_argument(src, "source")
    target = place_argument(dst, "target")
    refs_src = place_argument(referrers_src, "--referrers-src") if referrers_src else None
    refs_tgt = place_argument(referrers_tgt, "--referrers-tgt") if referrers_tgt else None
    chosen = list(platform or [])
    kept = list(platforms or [])
    single = None
    if len(chosen) == 1 and not kept:
        single = platform_argument(chosen[0])
    else:
        kept += chosen
    options = _options(
        referrers=referrers or refs_src is not None or refs_tgt is not None,
        digest_tags=digest_tags,
        force_recursive=force_recursive,
        fast_check=fast,
        include_external=include_external,
        platforms=tuple(kept),
    )
    _check_format(output)

    async def work(places: Places) -> CopyResult:
        src_place = await _at_platform(places, source, single)
        return await _copy(places, src_place, target, options, output, refs_src, refs_tgt)

    run(work)


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="image to export (host/repo:tag)")],
    file: Annotated[Path, typer.Argument(help="the OCI layout tar to write", dir_okay=False)],
    referrers: Annotated[
        bool,
        typer.Option("--referrers/--no-referrers", help="include referrers (default: yes)"),
    ] = True,
    referrers_src: ReferrersSrcOption = None,
    digest_tags: DigestTagsOption = False,
    platform: PlatformOption = None,
    output: FormatOption = "auto",
) -> None:
    """Write an image, with its referrers, as an OCI layout tar (for air-gapped transfer;
    `skopeo copy oci-archive:FILE:TAG` reads it too)."""
    source = place_argument(ref, "source")
    refs_src = place_argument(referrers_src, "--referrers-src") if referrers_src else None
    single = platform_argument(platform)
    options = _options(referrers=referrers or refs_src is not None, digest_tags=digest_tags)
    _check_format(output)
    file = file.expanduser()
    if file.is_dir():
        usage(f"{file} is a folder; name the tar file to write")
    if not file.parent.is_dir():
        fail(f"folder {file.parent} does not exist")
    tag = source.reference.tag or "latest"

    async def work(places: Places) -> None:
        src_place = await _at_platform(places, source, single)
        with tempfile.TemporaryDirectory(prefix=".dockyard-export-", dir=file.parent) as tmp:
            folder = Path(tmp) / "layout"
            label = f"oci-archive:{file}"  # as skopeo names it; the folder is temporary
            layout = layout_place(str(file), folder, tag, label)
            await _copy(places, src_place, layout, options, output, refs_src, None)
            await export_archive(folder, file)
        _say(output, f"exported {source} to {file} (tag {tag})")

    run(work)


@app.command("import")
def import_(
    first: Annotated[str, typer.Argument(metavar="FILE", help="the OCI layout tar to read")],
    second: Annotated[str, typer.Argument(metavar="REF", help="where to copy the image")],
    referrers_tgt: ReferrersTgtOption = None,
    output: FormatOption = "auto",
) -> None:
    """Copy the image in an OCI layout tar (from `image export`), with its referrers and
    digest tags, to REF. regctl's order (REF FILE) is accepted too."""
    archive, ref = _import_arguments(first, second)
    target = place_argument(ref, "target")
    refs_tgt = place_argument(referrers_tgt, "--referrers-tgt") if referrers_tgt else None
    options = _options(referrers=True, digest_tags=True)
    _check_format(output)

    async def work(places: Places) -> None:
        with tempfile.TemporaryDirectory(prefix="dockyard-import-") as tmp:
            folder = Path(tmp) / "layout"
            try:
                await import_archive(archive, folder)
            except (tarfile.TarError, EOFError) as exc:
                raise failed(f"{archive} is not a readable tar archive: {exc}") from None
            tag = await _archive_tag(LayoutTarget(folder), archive, target.reference)
            label = f"oci-archive:{archive}"
            source = layout_place(str(archive), folder, tag, label)
            await _copy(places, source, target, options, output, None, refs_tgt)
        _say(output, f"imported {archive} (tag {tag}) to {target}")

    run(work)


# --- helpers -----------------------------------------------------------------------------------


def _options(
    *,
    referrers: bool,
    digest_tags: bool,
    platforms: tuple[str, ...] = (),
    force_recursive: bool = False,
    fast_check: bool = False,
    include_external: bool = False,
) -> CopyOptions:
    """The copy options the flags ask for; a wrong platform is a usage error."""
    try:
        return CopyOptions(
            platforms=platforms,
            referrers=referrers,
            digest_tags=digest_tags,
            force_recursive=force_recursive,
            fast_check=fast_check,
            include_external=include_external,
        )
    except ValueError as exc:
        usage(str(exc))


def _check_format(output: str) -> None:
    if output not in FORMATS:
        usage(f"--format must be one of {', '.join(FORMATS)}, not {output!r}")


def _progress(output: str, places: Places) -> Progress:
    stream: TextIO = sys.stdout if output == "json" else sys.stderr
    return progress_for(output, stream, shown=places.shown)


def _say(output: str, line: str) -> None:
    """A closing line for people (not in JSON mode, where stdout holds only JSON lines)."""
    if output != "json":
        typer.echo(line, err=True)


async def _copy(
    places: Places,
    source: Place,
    target: Place,
    options: CopyOptions,
    output: str,
    referrers_src: Place | None,
    referrers_tgt: Place | None,
) -> CopyResult:
    source_target, target_target = places.target(source), places.target(target)
    with _progress(output, places) as progress:
        return await copy_image(
            source_target,
            source.reference,
            target_target,
            target.reference,
            options,
            progress,
            referrers_source=_side(places, referrers_src),
            referrers_target=_side(places, referrers_tgt),
        )


async def _at_platform(places: Places, place: Place, platform: Platform | None) -> Place:
    """`place` pinned to the manifest for `platform` (regctl's `--platform`), or as it is."""
    if platform is None:
        return place
    entry = await resolve_platform(places.target(place), place, platform)
    return place.at(place.reference.with_digest(entry.digest))


def _side(places: Places, place: Place | None) -> tuple[Target, Reference] | None:
    return None if place is None else (places.target(place), place.reference)


def _import_arguments(first: str, second: str) -> tuple[Path, str]:
    """(archive, reference) from `FILE REF`, or regctl's `REF FILE`."""
    first_path, second_path = Path(first).expanduser(), Path(second).expanduser()
    if first_path.is_file():
        return first_path, second
    if second_path.is_file():
        return second_path, first
    raise failed(f"no such archive: {first}")


async def _archive_tag(layout: LayoutTarget, archive: Path, wanted: Reference) -> str:
    """The tag of the image in the archive: the only image tag, or the one `wanted` names."""
    tags = [
        t
        for t in await layout.tag_list(Reference.layout(str(layout.root)))
        if not _DIGEST_TAG.fullmatch(t)
    ]
    if len(tags) == 1:
        return tags[0]
    if wanted.tag is not None and wanted.tag in tags:
        return wanted.tag
    if not tags:
        raise failed(f"{archive} holds no tagged image")
    raise failed(
        f"{archive} holds several images ({', '.join(sorted(tags))}); name one of these tags "
        "in the target reference"
    )
