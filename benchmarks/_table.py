"""A measured table for the expensive-objective benchmark (beside the demo's subnets, `_subnet_table.py`): every
configuration of a small MLP grid trained on scikit-learn's bundled `digits` images (no download) and validated
on held-out images. Real measurements no search strategy was tuned on; a full factorial, so every candidate a
strategy asks for has a value.

Columns: the six choices, `val_error` (1 - accuracy on the 997 images not trained on), `params` (weights and biases) and
`fit_s` (training seconds, measured on a shared machine: noisy). Saved as `benchmarks/data/digits-mlp.csv`
(written whole), so the benchmark reads the same table on any machine.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from pathlib import Path

import pandas as pd

GRID = {"layers": [1, 2, 3], "width": [8, 16, 32, 64], "activation": ["relu", "tanh", "logistic"],
        "alpha": [1e-5, 1e-3, 1e-1], "lr": [1e-3, 3e-3, 1e-2], "batch": [16, 64]}
N_TRAIN, EPOCHS = 800, 8


def _measure(cfg: dict) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    model = MLPClassifier((cfg["width"],) * cfg["layers"], activation=cfg["activation"], alpha=cfg["alpha"],
                          learning_rate_init=cfg["lr"], batch_size=cfg["batch"], max_iter=EPOCHS, random_state=0)
    t0 = time.perf_counter()
    model.fit(x[:N_TRAIN], y[:N_TRAIN])
    fit_s = time.perf_counter() - t0
    params = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
    return {**cfg, "val_error": 1.0 - model.score(x[N_TRAIN:], y[N_TRAIN:]), "params": params, "fit_s": fit_s}


def digits_mlp_table(path: str | Path, jobs: int = 2) -> pd.DataFrame:
    """The table (measured once, then read from `path`)."""
    path = Path(path)
    if path.is_file():
        return pd.read_csv(path)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from joblib import Parallel, delayed

    cfgs = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    rows = Parallel(n_jobs=jobs)(delayed(_measure)(c) for c in cfgs)
    df = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)
    return df
