"""LearnedLatency: per-op regressors on layer features (nn-Meter's idea), so shapes never measured are predicted.

Each layer kind (stem conv, expand, depthwise, SE, project, pool, feature mix, classifier, residual add) has a
linear regressor over its MACs, activation elements moved, weights and a per-call constant, with non-negative
coefficients (scikit-learn, relative-error weighted). An op's latency is the sum over its layers, a subnet's the
sum over its ops, then an end-to-end correction fitted on whole measured subnets.

Because the model is linear in its coefficients, it fits either from per-op measurements (`fit_ops`) or from
whole-subnet measurements only (`fit`: a user's CSV of archs and latencies measured anywhere).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.linear_model import LinearRegression

from hw_profiles.schema import Correction, LearnedModel
from supernet import SearchSpace

from predictors.base import PredictorBase, PredictorError, register_predictor
from predictors.calibration import apply_correction, fit_correction
from predictors.ops import FEATURE_NAMES, LAYER_FEATURES, LAYER_KINDS, Op, active_blocks, feature_tables, op_features
from predictors.metrics import fidelity


def _fit_positive(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Non-negative ridge on relative error: min Σ((x·w − y)/y)² + α·|s⊙w|², columns scaled to [0, 1]."""
    scale = np.abs(x).max(0)
    scale[scale == 0] = 1.0
    w_rows = 1.0 / np.maximum(y, 1e-9)
    xs = x / scale * w_rows[:, None]
    ys = y * w_rows
    aug_x = np.vstack([xs, np.sqrt(alpha) * np.eye(x.shape[1])])
    aug_y = np.concatenate([ys, np.zeros(x.shape[1])])
    reg = LinearRegression(positive=True, fit_intercept=False).fit(aug_x, aug_y)
    return reg.coef_ / scale


@register_predictor("learned")
class LearnedLatency(PredictorBase):
    """Latency in ms from per-layer-kind linear regressors plus an end-to-end correction."""

    def __init__(self, space: SearchSpace, coef: np.ndarray | dict[str, Sequence[float]] | None = None,
                 correction: Correction | None = None, alpha: float = 1e-4):
        self.space, self.alpha, self.correction = space, alpha, correction
        self.coef = self._coef_vector(coef) if coef is not None else None
        self._features = feature_tables(space)

    # ------------------------------------------------------------------ coefficients
    @staticmethod
    def _coef_vector(coef: np.ndarray | dict[str, Sequence[float]]) -> np.ndarray:
        if isinstance(coef, np.ndarray):
            return coef.astype(float)
        nf, out = len(LAYER_FEATURES), np.zeros(len(FEATURE_NAMES))
        for kind, values in coef.items():
            if kind not in LAYER_KINDS or len(values) != nf:
                raise PredictorError(f"learned coef '{kind}' must be one of {', '.join(LAYER_KINDS)} with {nf} values "
                                     f"({', '.join(LAYER_FEATURES)})")
            i = LAYER_KINDS.index(kind)
            out[i * nf:(i + 1) * nf] = values
        return out

    def coef_dict(self) -> dict[str, list[float]]:
        nf = len(LAYER_FEATURES)
        return {k: [float(v) for v in self._require()[i * nf:(i + 1) * nf]] for i, k in enumerate(LAYER_KINDS)}

    def _require(self) -> np.ndarray:
        if self.coef is None:
            raise PredictorError("the learned latency model is not fitted: call fit_ops(...) or fit(...) first")
        return self.coef

    # ------------------------------------------------------------------ fitting
    def fit_ops(self, ops: Sequence[Op], latency_ms: np.ndarray) -> "LearnedLatency":
        """Fit the per-op regressors on ops measured alone (e.g. a lookup table's entries)."""
        y = np.asarray(latency_ms, float)
        if len(ops) != len(y) or len(y) < 4:
            raise PredictorError(f"need at least 4 measured ops with one latency each, got {len(ops)} ops, {len(y)} values")
        x = np.stack([op_features(op) for op in ops])
        self.coef = _fit_positive(x, y, self.alpha)
        return self

    def fit_correction(self, codes: np.ndarray, measured_ms: np.ndarray) -> "LearnedLatency":
        """Fit the end-to-end correction on whole measured subnets (after `fit_ops`)."""
        self.correction = fit_correction(self.ops_ms(codes), measured_ms)
        return self

    def fit(self, codes: np.ndarray, measured_ms: np.ndarray) -> "LearnedLatency":
        """Fit from whole-subnet latencies only (no per-op measurements): the regressors see summed features."""
        y = np.asarray(measured_ms, float)
        if len(codes) != len(y) or len(y) < 5:
            raise PredictorError(f"need at least 5 measured archs with one latency each, got {len(codes)} and {len(y)}")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise PredictorError("latency_ms must be positive finite numbers")
        self.coef = _fit_positive(self._features(codes), y, self.alpha)
        self.correction = fit_correction(self.ops_ms(codes), y)
        return self

    def cross_validate(self, codes: np.ndarray, measured_ms: np.ndarray, folds: int = 5,
                       seed: int = 0) -> dict[str, float]:
        """K-fold cross-validated fidelity of `fit` on these measurements (each arch predicted by a model that
        never saw it)."""
        y = np.asarray(measured_ms, float)
        folds = max(2, min(folds, len(y) // 3))
        order = np.random.default_rng(seed).permutation(len(y))
        pred = np.empty(len(y))
        for f in range(folds):
            test = order[f::folds]
            train = np.setdiff1d(order, test)
            m = LearnedLatency(self.space, alpha=self.alpha).fit(codes[train], y[train])
            pred[test] = m.predict(codes[test])
        return {**fidelity(pred, y), "n": int(len(y)), "folds": int(folds)}

    # ------------------------------------------------------------------ predicting
    def op_ms(self, op: Op) -> float:
        """Predicted latency of one op alone (ms)."""
        return float(op_features(op) @ self._require())

    def ops_ms(self, codes: np.ndarray) -> np.ndarray:
        """Sum of predicted op latencies, before the end-to-end correction."""
        return self._features(codes) @ self._require()

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Latency in ms."""
        return apply_correction(self.correction, self.ops_ms(codes), active_blocks(self.space, codes))

    # ------------------------------------------------------------------ storage
    def to_model(self, source: str = "fitted", note: str | None = None) -> LearnedModel:
        return LearnedModel(source=source, features=list(LAYER_FEATURES), coef=self.coef_dict(), note=note)

    @classmethod
    def from_model(cls, space: SearchSpace, model: LearnedModel, correction: Correction | None = None
                   ) -> "LearnedLatency":
        if list(model.features) != list(LAYER_FEATURES):
            raise PredictorError(f"learned model features must be {list(LAYER_FEATURES)}, got {model.features}")
        return cls(space, coef=model.coef, correction=correction)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.to_model().model_dump(mode="json", exclude_none=True)}
        if self.correction is not None:
            out["correction"] = self.correction.model_dump(mode="json")
        return out

    @classmethod
    def from_dict(cls, space: SearchSpace, data: dict[str, Any]) -> "LearnedLatency":
        corr = Correction.model_validate(data["correction"]) if data.get("correction") else None
        return cls.from_model(space, LearnedModel.model_validate(data["model"]), corr)
