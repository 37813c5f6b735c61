"""MCU cost model against a net small enough to count by hand."""

import numpy as np
import pytest

from predictors import McuCostModel, Predictors
from supernet import ArchConfig, SearchSpace

# stem 1->8 (3x3, s2) | first block: dw 8 (3x3) + project 8->8, residual | one block: expand 8->32, dw 32 (3x3),
# project 32->16 | final expand 16->8 | pool | mix 8->16 (no bias) | classifier 16->2.   Input 8x8 -> 4x4 maps.
MICRO = {"name": "micro", "in_channels": 1, "num_classes": 2,
         "stem": {"width": 8, "kernel": 3, "stride": 2, "act": "relu"},
         "first_block": {"width": 8, "kernel": 3, "stride": 1, "act": "relu", "se": False},
         "stages": [{"width": 16, "stride": 1, "act": "relu", "se": False}],
         "final_expand": 8, "feature_mix": 16, "kernel_choices": [3], "expand_choices": [4], "depth_choices": [1],
         "resolutions": [8]}
CYCLES = {"cycles_per_mac_conv": 2.0, "cycles_per_mac_pointwise": 1.0, "cycles_per_mac_depthwise": 3.0,
          "cycles_per_mac_linear": 4.0, "cycles_per_elem_pool": 0.5, "layer_overhead": 100.0}


@pytest.fixture()
def micro():
    return SearchSpace.from_dict(MICRO)


def _model(space, sram=1000, flash=4000, **kw):
    return McuCostModel(space, clock_mhz=100.0, sram_bytes=sram, flash_bytes=flash, cycles=CYCLES, **kw)


def test_peak_sram_by_hand(micro):
    codes = micro.encode([ArchConfig((3,), (4,), (1,), 8)])
    # int8 bytes alive per layer: stem 64+128=192; first dw in place 128 (kept residual) + 128 = 256;
    # first project 128 kept + 128 + 128 = 384; expand 128 + 512 = 640; dw 32ch in place 512;
    # project 512 + 256 = 768 (the peak); final expand 256 + 128 = 384; pool 128 + 8; mix 24; classifier 18.
    # Beside the arena: the depthwise scratch plane, one 4x4 input channel (16 B).
    assert _model(micro).arena_bytes(codes)[0] == 768
    assert _model(micro).sram(codes)[0] == 784
    assert _model(micro, sram_runtime_bytes=100).sram(codes)[0] == 884


def test_flash_by_hand(micro):
    codes = micro.encode([ArchConfig((3,), (4,), (1,), 8)])
    # As the generated C holds them: int8 weights, then per output channel a 4-byte bias, a 4-byte multiplier and
    # a 1-byte shift, and a 68-byte op descriptor per kernel call; hard-swish adds a 256-byte table and its call.
    # stem 72+72+68, first dw 72+72+68, first project 64+72+68 + residual add 68, expand 256+288+68,
    # dw 288+288+68, project 512+144+68, final expand 128+72+68 + table 256+68, pool 68,
    # mix 128+144+68 + table 256+68, classifier 32+18+68.
    assert _model(micro).flash(codes)[0] == 4118
    assert _model(micro, flash_runtime_bytes=1000).flash(codes)[0] == 5118


def test_latency_by_hand(micro):
    codes = micro.encode([ArchConfig((3,), (4,), (1,), 8)])
    # MACs: stem 4*4*8*9=1152 (x2 cycles); depthwise 1152 + 4608 (x3); pointwise 1024+4096+8192+2048+128 (x1);
    # classifier 32 (x4); pool 128 elements (x0.5); 10 layers x 100 cycles overhead. 36,264 cycles at 100 MHz.
    assert _model(micro).predict(codes)[0] == pytest.approx(36264 / 100e3)


def test_fits_verdict_and_margins(micro):
    codes = micro.encode([ArchConfig((3,), (4,), (1,), 8)])
    ok = _model(micro, sram=1000, flash=5000).memory(codes)
    assert ok["fits"][0] and ok["sram_margin_bytes"][0] == 216 and ok["flash_margin_bytes"][0] == 882
    tight = _model(micro, sram=700, flash=5000).memory(codes)
    assert not tight["fits"][0] and tight["sram_margin_bytes"][0] == -84
    no_flash = _model(micro, sram=1000, flash=4110).memory(codes)
    assert not no_flash["fits"][0] and no_flash["flash_margin_bytes"][0] == -8


def test_in_place_depthwise_lowers_peak_vs_plain_counting(micro):
    from supernet.counting import peak_activation_bytes

    codes = micro.encode([ArchConfig((3,), (4,), (1,), 8)])
    # without in-place depthwise the 32-channel depthwise holds 512 + 512 bytes
    assert peak_activation_bytes(micro, codes, "int8")[0] == 1024
    assert _model(micro).arena_bytes(codes)[0] == 768


def test_shipped_mcus_rank_by_clock_and_memory():
    space = SearchSpace.preset("tiny-mbv3")
    codes = space.sample_codes(200, 0)
    f746, h743, f412 = (Predictors(space, d).predict(codes) for d in ("stm32f746", "stm32h743", "stm32f412"))
    assert np.all(h743.latency_ms < f746.latency_ms) and np.all(f746.latency_ms < f412.latency_ms)
    np.testing.assert_array_equal(f746.sram_bytes, h743.sram_bytes)
    big = Predictors("ofa-mbv3-w1.0", "stm32f746").predict(SearchSpace.preset("ofa-mbv3-w1.0").largest())
    assert not big.fits[0] and big.sram_margin_bytes[0] < 0
