"""Counting without a forward pass: MACs and params against torch's FlopCounterMode and the extracted
modules, OFA's published subnet, and the peak-activation model."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from supernet import ArchConfig, SearchSpace, Supernet
from supernet.counting import (BlockTables, arch_layers, arch_stats, block_layers, count_macs, count_params,
                               feature_sizes, fixed_layers, layer_macs, peak_activation_bytes)


pytestmark = pytest.mark.usefixtures("one_thread")


def _flop_counter_macs(model: torch.nn.Module, channels: int, r: int) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, channels, r, r))
    return fc.get_total_flops() // 2  # torch counts a multiply-accumulate as 2 flops


@pytest.fixture(scope="module")
def tiny():
    space = SearchSpace.preset("tiny-mbv3")
    return space, Supernet(space)


def test_macs_and_params_match_flop_counter_and_numel_on_tiny(tiny):
    space, net = tiny
    archs = [space.largest(), space.smallest()] + space.sample_many(6, 3)
    macs, params = count_macs(space, archs), count_params(space, archs)
    for arch, m, p in zip(archs, macs, params):
        sub = net.extract(arch)
        assert m == _flop_counter_macs(sub, space.in_channels, arch.r), arch
        assert p == sum(t.numel() for t in sub.parameters()), arch


def test_ofa_space_counts_match_flop_counter_at_any_resolution():
    space = SearchSpace.preset("ofa-mbv3-w1.0")
    net = Supernet(space)
    a = space.sample(1)
    for arch in (space.smallest(r=64), ArchConfig(a.ks, a.e, a.d, 93)):  # 93 px: odd, outside the trained range
        sub = net.extract(arch)
        assert count_macs(space, [arch])[0] == _flop_counter_macs(sub, 3, arch.r)
        assert count_params(space, [arch])[0] == sum(t.numel() for t in sub.parameters())


def test_tiny_space_budget():
    space = SearchSpace.preset("tiny-mbv3")
    macs = count_macs(space, [space.largest(r=28), space.smallest(r=28)])
    assert macs[0] <= 30e6 and macs[1] < macs[0]


# once-for-all's specialised net "flops@595M_top1@80.0_finetune@75" (w1.2 space, image size 236), as
# published in han-cai/files ofa/ofa_specialized/<net>/net.config and run.config, read from the copy in
# Alibaba-MIIL/ImageNet21K src_files/models/ofa/specialized_models_configs/. One row per MBConv block:
# (in, out, kernel, stride, mid_channels, act, use_se, identity shortcut).
OFA_595M_BLOCKS = [
    (24, 24, 3, 1, 24, "relu", False, True),  # the fixed first block (expand ratio 1: no expand conv)
    (24, 32, 3, 2, 72, "relu", False, False), (32, 32, 5, 1, 128, "relu", False, True),
    (32, 32, 3, 1, 96, "relu", False, True),
    (32, 48, 5, 2, 128, "relu", True, False), (48, 48, 5, 1, 192, "relu", True, True),
    (48, 48, 3, 1, 288, "relu", True, True), (48, 48, 5, 1, 144, "relu", True, True),
    (48, 96, 7, 2, 288, "h_swish", False, False), (96, 96, 5, 1, 576, "h_swish", False, True),
    (96, 96, 3, 1, 288, "h_swish", False, True), (96, 96, 5, 1, 384, "h_swish", False, True),
    (96, 136, 3, 1, 576, "h_swish", True, False), (136, 136, 5, 1, 816, "h_swish", True, True),
    (136, 136, 7, 1, 816, "h_swish", True, True), (136, 136, 3, 1, 544, "h_swish", True, True),
    (136, 192, 3, 2, 816, "h_swish", True, False), (192, 192, 5, 1, 1152, "h_swish", True, True),
    (192, 192, 3, 1, 576, "h_swish", True, True),
]


def _ofa_595m_arch(last_stage: list[tuple[int, int]] | None = None) -> ArchConfig:
    stages = [[(3, 3), (5, 4), (3, 3)], [(5, 4), (5, 4), (3, 6), (5, 3)], [(7, 6), (5, 6), (3, 3), (5, 4)],
              [(3, 6), (5, 6), (7, 6), (3, 4)], last_stage or [(3, 6), (5, 6), (3, 3)]]
    ks, e = [], []
    for st in stages:
        for j in range(4):
            k, x = st[min(j, len(st) - 1)]  # inactive slots: any valid value
            ks.append(k)
            e.append(x)
    return ArchConfig(tuple(ks), tuple(e), tuple(len(st) for st in stages), 236)


def _ofa_profile_macs(r: int) -> int:
    """OFA's ofa/utils/flops_counter.py applied to the published net.config: cin*out_elems*k*k/groups per conv
    (no bias), in*out per linear; BN, activations, pooling and the SE product count nothing."""
    h = (r - 1) // 2 + 1
    total = 3 * 24 * 9 * h * h
    for i, (cin, cout, k, s, mid, _, se, _) in enumerate(OFA_595M_BLOCKS):
        if i > 0:  # the first block has no expand conv
            total += cin * mid * h * h
        h = (h - 1) // s + 1
        total += mid * k * k * h * h
        if se:
            se_mid = ((mid // 4 + 4) // 8) * 8  # make_divisible(mid // 4, 8); never within 10% here
            total += 2 * mid * se_mid
        total += mid * cout * h * h
    return total + 192 * 1152 * h * h + 1152 * 1536 + 1536 * 1000


def test_published_ofa_subnet_has_ofa_structure():
    space = SearchSpace.preset("ofa-mbv3-w1.2")
    arch = _ofa_595m_arch()
    pre, post = fixed_layers(space, arch.r)
    stem = pre[0]
    assert (stem.kind, stem.cin, stem.cout, stem.kernel, stem.stride, stem.act) == ("conv", 3, 24, 3, 2, "h_swish")
    blocks = [pre[1:]] + _active_block_layers(space, arch)

    def row(layers):
        by = {x.kind: x for x in layers}
        dw, pj = by["depthwise"], by["project"]
        cin = by["expand"].cin if "expand" in by else dw.cin
        return (cin, pj.cout, dw.kernel, dw.stride, dw.cout, dw.act, "se" in by, pj.residual > 0)

    assert [row(b) for b in blocks] == OFA_595M_BLOCKS
    assert [(x.kind, x.cin, x.cout) for x in post] == [("expand", 192, 1152), ("pool", 1152, 1152),
                                                       ("mix", 1152, 1536), ("linear", 1536, 1000)]
    assert post[0].hin == 8  # 236 -> 118 -> 59 -> 30 -> 15 -> 8
    assert arch_layers(space, arch) == pre + [x for b in blocks[1:] for x in b] + post


def test_published_ofa_subnet_macs_as_ofa_counts_them():
    space = SearchSpace.preset("ofa-mbv3-w1.2")
    arch = _ofa_595m_arch()
    macs = int(count_macs(space, [arch])[0])
    assert macs == _ofa_profile_macs(236) == 565_550_376
    assert macs == _flop_counter_macs(Supernet(space).extract(arch), 3, 236)
    # OFA's README lists this net at 595M MACs and 9.1M params. Those figures are what its counter gives
    # with one more (k3, e6) block in the last stage (d=4): 595.19M and 9.137M, and no other single change
    # matches both; we pin that reading so any drift in our counting shows here.
    longer = _ofa_595m_arch([(3, 6), (5, 6), (3, 3), (3, 6)])
    assert round(count_macs(space, [longer])[0] / 1e6) == 595
    assert round(count_params(space, [longer])[0] / 1e5) / 10 == 9.1
    assert round(count_params(space, [arch])[0] / 1e6, 2) == 8.01


def test_counts_are_vectorised_and_consistent(tiny):
    space, _ = tiny
    codes = space.sample_codes(200, 0)
    macs = count_macs(space, codes)
    assert macs.shape == (200,)
    archs = space.decode(codes)
    singles = [sum(layer_macs(x) for x in arch_layers(space, a)) for a in archs[:20]]
    assert np.array_equal(macs[:20], singles)
    assert np.array_equal(count_macs(space, archs), macs)
    stats = arch_stats(space, archs[0])
    assert set(stats) >= {"macs", "params", "peak_activation_bytes", "peak_activation_bytes_int8"}
    assert stats["macs"] == macs[0]


def test_peak_activation_bytes_by_hand():
    space = SearchSpace.preset("tiny-mbv3")
    arch = space.smallest(r=28)
    # Largest live set of the smallest net at 28 px: stage 1's first block (16 -> 24, stride 2, e3: 48
    # channels), its 1x1 expand at 14x14: input + output (16*14*14 + 48*14*14) = 12,544 elements. (Next: its
    # stride-2 depthwise, 48*14*14 + 48*7*7 = 11,760; the first block, 3 * 16*14*14 = 9,408 with the residual.)
    fp32, int8 = peak_activation_bytes(space, [arch], "fp32")[0], peak_activation_bytes(space, [arch], "int8")[0]
    assert int8 == 12_544 and fp32 == 4 * 12_544
    big = peak_activation_bytes(space, [space.largest(r=28)])[0]
    assert big > fp32
    with pytest.raises(ValueError, match="fp32"):
        peak_activation_bytes(space, [arch], "fp16")


def test_block_tables_max_reduce(tiny):
    space, _ = tiny
    tables = BlockTables(space, lambda ls: max(x.out_elems for x in ls), lambda pre, post: 0.0, reduce="max")
    codes = space.sample_codes(5, 1)
    for a, got in zip(space.decode(codes), tables(codes)):
        assert got == max(
            max(x.out_elems for x in layers)
            for layers in _active_block_layers(space, a)
        )
    with pytest.raises(ValueError):
        BlockTables(space, len, lambda pre, post: 0.0, reduce="mean")


def _active_block_layers(space, arch):
    _, _, sizes, _ = feature_sizes(space, arch.r)
    return [block_layers(space, space.slots[i], arch.ks[i], arch.e[i], sizes[i]) for i in arch.active_blocks()]
