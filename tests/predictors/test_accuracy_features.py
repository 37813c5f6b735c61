"""The accuracy models' inputs: computed over active blocks only, so what an inactive slot holds never changes
a subnet's features."""

import numpy as np
import pytest

from predictors.accuracy._features import FEATURE_SETS, features
from supernet import SearchSpace
from supernet.counting import count_macs, count_params

SPACE = SearchSpace.preset("tiny-mbv3")


def test_summary_averages_active_blocks_only():
    arch = SPACE.largest()
    ks, es = list(arch.ks), list(arch.e)
    ks[:4], es[:4] = [3, 5, 7, 7], [3, 6, 4, 4]  # stage 0 keeps 2 blocks: (3, 3) and (5, 6)
    codes = SPACE.encode([type(arch)(tuple(ks), tuple(es), (2, *arch.d[1:]), arch.r)])
    x = features(SPACE, codes, "summary")[0]
    s = SPACE.num_stages
    depth, k_mean, e_mean = x[:s], x[s:2 * s], x[2 * s:3 * s]
    assert depth[0] == 2 and k_mean[0] == 4 and e_mean[0] == 4.5
    assert depth[1] == 4 and k_mean[1] == 7 and e_mean[1] == 6  # a full stage of the largest subnet
    r, log_macs, log_params = x[3 * s:]
    assert r == arch.r
    assert log_macs == pytest.approx(np.log(count_macs(SPACE, codes)[0]), rel=1e-6)
    assert log_params == pytest.approx(np.log(count_params(SPACE, codes)[0]), rel=1e-6)
    blocks = features(SPACE, codes, "blocks")[0]
    assert list(blocks[:4]) == [3, 5, 0, 0] and list(blocks[SPACE.num_blocks:SPACE.num_blocks + 4]) == [3, 6, 0, 0]


@pytest.mark.parametrize("kind", FEATURE_SETS)
def test_inactive_slots_do_not_change_features(kind):
    codes = SPACE.sample_codes(50, np.random.default_rng(0))
    _, _, d, _ = SPACE.split_codes(codes)
    inactive = ~SPACE.active_mask(d)
    assert inactive.any()
    other = codes.copy()
    nb = SPACE.num_blocks
    rng = np.random.default_rng(1)
    other[:, :nb] = np.where(inactive, rng.integers(0, len(SPACE.kernel_choices), inactive.shape), codes[:, :nb])
    other[:, nb:2 * nb] = np.where(inactive, rng.integers(0, len(SPACE.expand_choices), inactive.shape),
                                   codes[:, nb:2 * nb])
    assert (other != codes).any()
    np.testing.assert_array_equal(features(SPACE, other, kind), features(SPACE, codes, kind))
