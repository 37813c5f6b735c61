"""The surface every accuracy model shares, the registry of kinds, and safe file helpers."""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from predictors.accuracy._features import FEATURE_SETS, AccuracyPredictorError
from predictors.metrics import fidelity as _fidelity
from supernet._io import write_bytes
from supernet.arch import ArchConfig
from supernet.registry import Registry
from supernet.space import SearchSpace

ACCURACY_MODELS: Registry[type["AccuracyModel"]] = Registry("accuracy model", AccuracyPredictorError)

ArchsOrCodes = Sequence[ArchConfig] | np.ndarray


def register_accuracy_model(name: str, cls: type["AccuracyModel"] | None = None) -> Any:
    """Make an AccuracyModel subclass available by name (`make_accuracy_model(name, ...)`); its `kind` is `name`.
    Without `cls`, a class decorator."""
    if cls is None:
        return lambda c: register_accuracy_model(name, c)
    cls.kind = name
    return ACCURACY_MODELS.register(name, cls)


_VIEW = re.compile(r"([a-z_]+)\[([a-z+]+)\]")


def parse_model_name(name: str) -> tuple[str, dict[str, Any]]:
    """(kind, parameter overrides) of a model name: a registered kind (`gbr`), or a kind on another of the feature
    sets (`gbr[blocks]`: gradient boosting on the per-block view)."""
    m = _VIEW.fullmatch(name) if isinstance(name, str) else None
    kind, overrides = (m.group(1), {"features": m.group(2)}) if m else (name, {})
    if kind not in ACCURACY_MODELS or (overrides and (kind == "ensemble"
                                                      or overrides["features"] not in FEATURE_SETS)):
        raise AccuracyPredictorError(f"field 'model' = {name!r} is not allowed; allowed: "
                                     f"{', '.join(ACCURACY_MODELS)}, or a kind on another feature set as "
                                     f"kind[features] with features one of {', '.join(FEATURE_SETS)}")
    return kind, overrides


def params_for(name: str, by_name: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The parameters `by_name` gives model `name`: its own entry, else its kind's (`gbr[blocks]` takes `gbr`'s),
    without a `features` the name itself sets."""
    kind, overrides = parse_model_name(name)
    by_name = by_name or {}
    p = dict(by_name.get(name, by_name.get(kind, {})))
    if overrides:
        p.pop("features", None)
    return p


def model_name(model: AccuracyModel) -> str:
    """A model's name as `auto` writes it: `gbr`, `gbr[blocks]` (a kind off its default features),
    `ensemble(gbr+gbr[blocks]+gp)`."""
    if model.kind == "ensemble":
        return "ensemble(" + "+".join(model.members) + ")"  # type: ignore[attr-defined]
    default = inspect.signature(type(model)).parameters.get("features")
    features = getattr(model, "features", None)
    return model.kind if default is None or features == default.default else f"{model.kind}[{features}]"


def make_accuracy_model(kind: str, space: SearchSpace, **params: Any) -> "AccuracyModel":
    """A fresh (unfitted) model of `kind` for `space`; `kind` may name a feature set too (`gbr[blocks]`)."""
    kind, overrides = parse_model_name(kind)
    if "features" in overrides and params.get("features", overrides["features"]) != overrides["features"]:
        raise AccuracyPredictorError(f"field 'features' = {params['features']!r} contradicts the model name's "
                                     f"[{overrides['features']}]")
    return ACCURACY_MODELS[kind](space, **{**params, **overrides})


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole: a temporary file in the same folder, then a rename."""
    write_bytes(path, data)


class AccuracyModel(ABC):
    """Predicts a subnet's top-1 accuracy (fraction in [0, 1]) from its arch, vectorised over many archs."""

    kind: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, *, seed: int = 0):
        self.space, self.seed = space, int(seed)
        self.fitted = False

    # ------------------------------------------------------------------ the surface
    def params(self) -> dict[str, Any]:
        """Constructor arguments (besides `space`), JSON-able: enough to rebuild an unfitted twin."""
        return {"seed": self.seed}

    def fit(self, archs_or_codes: ArchsOrCodes, accuracy: np.ndarray) -> "AccuracyModel":
        """Fit on measured subnets: archs (or codes) and their top-1 accuracy in [0, 1]."""
        codes = self.space.codes(archs_or_codes)
        y = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        if len(y) != len(codes):
            raise AccuracyPredictorError(f"field 'accuracy' has {len(y)} values for {len(codes)} archs")
        if len(y) < 4:
            raise AccuracyPredictorError(f"an accuracy model needs at least 4 measured subnets, got {len(y)}")
        if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
            raise AccuracyPredictorError("field 'accuracy' must hold top-1 fractions in [0, 1]")
        self._fit(codes, y)
        self.fitted = True
        return self

    def predict(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        """Predicted top-1 accuracy (N,) float64."""
        return self._predict(self._codes(archs_or_codes))

    def predict_std(self, archs_or_codes: ArchsOrCodes) -> np.ndarray | None:
        """Standard deviation of the prediction (N,), or None where the model gives no uncertainty."""
        self._codes(archs_or_codes)
        return None

    def fidelity(self, archs_or_codes: ArchsOrCodes, measured: np.ndarray) -> dict[str, float]:
        """{spearman, kendall, rmse, mape, within_10pct} of predictions against measured accuracy."""
        return _fidelity(self.predict(archs_or_codes), np.asarray(measured, dtype=np.float64))

    def save(self, folder: Path, prefix: str) -> dict[str, Any]:
        """Write the fitted state into `folder` (files named `prefix`...) and return the JSON spec to load it."""
        self._check_fitted()
        return {"kind": self.kind, "params": self.params(), "state": self._save(Path(folder), prefix)}

    @classmethod
    def load(cls, space: SearchSpace, spec: dict[str, Any], folder: Path) -> "AccuracyModel":
        """The fitted model a `save` spec describes."""
        try:
            model = make_accuracy_model(spec["kind"], space, **spec.get("params", {}))
            model._load(Path(folder), spec.get("state"))
        except (KeyError, TypeError, RuntimeError) as exc:
            # a hand-edited or foreign spec: unknown parameters, missing keys, tensors of the wrong shape
            raise AccuracyPredictorError(f"the saved model spec does not describe a loadable model: {exc}") from None
        model.fitted = True
        return model

    # ------------------------------------------------------------------ what a kind implements
    @abstractmethod
    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, codes: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _save(self, folder: Path, prefix: str) -> Any:
        """Write the fitted state into files named `prefix`...; return what `_load` needs (JSON-able)."""

    @abstractmethod
    def _load(self, folder: Path, state: Any) -> None: ...

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not self.fitted:
            raise AccuracyPredictorError(f"the {self.kind} accuracy model is not fitted yet: call fit() first")

    def _codes(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        self._check_fitted()
        return self.space.codes(archs_or_codes)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({self.space.name!r}, {args}{', fitted' if self.fitted else ''})"


def _read_state_file(folder: Path, name: Any) -> bytes:
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise AccuracyPredictorError(f"a saved model names its file by a plain file name, got {name!r}")
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise AccuracyPredictorError(f"cannot read the saved model file {folder / name}: {exc.strerror}") from None


def _check_features(name: str) -> str:
    if name not in FEATURE_SETS:
        raise AccuracyPredictorError(f"field 'features' = {name!r} is not allowed; allowed: {', '.join(FEATURE_SETS)}")
    return name
