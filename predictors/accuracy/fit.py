"""Choosing and fitting an accuracy model: cross-validated rank correlation picks the kind (or an ensemble, where
it helps), a held-out share of the measured subnets gives the fidelity that is recorded with the predictor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from predictors.accuracy._base import model_name, params_for, parse_model_name
from predictors.accuracy._features import FEATURE_SETS, AccuracyPredictorError
from predictors.accuracy.dataset import heldout_path, measure_subnets, measured_path, run_measurer, table_codes
from predictors.accuracy.models import ACCURACY_MODELS, make_accuracy_model
from predictors.accuracy.store import AccuracyPredictor, save_accuracy_predictor
from predictors.metrics import fidelity
from supernet.space import SearchSpace

BASE_KINDS = ("mlp", "gbr", "rf", "gp")
# What `auto` cross-validates: each kind on its default features, and gradient boosting on the per-block view too
# (two views of one learner disagree usefully: their mean ranked better than either in cross-validation).
CANDIDATES = ("mlp", "gbr", "gbr[blocks]", "rf", "gp")
MODEL_CHOICES = ("auto", *BASE_KINDS, "ensemble")
ENSEMBLE_MARGIN = 0.005  # an ensemble is chosen only when it beats the best single kind's Kendall τ by this


def check_model(model: str, field: str = "field 'model'") -> None:
    """Refuse a model name `fit_predictor` does not take, naming `field` and what is allowed."""
    if model in MODEL_CHOICES:
        return
    try:
        parse_model_name(model)
    except AccuracyPredictorError:
        raise AccuracyPredictorError(f"{field} = {model!r} is not allowed; allowed: "
                                     f"{', '.join(MODEL_CHOICES)}, or kind[features] (e.g. gbr[blocks]) with "
                                     f"features one of {', '.join(FEATURE_SETS)}") from None


def _params(kind: str, params: dict[str, dict[str, Any]] | None, seed: int) -> dict[str, Any]:
    if kind == "ensemble":
        return {"seed": seed, "member_params": dict(params or {})}
    return {"seed": seed, **params_for(kind, params)}


def cross_validate(space: SearchSpace, codes: np.ndarray, y: np.ndarray, kinds: tuple[str, ...] = CANDIDATES, *,
                   folds: int = 3, seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
                   ) -> dict[str, np.ndarray]:
    """Out-of-fold predictions per kind (`folds`-fold, shuffled by `seed`)."""
    if folds < 2 or len(y) < 2 * folds:
        raise AccuracyPredictorError(f"field 'folds' = {folds} needs 2 or more folds of 2+ subnets each "
                                     f"(have {len(y)} subnets)")
    fold_of = np.random.default_rng(seed).permutation(len(y)) % folds
    oof = {}
    for kind in kinds:
        pred = np.empty(len(y))
        for f in range(folds):
            test = fold_of == f
            model = make_accuracy_model(kind, space, **_params(kind, params, seed))
            pred[test] = model.fit(codes[~test], y[~test]).predict(codes[test])
        oof[kind] = pred
    return oof


def select_model(space: SearchSpace, codes: np.ndarray, y: np.ndarray, *, folds: int = 3, seed: int = 0,
                 kinds: tuple[str, ...] = CANDIDATES, params: dict[str, dict[str, Any]] | None = None,
                 ) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(kind, ensemble members or [], one row per candidate with its cross-validated Kendall τ and Spearman ρ).

    Candidates: each of `kinds` (kind names, or `kind[features]`), and the mean of the best 2, 3, … of them (scored
    on the same out-of-fold predictions).
    """
    oof = cross_validate(space, codes, y, kinds, folds=folds, seed=seed, params=params)

    def score(pred: np.ndarray) -> dict[str, float]:
        return {"kendall": float(stats.kendalltau(pred, y).statistic),
                "spearman": float(stats.spearmanr(pred, y).statistic)}

    rows = [{"candidate": k, "members": [k], **score(p)} for k, p in oof.items()]
    ranked = sorted(rows, key=lambda r: -np.nan_to_num(r["kendall"], nan=-1))
    for m in range(2, len(ranked) + 1):
        members = [r["candidate"] for r in ranked[:m]]
        rows.append({"candidate": "ensemble(" + "+".join(members) + ")", "members": members,
                     **score(np.mean([oof[k] for k in members], axis=0))})
    best_single = ranked[0]
    ensembles = [r for r in rows if len(r["members"]) > 1]
    best_ens = max(ensembles, key=lambda r: np.nan_to_num(r["kendall"], nan=-1), default=None)
    if best_ens is not None and best_ens["kendall"] > best_single["kendall"] + ENSEMBLE_MARGIN:
        return "ensemble", best_ens["members"], rows
    return best_single["candidate"], [], rows


def _check_sizes(n_fit: int, n_hold: int, holdout: float) -> None:
    if n_hold < 3 or n_fit < 8:
        raise AccuracyPredictorError(f"field 'samples': {n_fit + n_hold} measured subnets are too few to fit and "
                                     f"hold out {holdout:.0%} (need at least 3 held out and 8 to fit)")


def _check_holdout(holdout: float) -> None:
    if not 0 < holdout < 1:
        raise AccuracyPredictorError(f"field 'holdout' must be a fraction in (0, 1), got {holdout!r}")


def _split_samples(samples: int, holdout: float) -> tuple[int, int]:
    """(fitted, held out) of `samples` measured subnets with a `holdout` share; refuses too few."""
    _check_holdout(holdout)
    if isinstance(samples, bool) or not isinstance(samples, int):
        raise AccuracyPredictorError(f"field 'samples' must be an integer, got {samples!r}")
    n_hold = int(round(holdout * samples))
    _check_sizes(samples - n_hold, n_hold, holdout)
    return samples - n_hold, n_hold


def fit_predictor(space: SearchSpace, codes: np.ndarray, y: np.ndarray, checkpoint_hash: str, *,
                  model: str = "auto", holdout: float = 0.2, folds: int = 3, seed: int = 0,
                  params: dict[str, dict[str, Any]] | None = None,
                  heldout: tuple[np.ndarray, np.ndarray] | None = None) -> AccuracyPredictor:
    """Fit an accuracy predictor on measured (codes, top-1): hold out `holdout` of them for the recorded fidelity
    (or, given `heldout` = (codes, top-1) measured apart, fit on all and score on those), choose the kind by
    cross-validation on the fitting share when `model` is `auto`, and fit it on that share."""
    check_model(model)
    _check_holdout(holdout)
    n = len(y)
    if heldout is None:
        n_hold = int(round(holdout * n))
        perm = np.random.default_rng(seed).permutation(n)
        test, train = perm[:n_hold], perm[n_hold:]
        test_codes, test_y = codes[test], y[test]
    else:
        test_codes, test_y = heldout
        n_hold, train = len(test_y), np.arange(n)
    _check_sizes(len(train), n_hold, holdout)
    t0 = time.perf_counter()
    selection: list[dict[str, Any]] = []
    members: list[str] = list(BASE_KINDS)
    kind = model
    if model == "auto":
        kind, members, selection = select_model(space, codes[train], y[train], folds=folds, seed=seed,
                                                params=params)
    if kind == "ensemble":
        fitted = make_accuracy_model("ensemble", space, members=members, **_params("ensemble", params, seed))
    else:
        fitted = make_accuracy_model(kind, space, **_params(kind, params, seed))
    fitted.fit(codes[train], y[train])
    fid = fidelity(fitted.predict(test_codes), test_y)
    info = {"n_train": int(len(train)), "n_heldout": int(n_hold), "holdout": holdout, "seed": seed,
            "selection": selection, "requested_model": model, "fit_seconds": round(time.perf_counter() - t0, 2)}
    return AccuracyPredictor(fitted, checkpoint_hash, fid, info)


def compare_models(space: SearchSpace, codes: np.ndarray, y: np.ndarray, *,
                   kinds: tuple[str, ...] = (*CANDIDATES, "ensemble", "auto"), holdout: float = 0.2, seed: int = 0,
                   params: dict[str, dict[str, Any]] | None = None,
                   heldout: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """Held-out fidelity and fit time of each kind on the same split, or fitted on all of (codes, y) and scored
    on `heldout` (what BENCHMARKS.md reports). `auto`'s row names what it chose (`chosen`) and its
    cross-validation table (`selection`)."""
    rows = []
    for kind in kinds:
        t0 = time.perf_counter()
        p = fit_predictor(space, codes, y, "", model=kind, holdout=holdout, seed=seed, params=params,
                          heldout=heldout)
        rows.append({"model": kind, "chosen": model_name(p.model), **p.fidelity, "n_train": p.info["n_train"],
                     "fit_s": round(time.perf_counter() - t0, 2), "selection": p.info["selection"]})
    return rows


def measure_run_tables(run, run_dir: str | Path, *, samples: int, holdout: float = 0.2, seed: int = 0,  # noqa: ANN001
                       bn_images: int = 2000, val_images: int = 5000, holdout_val_images: int | None = None,
                       progress: bool = False, workers: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(fitting table, held-out table, the validation images each was measured on) for a trained run.

    The fitting share (the first `samples` - `holdout` of the subnet plan) is measured on `val_images`
    validation images; the held-out share (the plan's next ones) on `holdout_val_images` (default: the whole
    validation split), each resuming its own table in `run_dir`."""
    n_fit, n_hold = _split_samples(samples, holdout)
    if holdout_val_images is not None and (isinstance(holdout_val_images, bool)
                                           or not isinstance(holdout_val_images, int) or holdout_val_images < 1):
        raise AccuracyPredictorError(f"field 'holdout_val_images' must be an integer >= 1 or null (the whole "
                                     f"validation split), got {holdout_val_images!r}")
    n_val = len(run.splits().val)
    images = {"val_images": min(val_images, n_val),
              "heldout_val_images": n_val if holdout_val_images is None else min(holdout_val_images, n_val)}
    common = {"checkpoint_hash": run.checkpoint_hash, "seed": seed, "bn_images": bn_images, "progress": progress}
    measure = run_measurer(run, bn_images=bn_images, val_images=images["val_images"], seed=seed, workers=workers)
    table = measure_subnets(run.space, measure, n_fit, measured_path(run_dir, run.checkpoint_hash),
                            val_images=images["val_images"], **common)
    measure = run_measurer(run, bn_images=bn_images, val_images=images["heldout_val_images"], seed=seed,
                           workers=workers)
    held = measure_subnets(run.space, measure, n_hold, heldout_path(run_dir, run.checkpoint_hash),
                           val_images=images["heldout_val_images"], first=n_fit, **common)
    return table, held, images


def fit_run_predictor(run_dir: str | Path, *, samples: int = 500, model: str = "auto", seed: int = 0,
                      holdout: float = 0.2, folds: int = 3, bn_images: int = 2000, val_images: int = 5000,
                      holdout_val_images: int | None = None, device: str = "cpu", progress: bool = False,
                      params: dict[str, dict[str, Any]] | None = None, workers: int = 0) -> AccuracyPredictor:
    """Measure `samples` subnets of a trained run (resuming partial tables, see `measure_run_tables`), fit the
    accuracy predictor, record its held-out fidelity and store it in `run_dir/accuracy_predictor/`.

    The held-out subnets are measured on more validation images (default: all of them), so the recorded fidelity
    scores the predictor against precise labels rather than against the measuring noise of the fitting data
    (2,000 images give each subnet about ±0.7 pp)."""
    from supernet.run import load_run

    check_model(model)
    _split_samples(samples, holdout)  # refuse bad sizes before loading the run
    run = load_run(run_dir, device)
    t0 = time.perf_counter()
    table, held, images = measure_run_tables(run, run_dir, samples=samples, holdout=holdout, seed=seed,
                                             bn_images=bn_images, val_images=val_images,
                                             holdout_val_images=holdout_val_images, progress=progress,
                                             workers=workers)
    measure_s = time.perf_counter() - t0
    codes, y = table_codes(run.space, table)
    predictor = fit_predictor(run.space, codes, y, run.checkpoint_hash, model=model, holdout=holdout, folds=folds,
                              seed=seed, params=params, heldout=table_codes(run.space, held))
    predictor.info.update({"samples": samples, "bn_images": bn_images, **images,
                           "measure_seconds": round(measure_s, 1),
                           "measured_table": measured_path(run_dir, run.checkpoint_hash).name,
                           "heldout_table": heldout_path(run_dir, run.checkpoint_hash).name})
    replaced = _imported_fidelity(run_dir, run.checkpoint_hash, held, run.space)
    if replaced:
        predictor.info["replaced"] = replaced
    save_accuracy_predictor(predictor, run_dir)
    return predictor


def _imported_fidelity(run_dir: str | Path, checkpoint_hash: str, held: pd.DataFrame, space: SearchSpace
                       ) -> dict[str, Any] | None:
    """The held-out fidelity of an imported predictor this fit replaces (what it measured, recorded), else None."""
    from predictors.accuracy.store import load_accuracy_predictor
    from supernet.errors import CheckpointError

    try:
        old = load_accuracy_predictor(run_dir, checkpoint_hash)
    except CheckpointError:
        return None
    if not old.info.get("imported") or len(held) < 2:
        return None
    codes, y = table_codes(space, held)
    try:
        return {"model": old.name, **old.info["imported"], "heldout_fidelity": old.fidelity_on(codes, y)}
    except AccuracyPredictorError as exc:  # it cannot encode some held-out subnet (a resolution it lacks)
        return {"model": old.name, **old.info["imported"], "heldout_fidelity": None, "why": str(exc)}


__all__ = ["fit_predictor", "fit_run_predictor", "measure_run_tables", "select_model", "cross_validate",
           "compare_models", "model_name", "check_model", "BASE_KINDS", "CANDIDATES", "MODEL_CHOICES",
           "ACCURACY_MODELS"]
