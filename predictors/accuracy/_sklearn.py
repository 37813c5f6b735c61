"""scikit-learn accuracy models: gradient boosting, random forest, Gaussian process (saved with skops, loaded
against an explicit list of allowed types; never pickle)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from predictors.accuracy._base import (AccuracyModel, AccuracyPredictorError, ArchsOrCodes, _check_features,
                                       _read_state_file, register_accuracy_model, write_bytes_atomic)
from predictors.accuracy._features import FEATURE_SETS, features
from supernet.space import SearchSpace

# Types a saved scikit-learn model may hold beyond skops' defaults; anything else is refused at load.
_SKOPS_ALLOWED = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.gaussian_process.kernels.ConstantKernel", "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.WhiteKernel", "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.Product", "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.DotProduct",
})


class _SklearnAccuracy(AccuracyModel):
    """A scikit-learn regressor (a Pipeline) on one of the feature sets, saved with skops."""

    def __init__(self, space: SearchSpace, *, features: str, seed: int = 0):
        super().__init__(space, seed=seed)
        self.features = _check_features(features)
        self.estimator: Any = None

    @abstractmethod
    def _make(self) -> Any: ...

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        self.estimator = self._make().fit(features(self.space, codes, self.features), y)

    def _predict(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(features(self.space, codes, self.features)), dtype=np.float64)

    def _save(self, folder: Path, prefix: str) -> str:
        import skops.io as sio

        name = f"{prefix}{self.kind}.skops"
        write_bytes_atomic(folder / name, sio.dumps(self.estimator))
        return name

    def _load(self, folder: Path, state: Any) -> None:
        import skops.io as sio

        data = _read_state_file(folder, state)
        untrusted = set(sio.get_untrusted_types(data=data))
        refused = sorted(untrusted - _SKOPS_ALLOWED)
        if refused:
            raise AccuracyPredictorError(f"{folder / state} holds types this loader does not trust: "
                                         f"{', '.join(refused)}")
        self.estimator = sio.loads(data, trusted=sorted(untrusted))
        self._match_features(folder / state)

    def _match_features(self, path: Path) -> None:
        """Make `features` the set the stored estimator was fitted on. A file saved before a kind's default feature
        set changed (gp: summary, then blocks) may not record it; the one set of the fitted width is then taken,
        and a width no set or several sets give is refused."""
        width = getattr(self.estimator, "n_features_in_", None)
        probe = self.space.encode([self.space.smallest()])
        if width is None or features(self.space, probe, self.features).shape[1] == width:
            return
        fits = [f for f in FEATURE_SETS if features(self.space, probe, f).shape[1] == width]
        if len(fits) != 1:
            raise AccuracyPredictorError(f"{path} was fitted on {width} features, which the feature set "
                                         f"{self.features!r} of this {self.kind} model does not give; refit it")
        self.features = fits[0]


@register_accuracy_model("gbr")
class GbrAccuracy(_SklearnAccuracy):
    """Gradient-boosted regression trees (scikit-learn) on the one-hot plus summary features."""

    def __init__(self, space: SearchSpace, *, n_estimators: int = 500, learning_rate: float = 0.03,
                 max_depth: int = 3, subsample: float = 0.8, features: str = "onehot+summary", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.n_estimators, self.learning_rate, self.max_depth = int(n_estimators), float(learning_rate), int(max_depth)
        self.subsample = float(subsample)

    def params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate, "max_depth": self.max_depth,
                "subsample": self.subsample, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                         max_depth=self.max_depth, subsample=self.subsample,
                                         random_state=self.seed)


@register_accuracy_model("rf")
class RfAccuracy(_SklearnAccuracy):
    """A random forest (scikit-learn) on the one-hot plus summary features."""

    def __init__(self, space: SearchSpace, *, n_estimators: int = 300, max_features: float = 0.33,
                 min_samples_leaf: int = 1, features: str = "onehot+summary", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.n_estimators, self.max_features = int(n_estimators), float(max_features)
        self.min_samples_leaf = int(min_samples_leaf)

    def params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "max_features": self.max_features,
                "min_samples_leaf": self.min_samples_leaf, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=self.n_estimators, max_features=self.max_features,
                                     min_samples_leaf=self.min_samples_leaf, random_state=self.seed, n_jobs=1)


@register_accuracy_model("gp")
class GpAccuracy(_SklearnAccuracy):
    """A Gaussian process (scikit-learn) on the standardised per-block features: constant × RBF with one length
    scale per feature (so it learns which blocks matter), plus white noise; `predict_std` is its posterior standard
    deviation (accuracy units). The per-block view beat the per-stage summary in cross-validation on every measured
    run we have (BENCHMARKS.md, "accuracy-predictor-500-full-val")."""

    def __init__(self, space: SearchSpace, *, restarts: int = 1, features: str = "blocks", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.restarts = int(restarts)

    def params(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n = features(self.space, self.space.encode([self.space.smallest()]), self.features).shape[1]
        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.full(n, 3.0), (1e-2, 1e4))
                  + WhiteKernel(0.1, (1e-6, 1.0)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                      random_state=self.seed)
        return make_pipeline(StandardScaler(), gp)

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # length scales at their bound mean "this feature does not matter": expected, not a failure
            warnings.simplefilter("ignore", ConvergenceWarning)
            super()._fit(codes, y)

    def predict_std(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        codes = self._codes(archs_or_codes)
        x = self.estimator[:-1].transform(features(self.space, codes, self.features))
        _, std = self.estimator[-1].predict(x, return_std=True)
        return np.asarray(std, dtype=np.float64)
