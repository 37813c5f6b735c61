"""once-for-all's accuracy predictors (the tutorial's and `ofa.nas`'s), random weights, saved as OFA saves them and
imported into a run: predictions equal OFA's own code for any arch; archs it cannot encode are refused."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from predictors.accuracy import AccuracyPredictorError, load_accuracy_predictor
from predictors.accuracy._ofa import read_ofa_predictor
from predictors.accuracy.store import import_ofa_predictor
from supernet import SearchSpace
from supernet.run import RunInfo, write_run_info

pytest.importorskip("ofa.nas.accuracy_predictor", reason="the ofa package (dev dependency) is not installed")


@pytest.fixture(scope="module")
def tutorial_predictor():
    # ofa.tutorial's __init__ imports its model zoo, which imports gdown (a downloader we neither need nor install)
    sys.modules.setdefault("gdown", types.ModuleType("gdown"))
    from ofa.tutorial.accuracy_predictor import AccuracyPredictor

    torch.manual_seed(0)
    return AccuracyPredictor(pretrained=False, device="cpu")


def _archs(space: SearchSpace) -> list:
    return [space.largest(), space.smallest()] + space.sample_many(300, 5)


def _run(tmp_path, space: SearchSpace):
    run = tmp_path / "run"
    write_run_info(run, RunInfo("run", space.to_dict(), {"name": "imagenet"}, finished=True, checkpoint_hash="c" * 64))
    return run


def test_tutorial_predictor_imported_predicts_as_ofa(tmp_path, tutorial_predictor):
    space = SearchSpace.preset("ofa-mbv3-w1.2")
    torch.save(tutorial_predictor.model.state_dict(), tmp_path / "acc_predictor.pth")
    run = _run(tmp_path, space)
    stored = import_ofa_predictor(tmp_path / "acc_predictor.pth", run)
    archs = _archs(space)
    want = tutorial_predictor.predict_accuracy(
        [{"ks": list(a.ks), "e": list(a.e), "d": list(a.d), "r": [a.r]} for a in archs]).reshape(-1).numpy()
    loaded = load_accuracy_predictor(run)  # through the store, as the search and the API read it
    for p in (stored, loaded):
        assert np.abs(p.predict(archs) - want).max() <= 1e-6
    assert loaded.name == "ofa-imported" and loaded.fidelity == {}
    assert "fidelity not measured here" in loaded.fidelity_report()["note"]
    with pytest.raises(AccuracyPredictorError, match="fitted here"):
        loaded.model.fit(archs[:10], np.full(10, 0.5))


@pytest.mark.parametrize("resolutions", [list(range(128, 228, 4)), [128, 160, 192, 224]])
def test_ofa_nas_predictor_imported_predicts_as_ofa(tmp_path, resolutions):
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    space = SearchSpace.preset("ofa-mbv3-w1.0")
    encoder = MobileNetArchEncoder(image_size_list=resolutions, ks_list=[3, 5, 7], expand_list=[3, 4, 6],
                                   depth_list=[2, 3, 4])
    theirs = AccuracyPredictor(encoder, device="cpu")
    torch.manual_seed(1)
    for p in theirs.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    torch.save({"state_dict": theirs.state_dict()}, tmp_path / "nas.pth")
    run = _run(tmp_path, space)
    import_ofa_predictor(tmp_path / "nas.pth", run)  # the resolutions are inferred from the input width
    p = load_accuracy_predictor(run)
    archs = [a for a in _archs(space) if a.r in resolutions]
    archs += [a.__class__(a.ks, a.e, a.d, resolutions[i % len(resolutions)]) for i, a in enumerate(archs[:50])]
    with torch.no_grad():
        want = theirs.predict_acc([{"ks": list(a.ks), "e": list(a.e), "d": list(a.d), "image_size": a.r}
                                   for a in archs]).numpy()
    assert np.abs(p.predict(archs) - want).max() <= 1e-6
    if len(resolutions) == 4:
        with pytest.raises(AccuracyPredictorError, match=r"'r' = 132 .*allowed: 128, 160, 192, 224"):
            p.predict([space.largest(132)])


def test_bad_predictor_files_are_refused(tmp_path):
    space = SearchSpace.preset("ofa-mbv3-w1.0")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    torch.save({"0.weight": torch.zeros(400, 100)}, tmp_path / "narrow.pth")
    for name, message in (("junk.pth", "not a complete torch file"), ("other.pth", "neither"),
                          ("narrow.pth", "128 inputs")):
        with pytest.raises(AccuracyPredictorError, match=message):
            read_ofa_predictor(tmp_path / name, space)
    torch.save({"0.weight": torch.zeros(400, 128)}, tmp_path / "tutorial.pth")
    with pytest.raises(AccuracyPredictorError, match="not once-for-all's MobileNetV3 space"):
        read_ofa_predictor(tmp_path / "tutorial.pth", SearchSpace.preset("tiny-mbv3"))
