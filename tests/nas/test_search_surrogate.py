"""`SurrogateSampler` (strategy `surrogate`): inside Optuna's ask-and-tell, one and two objectives, constraints,
running trials, Ray Tune's penalty values; its 2-D hypervolume gain against the definition."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas.search import Constraint, SearchError, SurrogateSampler, get_strategy, hypervolume_2d, run
from nas.search._surrogate import _reference, hv_gain_2d

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {f"x{i}": ["a", "b", "c"] for i in range(6)}
W = np.random.default_rng(0).normal(size=(6, 3))


def additive(c: dict) -> float:
    return float(sum(W[i, "abc".index(c[f"x{i}"])] for i in range(6)))


BEST = float(W.min(1).sum())


def test_hv_gain_matches_the_hypervolume_difference():
    rng = np.random.default_rng(1)
    ref = np.array([1.0, 1.0])
    for _ in range(50):
        pts = rng.random((8, 2))
        front = pts[[not any((q <= p).all() and (q < p).any() for q in pts) for p in pts]]
        cand = rng.random((20, 2)) * 1.2
        base = hypervolume_2d(front, ref, ["minimize", "minimize"])
        brute = [hypervolume_2d(np.vstack([front, c]), ref, ["minimize", "minimize"]) - base for c in cand]
        np.testing.assert_allclose(hv_gain_2d(cand, front, ref), brute, atol=1e-12)


def test_it_finds_the_optimum_of_an_additive_objective_within_optunas_own_loop():
    study = optuna.create_study(sampler=SurrogateSampler(seed=0))
    study.optimize(lambda t: additive({n: t.suggest_categorical(n, c) for n, c in SPACE.items()}), n_trials=40)
    assert study.best_value == pytest.approx(BEST)
    tpe = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    tpe.optimize(lambda t: additive({n: t.suggest_categorical(n, c) for n, c in SPACE.items()}), n_trials=40)
    assert study.best_value <= tpe.best_value


def test_constraints_and_two_objectives_through_run():
    seen = []

    def objective(c):
        seen.append(c)
        return additive(c), sum(c[n] == "c" for n in SPACE)

    res = run(SPACE, objective, directions=["minimize", "minimize"], budget=30, seed=0, strategy="surrogate",
              constraints=[Constraint("n_a", 2, fn=lambda c: sum(c[n] == "a" for n in SPACE))])
    t = res.trials
    assert len(seen) == 30 and res.strategy == "surrogate"
    assert not t.duplicated(subset=list(SPACE)).any()  # never asks for a candidate already tried
    later = t.iloc[10:]  # after the random start, the model steers towards feasible candidates
    assert later["feasible"].mean() > t.iloc[:10]["feasible"].mean()
    assert len(res.pareto) and res.pareto["feasible"].all()


def test_running_trials_and_penalty_values_as_ray_tune_sends_them():
    study = optuna.create_study(sampler=SurrogateSampler(seed=0, n_startup_trials=5))
    dists = {n: optuna.distributions.CategoricalDistribution(c) for n, c in SPACE.items()}
    for i in range(8):
        t = study.ask(dists)
        study.tell(t, 1e30 if i % 3 == 0 else additive(t.params))  # infeasible, as Ray Tune reports them
    a, b = study.ask(dists), study.ask(dists)  # both running: the second is not the first again
    assert a.params != b.params
    study.tell(a, additive(a.params))
    study.tell(b, additive(b.params))


def test_bad_options_are_refused_at_creation():
    with pytest.raises(SearchError, match="surrogate: n_startup_trials"):
        get_strategy("surrogate", n_startup_trials=0)
    with pytest.raises(SearchError, match="ray-tune: sampler"):
        get_strategy("ray-tune", sampler="gp")
    assert get_strategy("ray-tune", sampler="surrogate").sampler == "surrogate"


def test_gp_gradient_and_relevance():
    from scipy.optimize import approx_fprime

    from nas.search._surrogate import _CategoricalGP

    rng = np.random.default_rng(0)
    sizes = np.array([3, 4, 2, 5])
    idx = (rng.random((60, 4)) * sizes).astype(int)
    x = SurrogateSampler._onehot(idx, sizes)
    blocks = np.repeat(np.arange(4), sizes)
    y = idx[:, 0] + 0.5 * (idx[:, 1] == 2) + 0.01 * rng.normal(size=60)  # parameters 2 and 3 do nothing
    gp = _CategoricalGP(x, y, blocks)
    z = (y - y.mean()) / y.std()
    theta = rng.normal(size=len(gp.theta)) * 0.5
    grad = gp._nll(theta, z)[1]
    np.testing.assert_allclose(grad, approx_fprime(theta, lambda t: gp._nll(t, z)[0], 1e-6), rtol=1e-4, atol=1e-4)
    main = gp.theta[4:8]  # the main-effect weights: an additive objective is all main effects
    assert min(main[0], main[1]) > max(main[2], main[3])  # the relevant parameters weigh more
    test = (rng.random((40, 4)) * sizes).astype(int)
    mean, std = gp.predict(SurrogateSampler._onehot(test, sizes))
    truth = test[:, 0] + 0.5 * (test[:, 1] == 2)
    assert np.abs(mean - truth).max() < 0.2 and (std > 0).all()


def test_main_effects_carry_far_from_the_trials():
    """Twelve parameters whose best choices add up: from 40 random trials, none near the optimum, the model
    predicts the optimum above every trial it saw (the main-effect part; an interaction kernel alone reverts to the
    mean far from its data)."""
    from nas.search._surrogate import _CategoricalGP

    rng = np.random.default_rng(0)
    sizes = np.full(12, 3)
    idx = rng.integers(0, 3, (40, 12))
    gain = 1 + 0.1 * np.arange(12)
    y = ((idx == 2) * gain).sum(1)
    gp = _CategoricalGP(SurrogateSampler._onehot(idx, sizes), y, np.repeat(np.arange(12), 3))
    mean, _ = gp.predict(SurrogateSampler._onehot(np.full((1, 12), 2), sizes))
    assert (idx == 2).sum(1).max() <= 9 and mean[0] > y.max() + 3  # 18.6 (the truth) against 13.7 seen


def test_a_plateau_of_equal_values_does_not_hold_it():
    """A nearest-anchor landscape (each candidate gets the value of the anchor with the fewest differing choices):
    wide plateaus where one or two changes never alter the value (expected improvement alone stayed on one for
    60 trials here); the best anchor is found anyway."""
    rng = np.random.default_rng(3)
    space = {f"x{i}": [0, 1, 2] for i in range(16)}
    anchors = np.vstack([np.full(16, 2), rng.integers(0, 3, (30, 16))])
    values = np.concatenate([[1.0], rng.uniform(0.0, 0.6, 30)])

    def nearest(c: dict) -> float:
        return float(values[np.argmin((anchors != np.array(list(c.values()))).sum(1))])

    res = run(space, nearest, directions="maximize", budget=30, seed=1, strategy="surrogate")
    assert res.trials["value"].max() == 1.0


def test_repeated_values_raise_the_distance_floor_and_new_ones_lower_it():
    sampler = SurrogateSampler(seed=0, n_startup_trials=2)
    y = np.array([[0.1], [0.1], [0.5], [0.5], [0.5], [0.7], [0.1]])  # after the start: repeat, repeat, new, repeat
    assert sampler._distance_floor(y, 16) == 3
    assert sampler._distance_floor(y[:6], 16) == 2  # ... repeat, repeat, new
    assert sampler._distance_floor(np.arange(8.0)[:, None], 16) == 1  # never a repeat: only untried candidates
    assert sampler._distance_floor(np.zeros((40, 1)), 16) == 8  # at most half the parameters
    penalty = np.array([[0.1], [0.2], [1e30], [1e30], [1e30]])  # Ray Tune's infeasible stand-in is no repeat
    assert sampler._distance_floor(penalty, 16) == 1


def test_the_distance_floor_settles_where_one_answer_in_five_repeats():
    sampler = SurrogateSampler(seed=0, n_startup_trials=1)
    # after the start, one answer in three repeats: more than one in five, so the floor climbs by half a step per
    # three trials (lowering it by one per new answer, as it was, held it at 1: every second answer could repeat)
    thirds = [[0.0]] + [[v] for k in range(6) for v in (0.0, k + 1.0, k + 1.5)]
    assert sampler._distance_floor(np.array(thirds), 16) == 4
    fifths = [[0.0]] + [[v] for k in range(6) for v in (0.0, k + 1.0, k + 1.25, k + 1.5, k + 1.75)]
    assert sampler._distance_floor(np.array(fifths), 16) == 1  # one in five: it stays


def test_the_reference_point_reaches_the_far_end_of_the_believed_front():
    y = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])  # normalised trials, all on the front
    # the model believes in a better first objective at a second one far beyond the trials' worst (a most accurate
    # subnet in latency's long tail), and in a dominated candidate farther still
    believed = np.array([[-0.3, 2.0], [0.6, 5.0], [0.4, 0.6]])
    ref = _reference(y, believed)
    np.testing.assert_allclose(ref, [1.13, 2.2])  # the dominated one moves nothing
    np.testing.assert_allclose(_reference(y, believed[2:]), [1.1, 1.1])  # within the trials: as from them alone
    assert hv_gain_2d(believed[:1], y, ref)[0] > 0
    assert hv_gain_2d(believed[:1], y, np.array([1.1, 1.1]))[0] == 0  # from the trials alone it added nothing


def test_on_a_plateau_the_distance_floor_keeps_the_answers_new():
    """Two objectives on a nearest-anchor landscape (42 anchors, 16 choices): 60 trials land on 30 different
    anchors (with the floor held at 1, only 20: its picks next to the trials kept answering what it had seen)."""
    rng = np.random.default_rng(2)
    space = {f"x{i}": [0, 1, 2] for i in range(16)}
    anchors = np.vstack([np.full(16, 2), np.zeros(16, int), rng.integers(0, 3, (40, 16))])
    acc = (anchors == 2).sum(1) + rng.normal(0, 1, len(anchors))
    cost = anchors.sum(1) + rng.normal(0, 1, len(anchors))

    def nearest(c: dict) -> tuple[float, float]:
        i = np.argmin((anchors != np.array(list(c.values()))).sum(1))
        return float(acc[i]), float(cost[i])

    res = run(space, nearest, directions=["maximize", "minimize"], budget=60, seed=2, strategy="surrogate")
    assert len({tuple(v) for v in res.trials[["value_0", "value_1"]].to_numpy()}) >= 27
