"""Typed errors of the supernet package: each says what was wrong and what is allowed."""


class NasError(ValueError):
    """Base of every user-facing error in ofa-nas (CLI: exit 2, API: 4xx)."""


class InvalidArchError(NasError):
    """An arch config does not fit its search space."""


class SpaceError(NasError):
    """A search space preset or YAML is unknown or malformed."""


class CheckpointError(NasError):
    """A checkpoint is missing, corrupt, or belongs to another config."""


class DataError(NasError):
    """A data set cannot be found or read."""
