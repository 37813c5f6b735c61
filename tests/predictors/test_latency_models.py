"""Latency predictors: OFA table keys and round trip, lookup sums, learned fitting, roofline, save/load."""

import numpy as np
import pytest

from predictors import (LearnedLatency, LookupTableLatency, PredictorError, RooflineLatency, fidelity,
                        load_predictor, read_ofa_tables, write_ofa_tables)
from predictors.ops import FEATURE_NAMES, arch_ops, op_features, scalar_tables, space_ops
from hw_profiles.schema import LutEntry
from supernet import SearchSpace


@pytest.fixture(scope="module")
def tiny():
    return SearchSpace.preset("tiny-mbv3")


def test_ofa_keys_match_ofa_mobilenetv3_tables():
    sp = SearchSpace.preset("ofa-mbv3-w1.0")
    keys = {op.key for op in space_ops(sp, [224])[224]}
    for key in ["Conv-input:224x224x3-output:112x112x16",
                "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0",
                "expanded_conv-input:112x112x16-output:56x56x24-expand:64-kernel:3-stride:2-idskip:0-se:0-hs:0",
                "expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:7-stride:2-idskip:0-se:1-hs:0",
                "expanded_conv-input:14x14x80-output:14x14x80-expand:480-kernel:5-stride:1-idskip:1-se:0-hs:1",
                "Conv_1-input:7x7x160-output:7x7x960", "AvgPool2D-input:7x7x960-output:1x1x960",
                "Conv_2-input:1x1x960-output:1x1x1280", "Logits-input:1x1x1280-output:1000"]:
        assert key in keys, key


def _synthetic_tables(space, resolutions, seed=0):
    rng = np.random.default_rng(seed)
    return {r: {op.key: LutEntry(mean=float(rng.uniform(0.01, 1.0)), std=0.01, count=10) for op in ops}
            for r, ops in space_ops(space, resolutions).items()}


def test_ofa_table_round_trip_and_sums(tiny, tmp_path):
    tables = _synthetic_tables(tiny, [24, 28])
    files = write_ofa_tables(tables, tmp_path)
    assert sorted(p.name for p in files) == ["24_lookup_table.yaml", "28_lookup_table.yaml"]
    back = read_ofa_tables(tmp_path)
    assert back == tables
    lut = LookupTableLatency.from_ofa(tiny, tmp_path)
    archs = tiny.sample_many(20, 1)
    archs = [a for a in archs if a.r in (24, 28)]
    codes = tiny.encode(archs)
    by_hand = [sum(tables[a.r][op.key].mean for op in arch_ops(tiny, a.ks, a.e, a.active_blocks(), a.r))
               for a in archs]
    np.testing.assert_allclose(lut.predict(codes), by_hand, rtol=1e-12)
    assert lut.missing([24, 28]) == {}


def test_missing_op_is_named_unless_learned_fallback(tiny):
    lut = LookupTableLatency(tiny, _synthetic_tables(tiny, [24]))
    codes = tiny.encode([tiny.largest(32)])
    with pytest.raises(PredictorError, match="no entry .expanded_conv-input:16x16x16"):
        lut.predict(codes)
    assert 32 in lut.missing([32])
    coef = np.full(len(FEATURE_NAMES), 1e-6)
    with_fb = LookupTableLatency(tiny, lut.tables, fallback=LearnedLatency(tiny, coef=coef))
    assert with_fb.predict(codes)[0] > 0


def test_bad_ofa_entry_names_key_and_field(tmp_path):
    (tmp_path / "24_lookup_table.yaml").write_text("Conv-input:24x24x1-output:12x12x16:\n  mean: fast\n")
    with pytest.raises(PredictorError, match="Conv-input:24x24x1-output:12x12x16.*field 'mean'"):
        read_ofa_tables(tmp_path)
    with pytest.raises(PredictorError, match="no '<resolution>_lookup_table.yaml'"):
        read_ofa_tables(tmp_path / "..")


def _gpu_like(space, codes, seed=0, noise=0.03):
    """Large-batch GPU latency: roofline at batch 256 with wave quantisation, kernel-size-dependent depthwise
    efficiency, a global power law and multiplicative noise (not additive in any one feature)."""
    rf = RooflineLatency.from_profile(space, "nvidia-t4", batch_size=256)

    def layer_ms(layer):
        q = np.ceil(layer.cout / 64) * 64 / layer.cout
        dw = 1.0 + (0.15 * layer.kernel if layer.kind == "depthwise" else 0.0)
        return rf.layer_ms(layer) * q * dw

    y = scalar_tables(space, lambda op: sum(layer_ms(layer) for layer in op.layers))(codes)[:, 0] ** 1.05
    return y * np.exp(np.random.default_rng(seed).normal(0, noise, len(y)))


def test_learned_from_100_measurements_ranks_the_rest(tiny):
    codes = tiny.sample_codes(600, 3)
    y = _gpu_like(tiny, codes)
    model = LearnedLatency(tiny).fit(codes[:100], y[:100])
    fid = fidelity(model.predict(codes[100:]), y[100:])
    assert fid["spearman"] >= 0.95
    assert fid["mape"] < 0.10
    cv = model.cross_validate(codes[:100], y[:100], folds=5)
    assert cv["spearman"] >= 0.9 and cv["n"] == 100
    # a model that ignores the archs does not pass the same bar
    flat = fidelity(np.full(500, y[:100].mean()) + np.arange(500) * 1e-9, y[100:])
    assert flat["spearman"] < 0.5


def test_learned_per_op_predicts_unmeasured_resolution(tiny):
    rng = np.random.default_rng(0)
    true = rng.uniform(0, 1, len(FEATURE_NAMES)) * (rng.random(len(FEATURE_NAMES)) < 0.6)
    scale = np.array([1e-6 if n.endswith("macs") else 1e-5 if n.endswith("elems") else 1e-6
                      if n.endswith("params") else 1e-2 for n in FEATURE_NAMES])
    coef = true * scale
    measured = space_ops(tiny, [24, 28])
    ops = [op for r in (24, 28) for op in measured[r]]
    y = np.array([op_features(op) @ coef for op in ops])
    model = LearnedLatency(tiny, alpha=1e-9).fit_ops(ops, y)
    unseen = space_ops(tiny, [32])[32]
    pred = np.array([model.op_ms(op) for op in unseen])
    want = np.array([op_features(op) @ coef for op in unseen])
    np.testing.assert_allclose(pred, want, rtol=0.02)


def test_learned_save_load_and_errors(tiny, tmp_path):
    codes = tiny.sample_codes(60, 0)
    y = _gpu_like(tiny, codes)
    model = LearnedLatency(tiny).fit(codes, y)
    path = model.save(tmp_path / "learned.yaml")
    again = load_predictor(path, tiny)
    np.testing.assert_allclose(again.predict(codes), model.predict(codes))
    with pytest.raises(PredictorError, match="saved for space 'tiny-mbv3'"):
        load_predictor(path, SearchSpace.preset("ofa-mbv3-w1.0"))
    with pytest.raises(PredictorError, match="not fitted"):
        LearnedLatency(tiny).predict(codes)
    with pytest.raises(PredictorError, match="at least 5"):
        LearnedLatency(tiny).fit(codes[:3], y[:3])


def test_roofline_layer_is_max_of_compute_and_memory(tiny, tmp_path):
    rf = RooflineLatency(tiny, peak_tflops=1.0, bandwidth_gbs=1.0, launch_us=10.0, batch_size=2)
    ops = space_ops(tiny, [24])[24]
    layer = next(op for op in ops if op.type == "Conv").layers[0]  # 1->16, 3x3, 24 -> 12
    flops = 2 * layer.macs * 2
    moved = (layer.in_elems + layer.out_elems) * 2 * 4 + layer.weight_params * 4
    want = 1e3 * max(flops / 1e12, moved / 1e9) + 0.01
    assert rf.layer_ms(layer) == pytest.approx(want)
    codes = tiny.sample_codes(50, 0)
    big = RooflineLatency(tiny, peak_tflops=1.0, bandwidth_gbs=1.0, launch_us=10.0, batch_size=64)
    assert np.all(big.predict(codes) > rf.predict(codes))
    path = rf.save(tmp_path / "rf.yaml")
    np.testing.assert_allclose(load_predictor(path, tiny).predict(codes), rf.predict(codes))


def test_vectorised_equals_one_by_one(tiny):
    rf = RooflineLatency.from_profile(tiny, "nvidia-a100")
    codes = tiny.sample_codes(30, 2)
    one = np.concatenate([rf.predict(codes[i:i + 1]) for i in range(len(codes))])
    np.testing.assert_allclose(rf.predict(codes), one)


def test_end_to_end_correction_never_predicts_a_smaller_subnet_below_zero():
    from predictors.calibration import apply_correction, fit_correction

    # three noisy subnets on a steep line: unconstrained least squares crosses zero at 8 ms of ops
    ops, measured = np.array([9.0, 10.0, 11.0]), np.array([1.0, 5.0, 9.0])
    c = fit_correction(ops, measured)
    assert c.scale > 0 and apply_correction(c, np.array([4.5, 6.0]), np.zeros(2)).min() >= 0
    assert apply_correction(c, ops, np.zeros(3))[-1] > apply_correction(c, ops, np.zeros(3))[0]
    # a clean line whose zero lies below half the smallest subnet is fitted exactly, negative offset and all
    ops = np.array([4.0, 6.0, 8.0, 10.0])
    c = fit_correction(ops, 1.5 * ops - 1.0)
    assert abs(c.scale - 1.5) < 1e-9 and abs(c.offset_ms + 1.0) < 1e-9
