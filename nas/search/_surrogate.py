"""`SurrogateSampler`: an Optuna sampler for expensive objectives over categorical choices (50-300 evaluations).

A Gaussian process over the one-hot features of the choices models each objective and each constraint. Its kernel
sums an interaction part, exp(-sum of a relevance weight per differing parameter), and a main-effect part, a weight
per parameter where the choices agree (each choice adds a value of its own, whatever the others: what lets the model
carry what it learnt about a choice to candidates far from every trial); the weights and the noise are fitted by
marginal likelihood every few trials.

Each ask maximises an acquisition over a pool (uniform draws; one-to-three-change neighbours of the best trials;
recombinations, each choice drawn from the best fifth of the trials), then climbs the pool's best few greedily one
change at a time while the acquisition rises; never one already tried or running, nor one nearer to a trial than
a distance floor: the number of choices a candidate must differ in from every trial, raised by one after each
trial whose values repeat an earlier trial's exactly and lowered by a quarter after each that does not (so that
it settles where one answer in five repeats). On a plateau the
model does not know of (a choice that changes nothing, an objective that is a lookup of the nearest measured
case) its picks next to the trials keep answering what it has seen; the floor sends it farther until the answers
are new again, and where answers never repeat it stays at 1 and changes nothing. The acquisition:
- Thompson sampling: one draw of the model per ask (the main effects drawn from their exact posterior, the
  interactions at their posterior mean), the candidate with the best drawn value (one objective; three or more:
  of a random-weight augmented Chebyshev scalarisation, ParEGO's) or the largest drawn hypervolume gain (two;
  the reference point a tenth beyond the worst of the trials and of the drawn front over the pool, so that a
  front's far end in a long tail the trials never reached still counts).
  A draw goes wherever a plausible model puts the optimum, so the search leaves a plateau of equal values;
- with two objectives every other ask is expected hypervolume improvement instead (Monte Carlo over the GP's
  marginals, the same samples for every candidate of an ask, exact 2-D hypervolume gain per sample), which fills
  the front's gaps where the model is sure (either alone did worse on one of the two measured tables; the
  reference point as Thompson's, from the GP's means);
- constraints (`trial.set_constraint`, Optuna's convention: feasible when <= 0): Thompson sampling draws them too
  and prefers candidates feasible under the draw, then the least violating; expected hypervolume improvement is
  multiplied by the probability that every constraint holds. Values at or beyond 1e29 (Ray Tune's stand-in for an
  infeasible trial) count as infeasible.

It works inside any ask-and-tell loop: `nas.search`'s strategy `surrogate` and Ray Tune's `OptunaSearch`
(`get_strategy("ray-tune", sampler="surrogate")`); running trials are believed at the GP's mean ("kriging
believer"), so parallel asks spread out.
"""

from __future__ import annotations

import math
from typing import Any, Callable

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
_EHVI_POOL = 256  # candidates of the pool scored by Monte Carlo EHVI per ask
# the share of repeated answers the distance floor settles at (raised by one per repeat, lowered by
# _REPEATS / (1 - _REPEATS) per new answer): Rechenberg's one-fifth, where lowering by one per new answer settled at
# one in two, every second evaluation of an expensive objective telling nothing new
_REPEATS = 0.2
_CLIMBS, _CLIMB_STEPS, _NEIGHBOURS = 4, 40, 256  # local search on the acquisition: starts, steps, moves per step


class _CategoricalGP:
    """Zero-mean GP on standardised targets over one-hot rows (`blocks[c]`: the parameter of one-hot column c) with
    the kernel

        s * exp(-sum_p w_p [x_p != x'_p])  +  sum_p a_p [x_p == x'_p]

    an interaction part (relevance weight w_p per parameter: candidates that differ in few relevant choices are
    alike) plus a main-effect part (each parameter's choice adds a value of its own, whatever the other choices:
    what carries what was learnt about a choice to candidates far from every observation, as TPE's independent
    densities do). w, a, s and the noise maximise the marginal likelihood (L-BFGS, analytic gradient, log-normal
    priors); `theta` starts the fit (the last fit's), `fit=False` reuses it as is."""

    def __init__(self, x: np.ndarray, y: np.ndarray, blocks: np.ndarray, theta: np.ndarray | None = None,
                 fit: bool = True):
        self.x, self.blocks = x, blocks
        n_par = self.n_par = int(blocks.max()) + 1
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mu) / self.sd
        # prior centres: interaction weights 1/sqrt(P); half the variance in main effects, half in interactions
        self._prior = np.concatenate([np.full(n_par, math.log(1.0 / math.sqrt(n_par))),
                                      np.full(n_par, math.log(0.5 / n_par)), [math.log(0.5)]])
        start = np.concatenate([self._prior, [math.log(1e-2)]]) if theta is None else theta
        if fit:
            bounds = ([(-7.0, 3.0)] * n_par + [(math.log(1e-6), math.log(2.0))] * n_par
                      + [(math.log(1e-3), math.log(4.0)), (math.log(1e-6), math.log(1.0))])
            res = minimize(self._nll, start, args=(z,), jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 40})
            start = res.x if np.isfinite(res.fun) else start
        try:
            _, _, chol = self._factor(start)
        except np.linalg.LinAlgError:  # near-duplicate rows at a tiny noise: more noise
            start = np.concatenate([start[:-1], [max(start[-1], math.log(1e-2))]])
            _, _, chol = self._factor(start)
        self.theta = start
        self.alpha = cho_solve(chol, z)
        self.inv = cho_solve(chol, np.eye(len(z)))

    def _parts(self, a: np.ndarray, b: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interaction and main-effect kernel matrices between one-hot rows `a` and `b`."""
        p = self.n_par
        w, add, s = np.exp(theta[:p]), np.exp(theta[p:2 * p]), math.exp(theta[2 * p])
        return s * np.exp(-(w.sum() - (a * w[self.blocks]) @ b.T)), (a * add[self.blocks]) @ b.T

    def _factor(self, theta: np.ndarray):
        kp, ka = self._parts(self.x, self.x, theta)
        k = kp + ka + (math.exp(theta[-1]) + 1e-8) * np.eye(len(kp))
        return kp, k, cho_factor(k, lower=True)

    def _nll(self, theta: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            kp, _, chol = self._factor(theta)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros_like(theta)
        p = self.n_par
        alpha = cho_solve(chol, z)
        inv = cho_solve(chol, np.eye(len(z)))
        dev = (theta[:-1] - self._prior) / 1.5
        nll = 0.5 * z @ alpha + np.log(np.diag(chol[0])).sum() + 0.5 * (dev ** 2).sum()
        b = np.outer(alpha, alpha) - inv  # d nll / d theta = -tr(b dK/dtheta) / 2

        def same(m: np.ndarray) -> np.ndarray:  # per parameter: sum of m where the rows share its choice
            return np.bincount(self.blocks, weights=((m @ self.x) * self.x).sum(0), minlength=p)

        bk = b * kp
        grad = np.empty_like(theta)
        # d kp / d log w_p = -w_p [x_p != x'_p] kp;  d ka / d log a_p = a_p [x_p == x'_p];  d kp / d log s = kp
        grad[:p] = 0.5 * np.exp(theta[:p]) * (bk.sum() - same(bk))
        grad[p:2 * p] = -0.5 * np.exp(theta[p:2 * p]) * same(b)
        grad[2 * p] = -0.5 * bk.sum()
        grad[:-1] += dev / 1.5
        grad[-1] = -0.5 * math.exp(theta[-1]) * np.trace(b)
        return float(nll), grad

    def thompson(self, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
        """A function of one-hot rows: the main-effect part drawn from its posterior (each choice's value, exact:
        a Gaussian over the one-hot weights) plus the interaction part's posterior mean."""
        p = self.n_par
        add = np.exp(self.theta[p:2 * p])[self.blocks]
        ax = self.x * add
        cov = np.diag(add) - ax.T @ self.inv @ ax
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        beta = ax.T @ self.alpha + vecs @ (np.sqrt(np.clip(vals, 0, None)) * rng.standard_normal(len(vals)))

        def draw(x: np.ndarray) -> np.ndarray:
            kp, _ = self._parts(x, self.x, self.theta)
            return self.mu + self.sd * (x @ beta + kp @ self.alpha)
        return draw

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp, ka = self._parts(x, self.x, self.theta)
        ks = kp + ka
        p = self.n_par
        prior = math.exp(self.theta[2 * p]) + np.exp(self.theta[p:2 * p]).sum()
        var = np.maximum(prior - ((ks @ self.inv) * ks).sum(1), 1e-12)
        return self.mu + self.sd * (ks @ self.alpha), self.sd * np.sqrt(var)


def _normalised(y: np.ndarray) -> np.ndarray:
    """Each column scaled to [0, 1] over the rows."""
    lo, hi = y.min(0), y.max(0)
    return (y - lo) / np.where(hi > lo, hi - lo, 1.0)


def _signed_log(v: np.ndarray) -> np.ndarray:
    """A constraint's violation (feasible when <= 0) on a scale-free signed log."""
    return np.sign(v) * np.log1p(np.abs(v))


def _reference(y: np.ndarray, believed: np.ndarray) -> np.ndarray:
    """The reference point of the hypervolume gains (normalised objectives, minimise): per objective, the worst of
    the trials `y` and of the front the model believes in over the pool (`believed`: candidates' predicted or drawn
    values), plus a tenth of that range, as the goal's own hypervolume puts it beyond the true front's worst corner.
    From the trials alone (1.1 on [0, 1]) a front's far end the start never reached, e.g. the most accurate
    subnet at a latency far in the long tail of the others, lies beyond the reference: it adds nothing, however
    good the model believes it, and the search never asks for it."""
    pts = y if not len(believed) else np.concatenate([y, believed[nondominated_mask(believed, ["minimize"] * 2)]])
    lo, hi = pts.min(0), pts.max(0)
    return hi + 0.1 * (hi - lo)


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

    n_startup_trials: uniform random trials before the model is used; n_candidates: uniform draws and neighbours
    of the best trials in the pool per ask (half each; recombinations add half as many again);
    n_samples: Monte Carlo samples per candidate for the expected hypervolume improvement (two objectives).
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
        seen = self._onehot(np.concatenate([obs, running]), sizes)

        def distance(rows: np.ndarray) -> np.ndarray:  # how many choices differ from the nearest trial or running one
            return len(sizes) - (self._onehot(rows, sizes) @ seen.T).max(1, initial=0)

        cand = self._candidates(obs, y, feasible, sizes)
        d = distance(cand)  # the pool's distances, once
        if not (d > 0).any():
            return {}
        floor = min(self._distance_floor(y, len(sizes)), int(d.max()))
        far = lambda rows: distance(rows) >= floor  # noqa: E731
        cand = cand[d >= floor]
        with threadpool_limits(1, user_api="blas"):  # matrices of a few hundred rows: threads only contend
            # two objectives: every other ask expected hypervolume improvement (once a feasible trial exists)
            ehvi = y.shape[1] == 2 and feasible.any() and len(done) % 2 == 1
            acq = self._ehvi if ehvi else self._thompson
            score = acq(self._onehot(obs, sizes), y, c, feasible, self._onehot(running, sizes), sizes,
                        self._onehot(cand, sizes))
            best = self._maximise(score, cand, sizes, far)
        return {n: d.to_external_repr(int(i)) for n, d, i in zip(names, dists, best)}

    # ---------------------------------------------------------------- pieces
    def _distance_floor(self, y: np.ndarray, n_par: int) -> int:
        """How many choices a candidate must differ in from every trial: 1 (untried), raised by one after each
        trial whose values repeat an earlier trial's exactly (the model's pick fell on a plateau it did not know
        of, so nearby candidates are likely to tell nothing new) and lowered by a quarter after each that does not
        (a success rule, as evolution strategies adapt their step size: it settles where one answer in five
        repeats, `_REPEATS`), within [1, half the parameters]; the floor is the integer part.
        Replayed from the trials in number order: the same history gives the same floor, after a resume too."""
        floor, seen = 1.0, set()
        for i, v in enumerate(y):
            key = v.tobytes()
            if i >= self.n_startup_trials and np.isfinite(v).all() and (np.abs(v) < _PENALTY).all():
                floor = (min(floor + 1, max(1, n_par // 2)) if key in seen
                         else max(floor - _REPEATS / (1 - _REPEATS), 1.0))
            seen.add(key)
        return int(floor)

    @staticmethod
    def _onehot(idx: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        out = np.zeros((len(idx), int(sizes.sum())))
        if len(idx):
            out[np.arange(len(idx))[:, None], offsets[None, :] + idx] = 1.0
        return out

    def _candidates(self, obs: np.ndarray, y: np.ndarray, feasible: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """The pool the acquisition is maximised over: uniform draws, one-to-three-change neighbours of the best
        trials and recombinations of the best fifth's choices (tried ones among them: the caller drops them)."""
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
        # recombinations: each choice drawn on its own from the best fifth of the trials (TPE's good density over
        # the choices, a little smoothed): far from any one trial, near what the good ones share
        top = good[order[:max(5, len(good) // 5)]]
        mixed = top[rng.integers(0, len(top), (n // 2, len(sizes))), np.arange(len(sizes))]
        smooth = rng.random(mixed.shape) < 0.1
        mixed[smooth] = (rng.random(smooth.sum()) * np.broadcast_to(sizes, mixed.shape)[smooth]).astype(np.int64)
        return np.unique(np.concatenate([uniform, local, mixed]), axis=0)

    def _maximise(self, score: Callable[[np.ndarray, bool], np.ndarray], cand: np.ndarray, sizes: np.ndarray,
                  far: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The acquisition's best candidate: the pool's best few, each climbed greedily to its best untried
        one-change neighbour (`far`: beyond the distance floor) while the acquisition rises (a local search on the acquisition, as SMAC's), so the
        choice may go as far from the trials as the model says it should."""
        s = score(cand, True) + 1e-12 * self._rng.random(len(cand))
        top = np.argsort(-s)[:_CLIMBS]
        cur, cur_s = cand[top].copy(), s[top]
        moves = np.array([(p, o) for p in range(len(sizes)) for o in range(1, int(sizes[p]))], dtype=np.int64)
        for _ in range(_CLIMB_STEPS):
            step = moves if len(moves) <= _NEIGHBOURS else moves[self._rng.choice(len(moves), _NEIGHBOURS, False)]
            nb = np.repeat(cur[:, None], len(step), 1)  # (climbs, moves, parameters)
            rows = np.arange(len(step))
            nb[:, rows, step[:, 0]] = (nb[:, rows, step[:, 0]] + step[:, 1]) % sizes[step[:, 0]]
            flat = nb.reshape(-1, len(sizes))
            ns = score(flat, False).reshape(len(cur), len(step))
            ns[~far(flat).reshape(ns.shape)] = -np.inf
            j = ns.argmax(1)
            gain = ns[np.arange(len(cur)), j]
            up = gain > cur_s + 1e-12 * np.abs(cur_s)
            if not up.any():
                break
            cur[up], cur_s[up] = nb[up, j[up]], gain[up]
        return cur[int(np.argmax(cur_s))]

    def _ehvi(self, x: np.ndarray, y: np.ndarray, c: np.ndarray, feasible: np.ndarray, x_run: np.ndarray,
              sizes: np.ndarray, pool: np.ndarray) -> Callable[[np.ndarray, bool], np.ndarray]:
        """Expected hypervolume improvement (two objectives) times the probability of feasibility, as a function of
        candidates (rows of choice indices) and whether to screen them (a large pool: Monte Carlo only for the
        most promising); the reference point takes in the front of the GP's means over the one-hot `pool` where
        the constraints more likely hold than not."""
        cons = self._constraint_gps(x, c)

        def pof(xc: np.ndarray) -> np.ndarray:
            out = np.ones(len(xc))
            for gp in cons:
                m, s = gp.predict(xc)
                out *= ndtr(-m / s)
            return out

        yn = _normalised(y[feasible])
        gps = [self._believe(x[feasible], yn[:, j], x_run, f"y{j}") for j in range(2)]
        front = yn[nondominated_mask(yn, ["minimize", "minimize"])]
        believed = np.stack([g.predict(pool)[0] for g in gps], 1)
        ref = _reference(yn, believed[pof(pool) >= 0.5])
        z = self._rng.standard_normal((self.n_samples, 2))  # the same samples for every candidate of this ask

        def ehvi(rows: np.ndarray, screen: bool) -> np.ndarray:
            xc = self._onehot(rows, sizes)
            preds = [g.predict(xc) for g in gps]
            mean = np.stack([p[0] for p in preds], 1)
            std = np.stack([p[1] for p in preds], 1)
            feas = pof(xc)
            top = np.arange(len(xc))
            if screen and len(xc) > _EHVI_POOL:  # in the pool, Monte Carlo only for the largest gains at mean - std
                top = np.argsort(-hv_gain_2d(mean - std, front, ref) * feas)[:_EHVI_POOL]
            samples = mean[top][None] + std[top][None] * z[:, None, :]
            gain = np.zeros(len(xc))
            gain[top] = hv_gain_2d(samples.reshape(-1, 2), front, ref).reshape(self.n_samples, len(top)).mean(0)
            return gain * feas
        return ehvi

    def _thompson(self, x: np.ndarray, y: np.ndarray, c: np.ndarray, feasible: np.ndarray, x_run: np.ndarray,
                  sizes: np.ndarray, pool: np.ndarray) -> Callable[[np.ndarray, bool], np.ndarray]:
        """Thompson sampling as a function of candidates (rows of choice indices): one draw of each objective's
        and each constraint's model per ask (`_CategoricalGP.thompson`), scored as the module docstring says; with
        two objectives the reference point takes in the drawn front over the one-hot `pool` (feasible under the
        draw)."""
        draws = [gp.thompson(self._rng) for gp in self._constraint_gps(x, c)]

        def violation(xc: np.ndarray) -> np.ndarray:
            return sum((np.maximum(d(xc), 0.0) for d in draws), np.zeros(len(xc)))

        if not feasible.any():
            return lambda rows, screen: -violation(self._onehot(rows, sizes))
        xf, yn = x[feasible], _normalised(y[feasible])
        m_obj = y.shape[1]
        if m_obj == 2:
            fs = [self._believe(xf, yn[:, j], x_run, f"y{j}").thompson(self._rng) for j in range(2)]
            front = yn[nondominated_mask(yn, ["minimize", "minimize"])]
            ref = _reference(yn, np.stack([f(pool) for f in fs], 1)[violation(pool) <= 0])

            def value(xc: np.ndarray) -> np.ndarray:
                pts = np.stack([f(xc) for f in fs], 1)
                gain = hv_gain_2d(pts, front, ref)
                # a dominated draw: minus how far it must move (the same in both objectives) to leave the front's shade
                behind = np.max(np.min(pts[:, None, :] - front[None], axis=2), axis=1)
                return np.where(gain > 0, gain, -np.maximum(behind, 0.0))
        else:
            if m_obj > 2:  # ParEGO: a random weighting per ask
                w = self._rng.dirichlet(np.ones(m_obj))
                target = (yn * w).max(1) + 0.05 * (yn * w).sum(1)
            else:
                target = yn[:, 0]
            f = self._believe(xf, target, x_run, "y").thompson(self._rng)

            def value(xc: np.ndarray) -> np.ndarray:
                return -f(xc)

        def score(rows: np.ndarray, screen: bool) -> np.ndarray:
            xc = self._onehot(rows, sizes)
            v, bad = value(xc), violation(xc)
            return np.where(bad > 0, -1e6 - bad, v)  # feasible under the draw first, then the least violating
        return score

    def _gp(self, x: np.ndarray, y: np.ndarray, key: str, theta: np.ndarray | None = None, fit: bool | None = None):
        """A GP of target `key`; the ARD kernel's weights are fitted again every few trials, reused between."""
        last = self._theta.get(key)
        if fit is None:
            fit = last is None or len(y) - last[1] >= max(1, len(y) // 25)
        gp = _CategoricalGP(x, y, self._blocks, theta if theta is not None else (last[0] if last else None), fit)
        if fit:
            self._theta[key] = (gp.theta, len(y))
        return gp

    def _constraint_gps(self, x: np.ndarray, c: np.ndarray) -> list[_CategoricalGP]:
        """A GP per constraint with at least two finite values, on their signed log (fitting draws no random
        numbers, so the caller's draws come in the same order either way)."""
        gps = []
        for j in range(c.shape[1]):
            finite = np.isfinite(c[:, j])
            if finite.sum() >= 2:
                gps.append(self._gp(x[finite], _signed_log(c[finite, j]), f"c{j}"))
        return gps

    def _believe(self, x: np.ndarray, y: np.ndarray, x_run: np.ndarray, key: str):
        """A GP on the observations and, for running trials, the GP's own mean there (kriging believer)."""
        gp = self._gp(x, y, key)
        if len(x_run):
            gp = self._gp(np.concatenate([x, x_run]), np.concatenate([y, gp.predict(x_run)[0]]), key,
                          getattr(gp, "theta", None), fit=False)
        return gp

