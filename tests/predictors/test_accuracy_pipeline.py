"""The accuracy pipeline on the tiny recipe: measure subnets of a trained run (resumable), fit, store beside the
checkpoint, load, refuse another checkpoint, and answer through `Predictors.for_run` and the CLI."""

import json
import shutil
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictors import Predictors
from predictors.accuracy import (AccuracyPredictorError, fit_run_predictor, load_accuracy_predictor,
                                 measure_subnets, measured_path, plan_subnets, read_measured)
from predictors.accuracy.dataset import arch_key, heldout_path
from supernet import SearchSpace
from supernet.errors import CheckpointError
from supernet.run import read_run_info, write_run_info

NAS = Path(sys.executable).with_name("nas")
SMALL = {"bn_images": 32, "val_images": 48}
FAST = {"gp": {"restarts": 0}}


@pytest.fixture(scope="module")
def fitted_run(tiny_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("acc") / "run"
    shutil.copytree(tiny_run, run)
    fit_run_predictor(run, samples=16, model="gp", holdout=0.25, params=FAST, **SMALL)
    return run


def test_fit_measures_stores_and_records_held_out_fidelity(fitted_run):
    info = json.loads((fitted_run / "run.json").read_text())
    space = SearchSpace.from_dict(info["space"])
    plan = [arch_key(a) for a in space.decode(plan_subnets(space, 16))]
    # the fitting share: the plan's first 12 subnets, on 48 validation images
    table = read_measured(measured_path(fitted_run, info["checkpoint_hash"]))
    assert len(table) == 12 and list(table["arch"]) == plan[:12]
    assert table["accuracy"].between(0, 1).all() and (table["checkpoint_hash"] == info["checkpoint_hash"]).all()
    assert (table["val_images"] == 48).all()
    # the held-out share: the plan's next 4, each on the whole validation split (300 images in the tiny recipe)
    held = read_measured(heldout_path(fitted_run, info["checkpoint_hash"]))
    assert list(held["arch"]) == plan[12:] and (held["val_images"] == 300).all()
    assert held["accuracy"].between(0, 1).all() and (held["bn_images"] == 32).all()

    manifest = json.loads((fitted_run / "accuracy_predictor" / "manifest.json").read_text())
    assert manifest["checkpoint_hash"] == info["checkpoint_hash"] and manifest["kind"] == "gp"
    assert manifest["n_heldout"] == 4 and manifest["n_train"] == 12 and manifest["heldout_val_images"] == 300
    assert set(manifest["fidelity"]) >= {"spearman", "kendall", "rmse", "mape", "within_10pct"}

    p = load_accuracy_predictor(fitted_run)
    assert p.checkpoint_hash == info["checkpoint_hash"] and p.fidelity == manifest["fidelity"]
    # the recorded fidelity is that of the stored model on the held-out subnets, scored on their precise labels
    codes = space.encode([space.arch_from_dict(json.loads(a)) for a in held["arch"]])
    assert p.fidelity_on(codes, held["accuracy"].to_numpy())["rmse"] == pytest.approx(manifest["fidelity"]["rmse"])
    noisy = p.fidelity_on(codes, held["accuracy"].to_numpy() + 0.05)["rmse"]
    assert noisy != pytest.approx(manifest["fidelity"]["rmse"])


def test_held_out_share_measured_apart_and_resumed(fitted_run, tmp_path):
    """A second fit with the same settings re-measures nothing; asking for fewer held-out images is an error
    against the stored table (settings differ), not a silent mix."""
    run = tmp_path / "run"
    shutil.copytree(fitted_run, run)
    info = json.loads((run / "run.json").read_text())
    before = read_measured(heldout_path(run, info["checkpoint_hash"]))
    p = fit_run_predictor(run, samples=16, model="gp", holdout=0.25, params=FAST, **SMALL)
    after = read_measured(heldout_path(run, info["checkpoint_hash"]))
    assert list(after["seconds"]) == list(before["seconds"])  # reused, not measured again
    assert p.info["heldout_val_images"] == 300
    with pytest.raises(AccuracyPredictorError, match="other settings"):
        fit_run_predictor(run, samples=16, model="gp", holdout=0.25, params=FAST, holdout_val_images=100, **SMALL)
    with pytest.raises(AccuracyPredictorError, match="holdout_val_images"):
        fit_run_predictor(run, samples=16, model="gp", holdout=0.25, params=FAST, holdout_val_images=0, **SMALL)


def test_another_checkpoint_is_refused(fitted_run, tmp_path):
    with pytest.raises(CheckpointError, match="another checkpoint|not\\s+on"):
        load_accuracy_predictor(fitted_run, checkpoint_hash="0" * 64)
    retrained = tmp_path / "run"
    shutil.copytree(fitted_run, retrained)
    write_run_info(retrained, replace(read_run_info(retrained), checkpoint_hash="f" * 64))
    with pytest.raises(CheckpointError, match="refit"):
        load_accuracy_predictor(retrained)
    with pytest.raises(CheckpointError, match="no accuracy predictor"):
        load_accuracy_predictor(_without_predictor(fitted_run, tmp_path))

    edited = tmp_path / "edited"
    shutil.copytree(fitted_run, edited)
    manifest_path = edited / "accuracy_predictor" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["params"]["unknown"] = 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unknown"):
        load_accuracy_predictor(edited)


def _without_predictor(run: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("accuracy_predictor"))
    return bare


def test_predictors_for_run_adds_accuracy_and_std(fitted_run):
    p = Predictors.for_run(fitted_run, "cpu-host")
    space = p.space
    codes = space.sample_codes(50, 3)
    df = p.predict(codes)
    assert {"accuracy", "accuracy_std", "latency_ms", "macs"} <= set(df.columns) and len(df) == 50
    direct = load_accuracy_predictor(fitted_run)
    np.testing.assert_allclose(df["accuracy"], direct.predict(codes))
    assert np.all(np.isfinite(df["accuracy_std"])) and np.all(df["accuracy_std"] > 0)


def test_measuring_resumes_where_a_killed_job_stopped(tmp_path):
    space = SearchSpace.preset("tiny-mbv3")
    path = tmp_path / "measured.csv"
    calls = []

    def measure(arch):
        calls.append(arch)
        if len(calls) == 8:
            raise KeyboardInterrupt  # the job is stopped while measuring its 8th subnet
        return 0.5 + 0.01 * len(calls)

    with pytest.raises(KeyboardInterrupt):
        measure_subnets(space, measure, 12, path, checkpoint_hash="h", flush_every=3)
    kept = pd.read_csv(path)
    assert len(kept) == 7  # every subnet measured before the stop is on disk

    calls.clear()
    table = measure_subnets(space, lambda a: calls.append(a) or 0.7, 12, path, checkpoint_hash="h", flush_every=3)
    assert len(calls) == 5 and len(table) == 12
    assert list(table["arch"]) == [arch_key(a) for a in space.decode(plan_subnets(space, 12))]
    assert list(pd.read_csv(path)["accuracy"][:7]) == pytest.approx([0.51 + 0.01 * i for i in range(7)])

    with pytest.raises(AccuracyPredictorError, match="other settings"):
        measure_subnets(space, lambda a: 0.7, 14, path, checkpoint_hash="other")

    # a table may start further along the plan (the held-out share follows the fitting share)
    plan15 = [arch_key(a) for a in space.decode(plan_subnets(space, 15))]
    later = measure_subnets(space, lambda a: 0.6, 3, tmp_path / "later.csv", checkpoint_hash="h", first=12)
    assert list(later["arch"]) == plan15[12:]
    # another slice of the same table: only the missing subnets are measured, and exactly the slice comes back
    calls.clear()
    moved = measure_subnets(space, lambda a: calls.append(a) or 0.4, 3, tmp_path / "later.csv", checkpoint_hash="h",
                            first=10)
    assert len(calls) == 2 and list(moved["arch"]) == plan15[10:13]
    assert list(moved["accuracy"]) == pytest.approx([0.4, 0.4, 0.6])
    assert len(pd.read_csv(tmp_path / "later.csv")) == 5
    with pytest.raises(AccuracyPredictorError, match="'first'"):
        measure_subnets(space, lambda a: 0.6, 3, tmp_path / "bad.csv", checkpoint_hash="h", first=-1)


def test_cli_show_and_bad_model(fitted_run, tmp_path):
    out = subprocess.run([str(NAS), "accuracy", "show", str(fitted_run)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["model"] == "gp" and shown["n_heldout"] == 4
    out = subprocess.run([str(NAS), "accuracy", "fit", str(fitted_run), "--model", "xgb"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and "--model" in out.stderr and "auto" in out.stderr
    out = subprocess.run([str(NAS), "accuracy", "fit", str(fitted_run), "--model", "gbr[x]"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and "--model = 'gbr[x]'" in out.stderr and "blocks" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run([str(NAS), "accuracy", "show", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "run.json" in out.stderr
