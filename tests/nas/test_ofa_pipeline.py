"""An imported once-for-all run (w1.0, random weights, OFA's key names) on a generated ImageNet-layout folder goes
through the whole pipeline at 224 px: `nas eval`, accuracy import and fit, search with `run:`, export (ONNX check,
int8 calibration and card on the run's images, normalisation in the card and ONNX metadata), and the API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from imagefiles import write_image_folder
from supernet import SearchSpace, Supernet
from supernet.imagefolder import IMAGENET_MEAN, IMAGENET_STD
from supernet.ofa import ofa_key
from supernet.run import import_ofa_run, load_run

pytest.importorskip("torchvision", reason="torchvision is not installed")
ROOT = Path(__file__).resolve().parents[2]
SPACE = "ofa-mbv3-w1.0"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """runs/ofa: an imported run; its data a 2-class ImageNet layout of 24 px JPEGs; OFA's tutorial predictor."""
    tmp = tmp_path_factory.mktemp("ofa")
    data = write_image_folder(tmp / "imagenet", {"train": 7, "val": 2}, classes=2, size=24)
    space = SearchSpace.preset(SPACE)
    torch.manual_seed(0)
    state = {ofa_key(k): v for k, v in Supernet(space).state_dict().items()}  # as OFA names them
    torch.save({"state_dict": state}, tmp / "ofa_mbv3_d234_e346_k357_w1.0")
    run = import_ofa_run(tmp / "ofa_mbv3_d234_e346_k357_w1.0", SPACE, tmp / "runs" / "ofa", data_dir=str(data),
                         val_size=4)
    mlp = nn.Sequential(nn.Linear(128, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 400),
                        nn.ReLU(), nn.Linear(400, 1))  # the tutorial's acc_predictor.pth layout
    torch.save(mlp.state_dict(), tmp / "acc_predictor.pth")
    r = subprocess.run([sys.executable, "-m", "nas", "accuracy", "import-ofa", str(tmp / "acc_predictor.pth"),
                        "--run", str(run)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] == "ofa-imported"
    return run


def test_nas_eval_at_224_through_the_streaming_loader(imported, tmp_path):
    arch = SearchSpace.preset(SPACE).smallest(224)
    (tmp_path / "a.json").write_text(json.dumps(arch.to_dict()))
    r = subprocess.run([sys.executable, "-m", "nas", "eval", str(imported), "--arch", str(tmp_path / "a.json"),
                        "--bn-images", "4", "--val-images", "3", "--workers", "1", "--batch-size", "2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["arch"]["r"] == 224 and 0 <= out["top1"] <= 1 and out["checkpoint_hash"] == \
        load_run(imported).checkpoint_hash


def test_search_and_export_on_the_imported_run(imported, tmp_path):
    import onnx

    from nas.experiment import ExperimentSpec, run_experiment
    from nas.export import export_bundle

    spec = ExperimentSpec.from_dict({"name": "ofa", "run": str(imported), "budget": 30, "seed": 0,
                                     "devices": [{"name": "cpu-host"}],
                                     "objectives": {"accuracy": "maximize", "latency_ms": "minimize"}})
    result = run_experiment(spec, tmp_path / "search")
    assert result["devices"]["cpu-host"]["n_trials"] == 30
    arch = SearchSpace.preset(SPACE).smallest(224)
    bundle = export_bundle(imported, arch, "cpu-host", tmp_path / "exports", formats=["onnx", "int8"])
    card = json.loads((bundle / "card.json").read_text())
    assert card["input"]["mean"] == pytest.approx(IMAGENET_MEAN) and card["input"]["std"] == pytest.approx(IMAGENET_STD)
    assert card["input"]["preprocessing"]["eval"].startswith("Resize(ceil(r / 0.875))")
    assert card["input"]["preprocessing"]["image_size"] == 224 and card["input"]["shape"] == [1, 3, 224, 224]
    assert card["onnx_check"] is not None and card["measured"]["accuracy"]["val"]["images"] == 4
    assert card["predicted"]["accuracy"] is not None  # the imported OFA predictor
    for name in ("model.onnx", "model.int8.onnx"):
        meta = {p.key: p.value for p in onnx.load(str(bundle / name)).metadata_props}
        assert json.loads(meta["input_mean"]) == pytest.approx(IMAGENET_MEAN) and meta["input_resolution"] == "224"
        assert json.loads(meta["preprocessing"])["name"] == "ofa-imagenet"


def test_the_api_lists_predicts_with_and_searches_the_imported_run(imported, tmp_path):
    from fastapi.testclient import TestClient

    from nas.api import create_app
    from nas.service.settings import Settings

    settings = Settings.from_env(runs_dir=imported.parent, db_url=f"sqlite:///{tmp_path / 'nas.db'}")
    with TestClient(create_app(settings, start_jobs=False)) as c:
        runs = {r["id"]: r for r in c.get("/runs").json()}
        assert runs["ofa"]["finished"] and runs["ofa"]["imported"]["net_id"] == "ofa_mbv3_d234_e346_k357_w1.0"
        archs = [SearchSpace.preset(SPACE).largest().to_dict(), SearchSpace.preset(SPACE).smallest(224).to_dict()]
        r = c.post("/predict", json={"space": SPACE, "devices": ["cpu-host"], "archs": archs, "run": "ofa"})
        assert r.status_code == 200, r.text
        assert all(p["accuracy"] is not None for p in r.json()["predictions"])
        r = c.post("/experiments", json={"name": "ofa", "run": "ofa", "budget": 20, "devices": [{"name": "cpu-host"}],
                                         "objectives": {"accuracy": "maximize", "latency_ms": "minimize"}})
        assert r.status_code == 202, r.text


def test_accuracy_fit_measures_the_imported_run_and_replaces_the_imported_predictor(imported, tmp_path):
    import shutil

    from predictors.accuracy import fit_run_predictor, load_accuracy_predictor

    run = shutil.copytree(imported, tmp_path / "ofa")
    p = fit_run_predictor(run, samples=15, model="gbr", bn_images=2, val_images=2, holdout_val_images=2,
                          workers=1)
    assert p.name == "gbr" and p.info["n_heldout"] == 3 and "note" not in p.fidelity_report()
    assert p.info["replaced"]["model"] == "ofa-imported" and p.info["replaced"]["heldout_fidelity"] is not None
    assert load_accuracy_predictor(run).name == "gbr"
