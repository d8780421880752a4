"""`copy_image`: regctl's `image copy` as one call, plan then execute."""

from __future__ import annotations

from dockyard.client.target import Target
from dockyard.copy.events import CopyFailed, ProgressSink
from dockyard.copy.execute import execute
from dockyard.copy.limits import Limits
from dockyard.copy.options import CopyOptions
from dockyard.copy.plan import plan_copy
from dockyard.copy.result import CopyError, CopyResult
from dockyard.oci.reference import Reference


async def copy_image(
    source: Target,
    src_ref: Reference,
    target: Target,
    dst_ref: Reference,
    options: CopyOptions | None = None,
    progress: ProgressSink | None = None,
    *,
    referrers_source: tuple[Target, Reference] | None = None,
    referrers_target: tuple[Target, Reference] | None = None,
    limits: Limits | None = None,
) -> CopyResult:
    """Copy `src_ref` from `source` to `dst_ref` on `target`, byte for byte; its counts.

    An index comes with its manifests (those `options.platforms` keeps), an image with its
    config and layers; with `options.referrers`, the referrers of every manifest copied,
    recursively, read from `referrers_source` and written to `referrers_target` when given
    (each a place and a reference naming the repository; the reference's tag is ignored).
    What the target has is skipped (see `CopyOptions` for `force_recursive` and
    `fast_check`); blobs are mounted when source and target are repositories of the same
    registry. Raises `CopyError` naming every step that failed.
    """
    options = options or CopyOptions()
    limits = limits or Limits.of(options)
    try:
        plan = await plan_copy(
            source,
            src_ref,
            target,
            dst_ref,
            options,
            referrers_source=referrers_source,
            referrers_target=referrers_target,
            limits=limits,
        )
    except CopyError as error:
        if progress is not None:
            progress(CopyFailed(src_ref, dst_ref, str(error)))
        raise
    return await execute(plan, progress, limits=limits)
