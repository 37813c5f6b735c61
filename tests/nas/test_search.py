"""nas.search.run: every strategy on the tiny arch space, constraints, a custom dict space, storage and errors."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from nas.search import Constraint, SearchError, available_strategies, hypervolume_2d, nondominated_mask, run
from supernet import ArchConfig, SearchSpace
from supernet.counting import count_macs, count_params

SPACE = SearchSpace.preset("tiny-mbv3")
MACS_LIMIT = 8e6  # between the smallest (~1.7M at 20 px) and largest (~14.4M at 28 px) subnet


class ProxyObjective:
    """A batch objective from counting: bigger nets 'score' more; MACs to minimise."""

    names = ["score", "macs"]

    def __init__(self):
        self.calls = 0

    def evaluate_batch(self, codes: np.ndarray) -> pd.DataFrame:
        self.calls += 1
        macs = count_macs(SPACE, codes)
        return pd.DataFrame({"score": np.log(count_params(SPACE, codes)) + 0.5 * np.log(macs), "macs": macs})


DIRS = {"score": "maximize", "macs": "minimize"}


@pytest.mark.parametrize("strategy", ["random", "evolution", "optuna-nsga2", "optuna-tpe"])
def test_every_strategy_finds_feasible_archs_under_a_macs_limit(strategy):
    budget = 60 if strategy == "optuna-tpe" else 400
    res = run(SPACE, ProxyObjective(), directions=DIRS, budget=budget, seed=0, strategy=strategy,
              constraints={"macs": MACS_LIMIT})
    t = res.trials
    assert len(t) == budget and res.strategy == strategy
    params = [f"ks_{i}" for i in range(SPACE.num_blocks)] + [f"e_{i}" for i in range(SPACE.num_blocks)] + \
             [f"d_{i}" for i in range(SPACE.num_stages)] + ["r"]
    assert list(t.columns[1:1 + len(params)]) == params
    assert set(t["r"]) <= set(SPACE.resolutions) and set(t["ks_0"]) <= set(SPACE.kernel_choices)
    np.testing.assert_array_equal(t["feasible"], t["macs"] <= MACS_LIMIT)
    assert (t["source"] == "predicted").all()
    # the Pareto front holds feasible, mutually non-dominated trials only
    assert len(res.pareto) and res.pareto["feasible"].all()
    assert nondominated_mask(res.pareto[["score", "macs"]].to_numpy(), ["maximize", "minimize"]).all()
    # the best feasible arch is an ArchConfig whose recount matches and beats every other feasible trial
    assert isinstance(res.best, ArchConfig)
    assert count_macs(SPACE, [res.best])[0] <= MACS_LIMIT
    assert res.best_values["score"] == pytest.approx(t.loc[t["feasible"], "score"].max())
    row = res.pareto.iloc[0]
    assert res.candidate(row) == SPACE.decode(SPACE.encode([res.candidate(row)]))[0]


def test_infeasible_candidates_never_win_even_when_they_score_best():
    res = run(SPACE, ProxyObjective(), directions=DIRS, budget=300, seed=1, strategy="random",
              constraints={"macs": MACS_LIMIT})
    assert (~res.trials["feasible"]).any(), "the limit must cut some random archs for this test to mean anything"
    assert res.trials["score"].max() > res.best_values["score"]  # a bigger, infeasible arch scored higher
    assert res.best_values["macs"] <= MACS_LIMIT and (res.pareto["macs"] <= MACS_LIMIT).all()


def test_evolution_beats_random_on_one_objective_at_the_same_budget():
    def best(strategy: str) -> float:
        class One:
            names = ["score"]

            def evaluate_batch(self, codes):
                return ProxyObjective().evaluate_batch(codes)

        res = run(SPACE, One(), directions="maximize", budget=1500, seed=3, strategy=strategy,
                  constraints={"macs": MACS_LIMIT})
        return res.best_values["score"]

    assert best("evolution") > best("random")


def test_constraints_from_fn_from_the_objective_and_counted():
    calls = []

    def objective(arch: ArchConfig) -> dict:
        calls.append(arch)
        return {"acc": sum(arch.e) / len(arch.e), "latency_ms": arch.r / 10}

    res = run(SPACE, objective, directions={"acc": "maximize"}, budget=25, seed=0, strategy="random",
              constraints=[Constraint("latency_ms", 2.8), Constraint("macs", 15e6),
                           Constraint("depth", 10, fn=lambda a: sum(a.d))])
    t = res.trials
    assert len(calls) == 25 and all(isinstance(a, ArchConfig) for a in calls)
    assert {"latency_ms", "macs", "depth"} <= set(t.columns)
    d_cols = [f"d_{i}" for i in range(SPACE.num_stages)]
    np.testing.assert_array_equal(t["depth"], t[d_cols].sum(1))
    np.testing.assert_allclose(t["macs"], count_macs(SPACE, calls))
    expected = (t["latency_ms"] <= 2.8) & (t["macs"] <= 15e6) & (t["depth"] <= 10)
    np.testing.assert_array_equal(t["feasible"], expected)
    assert (t["source"] == "measured").all()


def test_custom_dict_space_with_two_objectives_and_a_constraint():
    space = {"layers": [1, 2, 3, 4], "width": [16, 32, 64], "act": ["relu", "gelu"], "lr": [1e-3, 1e-2, 1e-1]}
    seen = []

    def objective(c: dict) -> tuple[float, float]:
        seen.append(c)
        err = abs(c["lr"] - 1e-2) + 1.0 / (c["layers"] * c["width"]) + (0.01 if c["act"] == "relu" else 0)
        return err, c["layers"] * c["width"]

    for strategy in available_strategies():
        if strategy == "ray-tune":
            continue  # tests/nas/test_search_ray.py, against a real Ray head
        seen.clear()
        res = run(space, objective, directions=["minimize", "minimize"], budget=30, seed=0, strategy=strategy,
                  constraints=[Constraint("cost", 100, fn=lambda c: c["layers"] * c["width"])])
        assert len(seen) == 30 and all(set(c) == set(space) for c in seen), strategy
        t = res.trials
        assert list(t.columns[1:5]) == list(space)
        assert {"value_0", "value_1", "cost", "feasible", "source"} <= set(t.columns)
        for name, choices in space.items():
            assert set(t[name]) <= set(choices)
        np.testing.assert_array_equal(t["feasible"], t["cost"] <= 100)
        assert isinstance(res.best, dict) and res.best["layers"] * res.best["width"] <= 100
        assert res.pareto["feasible"].all()


def test_the_default_strategy_depends_on_the_objective():
    batch = run(SPACE, ProxyObjective(), directions=DIRS, budget=50, seed=0)
    single = run({"x": list(range(20))}, lambda c: (c["x"] - 7) ** 2, directions="minimize", budget=15, seed=0)
    assert batch.strategy == "optuna-nsga2" and single.strategy == "surrogate"
    one = run(SPACE, ProxyObjective(), directions={"score": "maximize"}, budget=50, seed=0)
    assert one.strategy == "memetic"


def test_same_seed_same_trials():
    a = run(SPACE, ProxyObjective(), directions=DIRS, budget=200, seed=5, strategy="evolution")
    b = run(SPACE, ProxyObjective(), directions=DIRS, budget=200, seed=5, strategy="evolution")
    pd.testing.assert_frame_equal(a.trials, b.trials)


def test_progress_and_should_stop():
    seen = []
    res = run(SPACE, ProxyObjective(), directions=DIRS, budget=5000, seed=0, strategy="random",
              progress=lambda done, total, best: seen.append((done, total, best)),
              should_stop=lambda: len(seen) >= 2)
    assert res.stopped and len(res.trials) == seen[-1][0] < 5000
    assert seen[0][1] == 5000 and seen[-1][2]["score"] == res.best_values["score"]


def test_a_stop_asked_once_the_budget_ran_out_is_not_a_stop():
    """The whole budget ran before the stop was seen: the search finished (a cancelled job would otherwise be
    recorded as cancelled with every trial done)."""
    seen = []
    res = run(SPACE, ProxyObjective(), directions=DIRS, budget=1000, seed=0, strategy="random",
              progress=lambda done, total, best: seen.append(done), should_stop=lambda: bool(seen) and seen[-1] >= 1000)
    assert not res.stopped and len(res.trials) == 1000


def test_persistent_study_resumes_and_keeps_the_trials(tmp_path):
    db = tmp_path / "search.db"
    first = run(SPACE, ProxyObjective(), directions=DIRS, budget=150, seed=0, strategy="evolution",
                constraints={"macs": MACS_LIMIT}, storage=db, study_name="s")
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(study.trials) == 150
    t0 = study.trials[7]
    row = first.trials.iloc[7]
    assert t0.params == {k: row[k] for k in first.params}  # stored params are the space's values
    assert t0.values == [row["score"], row["macs"]]
    assert t0.constraints["macs"] == pytest.approx(row["macs"] - MACS_LIMIT)
    again = run(SPACE, ProxyObjective(), directions=DIRS, budget=400, seed=0, strategy="evolution",
                constraints={"macs": MACS_LIMIT}, storage=f"sqlite:///{db}", study_name="s")
    assert again.resumed_from == 150 and len(again.trials) == 400
    pd.testing.assert_frame_equal(again.trials.iloc[:150].reset_index(drop=True),
                                  first.trials.reset_index(drop=True), check_dtype=False)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials) == 400
    # the same budget again: nothing left to do
    done = run(SPACE, ProxyObjective(), directions=DIRS, budget=400, seed=0, strategy="evolution",
               constraints={"macs": MACS_LIMIT}, storage=db, study_name="s")
    assert len(done.trials) == 400
    with pytest.raises(SearchError, match="objective"):
        run(SPACE, ProxyObjective(), directions="maximize", budget=10, seed=0, storage=db, study_name="s")


@pytest.mark.postgres
def test_postgresql_storage_by_url(pg_url):
    res = run({"a": [1, 2, 3], "b": ["x", "y"]}, lambda c: c["a"] + (c["b"] == "y"), directions="minimize",
              budget=8, seed=0, strategy="random", storage=pg_url, study_name="pg")
    again = run({"a": [1, 2, 3], "b": ["x", "y"]}, lambda c: c["a"] + (c["b"] == "y"), directions="minimize",
                budget=12, seed=0, strategy="optuna-tpe", storage=pg_url, study_name="pg")
    assert len(res.trials) == 8 and again.resumed_from == 8 and len(again.trials) == 12
    assert again.best == {"a": 1, "b": "x"} or again.best_values["value"] <= res.best_values["value"]


@pytest.mark.parametrize("kwargs, match", [
    ({"budget": 0}, "budget"),
    ({"strategy": "annealing"}, "unknown strategy 'annealing'; available: evolution"),
    ({"directions": "up"}, "allowed: minimize, maximize"),
    ({"constraints": {"macs": "small"}}, r"constraints\['macs'\]"),
    ({"constraints": {"sram_bytes": 1e5}}, "constraint 'sram_bytes' has no value"),
])
def test_bad_input_is_a_typed_error_naming_what_is_allowed(kwargs, match):
    args = {"directions": "minimize", "budget": 10, "seed": 0, "strategy": "random"}
    args.update(kwargs)
    with pytest.raises(SearchError, match=match):
        run(SPACE, lambda a: float(a.r), **args)


def test_bad_dict_spaces_are_refused():
    for space, match in [({}, "at least one parameter"), ({"x": []}, "'x': needs at least one choice"),
                         ({"x": "abc"}, "must be a list"), ({"x": [1, 1]}, "unique"),
                         ({"x": [[1], [2]]}, "numbers, strings")]:
        with pytest.raises(SearchError, match=match):
            run(space, lambda c: 0.0, directions="minimize", budget=2, seed=0)


def test_hypervolume_2d():
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.0, 3.0]])
    assert hypervolume_2d(pts, [4, 4], ["minimize", "minimize"]) == pytest.approx(6.0)
    assert hypervolume_2d(-pts[:, ::-1] * [1, -1], [-4, 4], ["maximize", "minimize"]) == pytest.approx(6.0)


def test_pareto_mask_matches_the_definition_on_ties_and_duplicates():
    rng = np.random.default_rng(0)
    for _ in range(200):
        for m in (2, 3):
            v = rng.integers(0, 5, (int(rng.integers(1, 40)), m)).astype(float)
            brute = [not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v)))
                     for i in range(len(v))]
            np.testing.assert_array_equal(nondominated_mask(v, ["minimize"] * m), brute)


def test_a_batch_objective_on_a_dict_space_gets_a_dataframe_of_choices():
    space = {"a": [1, 2, 3, 4], "b": [0.5, 1.0], "kind": ["x", "y"]}
    seen = []

    class Batch:
        names = ["loss"]

        def evaluate_batch(self, df: pd.DataFrame) -> np.ndarray:
            seen.append(df)
            return (df["a"] * df["b"] + (df["kind"] == "y")).to_numpy()

    res = run(space, Batch(), directions="minimize", budget=64, seed=0, strategy="evolution",
              constraints=[Constraint("a_max", 3, fn=lambda df: df["a"].to_numpy())])
    assert all(list(df.columns) == list(space) for df in seen) and sum(map(len, seen)) == 64
    t = res.trials
    np.testing.assert_allclose(t["loss"], t["a"] * t["b"] + (t["kind"] == "y"))
    np.testing.assert_array_equal(t["feasible"], t["a"] <= 3)
    assert res.best == {"a": 1, "b": 0.5, "kind": "x"}


def test_resuming_with_a_tighter_constraint_judges_old_trials_again(tmp_path):
    db = tmp_path / "s.db"
    run(SPACE, ProxyObjective(), directions=DIRS, budget=100, seed=0, strategy="random",
        constraints={"macs": 20e6}, storage=db, study_name="s")
    res = run(SPACE, ProxyObjective(), directions=DIRS, budget=150, seed=0, strategy="random",
              constraints={"macs": MACS_LIMIT}, storage=db, study_name="s")
    np.testing.assert_array_equal(res.trials["feasible"], res.trials["macs"] <= MACS_LIMIT)
    assert res.best_values["macs"] <= MACS_LIMIT
