"""Fidelity of a predictor against measurements: rank agreement and relative error."""

from __future__ import annotations

import numpy as np
from scipy import stats


def fidelity(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """{spearman, kendall, rmse, mape, within_10pct} of predictions against measured values (same units).

    `mape` and `within_10pct` are fractions (0.05 = 5%); `rmse` is in the values' unit.
    """
    p = np.asarray(pred, dtype=float).ravel()
    m = np.asarray(measured, dtype=float).ravel()
    if p.shape != m.shape or p.size < 2:
        raise ValueError(f"need two equal-length arrays of at least 2 values, got {p.shape} and {m.shape}")
    rel = np.abs(p - m) / np.maximum(np.abs(m), 1e-12)
    const = np.ptp(p) == 0 or np.ptp(m) == 0
    return {
        "spearman": 0.0 if const else float(stats.spearmanr(p, m).statistic),
        "kendall": 0.0 if const else float(stats.kendalltau(p, m).statistic),
        "rmse": float(np.sqrt(np.mean((p - m) ** 2))),
        "mape": float(rel.mean()),
        "within_10pct": float((rel <= 0.10).mean()),
    }
