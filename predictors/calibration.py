"""End-to-end correction: a whole subnet is not exactly the sum of its ops measured alone (caches, dispatch,
allocator), so a calibrated predictor maps its sum of ops to measured subnet latency with a small linear model."""

from __future__ import annotations

import numpy as np

from hw_profiles.schema import Correction

from predictors.base import PredictorError

IDENTITY = Correction(source="fitted", scale=1.0, per_block_ms=0.0, offset_ms=0.0)


def apply_correction(correction: Correction | None, ops_ms: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    if correction is None:
        return ops_ms
    return correction.scale * ops_ms + correction.per_block_ms * blocks + correction.offset_ms


def fit_correction(ops_ms: np.ndarray, measured_ms: np.ndarray, source: str = "fitted") -> Correction:
    """measured ≈ scale · ops + offset, least squares on relative error (each subnet weighs the same)."""
    p, m = np.asarray(ops_ms, float), np.asarray(measured_ms, float)
    if len(p) < 3:
        raise PredictorError(f"an end-to-end correction needs at least 3 measured subnets, got {len(p)}")
    w = 1.0 / np.maximum(m, 1e-9)
    a = np.stack([p * w, w], 1)
    (scale, offset), *_ = np.linalg.lstsq(a, m * w, rcond=None)
    floor = 0.5 * float(p.min())
    if np.isfinite(scale) and scale > 0 and offset < -scale * floor:
        # a steep line from a few noisy subnets would predict <= 0 ms for a subnet smaller than those it saw: the
        # line may cross zero no higher than half the smallest fitted subnet's sum of ops (offset at that bound)
        q = (p - floor) * w
        scale = float(q @ (m * w) / max(float(q @ q), 1e-300))
        offset = -scale * floor
    if not np.isfinite(scale) or scale <= 0:
        scale, offset = float(np.median(m / np.maximum(p, 1e-12))), 0.0
    return Correction(source=source, scale=float(scale), per_block_ms=0.0, offset_ms=float(offset))
