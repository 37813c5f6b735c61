"""`SurrogateSampler`: an Optuna sampler for expensive objectives over categorical choices (50-300 evaluations).

A Gaussian process over the one-hot features of the choices (an exponential kernel on the Hamming distance, its
length scale and noise chosen by marginal likelihood) models each objective and each constraint; the next
candidate maximises an acquisition over a pool of uniform draws and one-to-three-change neighbours of the best
trials, never one already tried or running:
- one objective: expected improvement over the best feasible value;
- two objectives: expected hypervolume improvement (Monte Carlo over the GP's marginals, exact 2-D
  hypervolume gain per sample);
- three or more: expected improvement of a random-weight augmented Chebyshev scalarisation (ParEGO);
- constraints (`trial.set_constraint`, Optuna's convention: feasible when <= 0): times the probability that
  every constraint holds. Values at or beyond 1e29 (Ray Tune's stand-in for an infeasible trial) count as
  infeasible.

It works inside any ask-and-tell loop: `nas.search`'s strategy `surrogate` and Ray Tune's `OptunaSearch`
(`get_strategy("ray-tune", sampler="surrogate")`); running trials are believed at the GP's mean ("kriging
believer"), so parallel asks spread out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.special import ndtr
from threadpoolctl import threadpool_limits

from nas.search._pareto import nondominated_mask
from nas.search._problem import SearchError

_PENALTY = 1e29
_LENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_NOISES = (1e-4, 1e-3, 1e-2, 1e-1, 0.3)


class _GP:
    """Zero-mean GP on standardised targets; kernel exp(-hamming / length) on one-hot rows; the length scale and
    the noise picked by marginal likelihood from a small grid (one eigendecomposition per length scale)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x = x
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mu) / self.sd
        ham = self._ham(x, x)
        best = None
        for length in _LENGTHS:
            lam, q = np.linalg.eigh(np.exp(-ham / length))
            lam = np.maximum(lam, 0)
            qz = q.T @ z
            for noise in _NOISES:
                d = lam + noise
                nll = 0.5 * (qz * qz / d).sum() + 0.5 * np.log(d).sum()
                if best is None or nll < best[0]:
                    best = (nll, length, q, d, qz)
        _, self.length, q, d, qz = best
        self.alpha = q @ (qz / d)
        self.inv = (q / d) @ q.T

    @staticmethod
    def _ham(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(0.5 * (a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * a @ b.T), 0)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = np.exp(-self._ham(x, self.x) / self.length)
        var = np.maximum(1.0 - ((ks @ self.inv) * ks).sum(1), 1e-12)
        return self.mu + self.sd * (ks @ self.alpha), self.sd * np.sqrt(var)


def _ei(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Expected improvement below `best` (minimising)."""
    z = (best - mean) / std
    return std * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def hv_gain_2d(points: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Hypervolume each point of `points` (N, 2) adds to the non-dominated `front` (M, 2) below `ref` (minimise)."""
    front = front[np.argsort(front[:, 0])]
    # the front's attained boundary: above x in [edges[i], edges[i+1]) everything at y >= level[i] is dominated
    edges = np.concatenate([[-np.inf], front[:, 0], [ref[0]]])
    level = np.concatenate([[ref[1]], np.minimum.accumulate(front[:, 1])])
    lo = np.maximum(edges[None, :-1], points[:, :1])
    hi = np.minimum(edges[None, 1:], ref[0])
    width = np.clip(hi - lo, 0, None)
    height = np.clip(np.minimum(level[None, :], ref[1]) - points[:, 1:2], 0, None)
    return (width * height).sum(1)


class SurrogateSampler(optuna.samplers.BaseSampler):
    """GP-based Bayesian optimisation over categorical parameters (see the module docstring).

    n_startup_trials: uniform random trials before the model is used; n_candidates: pool scored per ask;
    n_samples: Monte Carlo samples per candidate for the expected hypervolume improvement.
    """

    def __init__(self, seed: int | None = None, n_startup_trials: int = 10, n_candidates: int = 2048,
                 n_samples: int = 64):
        for name, v, lo in (("n_startup_trials", n_startup_trials, 1), ("n_candidates", n_candidates, 16),
                            ("n_samples", n_samples, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise SearchError(f"surrogate: {name} must be an integer >= {lo}, got {v!r}")
        self._rng = np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._space = optuna.search_space.IntersectionSearchSpace()
        self.n_startup_trials, self.n_candidates, self.n_samples = n_startup_trials, n_candidates, n_samples

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    # ---------------------------------------------------------------- Optuna's sampler protocol
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._space.calculate(study)  # incremental: reads only the trials finished since the last ask
        return {n: d for n, d in space.items() if isinstance(d, CategoricalDistribution) and len(d.choices) > 1}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        names = sorted(search_space)
        dists = [search_space[n] for n in names]
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        trials = [t for t in trials if t.number != trial.number and all(n in t.params for n in names)]
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(done) < self.n_startup_trials:
            return {}
        sizes = np.array([len(d.choices) for d in dists])
        rows = lambda ts: np.array([[d.to_internal_repr(t.params[n]) for n, d in zip(names, dists)]  # noqa: E731
                                    for t in ts], dtype=np.int64).reshape(-1, len(names))
        obs, running = rows(done), rows([t for t in trials if t.state == TrialState.RUNNING])
        sign = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
        y = np.array([t.values for t in done], dtype=np.float64) * sign
        con_names = sorted({k for t in done for k in t.constraints})
        c = np.array([[t.constraints.get(k, math.inf) for k in con_names] for t in done],
                     dtype=np.float64).reshape(len(done), len(con_names))
        feasible = (np.abs(y) < _PENALTY).all(1) & np.isfinite(y).all(1) & (c <= 0).all(1)
        cand = self._candidates(obs, running, y, feasible, sizes)
        if not len(cand):
            return {}
        with threadpool_limits(1, user_api="blas"):  # matrices of a few hundred rows: threads only contend
            score = self._acquisition(self._onehot(obs, sizes), y, c, feasible, self._onehot(running, sizes),
                                      self._onehot(cand, sizes))
        best = cand[int(np.argmax(score + 1e-12 * self._rng.random(len(score))))]
        return {n: d.to_external_repr(int(i)) for n, d, i in zip(names, dists, best)}

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def _onehot(idx: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out = np.zeros((len(idx), int(sizes.sum())))
        if len(idx):
            out[np.arange(len(idx))[:, None], offsets[None, :] + idx] = 1.0
        return out

    def _candidates(self, obs: np.ndarray, running: np.ndarray, y: np.ndarray, feasible: np.ndarray,
                    sizes: np.ndarray) -> np.ndarray:
        rng, n = self._rng, self.n_candidates
        uniform = (rng.random((n // 2, len(sizes))) * sizes).astype(np.int64)
        good = obs[feasible] if feasible.any() else obs
        gy = y[feasible] if feasible.any() else y
        order = np.argsort(gy.sum(1) if gy.shape[1] > 1 else gy[:, 0])
        front = np.nonzero(nondominated_mask(gy, ["minimize"] * gy.shape[1]))[0]
        elite = good[np.unique(np.concatenate([front, order[:5]]))]
        local = elite[rng.integers(0, len(elite), n - n // 2)].copy()
        for _ in range(3):  # one to three changes each
            gene = rng.integers(0, len(sizes), len(local))
            change = rng.random(len(local)) < (1.0 if _ == 0 else 0.4)
            r = np.arange(len(local))[change]
            local[r, gene[change]] = (local[r, gene[change]]
                                      + rng.integers(1, np.maximum(sizes[gene[change]], 2))) % sizes[gene[change]]
        cand = np.unique(np.concatenate([uniform, local]), axis=0)
        taken = {r.tobytes() for r in np.concatenate([obs, running])}
        return cand[[r.tobytes() not in taken for r in cand]]

    def _acquisition(self, x: np.ndarray, y: np.ndarray, c: np.ndarray, feasible: np.ndarray, x_run: np.ndarray,
                     xc: np.ndarray) -> np.ndarray:
        pof = np.ones(len(xc))
        for j in range(c.shape[1]):
            cj = c[:, j]
            finite = np.isfinite(cj)
            if finite.sum() < 2:
                continue
            # scale-free: fit on a signed log of the violation, feasible when <= 0
            t = np.sign(cj[finite]) * np.log1p(np.abs(cj[finite]))
            m, s = _GP(x[finite], t).predict(xc)
            pof *= ndtr(-m / s)
        if not feasible.any():
            return pof
        xf, yf = x[feasible], y[feasible]
        lo, hi = yf.min(0), yf.max(0)
        yn = (yf - lo) / np.where(hi > lo, hi - lo, 1.0)
        m_obj = y.shape[1]
        if m_obj == 1 or m_obj > 2:
            if m_obj > 2:  # ParEGO: a random weighting per ask
                w = self._rng.dirichlet(np.ones(m_obj))
                target = (yn * w).max(1) + 0.05 * (yn * w).sum(1)
            else:
                target = yn[:, 0]
            gp = self._believe(xf, target, x_run)
            mean, std = gp.predict(xc)
            return _ei(mean, std, target.min()) * pof
        gps = [self._believe(xf, yn[:, j], x_run) for j in range(2)]
        preds = [g.predict(xc) for g in gps]
        front = yn[nondominated_mask(yn, ["minimize", "minimize"])]
        ref = np.array([1.1, 1.1])
        z = self._rng.standard_normal((self.n_samples, len(xc), 2))
        samples = np.stack([preds[j][0][None, :] + preds[j][1][None, :] * z[..., j] for j in range(2)], axis=-1)
        gain = hv_gain_2d(samples.reshape(-1, 2), front, ref).reshape(self.n_samples, len(xc)).mean(0)
        return gain * pof

    @staticmethod
    def _believe(x: np.ndarray, y: np.ndarray, x_run: np.ndarray) -> _GP:
        """A GP on the observations and, for running trials, the GP's own mean there (kriging believer)."""
        gp = _GP(x, y)
        if len(x_run):
            gp = _GP(np.concatenate([x, x_run]), np.concatenate([y, gp.predict(x_run)[0]]))
        return gp

