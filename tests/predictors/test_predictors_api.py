"""The Predictors facade: columns per device kind, archs or codes, the accuracy predictor of a run."""

import sys
import types

import numpy as np
import pytest

from predictors import PredictorError, Predictors
from supernet import SearchSpace
from supernet.counting import count_macs
from supernet.errors import CheckpointError
from supernet.run import RunInfo, write_run_info

COLS = ["macs", "params", "latency_ms", "sram_bytes", "flash_bytes", "fits"]


@pytest.mark.parametrize("device, source", [("stm32f746", "mcu"), ("nvidia-h100", "roofline"),
                                            ("jetson-orin-nano", "roofline")])
def test_columns_and_sources(device, source):
    space = SearchSpace.preset("tiny-mbv3")
    p = Predictors("tiny-mbv3", device)
    df = p.predict(space.sample_codes(64, 0))
    assert list(df.columns[:6]) == COLS and len(df) == 64
    assert df.fits.dtype == bool and (df.latency_ms > 0).all()
    assert p.latency_source == source
    np.testing.assert_array_equal(df.macs, count_macs(space, space.sample_codes(64, 0)))


def test_archs_dicts_and_codes_agree():
    space = SearchSpace.preset("tiny-mbv3")
    archs = space.sample_many(5, 1)
    p = Predictors(space, "stm32h743")
    a = p.predict(archs)
    b = p.predict(space.encode(archs))
    c = p.predict([x.to_dict() for x in archs])
    assert a.equals(b) and a.equals(c)
    assert p.predict(archs[0]).latency_ms[0] == a.latency_ms[0]


def test_gpu_memory_fits_against_device_memory():
    df = Predictors("ofa-mbv3-w1.0", "nvidia-t4").predict(SearchSpace.preset("ofa-mbv3-w1.0").largest())
    assert df.fits[0] and df.sram_bytes[0] > 0


def test_for_run_attaches_accuracy(tmp_path, monkeypatch):
    space = SearchSpace.preset("tiny-mbv3")
    with pytest.raises(CheckpointError, match="run.json"):
        Predictors.for_run(tmp_path, "stm32f746")
    write_run_info(tmp_path, RunInfo("run", space.to_dict(), {}, checkpoint_hash="abc"))
    seen = {}

    class Acc:
        def predict(self, codes, return_std=False):
            mean = 0.5 + 0.01 * codes[:, -1]
            return (mean, np.full(len(codes), 0.02)) if return_std else mean

    def load(run_dir, checkpoint_hash):
        seen["args"] = (str(run_dir), checkpoint_hash)
        return Acc()

    monkeypatch.setitem(sys.modules, "predictors.accuracy", types.SimpleNamespace(load_accuracy_predictor=load))
    p = Predictors.for_run(tmp_path, "stm32f746")
    df = p.predict(space.sample_codes(4, 0))
    assert seen["args"] == (str(tmp_path), "abc")
    assert {"accuracy", "accuracy_std"} <= set(df.columns)
    np.testing.assert_allclose(df.accuracy_std, 0.02)


def test_for_run_without_accuracy_module_is_a_clear_error(tmp_path, monkeypatch):
    space = SearchSpace.preset("tiny-mbv3")
    write_run_info(tmp_path, RunInfo("run", space.to_dict(), {}, checkpoint_hash="abc"))
    monkeypatch.setitem(sys.modules, "predictors.accuracy", None)  # import fails
    with pytest.raises(PredictorError, match="no accuracy predictor"):
        Predictors.for_run(tmp_path, "stm32f746")
