"""`ConstraintEstimate`: the additive model a search proposes candidates with (the screen still decides)."""

from __future__ import annotations

import numpy as np

from nas.search._estimate import ConstraintEstimate

SIZES = np.array([3, 4, 2, 5, 3])
RNG = np.random.default_rng(0)
COST = [RNG.normal(size=k) for k in SIZES]  # a cost per (parameter, choice): an additive constraint


def additive(rows):
    return np.stack([sum(COST[j][rows[:, j]] for j in range(len(SIZES)))], 1)


def uniform(n, rng):
    return (rng.random((n, len(SIZES))) * SIZES).astype(np.int64)


def test_on_an_additive_constraint_the_estimate_is_exact_from_a_relative_or_alone():
    est = ConstraintEstimate(SIZES, [0.5])  # a bound some values exceed and values of either sign: a linear model
    rows = uniform(400, np.random.default_rng(1))
    assert est.fit(rows, additive(rows)) and not est.log[0]
    parents, kids = uniform(50, RNG), uniform(50, RNG)
    np.testing.assert_allclose(additive(parents) + est.delta(kids, parents), additive(kids), atol=1e-5)
    np.testing.assert_allclose(est.mean + est.score(kids), additive(kids), atol=1e-5)


def test_lowering_walks_the_rows_under_the_bound_by_changing_genes_only():
    est = ConstraintEstimate(SIZES, [-3.0])
    rows = uniform(400, np.random.default_rng(2))
    est.fit(rows, additive(rows))
    start = uniform(300, np.random.default_rng(3))
    low = est.lower(start, lambda r: r, np.random.default_rng(4), margin=np.zeros(1))
    assert ((low >= 0) & (low < SIZES)).all()
    assert sum(c.min() for c in COST) < -3.0 and (additive(start) > -3.0).sum() > 200  # each can fit; many did not
    assert (additive(low) <= -3.0 + 1e-5).mean() >= 31 / 32  # an exact model: all but a few stragglers fit
    every = np.stack(np.meshgrid(*[np.arange(k) for k in SIZES], indexing="ij"), -1).reshape(-1, len(SIZES))
    fits = (additive(every) <= -3.0)[:, 0].sum()
    assert len(np.unique(low, axis=0)) >= 0.6 * fits  # diverse: most of the rows that fit, not a few


def test_positive_constraints_are_modelled_in_log_space_and_bad_data_is_not_fitted():
    est = ConstraintEstimate(SIZES, [2.0])
    rows = uniform(400, np.random.default_rng(5))
    cons = np.exp(additive(rows))
    assert est.fit(rows, cons) and est.log[0]
    np.testing.assert_allclose(np.exp(est.transform(cons[:5]) + est.delta(rows[5:10], rows[:5])), cons[5:10])
    fresh = ConstraintEstimate(SIZES, [2.0])
    assert not fresh.fit(rows[:10], cons[:10]) and not fresh.ready  # too few rows for a model
