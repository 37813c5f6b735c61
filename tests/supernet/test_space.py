"""SearchSpace: presets equal once-for-all's OFAMobileNetV3, sampling, encodings and errors."""

import numpy as np
import pytest
import yaml

from supernet import ArchConfig, InvalidArchError, SearchSpace, SpaceError, available_spaces, register_space
from supernet.space import make_divisible, mutate_rows

TINY = SearchSpace.preset("tiny-mbv3")

# OFAMobileNetV3.__init__ (ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py).
OFA_BASE_STAGE_WIDTH = [16, 16, 24, 40, 80, 112, 160, 960, 1280]
OFA_STRIDES = [1, 2, 2, 2, 1, 2]
OFA_ACTS = ["relu", "relu", "relu", "h_swish", "h_swish", "h_swish"]
OFA_SE = [False, False, True, False, True, True]


@pytest.mark.parametrize("name, width_mult, r_min", [("ofa-mbv3-w1.0", 1.0, 128), ("ofa-mbv3-w1.2", 1.2, 128)])
def test_ofa_presets_are_ofa_mobilenetv3(name, width_mult, r_min):
    sp = SearchSpace.preset(name)
    widths = [make_divisible(w * width_mult, 8) for w in OFA_BASE_STAGE_WIDTH]
    assert (sp.in_channels, sp.num_classes) == (3, 1000)
    assert (sp.stem.width, sp.stem.kernel, sp.stem.stride, sp.stem.act) == (widths[0], 3, 2, "h_swish")
    fb = sp.first_block
    assert (fb.width, fb.kernel, fb.stride, fb.act, fb.se) == (widths[1], 3, OFA_STRIDES[0], OFA_ACTS[0], OFA_SE[0])
    assert [(s.width, s.stride, s.act, s.se) for s in sp.stages] == list(
        zip(widths[2:7], OFA_STRIDES[1:], OFA_ACTS[1:], OFA_SE[1:]))
    assert (sp.final_expand, sp.feature_mix) == (widths[7], widths[8])
    assert (sp.kernel_choices, sp.expand_choices, sp.depth_choices) == ((3, 5, 7), (3, 4, 6), (2, 3, 4))
    assert sp.resolutions == tuple(range(r_min, 225, 4))
    assert (sp.se_reduction, sp.channel_divisor, sp.dropout) == (4, 8, 0.1)
    assert sp.num_blocks == 20 and sp.code_length == 46


def test_ofa_w12_widths_after_make_divisible():
    sp = SearchSpace.preset("ofa-mbv3-w1.2")
    assert [sp.stem.width, sp.first_block.width] + [s.width for s in sp.stages] + [sp.final_expand, sp.feature_mix] \
        == [24, 24, 32, 48, 96, 136, 192, 1152, 1536]


def test_make_divisible_and_channel_rules():
    assert [make_divisible(v) for v in (19.2, 28.8, 134.4, 3, 60, 36)] == [24, 32, 136, 8, 64, 40]
    assert TINY.mid_channels(20, 3) == 64  # make_divisible(round(20 * 3), 8)
    assert TINY.mid_channels(24, 6) == 144
    assert TINY.se_channels(144) == 40 and TINY.se_channels(72) == 24  # make_divisible(c // 4, 8)


def test_slots():
    sp = SearchSpace.preset("ofa-mbv3-w1.0")
    firsts = [s for s in sp.slots if s.position == 0]
    assert [(s.in_channels, s.out_channels, s.stride, s.residual) for s in firsts] == [
        (16, 24, 2, False), (24, 40, 2, False), (40, 80, 2, False), (80, 112, 1, False), (112, 160, 2, False)]
    assert all(s.residual and s.stride == 1 for s in sp.slots if s.position > 0)


def test_size_counts_distinct_subnets():
    sp = SearchSpace.preset("ofa-mbv3-w1.0")
    assert sp.size() == (81 + 9 ** 3 + 9 ** 4) ** 5 * 25
    assert sp.size() > 10 ** 19  # "more than 10^19 subnets" (OFA paper)
    assert TINY.size() == (81 + 9 ** 3 + 9 ** 4) ** 4 * 3


def test_largest_smallest():
    big, small = TINY.largest(), TINY.smallest()
    assert set(big.ks) == {7} and set(big.e) == {6} and set(big.d) == {4} and big.r == 28
    assert set(small.ks) == {3} and set(small.e) == {3} and set(small.d) == {2} and small.r == 20
    assert TINY.largest(r=24).r == 24


def test_sample_is_deterministic_valid_and_covers_choices():
    assert TINY.sample(3) == TINY.sample(3)
    assert TINY.sample(np.random.default_rng(3)) == TINY.sample(3)
    archs = TINY.sample_many(300, 0)
    assert archs == TINY.sample_many(300, 0) and archs != TINY.sample_many(300, 1)
    for a in archs[:50]:
        assert TINY.validate(a) is a
    assert {k for a in archs for k in a.ks} == {3, 5, 7}
    assert {d for a in archs for d in a.d} == {2, 3, 4}
    assert {a.r for a in archs} == set(TINY.resolutions)


def test_encode_decode_codes():
    archs = TINY.sample_many(50, 2)
    codes = TINY.encode(archs)
    assert codes.shape == (50, TINY.code_length) and codes.dtype == np.int64
    assert TINY.decode(codes) == archs
    raw = TINY.sample_codes(500, 9)
    assert raw.shape == (500, TINY.code_length)
    assert np.array_equal(raw, TINY.sample_codes(500, 9))
    assert np.array_equal(TINY.canonical_codes(raw), raw)  # sampled codes are canonical already
    assert np.array_equal(TINY.encode(TINY.decode(raw)), raw)
    k, e, d, r = TINY.split_codes(raw)
    assert k.shape == e.shape == (500, TINY.num_blocks) and d.shape == (500, TINY.num_stages) and r.shape == (500,)
    assert set(np.unique(d)) == {2, 3, 4}
    with pytest.raises(InvalidArchError, match="shape"):
        TINY.split_codes(raw[:, :-1])


@pytest.mark.parametrize("name", ["tiny-mbv3", "ofa-mbv3-w1.2"])
def test_canonical_codes_are_archconfigs_canonical_form(name):
    sp = SearchSpace.preset(name)
    raw = sp.sample_codes(300, 3)
    raw[:, :2 * sp.num_blocks] = np.random.default_rng(3).integers(0, 3, (300, 2 * sp.num_blocks))  # junk slots
    k, e, d, r = sp.split_codes(raw)
    ks, es = np.asarray(sp.kernel_choices)[k], np.asarray(sp.expand_choices)[e]
    want = sp.encode([ArchConfig(tuple(ks[i]), tuple(es[i]), tuple(d[i]), int(r[i])) for i in range(300)])
    got = sp.canonical_codes(raw)
    assert np.array_equal(got, want) and not np.array_equal(got, raw)
    assert np.array_equal(sp.canonical_codes(got), got)


def test_active_mask():
    mask = TINY.active_mask(np.array([[2, 3, 4, 2]]))
    assert mask.shape == (1, 16)
    assert mask[0].tolist() == [1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0]


def _ofa_arch2feature(space, arch):
    """OFA's MobileNetArchEncoder.arch2feature (ofa/nas/accuracy_predictor/arch_encoder.py), transcribed."""
    nr, nb = len(space.resolutions), space.num_blocks
    k_id = {(i, k): nr + i * 3 + j for i in range(nb) for j, k in enumerate(space.kernel_choices)}
    e_id = {(i, x): nr + nb * 3 + i * 3 + j for i in range(nb) for j, x in enumerate(space.expand_choices)}
    feature = np.zeros(nr + nb * 6)
    for i in range(nb):
        if i % space.max_depth < arch.d[i // space.max_depth]:
            feature[k_id[i, arch.ks[i]]] = 1
            feature[e_id[i, arch.e[i]]] = 1
    feature[space.resolutions.index(arch.r)] = 1
    return feature


def test_onehot_is_ofa_encoding():
    archs = TINY.sample_many(40, 4)
    oh = TINY.onehot(archs)
    assert oh.shape == (40, TINY.onehot_length) == (40, 3 + 16 * 6)
    assert np.array_equal(oh, TINY.onehot(TINY.encode(archs)))
    for a, row in zip(archs, oh):
        assert np.array_equal(row, _ofa_arch2feature(TINY, a))
    ofa = SearchSpace.preset("ofa-mbv3-w1.0")
    a = ofa.sample(0)
    assert ofa.onehot_length == 25 + 20 * 6
    assert np.array_equal(ofa.onehot([a])[0], _ofa_arch2feature(ofa, a))
    # Off-grid resolutions: two-hot between the neighbours.
    assert TINY.onehot([TINY.largest(r=26)])[0, :3].tolist() == [0.0, 0.5, 0.5]


def test_mutate_and_crossover():
    a, b = TINY.sample(0), TINY.sample(1)
    assert TINY.mutate(a, 5, prob=0.0) == a
    m = TINY.mutate(a, 5, prob=0.5)
    assert m == TINY.mutate(a, 5, prob=0.5) and m != a and TINY.validate(m) is m
    assert TINY.crossover(a, a, 3) == a
    c = TINY.crossover(a, b, 3)
    assert c == TINY.crossover(a, b, 3) and TINY.validate(c) is c
    assert c.r in (a.r, b.r) and all(x in (y, z) for x, y, z in zip(c.d, a.d, b.d))
    children = {TINY.crossover(a, b, s) for s in range(20)}
    assert len(children) > 2


def test_round_trip_through_dict_and_yaml(tmp_path, monkeypatch):
    monkeypatch.setattr("supernet.space.SPACES._items", {})  # the registration below stays inside this test
    for name in available_spaces():
        sp = SearchSpace.preset(name)
        assert SearchSpace.from_dict(sp.to_dict()) == sp
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**TINY.to_dict(), "name": "mine", "num_classes": 5}))
    mine = SearchSpace.preset(str(path))
    assert mine.num_classes == 5 and mine.slots == TINY.slots
    register_space("mine-test", path)
    assert "mine-test" in available_spaces()
    assert SearchSpace.preset("mine-test") == mine


def test_space_errors():
    with pytest.raises(SpaceError, match="unknown space 'nope'; available: .*tiny-mbv3"):
        SearchSpace.preset("nope")
    good = TINY.to_dict()
    cases = [
        ({**good, "colour": 1}, "unknown key(s) colour"),
        ({k: v for k, v in good.items() if k != "stem"}, "malformed"),
        ({**good, "kernel_choices": [3, 4]}, "kernel_choices must be odd"),
        ({**good, "stages": [{**good["stages"][0], "act": "gelu"}]}, "stages[0].act must be one of"),
        ({**good, "stages": [{**good["stages"][0], "stride": 3}]}, "stages[0].stride must be 1 or 2"),
        ({**good, "resolutions": [32, 28]}, "resolutions must be sorted"),
    ]
    for data, needle in cases:
        with pytest.raises(SpaceError) as err:
            SearchSpace.from_dict(data)
        assert needle in str(err.value), str(err.value)


def test_validate_rejects_non_arch_and_wrong_space():
    with pytest.raises(InvalidArchError, match="expected an ArchConfig"):
        TINY.validate({"ks": [3]})  # type: ignore[arg-type]
    ofa = SearchSpace.preset("ofa-mbv3-w1.0")
    with pytest.raises(InvalidArchError, match="field 'd' must list 5 depths"):
        ofa.validate(TINY.largest())
    assert isinstance(ofa.validate(ArchConfig((3,) * 20, (3,) * 20, (2,) * 5, 128)), ArchConfig)


def test_readme_search_space_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "SearchSpace.preset" in b)
    scope: dict = {}
    exec(block, scope)  # noqa: S102 - our own README
    assert scope["logits"].shape == (1, 10)
    assert type(scope["subnet"]).__name__ == "StaticNet"


def test_mutate_rows_draws_new_genes_only_where_genes_change():
    rows = np.zeros((2000, 40), np.int64)
    drawn = []

    def fresh(r, c):
        drawn.append(len(r))
        return np.ones(len(r), np.int64)

    out = mutate_rows(rows, fresh, np.random.default_rng(0), 0.05)
    changed = out == 1
    assert drawn == [int(changed.sum())] and abs(changed.mean() - 0.05) < 0.005  # one draw, at the changes only
    assert 0.03 < changed.mean(0).min() and changed.mean(0).max() < 0.07  # every gene alike
    assert not mutate_rows(rows, fresh, np.random.default_rng(0), 0.0).any()
    assert mutate_rows(rows, fresh, np.random.default_rng(0), 1.0).all()
    again = mutate_rows(rows, fresh, np.random.default_rng(0), 0.05)
    assert np.array_equal(again, out) and (rows == 0).all()  # the same seed, the same mutants; rows untouched
