"""What a customization or a build refuses, by kind, each with a message a person can act on
and a `detail` that names the field of the customization (`{"field":
"contents.artifacts[0].includes[1]"}`) when one is to blame. The edge (`api/errors.py`,
`REFUSALS`) answers each kind once, as it does the hub's refusals.
"""

from __future__ import annotations

from typing import Any


class BuildError(Exception):
    """A build (or its plan) cannot go on; `message` says why and what to do."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidCustomization(BuildError):
    """A customization document that cannot be used: every problem, each naming its field
    (`targets[0].destination`) and what to do."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"{field}: {reason}" for field, reason in problems)
        super().__init__(text, [{"field": f, "reason": r} for f, r in problems])


class Invalid(BuildError):
    """A field of the customization cannot be used as given (a path the artifact lacks, an
    account that clashes with the base's, a platform an image does not offer)."""

    def __init__(self, field: str, message: str, **detail: Any) -> None:
        super().__init__(f"{field}: {message}", {"field": field, **detail})
        self.field = field


class ContentInvalid(BuildError):
    """An image's content cannot be read as a filesystem (not a tar stream, an unknown
    compression, a symlink loop, a file too large to read whole)."""


class InputUnavailable(BuildError):
    """An input (a base image, an artifact, a package index or file) could not be fetched."""


class InputRejected(BuildError):
    """An input failed verification: a signature, a size or a digest did not match."""
