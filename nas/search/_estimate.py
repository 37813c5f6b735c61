"""`ConstraintEstimate`: an additive model of the constraint values, so a search proposes candidates likely to be
feasible before it screens them.

Latency and memory predictors are sums of per-block terms (lookup tables, rooflines), so a candidate's constraint
value is close to its parent's plus the changed genes' terms. The model is one weight per (parameter, choice) and
constraint, fitted by least squares on rows the search screened anyway (in log space where every value is
positive, so that a block's share scales with the resolution). It only proposes: the real screen still decides,
so a search stays correct for any constraint, additive or not; a poor fit only costs screening.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class ConstraintEstimate:
    """Per-(parameter, choice) additive weights of each constraint value, fitted on screened rows."""

    def __init__(self, sizes: np.ndarray, uppers: np.ndarray):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.uppers = np.asarray(uppers, dtype=np.float64)
        self.weights: np.ndarray | None = None  # (sum(sizes), n_con), transformed units
        self.mean = np.zeros(len(self.uppers))  # the fitted rows' mean (transformed): an estimate is mean + score
        self.log = self.uppers > 0  # which constraints are modelled in log space (all values positive)
        self.spread = np.zeros(len(self.uppers))  # residual std of the fit, transformed units

    @property
    def ready(self) -> bool:
        return self.weights is not None

    def transform(self, cons: np.ndarray) -> np.ndarray:
        cons = np.asarray(cons, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.log, np.log(np.where(self.log, np.maximum(cons, 1e-300), 1.0)), cons)

    @property
    def bounds(self) -> np.ndarray:
        """The constraints' upper bounds, transformed."""
        return self.transform(self.uppers[None])[0]

    def fit(self, rows: np.ndarray, cons: np.ndarray, most: int = 2048) -> bool:
        """Least squares (ridge-regularised normal equations) on the one-hot features of at most `most` rows;
        False (and no model) when the rows are too few or their values not finite."""
        ok = np.isfinite(cons).all(1)
        rows, cons = rows[ok][:most], cons[ok][:most]
        n_feat = int(self.sizes.sum())
        if len(rows) < max(64, 2 * n_feat):
            return False
        self.log = (self.uppers > 0) & (cons > 0).all(0)
        y = self.transform(cons)
        x = np.zeros((len(rows), n_feat))
        x[np.arange(len(rows))[:, None], rows + self.offsets] = 1.0
        mean = y.mean(0)
        # each parameter's one-hot columns sum to one (and inactive slots copy active ones): the small ridge
        # picks one of the equally good solutions
        w = np.linalg.solve(x.T @ x + 1e-6 * np.eye(n_feat), x.T @ (y - mean))
        self.weights, self.mean = w, mean
        self._columns = [np.ascontiguousarray(w[:, j]) for j in range(w.shape[1])]  # 1-D gathers are faster
        self.spread = (y - mean - x @ w).std(0)
        return True

    def score(self, rows: np.ndarray) -> np.ndarray:
        """(N, n_con): the rows' summed weights (a candidate's estimate is the fitted mean plus this)."""
        flat = rows + self.offsets
        return np.stack([w[flat].sum(1) for w in self._columns], 1)

    def delta(self, rows: np.ndarray, base: np.ndarray, diff: np.ndarray | None = None) -> np.ndarray:
        """(N, n_con): how much the estimate of each row exceeds that of its relative in `base` (a row each, or
        one for all), summed over the genes where they differ (a cost per changed gene: children differ in a
        few; `diff`: `rows != base` when the caller has it)."""
        rows = np.ascontiguousarray(rows)
        base = np.ascontiguousarray(np.broadcast_to(base, rows.shape))
        flat = np.flatnonzero(rows != base if diff is None else diff)  # ten times faster than a 2-D nonzero
        r, c = np.divmod(flat, rows.shape[1])
        new, old = rows.ravel()[flat] + self.offsets[c], base.ravel()[flat] + self.offsets[c]
        return np.stack([np.bincount(r, w[new] - w[old], len(rows)) for w in self._columns], 1)

    def lower(self, rows: np.ndarray, canonical: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator,
              margin: np.ndarray, rounds: int = 12) -> np.ndarray:
        """`rows` walked to an estimate `margin` under every bound, as a user shrinks a net: per round, each row
        still over draws a random choice per parameter and takes the cheaper ones (in the constraints it breaks)
        at random, about as many as cover what it is over, and at least one, until all but a 32nd are under (the
        screen judges those); so the rows stay about as diverse as they were drawn. `canonical` maps rows to
        their canonical form (the estimate is of canonical rows)."""
        rows = np.array(canonical(rows), copy=True)
        scale = np.where(self.log, 1.0, np.maximum(np.abs(self.uppers), 1e-300))
        over = (self.mean + self.score(rows) - (self.bounds - margin)) / scale
        bad = np.nonzero((over > 0).any(1))[0]
        for _ in range(rounds):
            if len(bad) * 32 <= len(rows):  # the last few stragglers are left to the screen
                break
            broken = over[bad] > 0
            now = rows[bad]
            other = (rng.random(now.shape) * self.sizes).astype(np.int64)
            gain = np.zeros(now.shape)
            for j, w in enumerate(self._columns):
                gain += (w[now + self.offsets] - w[other + self.offsets]) * (broken[:, j] / scale[j])[:, None]
            gain = np.maximum(gain, 0.0)
            need = np.where(broken, over[bad], 0.0).max(1)
            luck = rng.random(gain.shape)
            take = (gain > 0) & (luck < (need / np.maximum(gain.sum(1), 1e-300))[:, None])
            take[np.arange(len(bad)), np.argmax((gain > 0) * luck, 1)] |= gain.any(1)  # at least one a round
            moved = now.copy()
            moved[take] = other[take]
            moved = canonical(moved)
            over[bad] += self.delta(moved, now) / scale
            rows[bad] = moved
            bad = bad[(over[bad] > 0).any(1)]
        return rows
