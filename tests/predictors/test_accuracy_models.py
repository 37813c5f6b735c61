"""Accuracy models on a synthetic accuracy function: each kind ranks held-out subnets well, saves and loads to
the same predictions, and refuses bad input with a typed error."""

import numpy as np
import pytest

from predictors.accuracy import (AccuracyPredictorError, MlpAccuracy, fit_predictor,
                                 make_accuracy_model, plan_subnets, select_model)
from predictors.accuracy._base import parse_model_name
from predictors.accuracy.fit import CANDIDATES, ENSEMBLE_MARGIN, compare_models, model_name
from predictors.accuracy.models import AccuracyModel
from supernet import SearchSpace
from supernet.counting import count_macs
from supernet.errors import NasError

SPACE = SearchSpace.preset("tiny-mbv3")
# small but real settings so the whole file stays fast on 2 shared cores
FAST = {"mlp": {"hidden": 128, "epochs": 60, "batch_size": 32}, "gbr": {"n_estimators": 150},
        "rf": {"n_estimators": 80}, "gp": {"restarts": 0}}


def synthetic_accuracy(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Accuracy that grows with log MACs, likes 5×5 kernels early, dislikes the lowest resolution, plus noise."""
    k, _, d, r = SPACE.split_codes(codes)
    ks = np.asarray(SPACE.kernel_choices)[k] * SPACE.active_mask(d)
    lm = np.log(count_macs(SPACE, codes))
    lm = (lm - 16.0) / 0.5
    return (0.88 + 0.02 * np.tanh(lm) + 0.002 * (ks[:, :4] == 5).sum(1) - 0.003 * (r == min(SPACE.resolutions))
            + rng.normal(0, 0.002, len(r)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    codes = SPACE.sample_codes(260, rng)
    return codes, synthetic_accuracy(codes, rng)


@pytest.mark.parametrize("kind", ["mlp", "gbr", "rf", "gp", "ensemble"])
def test_each_kind_ranks_a_synthetic_function(kind, data, tmp_path):
    codes, y = data
    params = {"members": ["mlp", "gp"], "member_params": FAST} if kind == "ensemble" else FAST[kind]
    model = make_accuracy_model(kind, SPACE, **params).fit(codes[:180], y[:180])
    fid = model.fidelity(codes[180:], y[180:])
    assert fid["kendall"] >= 0.6 and fid["spearman"] >= 0.8, fid
    assert fid["rmse"] < 0.01

    spec = model.save(tmp_path, "m-")
    again = AccuracyModel.load(SPACE, spec, tmp_path)
    np.testing.assert_allclose(again.predict(codes[180:]), model.predict(codes[180:]), rtol=1e-6)
    std = again.predict_std(codes[180:])
    if kind in ("gp", "ensemble"):
        assert std.shape == (80,) and np.all(std > 0) and np.all(np.isfinite(std))
    else:
        assert std is None


def test_archs_and_codes_give_the_same_predictions(data):
    codes, y = data
    model = make_accuracy_model("gbr", SPACE, n_estimators=50).fit(codes[:100], y[:100])
    np.testing.assert_array_equal(model.predict(SPACE.decode(codes[100:110])), model.predict(codes[100:110]))


def test_mlp_is_ofas_predictor():
    model = MlpAccuracy(SPACE)
    assert (model.hidden, model.layers, model.lr, model.features) == (400, 3, 1e-3, "onehot")
    codes = SPACE.sample_codes(20, 1)
    model.epochs = 2
    model.fit(codes, np.linspace(0.8, 0.9, 20))
    net = model.nets[0]
    linear = [m for m in net.layers if m.__class__.__name__ == "Linear"]
    assert [m.in_features for m in linear] == [SPACE.onehot_length, 400, 400, 400]
    assert linear[-1].bias is None and net.base_acc.requires_grad


def test_fit_is_deterministic_in_seed(data):
    codes, y = data
    a = make_accuracy_model("mlp", SPACE, **FAST["mlp"], seed=3).fit(codes[:60], y[:60]).predict(codes[60:80])
    b = make_accuracy_model("mlp", SPACE, **FAST["mlp"], seed=3).fit(codes[:60], y[:60]).predict(codes[60:80])
    np.testing.assert_array_equal(a, b)


def test_selection_by_cross_validation_and_held_out_fidelity(data):
    codes, y = data
    kind, members, rows = select_model(SPACE, codes[:120], y[:120], folds=3, params=FAST)
    assert kind in (*CANDIDATES, "ensemble")
    assert {r["candidate"] for r in rows} >= {"mlp", "gbr", "gbr[blocks]", "rf", "gp"}
    best = max(rows, key=lambda r: r["kendall"])
    if kind == "ensemble":
        assert best["members"] == members
    else:
        assert best["kendall"] <= next(r for r in rows if r["candidate"] == kind)["kendall"] + 0.005

    p = fit_predictor(SPACE, codes[:120], y[:120], "abc", model="auto", holdout=0.25, params=FAST)
    assert p.info["n_heldout"] == 30 and p.info["n_train"] == 90
    assert set(p.fidelity) >= {"spearman", "kendall", "rmse", "mape", "within_10pct"}
    assert p.fidelity["kendall"] > 0.5


def test_plan_is_stratified_nested_and_distinct():
    plan = plan_subnets(SPACE, 60, seed=0)
    assert len(np.unique(plan, axis=0)) == 60
    assert SPACE.decode(plan[:2]) == [SPACE.largest(), SPACE.smallest()]
    np.testing.assert_array_equal(plan_subnets(SPACE, 25, seed=0), plan[:25])
    counts = np.unique(plan[2:, -1], return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # resolutions take turns
    macs = np.log(count_macs(SPACE, plan[2:]))
    uniform = np.log(count_macs(SPACE, SPACE.sample_codes(4000, 1)))
    # the plan reaches further into both tails of the MACs distribution than a uniform sample's middle half
    assert macs.min() < np.quantile(uniform, 0.05) and macs.max() > np.quantile(uniform, 0.95)


@pytest.mark.parametrize("kind, params, field", [
    ("nope", {}, "model"), ("mlp", {"hidden": 0}, "hidden"), ("mlp", {"features": "pixels"}, "features"),
    ("ensemble", {"members": ["mlp"]}, "members"),
])
def test_bad_settings_are_typed_errors(kind, params, field):
    with pytest.raises(NasError, match=field):
        make_accuracy_model(kind, SPACE, **params)


def test_bad_data_is_refused(data):
    codes, y = data
    model = make_accuracy_model("rf", SPACE, n_estimators=5)
    with pytest.raises(AccuracyPredictorError, match="not fitted"):
        model.predict(codes[:3])
    with pytest.raises(AccuracyPredictorError, match="accuracy"):
        model.fit(codes[:10], y[:9])
    with pytest.raises(AccuracyPredictorError, match=r"\[0, 1\]"):
        model.fit(codes[:10], y[:10] * 100)
    with pytest.raises(NasError, match="shape"):
        model.fit(codes[:10, :-1], y[:10])


def test_a_kind_on_another_feature_set():
    assert parse_model_name("gbr") == ("gbr", {})
    assert parse_model_name("gbr[blocks]") == ("gbr", {"features": "blocks"})
    assert make_accuracy_model("rf[onehot+summary]", SPACE).features == "onehot+summary"
    assert make_accuracy_model("gp", SPACE).features == "blocks"  # the GP reads the per-block view by default
    for bad in ("gbr[nope]", "ensemble[blocks]", "xgb[blocks]", "gbr[blocks", "[blocks]", "gbr[blocks]\n"):
        with pytest.raises(AccuracyPredictorError, match="kind\\[features\\]"):
            make_accuracy_model(bad, SPACE)
    with pytest.raises(AccuracyPredictorError, match="field 'features' = 'summary' contradicts"):
        make_accuracy_model("gbr[blocks]", SPACE, features="summary")


def test_an_ensemble_of_one_kind_on_two_views_saves_and_loads(data, tmp_path):
    codes, y = data
    model = make_accuracy_model("ensemble", SPACE, members=["gbr", "gbr[blocks]"],
                                member_params={"gbr": {"n_estimators": 60, "features": "onehot"}})
    # gbr's parameters reach the gbr[blocks] member too, but not gbr's feature set
    assert [(m.features, m.n_estimators) for m in model.models] == [("onehot", 60), ("blocks", 60)]
    model.fit(codes[:150], y[:150])
    assert not np.allclose(model.models[0].predict(codes[150:]), model.models[1].predict(codes[150:]))
    spec = model.save(tmp_path, "e-")
    again = AccuracyModel.load(SPACE, spec, tmp_path)
    assert again.members == ["gbr", "gbr[blocks]"]
    np.testing.assert_allclose(again.predict(codes[150:]), model.predict(codes[150:]), rtol=1e-6)
    with pytest.raises(AccuracyPredictorError, match="gbr\\[blocks\\]"):
        make_accuracy_model("ensemble", SPACE, members=["gbr", "gbr[bad]"])


def test_fit_predictor_takes_a_kind_on_a_view_and_refuses_a_bad_one(data):
    codes, y = data
    p = fit_predictor(SPACE, codes[:80], y[:80], "abc", model="gbr[blocks]", params=FAST)
    assert (p.model.kind, p.model.features, p.model.n_estimators) == ("gbr", "blocks", 150)
    with pytest.raises(AccuracyPredictorError, match="field 'model' = 'gbr\\[x\\]' is not allowed"):
        fit_predictor(SPACE, codes[:80], y[:80], "abc", model="gbr[x]")


def test_compare_models_names_what_auto_chose(data):
    codes, y = data
    rows = compare_models(SPACE, codes[:90], y[:90], kinds=("gbr", "gbr[blocks]", "gp[summary]", "auto"),
                          params=FAST, heldout=(codes[200:], y[200:]))
    by = {r["model"]: r for r in rows}
    assert [by[k]["chosen"] for k in ("gbr", "gbr[blocks]", "gp[summary]")] == ["gbr", "gbr[blocks]", "gp[summary]"]
    assert by["gbr"]["selection"] == [] and len(by["auto"]["selection"]) >= len(CANDIDATES)
    chosen, selection = by["auto"]["chosen"], by["auto"]["selection"]
    best_single = max((r for r in selection if len(r["members"]) == 1), key=lambda r: r["kendall"])
    best_ens = max((r for r in selection if len(r["members"]) > 1), key=lambda r: r["kendall"])
    # auto takes the best ensemble only where it beats the best single candidate by the margin
    assert chosen == (best_ens["candidate"] if best_ens["kendall"] > best_single["kendall"] + ENSEMBLE_MARGIN
                      else best_single["candidate"])
    assert all(r["n_train"] == 90 and 0 < r["spearman"] <= 1 for r in rows)
    assert model_name(make_accuracy_model("gp", SPACE)) == "gp"
    assert model_name(make_accuracy_model("ensemble", SPACE, members=["gbr", "rf[blocks]"])) == \
        "ensemble(gbr+rf[blocks])"


def test_an_ensemble_saved_before_gp_read_the_per_block_view_still_loads(data, tmp_path):
    """Ensembles saved before recorded no member parameters, so their gp (fitted on the per-stage summary, the
    default then) must not be rebuilt on today's default; and one whose width no feature set gives is refused."""
    codes, y = data
    old = make_accuracy_model("ensemble", SPACE, members=["gbr", "gp"],
                              member_params={"gbr": {"n_estimators": 40}, "gp": {"features": "summary", "restarts": 0}})
    old.fit(codes[:100], y[:100])
    spec = old.save(tmp_path, "o-")
    assert spec["params"]["member_params"]["gp"]["features"] == "summary"  # saved in full from now on
    spec["params"]["member_params"] = {"gbr": {"n_estimators": 40}}  # what an older version wrote
    again = AccuracyModel.load(SPACE, spec, tmp_path)
    assert again.models[1].features == "summary"
    np.testing.assert_allclose(again.predict(codes[100:]), old.predict(codes[100:]), rtol=1e-6)

    gp = make_accuracy_model("gp", SPACE, restarts=0).fit(codes[:60], y[:60])
    gp.estimator[0].n_features_in_ = 7  # a width no feature set has
    spec = gp.save(tmp_path, "g-")
    with pytest.raises(AccuracyPredictorError, match="fitted on 7 features.*refit"):
        AccuracyModel.load(SPACE, spec, tmp_path)
