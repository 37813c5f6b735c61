"""Elastic MobileNetV3 search spaces, arch configs and the weight-sharing supernet."""

from supernet.arch import ArchConfig
from supernet.errors import CheckpointError, DataError, InvalidArchError, NasError, SpaceError
from supernet.network import StaticNet, Supernet
from supernet.space import SearchSpace, available_spaces, register_space

__all__ = ["ArchConfig", "SearchSpace", "Supernet", "StaticNet", "InvalidArchError", "SpaceError", "NasError",
           "CheckpointError", "DataError", "available_spaces", "register_space"]
