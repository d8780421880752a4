"""What a copy did (`CopyResult`), and how it says what failed (`CopyError`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.oci.reference import Reference


@dataclass(frozen=True, slots=True)
class CopyResult:
    """Counts of one copy: manifests written or already there, blobs streamed, mounted from
    another repository, or already there, and the blob bytes streamed."""

    source: Reference
    target: Reference
    digest: Digest
    previous: Digest | None
    manifests_copied: int = 0
    manifests_skipped: int = 0
    referrers_copied: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether anything was written to the target."""
        return bool(self.manifests_copied or self.blobs_copied or self.blobs_mounted)


@dataclass(frozen=True, slots=True)
class Failure:
    """One step that failed: what it did (`step`), on which reference and descriptor."""

    step: str
    reference: Reference
    descriptor: Descriptor | None
    error: BaseException

    def __str__(self) -> str:
        what = f" {self.descriptor.digest}" if self.descriptor is not None else ""
        return f"{self.step}{what} ({self.reference}): {_describe(self.error)}"


class NodeFailed(Exception):
    """Carries a `Failure` out of the task that hit it (internal to the engine)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@contextmanager
def failing(
    step: str, reference: Reference, descriptor: Descriptor | None = None
) -> Iterator[None]:
    """Raise what fails inside as a `NodeFailed` that names `step`, `reference` and
    `descriptor` (a failure already named passes through)."""
    try:
        yield
    except NodeFailed:
        raise
    except Exception as exc:
        raise NodeFailed(Failure(step, reference, descriptor, exc)) from exc


class SparseIndexRefused(Exception):
    """The target refused an index because entries the platform filter left out are not
    there; says which setting lets it accept such an index. `__cause__` is its answer."""

    def __init__(self, index: Digest, target: Reference, left_out: Sequence[Descriptor]) -> None:
        platforms = ", ".join(sorted({str(d.platform or d.digest) for d in left_out}))
        super().__init__(
            f"the target refused index {index}, which names {len(left_out)} manifests the "
            f"platform filter left out ({platforms}): it requires every entry of an index to "
            "be present. A copy keeps an index's exact bytes (so its digest and signatures), "
            "so the target must accept sparse indexes: on Dockyard, `dockyard admin repo set "
            f"{target.repository} --sparse-indexes on` (mirrored repositories have it on) or "
            "the site setting index_platforms: none; on distribution v3, "
            "validation.manifests.indexes.platforms: none. Or copy every platform"
        )


class CopyError(Exception):
    """A copy from `source` to `target` failed; `failures` says which steps, each with the
    reference and descriptor it was working on and the error (often an `OciError`)."""

    def __init__(self, source: Reference, target: Reference, failures: Sequence[Failure]) -> None:
        self.source = source
        self.target = target
        self.failures = tuple(failures)
        first = str(self.failures[0]) if self.failures else "unknown failure"
        more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        super().__init__(f"copy of {source} to {target} failed: {first}{more}")

    @classmethod
    def from_group(
        cls, source: Reference, target: Reference, group: BaseExceptionGroup[BaseException]
    ) -> CopyError:
        """The failures inside a task group's exception group; anything that is not a
        `NodeFailed` is re-raised as it is (cancellation, programming errors)."""
        failures: list[Failure] = []
        seen: set[int] = set()
        for exc in _leaves(group):
            if not isinstance(exc, NodeFailed):
                raise exc
            if id(exc) not in seen:
                seen.add(id(exc))
                failures.append(exc.failure)
        return cls(source, target, failures)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _describe(error: BaseException) -> str:
    text = str(error)
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if isinstance(error, SparseIndexRefused) and error.__cause__ is not None:
        described += f" (the target said {_describe(error.__cause__)})"
    return described
