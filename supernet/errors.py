"""Typed errors of the supernet package: each says what was wrong and what is allowed."""

from __future__ import annotations

from typing import Any, Sequence


class NasError(ValueError):
    """Base of every user-facing error in ofa-nas (CLI: exit 2, one line; API: 4xx).

    `loc`: the path of the input field at fault, as data (("ks", 3), ("devices", 0, "constraints", "latency_ms")),
    empty when the error is about no one field; the message names the same field in words for the CLI's line, and
    the API answers 422 with `loc` as the field's path. `allowed`: the allowed values, where there is a short list.
    """

    def __init__(self, message: str, *, loc: Sequence[str | int] = (), allowed: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.loc: tuple[str | int, ...] = tuple(loc)
        self.allowed = None if allowed is None else list(allowed)


class InvalidArchError(NasError):
    """An arch config does not fit its search space."""


class SpaceError(NasError):
    """A search space preset or YAML is unknown or malformed."""


class CheckpointError(NasError):
    """A checkpoint is missing, corrupt, or belongs to another config."""


class DataError(NasError):
    """A data set cannot be found or read."""
