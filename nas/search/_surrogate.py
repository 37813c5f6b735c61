"""`SurrogateSampler`: an Optuna sampler for expensive objectives over categorical choices (50-300 evaluations).

A Gaussian process over the one-hot features of the choices (kernel exp(-sum of a relevance weight per differing
parameter), the weights and the noise fitted by marginal likelihood every few trials) models each objective and
each constraint; the next
candidate maximises an acquisition over a pool of uniform draws and one-to-three-change neighbours of the best
trials, never one already tried or running:
- one objective: expected improvement over the best feasible value;
- two objectives: expected hypervolume improvement (Monte Carlo over the GP's marginals, exact 2-D
  hypervolume gain per sample) of the candidates whose optimistic gain (at mean - std) is among the best;
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
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.special import ndtr
from threadpoolctl import threadpool_limits

from nas.search._pareto import nondominated_mask
from nas.search._problem import SearchError

_PENALTY = 1e29
_EHVI_POOL = 256  # candidates scored by Monte Carlo EHVI per ask


class _ArdGP:
    """Zero-mean GP on standardised targets with one relevance weight per parameter: the kernel is
    exp(-sum_p w_p [x_p != x'_p]) on one-hot rows (`blocks[c]`: the parameter of one-hot column c). The weights and
    the noise maximise the marginal likelihood (L-BFGS, analytic gradient, a log-normal prior around
    `w0`); `theta` starts the fit (the last fit's weights), `fit=False` reuses it as is."""

    def __init__(self, x: np.ndarray, y: np.ndarray, blocks: np.ndarray, theta: np.ndarray | None = None,
                 fit: bool = True):
        self.x, self.blocks = x, blocks
        n_par = int(blocks.max()) + 1
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mu) / self.sd
        w0 = math.log(1.0 / math.sqrt(n_par))
        start = np.concatenate([np.full(n_par, w0), [math.log(1e-2)]]) if theta is None else theta
        if fit:
            res = minimize(self._nll, start, args=(z, w0), jac=True, method="L-BFGS-B",
                           bounds=[(-7.0, 3.0)] * n_par + [(math.log(1e-6), math.log(1.0))],
                           options={"maxiter": 40})
            start = res.x if np.isfinite(res.fun) else start
        try:
            _, chol = self._factor(start)
        except np.linalg.LinAlgError:  # near-duplicate rows at a tiny noise: more noise
            start = np.concatenate([start[:-1], [max(start[-1], math.log(1e-2))]])
            _, chol = self._factor(start)
        self.theta = start
        self.alpha = cho_solve(chol, z)
        self.inv = cho_solve(chol, np.eye(len(z)))

    def _kernel(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
        wc = w[self.blocks]
        return np.exp(-(w.sum() - (a * wc) @ b.T))

    def _factor(self, theta: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, bool]]:
        w, noise = np.exp(theta[:-1]), math.exp(theta[-1])
        k = self._kernel(self.x, self.x, w)
        return k, cho_factor(k + (noise + 1e-8) * np.eye(len(k)), lower=True)

    def _nll(self, theta: np.ndarray, z: np.ndarray, w0: float) -> tuple[float, np.ndarray]:
        try:
            k, chol = self._factor(theta)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros_like(theta)
        alpha = cho_solve(chol, z)
        inv = cho_solve(chol, np.eye(len(z)))
        prior = 0.5 * ((theta[:-1] - w0) / 1.5) ** 2
        nll = 0.5 * z @ alpha + np.log(np.diag(chol[0])).sum() + prior.sum()
        a = (np.outer(alpha, alpha) - inv) * k
        # d K / d log w_p = -w_p (1 - X_p X_p^T) * K: the sums over a parameter's one-hot columns of diag(X^T A X)
        same = np.bincount(self.blocks, weights=((a @ self.x) * self.x).sum(0), minlength=len(theta) - 1)
        w = np.exp(theta[:-1])
        grad = np.empty_like(theta)
        grad[:-1] = 0.5 * w * (a.sum() - same) + (theta[:-1] - w0) / 1.5 ** 2
        grad[-1] = -0.5 * math.exp(theta[-1]) * (alpha @ alpha - np.trace(inv))
        return float(nll), grad

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = self._kernel(x, self.x, np.exp(self.theta[:-1]))
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
        self._theta: dict[str, tuple[np.ndarray, int]] = {}

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
        self._blocks = np.repeat(np.arange(len(sizes)), sizes)
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
            m, s = self._gp(x[finite], t, f"c{j}").predict(xc)
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
            gp = self._believe(xf, target, x_run, "y")
            mean, std = gp.predict(xc)
            return _ei(mean, std, target.min()) * pof
        gps = [self._believe(xf, yn[:, j], x_run, f"y{j}") for j in range(2)]
        preds = [g.predict(xc) for g in gps]
        front = yn[nondominated_mask(yn, ["minimize", "minimize"])]
        ref = np.array([1.1, 1.1])
        mean = np.stack([p[0] for p in preds], 1)
        std = np.stack([p[1] for p in preds], 1)
        # Monte Carlo only where it can matter: the candidates with the largest gain at mean - std
        optimistic = hv_gain_2d(mean - std, front, ref) * pof
        top = np.argsort(-optimistic)[:_EHVI_POOL]
        z = self._rng.standard_normal((self.n_samples, len(top), 2))
        samples = mean[top][None] + std[top][None] * z
        gain = np.zeros(len(xc))
        gain[top] = hv_gain_2d(samples.reshape(-1, 2), front, ref).reshape(self.n_samples, len(top)).mean(0)
        return gain * pof

    def _gp(self, x: np.ndarray, y: np.ndarray, key: str, theta: np.ndarray | None = None, fit: bool | None = None):
        """A GP of target `key`; the ARD kernel's weights are fitted again every few trials, reused between."""
        last = self._theta.get(key)
        if fit is None:
            fit = last is None or len(y) - last[1] >= max(1, len(y) // 25)
        gp = _ArdGP(x, y, self._blocks, theta if theta is not None else (last[0] if last else None), fit)
        if fit:
            self._theta[key] = (gp.theta, len(y))
        return gp

    def _believe(self, x: np.ndarray, y: np.ndarray, x_run: np.ndarray, key: str):
        """A GP on the observations and, for running trials, the GP's own mean there (kriging believer)."""
        gp = self._gp(x, y, key)
        if len(x_run):
            gp = self._gp(np.concatenate([x, x_run]), np.concatenate([y, gp.predict(x_run)[0]]), key,
                          getattr(gp, "theta", None), fit=False)
        return gp

