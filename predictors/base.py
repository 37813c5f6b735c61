"""The `Predictor` protocol every predictor follows, its registry, and saving/loading as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import yaml

from supernet._io import read_yaml, write_text
from supernet import ArchConfig, SearchSpace
from supernet.errors import NasError
from supernet.registry import Registry

from predictors.metrics import fidelity as _fidelity


class PredictorError(NasError):
    """A predictor cannot be built, fitted or loaded from what it was given."""


@runtime_checkable
class Predictor(Protocol):
    """predict(codes) -> (N,) ndarray, vectorised; fit; save/load; fidelity against measurements."""

    space: SearchSpace

    def predict(self, codes: np.ndarray) -> np.ndarray: ...

    def fit(self, codes: np.ndarray, measured: np.ndarray) -> "Predictor": ...

    def to_dict(self) -> dict[str, Any]: ...


PREDICTORS: Registry[type] = Registry("predictor", PredictorError)


def register_predictor(name: str, cls: type | None = None) -> Any:
    """Make a predictor class loadable by name from saved files (`load_predictor`); its `kind` is `name`. Without
    `cls`, a class decorator."""
    if cls is None:
        return lambda c: register_predictor(name, c)
    cls.kind = name
    return PREDICTORS.register(name, cls)


def available_predictors() -> list[str]:
    return PREDICTORS.names()


class PredictorBase:
    """Shared plumbing: fidelity, save/load through `to_dict`/`from_dict`."""

    kind = "base"
    space: SearchSpace

    def predict(self, codes: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, codes: np.ndarray, measured: np.ndarray) -> "PredictorBase":
        raise PredictorError(f"the {self.kind} predictor is computed from the device's figures and is not fitted")

    def fidelity(self, archs: Sequence[ArchConfig] | np.ndarray, measured: np.ndarray) -> dict[str, float]:
        """{spearman, kendall, rmse, mape, within_10pct} of this predictor on measured archs."""
        return _fidelity(self.predict(self.space.codes(archs)), measured)

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "PredictorBase":  # pragma: no cover
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write this predictor as YAML, whole (temp + rename), with its kind and space."""
        payload = {"predictor": self.kind, "space": self.space.name, **self.to_dict()}
        return write_yaml(path, payload)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> "PredictorBase":
        return load_predictor(path, space)


def write_yaml(path: str | Path, payload: Any) -> Path:
    path = Path(path)
    write_text(path, yaml.safe_dump(payload, sort_keys=False, width=120))
    return path


def load_predictor(path: str | Path, space: SearchSpace) -> PredictorBase:
    """A saved predictor; refuses one saved for another space."""
    data = read_yaml(path, PredictorError, "predictor file")
    if not isinstance(data, dict) or data.get("predictor") not in PREDICTORS:
        raise PredictorError(f"{path}: field 'predictor' must be one of {', '.join(available_predictors())}")
    if data.get("space") != space.name:
        raise PredictorError(f"{path}: predictor was saved for space '{data.get('space')}', not '{space.name}'")
    cls = PREDICTORS[data.pop("predictor")]
    data.pop("space")
    return cls.from_dict(space, data)
