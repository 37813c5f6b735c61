"""Elastic MobileNetV3 search spaces, arch configs and the weight-sharing supernet."""

from supernet.arch import ArchConfig
from supernet.errors import CheckpointError, DataError, InvalidArchError, NasError, SpaceError
from supernet.space import SearchSpace, available_spaces, register_space

__all__ = ["ArchConfig", "SearchSpace", "Supernet", "StaticNet", "InvalidArchError", "SpaceError", "NasError",
           "CheckpointError", "DataError", "available_spaces", "register_space"]


def __getattr__(name: str):  # noqa: ANN202
    # The network needs torch; spaces, arch configs and counting do not, so `nas space ...` starts fast.
    if name in ("Supernet", "StaticNet"):
        from supernet import network

        return getattr(network, name)
    raise AttributeError(f"module 'supernet' has no attribute {name!r}")
