"""What a customization or a build refuses, by kind; the edge (`api/errors.py`) answers each
kind with its status and code, as it does the hub's."""

from __future__ import annotations

from typing import Any


class BuildError(Exception):
    """A refusal with a message a person can act on and an optional machine-readable
    `detail`."""

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


class InputUnavailable(BuildError):
    """An input (a base image, an artifact, a package index or file) could not be fetched."""


class InputRejected(BuildError):
    """An input failed verification: a signature, a size or a digest did not match."""
