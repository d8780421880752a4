"""`dockyard artifact list`: regctl's listing of the referrers of a manifest (signatures,
SBOMs, provenance, VEX…), by the referrers API or the fallback tag."""

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
    usage,
)
from dockyard.copy import ReferrerFilter
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest

app = typer.Typer(help="List artifacts that refer to images.", no_args_is_help=True)

FORMATS = ("table", "json", "raw-body", "body")


@app.command("list")
def list_(
    ref: Annotated[str, typer.Argument(help="the subject: host/repo:tag or host/repo@digest")],
    filter_artifact_type: Annotated[
        str | None,
        typer.Option("--filter-artifact-type", help="only referrers of this artifactType"),
    ] = None,
    filter_annotation: Annotated[
        list[str] | None,
        typer.Option(
            "--filter-annotation",
            metavar="KEY[=VALUE]",
            help="only referrers with this annotation (any value when none is given)",
        ),
    ] = None,
    platform: PlatformOption = None,
    external: Annotated[
        str | None,
        typer.Option(
            "--external", metavar="REPO", help="read the referrers from this repository instead"
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (digest, artifactType, size, annotations) or json (the referrers "
            "index, indented; raw-body: compact)",
        ),
    ] = "table",
) -> None:
    """List the referrers of the manifest REF names."""
    place = place_argument(ref, "subject")
    where = place_argument(external, "--external") if external else place
    wanted = platform_argument(platform)
    if output not in FORMATS:
        usage(f"--format must be one of {', '.join(FORMATS)}, not {output!r}")
    annotations = {}
    for item in filter_annotation or []:
        key, _, value = item.partition("=")
        if not key:
            usage(f"--filter-annotation {item!r}: expected KEY or KEY=VALUE")
        annotations[key] = value
    selected = ReferrerFilter(filter_artifact_type, annotations)

    async def work(places: Places) -> tuple[Digest, list[Descriptor]]:
        target = places.target(place)
        if wanted is not None:
            subject = (await resolve_platform(target, place, wanted)).digest
        elif place.reference.digest is not None:
            subject = place.reference.digest
        else:
            subject = (await head_or_fail(target, place)).digest
        found = await places.target(where).referrers(where.reference, subject, filter_artifact_type)
        return subject, [d for d in found if selected.matches(d)]

    subject, found = run(work)
    if output == "table":
        _table(found, str(place.at(place.reference.with_digest(subject))))
        return
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_json() for d in found],
    }
    if output == "json":
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        typer.echo(json.dumps(body, separators=(",", ":"), ensure_ascii=False))


def _table(found: list[Descriptor], subject: str) -> None:
    if not found:
        typer.echo(f"no referrers of {subject}", err=True)
        return
    rows = [("DIGEST", "ARTIFACT TYPE", "SIZE", "ANNOTATIONS")]
    for desc in found:
        notes = ",".join(f"{k}={v}" for k, v in sorted(desc.annotations.items()))
        rows.append((str(desc.digest), desc.artifact_type or "-", str(desc.size), notes or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[3]]))
