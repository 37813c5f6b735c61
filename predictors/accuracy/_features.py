"""Inputs of the accuracy models, computed from compact arch codes (vectorised, no forward pass).

- `onehot`: once-for-all's encoding (kernel and expand one-hot per active block, resolution one-hot), what OFA's
  MLP reads;
- `summary`: a short numeric view per stage (depth, mean kernel size and mean expand ratio of the active
  blocks), the resolution, log MACs and log params: what kernels and trees find easy to use, since accuracy
  grows smoothly with capacity, which one-hot bits spell out only through many interactions;
- `blocks`: kernel size and expand ratio per block slot (0 where inactive), depth per stage, resolution, log MACs
  and log params;
- `onehot+summary`: both side by side.
"""

from __future__ import annotations


import numpy as np

from supernet.counting import count_macs, count_params
from supernet.errors import NasError
from supernet.space import SearchSpace

FEATURE_SETS = ("onehot", "summary", "blocks", "onehot+summary")


class AccuracyPredictorError(NasError):
    """An accuracy predictor was asked for something it cannot do (unknown kind, bad data, not fitted)."""


def _capacity(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    macs = np.log(count_macs(space, codes).astype(np.float64))
    params = np.log(count_params(space, codes).astype(np.float64))
    return np.stack([macs, params], axis=1)


def blocks(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """(N, 2B+S+3): kernel size and expand ratio per slot (0 where inactive), depth per stage, resolution in px,
    log MACs, log params."""
    k, e, d, r = space.split_codes(codes)
    active = space.active_mask(d)
    ks = np.asarray(space.kernel_choices, dtype=np.float64)[k] * active
    es = np.asarray(space.expand_choices, dtype=np.float64)[e] * active
    return np.concatenate([ks, es, d.astype(np.float64), r[:, None].astype(np.float64),
                           _capacity(space, codes)], axis=1)


def summary(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """(N, 3S+3): per stage depth, mean kernel size and mean expand ratio of its active blocks; resolution in
    px; log MACs; log params."""
    k, e, d, r = space.split_codes(codes)
    active = space.active_mask(d)
    n, ns, per = len(r), space.num_stages, space.max_depth
    ks = (np.asarray(space.kernel_choices, dtype=np.float64)[k] * active).reshape(n, ns, per).sum(2) / d
    es = (np.asarray(space.expand_choices, dtype=np.float64)[e] * active).reshape(n, ns, per).sum(2) / d
    return np.concatenate([d.astype(np.float64), ks, es, r[:, None].astype(np.float64),
                           _capacity(space, codes)], axis=1)


def features(space: SearchSpace, codes: np.ndarray, kind: str) -> np.ndarray:
    """The model inputs named `kind` (one of FEATURE_SETS) for compact `codes`, float32 (N, F)."""
    if kind == "onehot":
        return space.onehot(codes)
    if kind == "summary":
        return summary(space, codes).astype(np.float32)
    if kind == "blocks":
        return blocks(space, codes).astype(np.float32)
    if kind == "onehot+summary":
        return np.concatenate([space.onehot(codes), summary(space, codes).astype(np.float32)], axis=1)
    raise AccuracyPredictorError(f"field 'features' = {kind!r} is not allowed; allowed: {', '.join(FEATURE_SETS)}")
